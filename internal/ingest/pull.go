package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/protocol"
)

// Pull defaults.
const (
	// DefaultReadTimeout is how long an HTTP source may send nothing
	// (connecting, waiting for headers, or between reads) before Pull
	// gives up on it.
	DefaultReadTimeout = 15 * time.Second
	// DefaultProbeLimit is the most bytes Pull buffers from a stream
	// source to recognise its format before publishing anything.
	DefaultProbeLimit = 1 << 20
	// DefaultMaxDelay is how long bytes of a live source may wait for
	// their raw_stream chunk to fill.
	DefaultMaxDelay = time.Second
	// PullEngineID is the engineId of Pull's heartbeats unless
	// PullOptions.Stream.EngineID says otherwise.
	PullEngineID = "weir-pull-adapter"

	// DefaultFileMaxInFlightBytes is the MaxInFlightBytes of a Pull of a
	// source that is not live, unless PullOptions.Stream sets one: a file
	// is read far faster than the broker takes it, and a wider window
	// keeps the broker's appends and fsyncs from stalling the reader
	// (measured: docs/benchmarks.md, "Ingest and VOD overhead"). A live
	// source comes at its own pace and keeps DefaultMaxInFlightBytes.
	DefaultFileMaxInFlightBytes = 64 << 20

	// finishTimeout bounds the production of a stream's last records.
	finishTimeout = 30 * time.Second
	readBufSize   = 1 << 20
	// minReadRoom is the least room a read is given in Pull's buffer.
	minReadRoom = 64 << 10
)

// PullOptions configure Pull. Explicit fields win over the Payload's.
type PullOptions struct {
	// Source is a local path, a file:// URL or an http(s):// URL; default
	// the Payload's taskPayload.url.
	Source string
	// Live marks a source that does not end by itself (an Icecast
	// station, a live MPEG-TS feed); the Payload's isLiveStream sets it
	// too, and so does a RecordDuration. A live source is read as it
	// comes and its stream_init has durationMS = RecordDuration (0 when
	// unlimited).
	Live bool
	// RecordDuration stops a live source after that long (wall clock,
	// from when the source answered) and ends the stream normally:
	// forcedEOF false and a DONE heartbeat, since the recording finished
	// as asked. 0 means the Payload's recordDuration, else until the
	// source ends or ctx is cancelled.
	RecordDuration time.Duration
	// Topic is the stream topic; default the Payload's
	// streamOutKafkaTopic, else protocol.StreamTopic of a new UUID.
	Topic string
	// Payload is an optional Veritone task payload; see the fields above.
	// Its jobId, taskId and recordingId become the messages' jobId,
	// taskId and tdoId unless Stream sets them.
	Payload *protocol.TaskPayload
	// Stream is the template for the StreamWriter (ids, ChunkSize,
	// KeyPrefix, heartbeat settings). Pull fills in MimeType,
	// FFmpegFormat and DurationMS from the probe unless set here, and,
	// for a source that is not live, MaxInFlightBytes with
	// DefaultFileMaxInFlightBytes.
	Stream StreamOptions
	// ReadTimeout bounds how long an HTTP source may send nothing;
	// default DefaultReadTimeout, negative for no limit.
	ReadTimeout time.Duration
	// ProbeLimit is the most bytes buffered for probing a stream source;
	// default DefaultProbeLimit.
	ProbeLimit int
	// MaxDelay bounds how long bytes of a live source wait for their
	// chunk to fill: once that long has passed without a raw_stream
	// record, the bytes read so far are sent as a shorter one. Default
	// DefaultMaxDelay; negative to always send whole chunks.
	MaxDelay time.Duration
	// HTTPClient fetches URLs; default a client that asks for the bytes
	// as they are (no transparent gzip) and follows redirects.
	HTTPClient *http.Client
	// Logger receives progress at debug level; default slog.Default().
	Logger *slog.Logger
	// OnStart, if set, is called once stream_init is on the topic, with
	// the Result so far (topic, format), before any raw_stream: a command
	// can tell its user where to look while a long live pull goes on.
	OnStart func(Result)
}

