package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// This file runs a job's stream engines. A stream engine reads the job's
// source as one stream of bytes, in order, and emits time-coded pieces as
// it goes (engine.StreamEngine). The runner runs built-in stream engines
// itself, on the bytes the chunker reads (a tee), and writes what they
// emit to the job's results topic as engine_output, like any engine: the
// results path, and an aggregator reading the topic, cannot tell them
// apart. The Emitter's bound goes out on engine_heartbeat as
// timestampBoundMs. For progress, a stream engine's whole run is one
// chunk, "stream", in the metadata store.

// streamKind is the kind of a stream engine's one pseudo-chunk.
const streamKind = "stream"

// streamTask is one stream engine of a job.
type streamTask struct {
	lane *lane // the engine's lane: its name, task and results
	reg  engine.Registration
	opts engine.Options
	w    *work // the pseudo-chunk that records its progress

	pr   *io.PipeReader
	pw   *io.PipeWriter
	feed *liveFeed // on a live source: the queue in front of pw
	done chan struct{}
}

// newStreamTask makes the stream task of a lane; nil when the engine
// finished in an earlier run.
func (ru *run) newStreamTask(l *lane, reg engine.Registration, payload json.RawMessage) (*streamTask, error) {
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("engine %s: options: %w", l.engine, err)
	}
	opts, err := reg.Spec.ParseOptions(raw)
	if err != nil {
		return nil, fmt.Errorf("engine %s: options: %w", l.engine, err)
	}
	uuid := streamUUID(ru.job.ID, l.engine)
	if terminal(l.finished[uuid]) {
		return nil, nil
	}
	w := &work{kind: streamKind, msg: &protocol.MediaChunk{Header: protocol.Header{TaskID: ru.tasks[l.engine].ID},
		ChunkUUID: uuid}}
	pr, pw := io.Pipe()
	return &streamTask{lane: l, reg: reg, opts: opts, w: w, pr: pr, pw: pw, done: make(chan struct{})}, nil
}

// streamUUID names a stream engine's pseudo-chunk.
func streamUUID(jobID, engineName string) string { return jobID + "/" + engineName + "/stream" }

// tee returns body with every byte read from it also written to the
// stream engines' pipes. A stream engine that stopped reading no longer
// gets bytes; the chunker reads on.
func (ru *run) tee(body io.Reader) io.Reader {
	if len(ru.streams) == 0 {
		return body
	}
	return io.TeeReader(body, ru.streamWriter())
}

// streamWriter writes to every stream engine's pipe; one that stopped
// reading no longer gets bytes, and never fails the write.
//
// On a live source each engine reads through a bounded queue of its own
// (liveFeed), so a stream engine slower than real time never holds up the
// chunker or the other engines; elsewhere a slow engine makes the others
// wait, which loses nothing.
func (ru *run) streamWriter() io.Writer {
	ws := make([]io.Writer, len(ru.streams))
	for i, st := range ru.streams {
		if st.lane.live {
			if st.feed == nil {
				st.feed = newLiveFeed(st.pw, liveFeedBytes)
			}
			ws[i] = st.feed
		} else {
			ws[i] = &lenientWriter{w: st.pw}
		}
	}
	return io.MultiWriter(ws...)
}

// liveFeedBytes bounds what a stream engine may fall behind a live
// source, in bytes of the stream (about 40 s of a 3 Mbit/s stream).
var liveFeedBytes = 16 << 20

// liveFeed queues a live stream's bytes for one stream engine, up to max
// bytes: Write never blocks, and bytes that do not fit are dropped and
// counted (the engine's demuxer resyncs over the gap, as after a lost
// packet). A goroutine hands the queue to the engine's pipe.
type liveFeed struct {
	mu      sync.Mutex
	wake    chan struct{}
	queue   [][]byte
	queued  int
	max     int
	closed  bool
	err     error
	dropped int64
	done    chan struct{}
}

func newLiveFeed(pw *io.PipeWriter, max int) *liveFeed {
	f := &liveFeed{wake: make(chan struct{}, 1), max: max, done: make(chan struct{})}
	go f.run(pw)
	return f
}

