package jobs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// This file runs the routes of a task DAG: an engine (the child) that
// reads another engine's (the parent's) output. A router reads the job's
// results topic from its first record, as the aggregator does, and turns
// each engine_output of a parent into chunks for its children, offered to
// the child's lane like the chunker's chunks (flow control, retries and
// drops apply to them alike):
//
//   - documents: one chunk per parent output, holding its vtn-standard
//     document, with the output's times and the MIME type
//     engine.DocumentMimeType(the routed output type);
//   - frames: one JPEG chunk per time the parent reports (each series'
//     start: a scene change), cut from the job's source at that time by
//     ffmpeg, an instant [t, t].
//
// A routed chunk's uuid is a function of the job, the child, the parent's
// task, chunk, start and rev, so a router that reads the topic again (a
// runner that took the job over) makes the same chunks, and those already
// finished are not sent again.
//
// The child's timestamp bound follows its parent's: the router reads the
// parent's timestamp_bound records from the same topic, after the outputs
// they cover, so every chunk that the parent's outputs up to its bound
// make has been offered by then. The child's bound is the parent's, held
// at the start of its oldest routed chunk not yet settled; the child is
// done once the parent is done and its routed chunks are settled. A child
// never passes its parent's bound, and the aggregator waits for it like
// for any task.

// routeState is a routed lane's view of its parent.
type routeState struct {
	from       string // the parent engine
	kind       string // RouteFrames or RouteDocuments
	outputType string
	parentMs   int64 // the parent's bound, as read from the results topic
	parentSeen bool
	parentDone bool
	pending    map[string]int64 // routed chunks not yet settled → their start
	made       map[string]bool  // routed chunks made in this run
}

func newRouteState(in *EngineInput) *routeState {
	return &routeState{from: in.From, kind: in.Kind, outputType: in.OutputType,
		pending: map[string]int64{}, made: map[string]bool{}}
}

// bound is the child's bound: the parent's, held at the oldest routed
// chunk not yet settled; false until the parent's bound is known.
func (rs *routeState) bound(finished map[string]metastore.ChunkState) (int64, bool) {
	for id := range rs.pending {
		if terminal(finished[id]) {
			delete(rs.pending, id)
		}
	}
	if !rs.parentSeen {
		return 0, false
	}
	b := rs.parentMs
	for _, start := range rs.pending {
		b = min(b, start)
	}
	return b, true
}

// done reports whether the child has nothing left to do.
func (rs *routeState) done(finished map[string]metastore.ChunkState) bool {
	rs.bound(finished)
	return rs.parentDone && len(rs.pending) == 0
}

// routeNamespace seeds the routed chunks' uuids.
var routeNamespace = uuid.MustParse("4b0e3f56-9d1c-5a7e-8f42-6c1d2e3a4b5c")

// routedUUID names the routed chunk of child made from a parent output
// at ms.
func routedUUID(jobID, child string, out *protocol.EngineOutput, ms int64) string {
	name := strings.Join([]string{jobID, child, out.TaskID, out.ChunkUUID, strconv.FormatInt(out.StartOffsetMs, 10),
		strconv.FormatInt(out.Rev, 10), strconv.FormatInt(ms, 10)}, "/")
	return uuid.NewSHA1(routeNamespace, []byte(name)).String()
}

// routedKind is the kind of the routed chunks, in the metadata store and
// the object store (jobs/<job>/chunks/routed/...).
const routedKind = "routed"

// children lists the lanes that read engine parent's output.
func (ru *run) children(parent string) []*lane {
	var out []*lane
	for _, l := range ru.lanes {
		if l.route != nil && l.route.from == parent {
			out = append(out, l)
		}
	}
	return out
}

// hasRoutes reports whether a lane reads another engine's output.
func (ru *run) hasRoutes() bool {
	return slices.ContainsFunc(ru.lanes, func(l *lane) bool { return l.route != nil })
}

// needsFrames reports whether a route cuts frames from the source.
func (ru *run) needsFrames() bool {
	return slices.ContainsFunc(ru.lanes, func(l *lane) bool { return l.route != nil && l.route.kind == RouteFrames })
}