// EndReason says why a pulled stream ended.
type EndReason string

// End reasons.
const (
	EndSource   EndReason = "source ended"                    // forcedEOF false, DONE
	EndRecorded EndReason = "record duration reached"         // forcedEOF false, DONE
	EndStopped  EndReason = "stopped before the source ended" // ctx cancelled: forcedEOF true, DONE
	EndFailed   EndReason = "failed"                          // forcedEOF true, FAILED
)

// Result describes what Pull did, also when it failed.
type Result struct {
	Topic  string
	Source string
	Live   bool
	// MimeType, FFmpegFormat and DurationMS are what stream_init said.
	MimeType, FFmpegFormat string
	DurationMS             int64
	// Published is true once stream_init was produced; when Pull fails
	// with Published false, nothing reached the topic.
	Published bool
	// End is why the stream ended; empty when it never started.
	End EndReason
	// Stats are the StreamWriter's final counters.
	Stats Stats
	// Elapsed is the wall time Pull took.
	Elapsed time.Duration
}

// Pull reads a source into a stream topic, as Veritone's pull adapter does:
// stream_init, raw_stream records, stream_eof, and heartbeats (see
// StreamWriter).
//
// A local file is probed by path; an HTTP source is probed from its first
// bytes, buffered (up to ProbeLimit, with probes at 16 KiB, 64 KiB and
// 256 KiB first so that slow live sources start quickly) and then sent on;
// a progressive download whose prefix cannot be recognised (an MP4 with
// its index at the end) is probed by URL. A source that is not media fails
// with an error wrapping media.ErrNoMedia before anything is published, as
// do a missing file, an unreachable host, an HTTP status other than 2xx
// (*HTTPStatusError), a source that sends nothing for ReadTimeout
// (ErrStalled) and bad options. Bytes are streamed: memory use does not
// grow with the source.
//
// Once the stream is published, it always gets its stream_eof:
//   - the source ends, or a live source's RecordDuration is reached:
//     forcedEOF false, DONE heartbeat, nil error;
//   - ctx is cancelled: forcedEOF true, DONE heartbeat, and an error
//     wrapping ctx's error (the last records are still produced, under a
//     fresh deadline);
//   - the source breaks (connection reset, a stall after data, a
//     truncated body) or the broker fails: forcedEOF true, FAILED
//     heartbeat with errorMsg, and the error.
//
// The Result is filled in as far as Pull got, also on error.
func Pull(ctx context.Context, opts PullOptions, b bus.Bus) (Result, error) {
	start := time.Now()
	pl, err := newPuller(opts)
	res := Result{Topic: pl.topic, Source: pl.source, Live: pl.live}
	if err == nil {
		err = pl.run(ctx, b, &res)
	}
	res.Elapsed = time.Since(start)
	return res, err
}

// puller is one Pull: the resolved options and the source's state.
type puller struct {
	opts        PullOptions
	source      string
	topic       string
	live        bool
	record      time.Duration
	readTimeout time.Duration
	maxDelay    time.Duration
	log         *slog.Logger

	// srcCtx is the context source reads run under (for HTTP, cancelled
	// with a cause by the idle and record timers).
	srcCtx      context.Context
	cancel      context.CancelCauseFunc
	recordTimer *time.Timer
	url         string // set for HTTP sources
}

// errRecorded is the cause that stops a live source at RecordDuration.
var errRecorded = errors.New("record duration reached")