// Write queues a copy of p, or drops it when the queue is full.
func (f *liveFeed) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.closed || f.queued+len(p) > f.max {
		if !f.closed {
			f.dropped += int64(len(p))
		}
		f.mu.Unlock()
		return len(p), nil
	}
	f.queue = append(f.queue, bytes.Clone(p))
	f.queued += len(p)
	f.mu.Unlock()
	f.signal()
	return len(p), nil
}

func (f *liveFeed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// close ends the feed with err (nil: the source's end) once the queue is
// handed over.
func (f *liveFeed) close(err error) {
	f.mu.Lock()
	if !f.closed {
		f.closed, f.err = true, err
	}
	f.mu.Unlock()
	f.signal()
}

// droppedBytes is how much the engine missed.
func (f *liveFeed) droppedBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

func (f *liveFeed) run(pw *io.PipeWriter) {
	defer close(f.done)
	broken := false
	for {
		f.mu.Lock()
		if len(f.queue) == 0 {
			if f.closed {
				err := f.err
				f.mu.Unlock()
				pw.CloseWithError(err)
				return
			}
			f.mu.Unlock()
			<-f.wake
			continue
		}
		b := f.queue[0]
		f.queue = f.queue[1:]
		f.queued -= len(b)
		f.mu.Unlock()
		if !broken {
			if _, err := pw.Write(b); err != nil {
				broken = true // the engine stopped reading: discard the rest
			}
		}
	}
}

// lenientWriter writes to w until a write fails, then discards.
type lenientWriter struct {
	w      io.Writer
	failed bool
}

func (l *lenientWriter) Write(p []byte) (int, error) {
	if !l.failed {
		if _, err := l.w.Write(p); err != nil {
			l.failed = true
		}
	}
	return len(p), nil
}

// startStreams runs every stream engine on the source: on the tee'd bytes
// of a stream, or, for a file, on the file remuxed into NUT as it is
// read (a file may be an MP4 with its index at the end, which no engine
// could read as a stream). The remux copies, it does not decode; NUT carries any codec and needs no seeking. It
// returns a function that waits for the remux to have read the file.
func (ru *run) startStreams(in *input, init protocol.StreamInit) (wait func()) {
	if len(ru.streams) == 0 {
		return func() {}
	}
	for _, st := range ru.streams {
		go func() {
			defer close(st.done)
			ru.endStream(st, ru.runStream(st, st.pr, init))
		}()
	}
	if in.path == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ru.endSources(ru.remux(in.path))
	}()
	return func() { <-done }
}

