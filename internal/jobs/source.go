package jobs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/chunker"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// describeSource names a job's source for logs.
func describeSource(s Source) string {
	switch {
	case s.VOD != "":
		return "vod " + s.VOD
	case s.Live != "":
		return "live " + s.Live
	case s.Topic != "":
		return "topic " + s.Topic
	}
	return "url " + s.URL
}

// input is a job's source opened for the chunker: a stream (body) or a
// local file (path), which ffmpeg can seek in (an MP4 with its index at
// the end cannot be read as a stream).
type input struct {
	body     io.ReadCloser
	path     string
	init     protocol.StreamInit // the topic's stream_init; a stand-in for a file
	format   string              // the ffmpeg demuxer, "" to probe
	offsetMs int64               // where the source starts on the TDO timeline
	live     bool
}

// chunkSource opens the job's source and cuts it into chunks until it
// ends. Its error is the job's failure.
func (ru *run) chunkSource() (err error) {
	in, err := ru.openSource()
	if err != nil {
		ru.endSources(err)
		ru.frames.set("", "", 0, false, fmt.Errorf("the source: %w", err))
		return err
	}
	if in.path != "" {
		// A file is remuxed for the stream engines as it is read.
		in.init = protocol.StreamInit{MimeType: "video/x-nut", FFmpegFormat: "nut"}
	}
	// Frames a route cuts come from a NUT copy of the source on the
	// stream engines' timeline (route.go).
	switch {
	case !ru.needsFrames():
	case in.path != "" && len(ru.streams) > 0:
		ru.remuxSpool = ru.newSpool(in.offsetMs) // written by the stream engines' remux
	case in.path != "":
		ru.copyFrames(in.path, in.offsetMs)
	}
	waitRemux := ru.startStreams(in, in.init)
	if in.path != "" {
		defer func() {
			waitRemux()
			os.Remove(in.path)
		}()
	} else {
		defer func() { ru.endSources(err) }()
		defer in.body.Close()
		if ru.needsFrames() {
			var endSpool func()
			in.body, endSpool = ru.spoolStream(in.body, in.format, in.offsetMs)
			defer endSpool()
		}
	}
	ru.mu.Lock()
	ru.offset = in.offsetMs
	if in.live {
		for _, l := range ru.lanes {
			l.live = true
		}
	}
	ru.mu.Unlock()
	ru.startBounds(in.offsetMs)
	opts := ru.chunkOptions(in.format)
	if in.live {
		// The first chunks wait for the probe: keep it near one chunk.
		opts.ProbeWindow = min(max(opts.Duration, time.Second), 2*time.Second)
	}
	if in.path != "" {
		if len(opts.Kinds) == 0 {
			return nil // stream engines only: they read the file themselves
		}
		return chunker.RunFile(ru.ctx, in.path, opts, ru.onChunk)
	}
	body := ru.tee(in.body)
	if len(opts.Kinds) == 0 {
		_, err := io.Copy(io.Discard, body) // stream engines only
		return err
	}
	return chunker.Run(ru.ctx, body, opts, ru.onChunk)
}

// chunkOptions turns the request's chunking into the chunker's options,
// asking for the kinds the job's engines read.
func (ru *run) chunkOptions(format string) chunker.Options {
	o := chunker.Options{InputFormat: format, FFmpeg: ru.r.cfg.FFmpeg, TempDir: ru.r.cfg.TempDir,
		FrameRate: ru.req.Chunking.FrameRate, SceneThreshold: ru.req.Chunking.SceneThreshold,
		AudioFormat: ru.req.Chunking.Audio}
	if d, err := protocol.ParseDuration(ru.req.Chunking.Duration); err == nil && d > 0 {
		o.Duration = d
	}
	seen := map[chunker.Kind]bool{}
	for _, k := range ru.kinds {
		if k != "" && !seen[k] {
			seen[k] = true
			o.Kinds = append(o.Kinds, k)
		}
	}
	return o
}

// openSource opens the job's source: a VOD title's original upload, a
// stream topic (a live stream's, or any adapter's), or a URL pulled into a
// stream topic of the job's own.
func (ru *run) openSource() (*input, error) {
	src := ru.req.Source
	switch {
	case src.VOD != "":
		st, err := ru.r.cfg.Meta.GetStream(ru.ctx, src.VOD)
		if err != nil {
			return nil, err
		}
		if st.SourceKey == "" {
			return nil, fmt.Errorf("vod %s has no original upload to process", src.VOD)
		}
		path, err := ru.download(st.SourceKey)
		if err != nil {
			return nil, fmt.Errorf("vod %s: fetch its original: %w", src.VOD, err)
		}
		return &input{path: path}, nil
	case src.Live != "":
		return ru.openTopic(protocol.StreamTopic(src.Live))
	case src.Topic != "":
		return ru.openTopic(src.Topic)
	}
	topic := protocol.StreamTopic(ru.job.ID)
	go ru.pull(src.URL, topic)
	return ru.openTopic(topic)
}