func newPuller(o PullOptions) (*puller, error) {
	pl := &puller{opts: o, source: o.Source, topic: o.Topic, live: o.Live,
		record: o.RecordDuration, readTimeout: o.ReadTimeout, log: o.Logger}
	if pl.log == nil {
		pl.log = slog.Default()
	}
	if pl.readTimeout == 0 {
		pl.readTimeout = DefaultReadTimeout
	}
	if pl.maxDelay = o.MaxDelay; pl.maxDelay == 0 {
		pl.maxDelay = DefaultMaxDelay
	}
	if pl.opts.ProbeLimit <= 0 {
		pl.opts.ProbeLimit = DefaultProbeLimit
	}
	if pl.opts.Stream.EngineID == "" {
		pl.opts.Stream.EngineID = PullEngineID
	}
	if tp := o.Payload; tp != nil {
		if pl.source == "" {
			pl.source = tp.Payload.URL
		}
		if pl.topic == "" {
			pl.topic = tp.StreamOutKafkaTopic
		}
		pl.live = pl.live || tp.Payload.IsLiveStream
		if pl.record == 0 {
			d, err := tp.Payload.RecordLimit()
			if err != nil {
				return pl, &protocol.FieldError{Context: "task payload", Field: "taskPayload.recordDuration", Problem: err.Error()}
			}
			pl.record = d
		}
		s := &pl.opts.Stream
		s.JobID = cmp.Or(s.JobID, tp.JobID)
		s.TaskID = cmp.Or(s.TaskID, tp.TaskID)
		s.TdoID = cmp.Or(s.TdoID, tp.RecordingID)
	}
	if pl.topic == "" {
		pl.topic = protocol.StreamTopic(uuid.NewString())
	}
	if pl.record < 0 {
		return pl, fmt.Errorf("record duration %s: must be positive", pl.record)
	}
	if pl.record > 0 {
		pl.live = true
	}
	if pl.source == "" {
		return pl, errors.New("no source: give a file or URL, or a task payload with taskPayload.url")
	}
	if err := protocol.ValidateTopic(pl.topic); err != nil {
		return pl, fmt.Errorf("stream topic: %w", err)
	}
	return pl, nil
}

// run does the work of Pull once the options are resolved.
func (pl *puller) run(ctx context.Context, b bus.Bus, res *Result) error {
	src, err := pl.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		src.Close()
		pl.stopTimers()
	}()
	deadline := pl.startRecording()

	pr, err := pl.probe(ctx, src)
	if err != nil {
		return err
	}
	so := pl.opts.Stream
	so.MimeType = cmp.Or(so.MimeType, pr.info.MimeType())
	so.FFmpegFormat = cmp.Or(so.FFmpegFormat, pr.info.FFmpegFormat())
	if !pl.live && so.MaxInFlightBytes == 0 {
		so.MaxInFlightBytes = DefaultFileMaxInFlightBytes
	}
	if so.DurationMS == 0 {
		switch {
		case pl.live:
			so.DurationMS = pl.record.Milliseconds()
		case pr.whole:
			so.DurationMS = pr.info.Duration.Milliseconds()
		}
	}
	res.MimeType, res.FFmpegFormat, res.DurationMS = so.MimeType, so.FFmpegFormat, so.DurationMS
	w, err := NewStreamWriter(b, pl.topic, so)
	if err != nil {
		return err
	}
	defer func() { res.Stats = w.Stats() }()
	// Producing is not cancelled with ctx: a stopped pull still ends its
	// stream with every byte it announced. ProduceTimeout bounds it.
	if err := w.Init(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	res.Published = true
	if pl.opts.OnStart != nil {
		pl.opts.OnStart(*res)
	}
	pl.log.Debug("ingest started", "topic", pl.topic, "source", pl.source,
		"mime_type", so.MimeType, "ffmpeg_format", so.FFmpegFormat, "live", pl.live)

	readErr := pr.readErr
	if len(pr.prefix) > 0 {
		if _, err := w.Write(pr.prefix); err != nil {
			return pl.finish(ctx, w, res, EndFailed, err)
		}
	}
	var buf []byte
	lastRaw, lastEmit := w.rawBuilt(), time.Now()
	for readErr == nil {
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			readErr = errRecorded
			break
		}
		if err := ctx.Err(); err != nil { // file reads do not watch ctx
			readErr = err
			break
		}
		// Reads fill a buffer from front to back and hand what they read
		// to the writer, which keeps whole chunks as records without
		// copying them; a new buffer comes when little room is left.
		if len(buf) < minReadRoom {
			buf = make([]byte, readBufSize)
		}
		var n int
		n, readErr = src.Read(buf)
		if n > 0 {
			if _, err := w.writeOwned(buf[:n]); err != nil {
				return pl.finish(ctx, w, res, EndFailed, err)
			}
			buf = buf[n:]
		}
		if pl.live && pl.maxDelay > 0 {
			// A slow live source fills a chunk slowly: send what waits
			// rather than hold it back longer than maxDelay.
			now := time.Now()
			if raw := w.rawBuilt(); raw != lastRaw {
				lastRaw, lastEmit = raw, now
			} else if now.Sub(lastEmit) >= pl.maxDelay {
				if err := w.Flush(context.WithoutCancel(ctx)); err != nil {
					return pl.finish(ctx, w, res, EndFailed, err)
				}
				lastEmit = now
			}
		}
	}
	reason, err := pl.classify(ctx, readErr)
	return pl.finish(ctx, w, res, reason, err)
}