// remux writes the file at path, remuxed into NUT, to the stream
// engines' pipes.
func (ru *run) remux(path string) error {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	args = append(args, media.InputArgs(media.ProtocolsFile, "")...)
	args = append(args, "-i", "file:"+path, "-map", "0", "-c", "copy", "-f", "nut", "pipe:1")
	cmd := exec.CommandContext(ru.ctx, ru.ffmpeg(), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = ru.streamWriter()
	if sp := ru.remuxSpool; sp != nil {
		cmd.Stdout = io.MultiWriter(sp, cmd.Stdout) // the spool first: frames are cut from it
		defer sp.close()
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("remux %s for the stream engines: %w: %s", filepath.Base(path), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// ffmpeg is the ffmpeg program the runner runs.
func (ru *run) ffmpeg() string {
	if ru.r.cfg.FFmpeg != "" {
		return ru.r.cfg.FFmpeg
	}
	return "ffmpeg"
}

// endSources tells the stream engines reading the tee that the source
// ended, with err (nil: at its end).
func (ru *run) endSources(err error) {
	for _, st := range ru.streams {
		if st.feed != nil {
			st.feed.close(err)
		} else {
			st.pw.CloseWithError(err)
		}
	}
}

// streamsDone reports whether every stream engine has finished.
func (ru *run) streamsDone() bool {
	for _, st := range ru.streams {
		select {
		case <-st.done:
		default:
			return false
		}
	}
	return true
}

// runStream runs one stream engine to the end of its input.
func (ru *run) runStream(st *streamTask, body io.Reader, init protocol.StreamInit) error {
	ru.mu.Lock()
	st.w.state, st.w.attempts, st.w.sentAt = metastore.ChunkSent, st.w.attempts+1, time.Now()
	st.lane.inflight[st.w.uuid()] = st.w
	ru.mu.Unlock()
	ru.persist(st.lane, st.w)
	factory, ok := st.reg.Factory.(engine.StreamFactory)
	if !ok {
		return fmt.Errorf("engine %s is not a stream engine", st.lane.engine)
	}
	eng, err := factory()
	if err != nil {
		return err
	}
	hb := &streamHeartbeats{ru: ru, st: st}
	emit := engine.NewEmitter(func(p engine.Piece) error { return ru.produceOutput(st, p) },
		engine.WithOffset(init.RelativeStartOffsetMS), engine.OnBound(hb.bound),
		engine.WithArtifacts(&jobArtifacts{ru: ru, engine: st.lane.engine}))
	stop := hb.keepAlive(ru.r.cfg.HeartbeatInterval)
	err = eng.Process(ru.ctx, &engine.Stream{Init: init, Body: body}, st.opts, emit)
	stop()
	st.pr.CloseWithError(fmt.Errorf("engine %s stopped reading", st.lane.engine))
	hb.send(protocol.HeartbeatDone, nil)
	return err
}

// endStream answers a stream engine's pseudo-chunk on the results topic,
// after everything it emitted: the job is complete only once the results
// consumer has read its outputs and then this answer.
func (ru *run) endStream(st *streamTask, err error) {
	if ru.ctx.Err() != nil {
		return // the job stopped: the next run starts the engine again
	}
	status := &protocol.ChunkProcessedStatus{Header: protocol.Header{Type: protocol.TypeChunkProcessedStatus,
		TimestampUTC: protocol.NowMillis(), TaskID: st.w.msg.TaskID, JobID: ru.job.ID, TDOID: ru.tdo()},
		ChunkUUID: st.w.uuid(), Status: protocol.ChunkSuccess}
	if err != nil {
		ru.log.Warn("stream engine failed", "engine", st.lane.engine, "err", err)
		status.Status, status.ErrorMsg = protocol.ChunkError, err.Error()
	}
	if st.feed != nil {
		if n := st.feed.droppedBytes(); n > 0 {
			status.InfoMsg = fmt.Sprintf("dropped %.1f MiB of the live stream: engine behind live", float64(n)/(1<<20))
			ru.log.Warn("stream engine fell behind a live source", "engine", st.lane.engine, "dropped_bytes", n)
		}
	}
	if perr := ru.produce(protocol.ResultsTopic(ru.job.ID), status); perr != nil {
		ru.log.Warn("stream engine end", "engine", st.lane.engine, "err", perr)
	}
	ru.finishBound(st.lane)
}

// produceOutput writes one emitted piece as engine_output on the results
// topic.
func (ru *run) produceOutput(st *streamTask, p engine.Piece) error {
	out := &protocol.EngineOutput{Header: protocol.Header{Type: protocol.TypeEngineOutput, TimestampUTC: protocol.NowMillis(),
		TaskID: st.w.msg.TaskID, JobID: ru.job.ID, TDOID: ru.tdo()},
		OutputType: outputType(st.reg.Spec), MimeType: "application/json",
		StartOffsetMs: p.StartMs, EndOffsetMs: p.EndMs, ChunkUUID: st.w.uuid()}
	if err := out.SetDocument(p.Doc); err != nil {
		return err
	}
	return ru.produce(protocol.ResultsTopic(ru.job.ID), out)
}

// jobArtifacts stores a stream engine's artifacts in the object store,
// under ArtifactKey, and answers URLs as chunks' cacheURIs are made.
type jobArtifacts struct {
	ru     *run
	engine string
}

// Put implements engine.Artifacts.
func (a *jobArtifacts) Put(ctx context.Context, name, contentType string, data []byte) (string, error) {
	if err := engine.ValidArtifactName(name); err != nil {
		return "", fmt.Errorf("engine %s: %w", a.engine, err)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	key := ArtifactKey(a.ru.job.ID, a.engine, name)
	if _, err := a.ru.r.cfg.Objects.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentType); err != nil {
		return "", fmt.Errorf("store artifact %s: %w", key, err)
	}
	return a.ru.artifactURL(ctx, key)
}

// artifactURL is where results point at an artifact. Results are kept for
// good, so weir's own URL (readable without a token, like playlists) is
// preferred to a presigned one, which expires; presigning is the fallback
// when weir has no public URL.
func (ru *run) artifactURL(ctx context.Context, key string) (string, error) {
	if ru.r.cfg.PublicURL != nil {
		if base := ru.r.cfg.PublicURL(); base != "" {
			return strings.TrimRight(base, "/") + "/" + key, nil
		}
	}
	return ru.cacheURI(ctx, key)
}

// ArtifactKey is the object-store key of a file an engine of a job
// stored: jobs/<job>/artifacts/<engine>/<name>. GET /jobs/{id}/artifacts/
// {engine}/{file} serves it.
func ArtifactKey(jobID, engineName, name string) string {
	return "jobs/" + jobID + "/artifacts/" + engineName + "/" + name
}

func outputType(s engine.Spec) string {
	if len(s.Outputs) > 0 {
		return s.Outputs[0]
	}
	return "tag"
}

// produce encodes and produces a protocol message.
func (ru *run) produce(topic string, m protocol.Message) error {
	key, value, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return ru.r.cfg.Bus.Produce(ru.ctx, &bus.Record{Topic: topic, Key: key, Value: value})
}

// streamHeartbeats sends a stream engine's heartbeats: one when its bound
// moves (at most one a second), carrying the bound; one every heartbeat
// interval while the engine runs without moving it; DONE at its end.
type streamHeartbeats struct {
	ru        *run
	st        *streamTask
	mu        sync.Mutex
	count     int64
	last      time.Time
	start     time.Time
	lastBound *int64 // the last bound sent, nil before the first
}

func (h *streamHeartbeats) bound(ms int64) error {
	h.ru.streamBound(h.st.lane, ms)
	h.mu.Lock()
	due := time.Since(h.last) >= time.Second
	h.mu.Unlock()
	if due {
		h.send(protocol.HeartbeatRunning, &ms)
	}
	return nil
}

// keepAlive sends a RUNNING heartbeat, with the last bound sent, whenever
// a heartbeat interval passes without one, until stop is called. An engine
// can rightly hold its bound for long (stt decoding a long utterance on a
// busy machine, black inside a long black stretch); its instance is alive
// all the same and must not be marked down for silence, which would fail
// its task while it works.
func (h *streamHeartbeats) keepAlive(every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-h.ru.ctx.Done():
				return
			case <-t.C:
			}
			h.mu.Lock()
			due, b := time.Since(h.last) >= every, h.lastBound
			h.mu.Unlock()
			if due {
				h.send(protocol.HeartbeatRunning, b)
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (h *streamHeartbeats) send(status protocol.HeartbeatStatus, boundMs *int64) {
	h.mu.Lock()
	if h.start.IsZero() {
		h.start = time.Now()
	}
	h.count++
	h.last = time.Now()
	if boundMs != nil {
		b := *boundMs
		h.lastBound = &b
	}
	m := &protocol.EngineHeartbeat{Header: protocol.Header{Type: protocol.TypeEngineHeartbeat, TimestampUTC: protocol.NowMillis(),
		TaskID: h.st.w.msg.TaskID, JobID: h.ru.job.ID, TDOID: h.ru.tdo()},
		EngineID: h.st.lane.engine, EngineInstanceID: h.st.lane.engine + "@" + h.ru.r.cfg.Holder,
		Count: h.count, Status: status, UpTime: time.Since(h.start).Milliseconds(), TimestampBoundMs: boundMs}
	h.mu.Unlock()
	if err := h.ru.produce(protocol.ResultsTopic(h.ru.job.ID), m); err != nil && h.ru.ctx.Err() == nil {
		h.ru.log.Warn("stream engine heartbeat", "engine", h.st.lane.engine, "err", err)
	}
}