// download copies an object into a temporary file and returns its path.
func (ru *run) download(key string) (string, error) {
	body, _, err := ru.r.cfg.Objects.Get(ru.ctx, key)
	if err != nil {
		return "", err
	}
	defer body.Close()
	f, err := os.CreateTemp(ru.r.cfg.TempDir, "source-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// pull reads a URL into topic as Veritone's pull adapter would; a failure
// before anything was published fails the job.
func (ru *run) pull(url, topic string) {
	res, err := ingest.Pull(ru.ctx, ingest.PullOptions{Source: url, Topic: topic,
		HTTPClient: ru.r.cfg.HTTPClient, Logger: ru.log,
		Stream: ingest.StreamOptions{JobID: ru.job.ID, TdoID: ru.job.ID}}, ru.r.cfg.Bus)
	if err != nil && !res.Published && ru.ctx.Err() == nil {
		ru.cancel(fmt.Errorf("%w: pull %s: %w", errSource, url, err))
	}
}

// openTopic reads a stream topic from its first record: it waits for the
// stream_init (a live stream may not have started yet), then hands the
// raw_stream bytes on through a pipe until the stream_eof. Only the first
// stream of the topic is read (its key prefix); a broken stream (bytes out
// of order, a failed integrity check) ends the input with an error.
func (ru *run) openTopic(topic string) (*input, error) {
	if err := protocol.ValidateTopic(topic); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	inits := make(chan *protocol.StreamInit, 1)
	ctx, stop := context.WithCancel(ru.ctx)
	tr := &topicReader{pw: pw, inits: inits, stop: stop}
	go func() {
		err := ru.r.cfg.Bus.Consume(ctx, bus.ConsumeOptions{Topics: []string{topic}, FromBeginning: true,
			MaxRecordBytes: protocol.MaxChunkSize + 64<<10, Handler: tr.handle})
		if err == nil && !tr.ended {
			err = fmt.Errorf("topic %s: reading stopped before its stream_eof", topic)
		}
		pw.CloseWithError(err)
		stop()
	}()
	select {
	case init := <-inits:
		return &input{body: &stopReader{pr, stop}, format: init.FFmpegFormat, init: *init,
			offsetMs: init.RelativeStartOffsetMS, live: init.DurationMS == 0}, nil
	case <-ctx.Done():
		pr.Close()
		return nil, fmt.Errorf("topic %s: no stream_init: %w", topic, context.Cause(ctx))
	}
}

// stopReader is the topic pipe's reading end; Close stops the consumer.
type stopReader struct {
	*io.PipeReader
	stop func()
}

func (s *stopReader) Close() error { s.stop(); return s.PipeReader.Close() }

// topicReader follows the first stream of a topic.
type topicReader struct {
	reader protocol.StreamReader
	pw     *io.PipeWriter
	inits  chan *protocol.StreamInit
	stop   func()
	prefix *string
	ended  bool
}

func (t *topicReader) handle(ctx context.Context, rec *bus.Record) error {
	if t.ended {
		return nil
	}
	msg, err := t.reader.Next(rec.Key, rec.Value)
	if msg == nil {
		return nil // not a stream message: skipped, as a packager would
	}
	switch m := msg.(type) {
	case *protocol.StreamInit:
		if t.prefix != nil {
			return nil
		}
		p := m.KeyPrefix
		t.prefix = &p
		t.inits <- m
	case *protocol.RawStream:
		if t.prefix == nil || m.KeyPrefix != *t.prefix {
			return nil
		}
		if err != nil {
			t.fail(fmt.Errorf("stream broken at offset %d: %w", rec.Offset, err))
			return nil
		}
		if _, werr := t.pw.Write(m.Data); werr != nil {
			t.ended = true
			t.stop()
		}
	case *protocol.StreamEOF:
		if t.prefix == nil || m.KeyPrefix != *t.prefix {
			return nil
		}
		if err != nil {
			t.fail(fmt.Errorf("stream_eof: %w", err))
			return nil
		}
		t.ended = true
		t.pw.Close()
		t.stop()
	}
	return nil
}

func (t *topicReader) fail(err error) {
	t.ended = true
	t.pw.CloseWithError(err)
	t.stop()
}

// onChunk hands a chunk the chunker cut to every engine that reads its
// kind: its bytes go inline or to the object store, then a media_chunk per
// engine is queued in the engine's lane (and sent when the lane has
// room). On a VOD source it waits while a lane's queue is long, so the
// chunker runs no further ahead of the engines than that.
func (ru *run) onChunk(ctx context.Context, c chunker.Chunk) error {
	uuid := chunker.UUID(ru.job.ID, c.Kind, c.Index)
	lanes, finished := ru.lanesFor(c, uuid)
	for _, l := range finished {
		ru.settled(l)
	}
	if len(lanes) == 0 {
		return nil
	}
	if err := ru.waitForRoom(ctx); err != nil {
		return err
	}
	base, err := ru.chunkMessage(ctx, c, uuid)
	if err != nil {
		return err
	}
	for _, l := range lanes {
		msg := *base
		msg.TaskID = ru.tasks[l.engine].ID
		msg.TaskPayload = ru.opts[l.engine]
		w := &work{msg: &msg, kind: string(c.Kind)}
		ru.mu.Lock()
		queued, dropped := l.offer(w)
		send := l.next(time.Now())
		ru.mu.Unlock()
		if queued {
			ru.persist(l, w)
		}
		ru.announceDropped(l, dropped)
		ru.send(l, send)
		ru.settled(l)
	}
	return nil
}

// lanesFor returns the lanes that read the chunk's kind and have not
// finished it in an earlier run, and those that have (the chunk counts in
// their bound's sequence all the same).
func (ru *run) lanesFor(c chunker.Chunk, uuid string) (todo, finished []*lane) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	for _, l := range ru.lanes {
		switch {
		case ru.kinds[l.engine] != c.Kind:
		case terminal(l.finished[uuid]):
			l.seq.add(uuid, c.EndMs+ru.offset)
			finished = append(finished, l)
		default:
			todo = append(todo, l)
		}
	}
	return todo, finished
}

// maxQueued is how many chunks a VOD lane queues before the chunker waits.
const maxQueued = 32

func (ru *run) waitForRoom(ctx context.Context) error {
	for {
		ru.mu.Lock()
		full := false
		for _, l := range ru.lanes {
			full = full || (!l.live && len(l.queue) >= maxQueued)
		}
		ru.mu.Unlock()
		if !full {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ru.wake:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// chunkMessage makes the media_chunk common to every engine: offsets on
// the TDO timeline and the bytes inline (small chunks) or in the object
// store under ChunkKey, reached by cacheURI.
func (ru *run) chunkMessage(ctx context.Context, c chunker.Chunk, uuid string) (*protocol.MediaChunk, error) {
	ru.mu.Lock()
	off := ru.offset
	ru.mu.Unlock()
	m := &protocol.MediaChunk{Header: protocol.Header{Type: protocol.TypeMediaChunk, JobID: ru.job.ID, TDOID: ru.tdo()},
		MimeType: c.MimeType, ChunkIndex: c.Index, StartOffsetMs: c.StartMs + off, EndOffsetMs: c.EndMs + off,
		Width: int64(c.Width), Height: int64(c.Height), ChunkUUID: uuid}
	if c.Size <= ru.r.cfg.InlineMax {
		b, err := os.ReadFile(c.Path)
		if err != nil {
			return nil, err
		}
		m.Content, m.ContentEncoding = base64.StdEncoding.EncodeToString(b), protocol.ContentBase64
		return m, nil
	}
	key := ChunkKey(ru.job.ID, string(c.Kind), c.Index, c.MimeType)
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := ru.r.cfg.Objects.Put(ctx, key, f, c.Size, c.MimeType); err != nil {
		return nil, fmt.Errorf("store chunk %s: %w", key, err)
	}
	m.CacheURI, err = ru.cacheURI(ctx, key)
	return m, err
}

// tdo is the id of what the results belong to: the stream, or the job.
func (ru *run) tdo() string {
	if id := ru.job.StreamID; id != "" {
		return id
	}
	return ru.job.ID
}

// cacheURI is where an engine fetches a stored chunk: a presigned URL of
// the object store, or weir's own API.
func (ru *run) cacheURI(ctx context.Context, key string) (string, error) {
	u, err := ru.r.cfg.Objects.PresignGet(ctx, key, 24*time.Hour)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, objstore.ErrPresignUnsupported) {
		return "", err
	}
	base := ""
	if ru.r.cfg.PublicURL != nil {
		base = ru.r.cfg.PublicURL()
	}
	if base == "" {
		return "", fmt.Errorf("chunk %s: the object store cannot presign and weir has no public URL (--public-url)", key)
	}
	return strings.TrimRight(base, "/") + "/" + key, nil
}

// ChunkKey is the object-store key of a job's chunk:
// jobs/<job>/chunks/<kind>/<index, 6 digits>.<ext>. GET /jobs/{id}/chunks/
// {kind}/{file} serves it.
func ChunkKey(jobID, kind string, index int64, mimeType string) string {
	return fmt.Sprintf("jobs/%s/chunks/%s/%06d.%s", jobID, kind, index, chunkExt(mimeType))
}

func chunkExt(mimeType string) string {
	switch mimeType {
	case "video/mp2t":
		return "ts"
	case "audio/wav", "audio/x-wav":
		return "wav"
	case "image/jpeg":
		return "jpg"
	case "audio/aac":
		return "aac"
	}
	if strings.HasSuffix(mimeType, "+json") {
		return "json" // an engine's document, routed to another
	}
	return "bin"
}