// classify turns the error that ended the reading into an end reason and
// the error Pull returns.
func (pl *puller) classify(ctx context.Context, readErr error) (EndReason, error) {
	var cause error
	if pl.srcCtx != nil {
		cause = context.Cause(pl.srcCtx)
	}
	switch {
	case errors.Is(readErr, io.EOF):
		return EndSource, nil
	case errors.Is(readErr, errRecorded) || errors.Is(cause, errRecorded):
		return EndRecorded, nil
	case ctx.Err() != nil:
		return EndStopped, fmt.Errorf("ingest %s: %w", pl.source, context.Cause(ctx))
	case errors.Is(readErr, ErrStalled):
		return EndFailed, readErr
	}
	return EndFailed, fmt.Errorf("read %s: %w", pl.source, readErr)
}

// finish ends the stream according to reason and returns err, or the
// error of ending it.
func (pl *puller) finish(ctx context.Context, w *StreamWriter, res *Result, reason EndReason, err error) error {
	res.End = reason
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	var endErr error
	switch reason {
	case EndSource, EndRecorded:
		endErr = w.Close(fctx, false)
	case EndStopped:
		endErr = w.Close(fctx, true)
	default:
		endErr = w.Abort(fctx, err)
	}
	if err == nil && endErr != nil {
		res.End = EndFailed
		err = endErr
	}
	pl.log.Debug("ingest ended", "topic", pl.topic, "reason", res.End, "err", err)
	return err
}

// sourceReader is an opened source.
type sourceReader struct {
	io.ReadCloser
	probePath string // a regular local file: probe it by path
}

// open opens the source. For HTTP it sends the request and checks the
// status; the reader it returns enforces the read timeout.
func (pl *puller) open(ctx context.Context) (*sourceReader, error) {
	u, err := url.Parse(pl.source)
	if err != nil || len(u.Scheme) < 2 { // a path ("C:\..." has a one-letter scheme)
		return pl.openFile(ctx, pl.source)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		return pl.openFile(ctx, u.Path)
	case "http", "https":
		return pl.openHTTP(ctx, u)
	}
	return nil, fmt.Errorf("source %s: unsupported scheme %q (want a file path, file://, http:// or https://): %w", pl.source, u.Scheme, ErrUnsupportedScheme)
}