// routeOutputs reads the results topic from its start until the job ends,
// routing the parents' outputs and bounds to their children.
func (ru *run) routeOutputs() {
	opts := bus.ConsumeOptions{Topics: []string{protocol.ResultsTopic(ru.job.ID)}, FromBeginning: true,
		MaxRecordBytes: protocol.MaxChunkSize + 64<<10, Handler: ru.onRouted}
	pause := time.Second
	for {
		err := ru.r.cfg.Bus.Consume(ru.ctx, opts)
		if ru.ctx.Err() != nil {
			return
		}
		ru.log.Warn("router stopped; reading the results again", "err", err, "after", pause)
		if !sleep(ru.ctx, pause) {
			return
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// onRouted handles one record of the results topic for the router. What
// is not a parent's output or bound is skipped (the results consumer
// dead-letters what is malformed).
func (ru *run) onRouted(ctx context.Context, rec *bus.Record) error {
	msg, err := protocol.Decode(rec.Key, rec.Value)
	if err != nil || msg.Validate() != nil {
		return nil
	}
	switch m := msg.(type) {
	case *protocol.EngineOutput:
		parent := ru.engineOfTask(m.TaskID)
		for _, child := range ru.children(parent) {
			ru.route(ctx, child, m)
		}
	case *protocol.TimestampBound:
		parent := ru.engineOfTask(m.TaskID)
		for _, child := range ru.children(parent) {
			ru.mu.Lock()
			rs := child.route
			rs.parentMs, rs.parentSeen = max(rs.parentMs, m.TimestampBoundMs), true
			rs.parentDone = rs.parentDone || m.Done
			ru.mu.Unlock()
			ru.settled(child)
		}
	}
	return nil
}

// engineOfTask names the engine of one of the job's tasks, "" for none.
func (ru *run) engineOfTask(taskID string) string {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if l := ru.byTask[taskID]; l != nil {
		return l.engine
	}
	return ""
}

// route makes the child's chunks of one parent output and offers them.
func (ru *run) route(ctx context.Context, child *lane, out *protocol.EngineOutput) {
	doc, err := out.Document()
	if err != nil || doc == nil {
		return // an output with no document routes nothing
	}
	switch child.route.kind {
	case RouteDocuments:
		if len(doc.Series) == 0 && len(doc.Tags) == 0 {
			return
		}
		data, err := json.Marshal(doc)
		if err != nil {
			return
		}
		id := routedUUID(ru.job.ID, child.engine, out, out.StartOffsetMs)
		ru.offerRouted(ctx, child, id, out.StartOffsetMs, out.EndOffsetMs, engine.DocumentMimeType(child.route.outputType), func() ([]byte, error) { return data, nil })
	case RouteFrames:
		for _, ms := range frameTimes(doc, out) {
			id := routedUUID(ru.job.ID, child.engine, out, ms)
			ru.offerRouted(ctx, child, id, ms, ms, "image/jpeg", func() ([]byte, error) { return ru.cutFrame(ctx, ms) })
		}
	}
}

// frameTimes are the distinct times of a parent output's series, in
// order; the output's start when it has none.
func frameTimes(doc *protocol.Document, out *protocol.EngineOutput) []int64 {
	var ts []int64
	for _, s := range doc.Series {
		ts = append(ts, s.StartTimeMs)
	}
	if len(ts) == 0 {
		ts = []int64{out.StartOffsetMs}
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

// offerRouted makes one routed chunk (its bytes from data, unless it is
// already finished) and offers it to the child's lane. A chunk whose
// bytes cannot be made fails, so the child's bound moves past it.
func (ru *run) offerRouted(ctx context.Context, l *lane, id string, startMs, endMs int64, mimeType string, data func() ([]byte, error)) {
	ru.mu.Lock()
	made, finished := l.route.made[id], terminal(l.finished[id])
	l.route.made[id] = true
	index := ru.routed
	ru.routed++
	ru.mu.Unlock()
	if made || finished {
		return
	}
	msg := &protocol.MediaChunk{Header: protocol.Header{Type: protocol.TypeMediaChunk, JobID: ru.job.ID, TDOID: ru.tdo(),
		TaskID: ru.tasks[l.engine].ID}, TaskPayload: ru.opts[l.engine], MimeType: mimeType, ChunkIndex: index,
		StartOffsetMs: startMs, EndOffsetMs: endMs, ChunkUUID: id}
	w := &work{msg: msg, kind: routedKind}
	b, err := data()
	if err == nil {
		err = ru.fillRouted(ctx, msg, b)
	}
	if ctx.Err() != nil {
		return // the run is stopping: the next one makes the chunk again
	}
	ru.mu.Lock()
	if err != nil {
		w.attempts = 1
		l.finish(w, metastore.ChunkFailed, fmt.Sprintf("routed from %s: %v", l.route.from, err))
		ru.mu.Unlock()
		ru.log.Warn("routed chunk not made", "engine", l.engine, "from", l.route.from, "at_ms", startMs, "err", err)
		ru.persist(l, w)
		ru.settled(l)
		return
	}
	queued, dropped := l.offer(w)
	if queued {
		l.route.pending[id] = startMs
	}
	send := l.next(time.Now())
	ru.mu.Unlock()
	if queued {
		ru.persist(l, w)
	}
	ru.announceDropped(l, dropped)
	ru.send(l, send)
	ru.settled(l)
}

// fillRouted puts a routed chunk's bytes inline, or in the object store
// under jobs/<job>/chunks/routed/<index>.<ext> when they are large.
func (ru *run) fillRouted(ctx context.Context, m *protocol.MediaChunk, data []byte) error {
	if int64(len(data)) <= ru.r.cfg.InlineMax {
		m.Content, m.ContentEncoding = base64.StdEncoding.EncodeToString(data), protocol.ContentBase64
		return nil
	}
	key := ChunkKey(ru.job.ID, routedKind, m.ChunkIndex, m.MimeType)
	if _, err := ru.r.cfg.Objects.Put(ctx, key, bytes.NewReader(data), int64(len(data)), m.MimeType); err != nil {
		return fmt.Errorf("store routed chunk %s: %w", key, err)
	}
	var err error
	m.CacheURI, err = ru.cacheURI(ctx, key)
	return err
}

// frameSource is a local copy of the job's source that frames are cut
// from: the VOD's original, or the stream's bytes spooled as they are read
// (format its ffmpeg demuxer). ready is closed once it is set.
type frameSource struct {
	mu       sync.Mutex
	ready    chan struct{}
	path     string
	format   string
	offsetMs int64
	growing  bool // a spool still being written
	err      error
}

func newFrameSource() *frameSource { return &frameSource{ready: make(chan struct{})} }

// set makes the copy known (or says why there is none).
func (f *frameSource) set(path, format string, offsetMs int64, growing bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.ready:
		return
	default:
	}
	f.path, f.format, f.offsetMs, f.growing, f.err = path, format, offsetMs, growing, err
	close(f.ready)
}

// finished marks a spool complete: the stream has ended.
func (f *frameSource) finished() {
	f.mu.Lock()
	f.growing = false
	f.mu.Unlock()
}

// maxFrameTries is how often a frame of a spool still being written is
// tried, a second apart, before it is given up.
const maxFrameTries = 5

// cutFrame cuts the source's frame at ms (on the TDO timeline) as a JPEG.
func (ru *run) cutFrame(ctx context.Context, ms int64) ([]byte, error) {
	fs := ru.frames
	select {
	case <-fs.ready:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	for try := 1; ; try++ {
		fs.mu.Lock()
		path, format, off, growing, err := fs.path, fs.format, fs.offsetMs, fs.growing, fs.err
		fs.mu.Unlock()
		if err != nil {
			return nil, err
		}
		jpg, err := ru.ffmpegFrame(ctx, path, format, ms-off)
		if err == nil || !growing || try >= maxFrameTries {
			return jpg, err
		}
		if !sleep(ctx, time.Second) {
			return nil, context.Cause(ctx)
		}
	}
}

// errNoFrame: the source has no frame at the time asked.
var errNoFrame = errors.New("no video frame there")

// ffmpegFrame decodes the first frame at or after ms (from the file's
// start) of the file at path.
func (ru *run) ffmpegFrame(ctx context.Context, path, format string, ms int64) ([]byte, error) {
	// A millisecond early: the parent's time is the frame's, rounded.
	seek := strconv.FormatFloat(float64(max(ms-1, 0))/1000, 'f', 3, 64)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	args = append(args, media.InputArgs(media.ProtocolsFile, format)...)
	args = append(args, "-ss", seek, "-i", "file:"+path, "-map", "0:v:0", "-an", "-sn", "-dn",
		"-frames:v", "1", "-c:v", "mjpeg", "-q:v", "2", "-f", "image2pipe", "pipe:1")
	cmd := exec.CommandContext(ctx, ru.ffmpeg(), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("cut the frame at %d ms: %w: %s", ms, err, strings.TrimSpace(stderr.String()))
	}
	if stdout.Len() == 0 {
		return nil, fmt.Errorf("cut the frame at %d ms: %w", ms, errNoFrame)
	}
	return stdout.Bytes(), nil
}

// Frames are cut from a NUT copy of the source, never from the source
// itself: a title's original remuxed (copied, not decoded) as the stream
// engines read it, or a stream source remuxed as it arrives. ffmpeg moves
// a source's first timestamp to 0 in both, as it does for the stream
// engines reading it, so the times a parent reports are the copy's; and
// ffmpeg seeks in NUT exactly, which it does not in MPEG-TS near its end.

// spoolFile is a NUT copy of the source being written; it never fails a
// write (a copy that cannot be written only loses frames).
type spoolFile struct {
	lenientWriter
	f  *os.File
	fs *frameSource
}

// newSpool creates the copy, starting at offsetMs on the TDO timeline,
// and makes it the frame source, growing until close; nil when it cannot
// be made (the frame source then says why).
func (ru *run) newSpool(offsetMs int64) *spoolFile {
	f, err := os.CreateTemp(ru.r.cfg.TempDir, "frames-*.nut")
	if err != nil {
		ru.frames.set("", "", 0, false, fmt.Errorf("copy the source for its frames: %w", err))
		return nil
	}
	ru.keep = f.Name()
	ru.frames.set(f.Name(), "nut", offsetMs, true, nil)
	return &spoolFile{lenientWriter: lenientWriter{w: f}, f: f, fs: ru.frames}
}

// close ends the copy: the source has ended.
func (s *spoolFile) close() {
	s.f.Close()
	s.fs.finished()
}

// remuxArgs are ffmpeg's arguments to copy the first video stream of an
// input into NUT on stdout, flushing every packet.
func remuxArgs(input []string) []string {
	args := append([]string{"-hide_banner", "-nostdin", "-loglevel", "error"}, input...)
	return append(args, "-map", "0:v:0", "-c", "copy", "-flush_packets", "1", "-f", "nut", "pipe:1")
}

// copyFrames writes the NUT copy of a title's original before the job's
// chunks are cut, for a job whose stream engines do not remux it.
func (ru *run) copyFrames(path string, offsetMs int64) {
	sp := ru.newSpool(offsetMs)
	if sp == nil {
		return
	}
	defer sp.close()
	input := append(media.InputArgs(media.ProtocolsFile, ""), "-i", "file:"+path)
	cmd := exec.CommandContext(ru.ctx, ru.ffmpeg(), remuxArgs(input)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = sp, &stderr
	if err := cmd.Run(); err != nil {
		ru.log.Warn("copy the source for its frames", "err", err, "ffmpeg", strings.TrimSpace(stderr.String()))
	}
}

// spoolStream copies a stream source into NUT as it is read, through a
// bounded queue (a copy that falls behind loses bytes, never holds up the
// source); the returned function ends the copy once the stream has
// ended.
func (ru *run) spoolStream(body io.ReadCloser, format string, offsetMs int64) (io.ReadCloser, func()) {
	sp := ru.newSpool(offsetMs)
	if sp == nil {
		return body, func() {}
	}
	input := append(media.InputArgs(media.ProtocolsPipe, format), "-analyzeduration", "1000000", "-i", "pipe:0")
	cmd := exec.CommandContext(ru.ctx, ru.ffmpeg(), remuxArgs(input)...)
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, sp, &stderr
	if err := cmd.Start(); err != nil {
		sp.close()
		ru.log.Warn("copy the stream for its frames", "err", err)
		return body, func() {}
	}
	feed := newLiveFeed(pw, liveFeedBytes)
	waited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pr.CloseWithError(errors.New("the copy for frames stopped"))
		waited <- err
	}()
	return &teeCloser{Reader: io.TeeReader(body, feed), Closer: body}, func() {
		feed.close(nil)
		<-feed.done
		if err := <-waited; err != nil && ru.ctx.Err() == nil {
			ru.log.Warn("copy the stream for its frames", "err", err, "ffmpeg", strings.TrimSpace(stderr.String()))
		}
		sp.close()
	}
}

// teeCloser reads through a tee and closes the source it reads.
type teeCloser struct {
	io.Reader
	io.Closer
}