// openFile opens a local file. A regular file is probed by path; anything
// else (a named pipe, a device) is a stream whose blocking reads are
// interrupted, through a read deadline, when ctx is cancelled or the
// recording time is up.
func (pl *puller) openFile(ctx context.Context, path string) (*sourceReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("source: %w", err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("source %s: is a directory", path)
	}
	sr := &sourceReader{ReadCloser: f}
	if st.Mode().IsRegular() {
		sr.probePath = path
		return sr, nil
	}
	pl.srcCtx, pl.cancel = context.WithCancelCause(ctx)
	context.AfterFunc(pl.srcCtx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	return sr, nil
}

// openHTTP sends the request (see httpGet.open); the reader it returns
// enforces the read timeout.
func (pl *puller) openHTTP(ctx context.Context, u *url.URL) (*sourceReader, error) {
	pl.url = u.String()
	pl.srcCtx, pl.cancel = context.WithCancelCause(ctx)
	client := pl.opts.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableCompression = true // the bytes exactly as served
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	body, err := httpGet{client: client, url: u, userAgent: "weir-ingest", readTimeout: pl.readTimeout}.open(pl.srcCtx)
	if err != nil {
		pl.stopTimers()
		return nil, err
	}
	return &sourceReader{ReadCloser: body}, nil
}

// startRecording starts the clock of a live source with a RecordDuration
// and returns its deadline (zero when there is none). Blocking reads (HTTP,
// pipes) are cancelled when it passes; regular files are checked between
// reads.
func (pl *puller) startRecording() time.Time {
	if pl.record <= 0 {
		return time.Time{}
	}
	if pl.cancel != nil {
		cancel := pl.cancel
		pl.recordTimer = time.AfterFunc(pl.record, func() { cancel(errRecorded) })
	}
	return time.Now().Add(pl.record)
}

func (pl *puller) stopTimers() {
	if pl.recordTimer != nil {
		pl.recordTimer.Stop()
	}
	if pl.cancel != nil {
		pl.cancel(nil)
	}
}

// probed is what probing a source learned.
type probed struct {
	info    *media.Info
	prefix  []byte // bytes read while probing, to send first
	whole   bool   // the probe saw the whole source, so its duration holds
	readErr error  // the read error met while probing (io.EOF included), to act on after sending prefix
}

// probeSteps are the prefix sizes at which a stream source is probed.
var probeSteps = []int{16 << 10, 64 << 10, 256 << 10}

// probe learns the source's format before anything is published.
func (pl *puller) probe(ctx context.Context, src *sourceReader) (*probed, error) {
	if src.probePath != "" {
		info, err := media.Probe(ctx, src.probePath)
		if err != nil {
			return nil, err // names the path
		}
		return &probed{info: info, whole: true}, nil
	}

	limit := pl.opts.ProbeLimit
	var steps []int
	for _, s := range probeSteps {
		if s < limit {
			steps = append(steps, s)
		}
	}
	steps = append(steps, limit)

	buf := make([]byte, 0, min(limit, readBufSize))
	var readErr, probeErr error
	for _, step := range steps {
		for len(buf) < step && readErr == nil {
			if len(buf) == cap(buf) {
				buf = append(buf, make([]byte, min(cap(buf), limit-len(buf)))...)[:len(buf)]
			}
			var n int
			n, readErr = src.Read(buf[len(buf):min(cap(buf), step)])
			buf = buf[:len(buf)+n]
		}
		if len(buf) == 0 {
			break
		}
		var info *media.Info
		info, probeErr = media.ProbeBytes(ctx, buf)
		if probeErr == nil {
			return &probed{info: info, prefix: buf, whole: errors.Is(readErr, io.EOF), readErr: readErr}, nil
		}
		if !errors.Is(probeErr, media.ErrNoMedia) {
			return nil, fmt.Errorf("source %s: %w", pl.source, probeErr)
		}
		if readErr != nil {
			break
		}
	}
	switch {
	case readErr != nil && !errors.Is(readErr, io.EOF):
		// The source failed before it could be recognised: that is the
		// clearer error.
		reason, err := pl.classify(ctx, readErr)
		if reason == EndRecorded {
			err = fmt.Errorf("source %s: record duration %s ended before the format could be recognised from %d bytes", pl.source, pl.record, len(buf))
		}
		return nil, err
	case len(buf) == 0:
		return nil, fmt.Errorf("source %s: is empty: %w", pl.source, media.ErrNoMedia)
	case pl.url != "" && !pl.live && readErr == nil:
		// A download too big to recognise from its start, such as an
		// MP4 with its moov box at the end: let ffprobe seek.
		info, err := media.ProbeURL(ctx, pl.url)
		if err == nil {
			return &probed{info: info, prefix: buf, whole: true}, nil
		}
		probeErr = err
	}
	return nil, fmt.Errorf("source %s: %w", pl.source, probeErr)
}
