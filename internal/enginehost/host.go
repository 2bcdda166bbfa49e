package enginehost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// Defaults of Config.
const (
	// DefaultChunkTimeout bounds one chunk's fetch and processing.
	DefaultChunkTimeout = 2 * time.Minute
	// DefaultMaxChunkBytes caps the bytes of one chunk the host fetches.
	DefaultMaxChunkBytes = 512 << 20
)

// Processor runs an engine on one chunk: an in-process engine (InProcess)
// or an external one (HTTPProcessor). It answers as a ChunkEngine does: a
// vtn-standard document timed from the chunk's start, nil when nothing was
// found, an error wrapping engine.ErrIgnored for a chunk not attempted, or
// another error. The host calls it from several goroutines at once (up to
// Config.Concurrency).
type Processor interface {
	Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error)
}

// Config configures a Host.
type Config struct {
	// Spec is the engine's spec: its name, the MIME types it reads, its
	// options and output types.
	Spec engine.Spec
	// Processor runs the engine.
	Processor Processor
	// Bus carries the chunks in and the results out.
	Bus bus.Bus
	// Topic is the engine's chunk topic, protocol.ChunkTopic(Spec.Name)
	// when empty; Group its consumer group, protocol.EngineGroup(Spec.Name)
	// when empty.
	Topic, Group string
	// Concurrency is how many chunks the host processes at once; 1 when
	// zero.
	Concurrency int
	// InstanceID names this host in its heartbeats (their key); a
	// random "<engine>-<hex>" when empty.
	InstanceID string
	// Fetch reads a chunk's cacheURI; an HTTP GET when nil.
	Fetch func(ctx context.Context, uri string) (io.ReadCloser, error)
	// ChunkTimeout bounds one chunk, fetch included; DefaultChunkTimeout
	// when zero.
	ChunkTimeout time.Duration
	// MaxChunkBytes caps a chunk's size; DefaultMaxChunkBytes when zero.
	MaxChunkBytes int64
	// HeartbeatInterval is how often the host tells each job it works for
	// that it is alive; protocol.HeartbeatInterval when zero.
	HeartbeatInterval time.Duration
	// TempDir holds the chunks' files while they are processed; the
	// system's temporary directory when empty.
	TempDir string
	// Log receives the host's logs; slog.Default() when nil.
	Log *slog.Logger
}

// Host consumes an engine's chunk topic and answers every media_chunk on
// the results topic of its job. See the package documentation.
type Host struct {
	cfg     Config
	log     *slog.Logger
	queue   chan work
	hb      *heartbeats
	started time.Time

	bytesRead, bytesWritten, messagesWritten atomic.Int64
}

// work is a deferred chunk waiting for a worker.
type work struct {
	chunk *protocol.MediaChunk
	ack   func()
}

// New checks cfg, fills in its defaults and returns a host ready to Run.
func New(cfg Config) (*Host, error) {
	if err := cfg.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("enginehost: %w", err)
	}
	switch {
	case cfg.Processor == nil:
		return nil, fmt.Errorf("enginehost: engine %q: no processor", cfg.Spec.Name)
	case cfg.Bus == nil:
		return nil, fmt.Errorf("enginehost: engine %q: no bus", cfg.Spec.Name)
	case cfg.Concurrency < 0 || cfg.ChunkTimeout < 0 || cfg.MaxChunkBytes < 0 || cfg.HeartbeatInterval < 0:
		return nil, fmt.Errorf("enginehost: engine %q: concurrency, chunk timeout, chunk size cap and heartbeat interval must not be negative", cfg.Spec.Name)
	}
	if cfg.Topic == "" {
		cfg.Topic = protocol.ChunkTopic(cfg.Spec.Name)
	}
	if err := protocol.ValidateTopic(cfg.Topic); err != nil {
		return nil, fmt.Errorf("enginehost: engine %q: %w", cfg.Spec.Name, err)
	}
	if cfg.Group == "" {
		cfg.Group = protocol.EngineGroup(cfg.Spec.Name)
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	if cfg.InstanceID == "" {
		cfg.InstanceID = cfg.Spec.Name + "-" + randomHex(6)
	}
	if cfg.Fetch == nil {
		cfg.Fetch = HTTPFetch
	}
	if cfg.ChunkTimeout == 0 {
		cfg.ChunkTimeout = DefaultChunkTimeout
	}
	if cfg.MaxChunkBytes == 0 {
		cfg.MaxChunkBytes = DefaultMaxChunkBytes
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = protocol.HeartbeatInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	h := &Host{
		cfg: cfg,
		log: cfg.Log.With("engine", cfg.Spec.Name, "instance", cfg.InstanceID),
		// A worker takes each chunk off the queue before processing it,
		// so the queue never holds more than the deferred records
		// Consume allows (maxDeferred): the handler never blocks on it.
		queue: make(chan work, maxDeferred(cfg.Concurrency)),
	}
	h.hb = newHeartbeats(h)
	return h, nil
}

// maxDeferred bounds the chunks in flight: one processing and one waiting
// per worker.
func maxDeferred(concurrency int) int { return 2 * concurrency }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// InstanceID is the id the host's heartbeats carry.
func (h *Host) InstanceID() string { return h.cfg.InstanceID }

// Run consumes chunks until ctx ends, then waits for the chunks in hand to
// stop (their processing sees ctx end; chunks stopped that way are not
// answered, and the group delivers them again) and returns nil. It returns
// an error only when the bus fails it: a chunk's failure is answered ERROR
// and never stops the host.
func (h *Host) Run(ctx context.Context) error {
	h.started = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range h.cfg.Concurrency {
		wg.Go(func() { h.worker(ctx) })
	}
	wg.Go(func() { h.hb.loop(ctx) })
	h.log.Info("engine host started", "topic", h.cfg.Topic, "group", h.cfg.Group, "concurrency", h.cfg.Concurrency)
	err := h.cfg.Bus.Consume(ctx, bus.ConsumeOptions{
		Topics:        []string{h.cfg.Topic},
		Group:         h.cfg.Group,
		FromBeginning: true, // chunks queued before the engine's first host are its work too
		MaxDeferred:   maxDeferred(h.cfg.Concurrency),
		Handler:       h.handle,
	})
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("engine %q: consume %s: %w", h.cfg.Spec.Name, h.cfg.Topic, err)
	}
	h.log.Info("engine host stopped")
	return nil
}

// handle takes one record off the chunk topic: a malformed one is
// dead-lettered (and answered ERROR when it still says which chunk of
// which job it was), a media_chunk is deferred and queued for a worker.
func (h *Host) handle(ctx context.Context, rec *bus.Record) error {
	chunk, err := h.decode(rec)
	if err != nil {
		if chunk != nil && chunk.JobID != "" && chunk.ChunkUUID != "" {
			h.answer(ctx, chunk, outcome{status: protocol.ChunkError, msg: "malformed media_chunk: " + err.Error()})
		}
		return bus.Permanent(fmt.Errorf("engine %q: %w", h.cfg.Spec.Name, err))
	}
	w := work{chunk: chunk, ack: rec.Defer()}
	select {
	case h.queue <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decode reads a record as a media_chunk the host can answer. On failure
// it returns the chunk too when the record decoded that far.
func (h *Host) decode(rec *bus.Record) (*protocol.MediaChunk, error) {
	msg, err := protocol.Decode(rec.Key, rec.Value)
	chunk, _ := msg.(*protocol.MediaChunk)
	switch {
	case msg == nil:
		return nil, err
	case chunk == nil:
		return nil, fmt.Errorf("%s on a chunk topic: want media_chunk", msg.MessageType())
	case err != nil:
		return chunk, err
	case chunk.JobID == "":
		return chunk, errors.New("media_chunk: field \"jobId\": is required: the results go to the job's topic")
	case chunk.ChunkUUID == "":
		return chunk, errors.New("media_chunk: field \"chunkUUID\": is required: the chunk_processed_status names it")
	}
	return chunk, nil
}

// worker processes queued chunks until ctx ends.
func (h *Host) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-h.queue:
			h.process(ctx, w.chunk)
			if ctx.Err() != nil {
				return // not answered: the group delivers it again
			}
			w.ack()
		}
	}
}

// outcome is what became of a chunk: its status and the message for it.
type outcome struct {
	status protocol.ChunkStatus
	msg    string
	doc    *protocol.Document // the engine's answer, on the TDO timeline
}

// process runs one chunk and writes its answer, unless ctx ended first.
func (h *Host) process(ctx context.Context, chunk *protocol.MediaChunk) {
	h.hb.begin(ctx, chunk)
	defer h.hb.end(chunk)
	start := time.Now()
	out := h.run(ctx, chunk)
	if ctx.Err() != nil {
		return
	}
	log := h.log.With("job", chunk.JobID, "chunk", chunk.ChunkUUID, "index", chunk.ChunkIndex, "status", out.status, "took", time.Since(start))
	if out.status == protocol.ChunkError {
		log.Warn("chunk failed", "error", out.msg)
	} else {
		log.Debug("chunk processed", "info", out.msg)
	}
	if out.doc != nil {
		if err := h.writeOutput(ctx, chunk, out.doc); err != nil {
			out = outcome{status: protocol.ChunkError, msg: err.Error()}
		}
	}
	h.answer(ctx, chunk, out)
}

// run decides a chunk's outcome: the rules the package documentation
// lists, in order.
func (h *Host) run(ctx context.Context, chunk *protocol.MediaChunk) outcome {
	spec := h.cfg.Spec
	if !spec.Accepts(chunk.MimeType) {
		return outcome{status: protocol.ChunkIgnored,
			msg: fmt.Sprintf("engine %s does not read %s (it reads %v)", spec.Name, chunk.MimeType, spec.Inputs)}
	}
	opts, err := parseOptions(spec, chunk.TaskPayload)
	if err != nil {
		return outcome{status: protocol.ChunkError, msg: "options: " + err.Error()}
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.ChunkTimeout)
	defer cancel()
	path, n, err := h.stage(cctx, chunk)
	if err != nil {
		return h.failure(ctx, cctx, fmt.Errorf("chunk bytes: %w", err))
	}
	defer os.Remove(path)
	h.bytesRead.Add(n)
	doc, err := h.call(cctx, &engine.Chunk{Meta: *chunk, Path: path}, opts)
	if err != nil {
		return h.failure(ctx, cctx, err)
	}
	if doc == nil {
		return outcome{status: protocol.ChunkSuccess}
	}
	if err := doc.Validate(); err != nil {
		return outcome{status: protocol.ChunkError, msg: fmt.Sprintf("%v: %v", ErrMalformedOutput, err)}
	}
	return outcome{status: protocol.ChunkSuccess, doc: engine.Shift(doc, chunk.StartOffsetMs)}
}

// failure turns an error of the chunk's fetch or processing into its
// outcome.
func (h *Host) failure(ctx, cctx context.Context, err error) outcome {
	switch {
	case ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded):
		return outcome{status: protocol.ChunkError, msg: fmt.Sprintf("engine timed out after %v: %v", h.cfg.ChunkTimeout, err)}
	case errors.Is(err, engine.ErrIgnored):
		return outcome{status: protocol.ChunkIgnored, msg: err.Error()}
	}
	return outcome{status: protocol.ChunkError, msg: err.Error()}
}

// PanicError is a processor's panic, recovered.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("engine panicked: %v", e.Value) }

// call runs the processor on its own goroutine, recovering a panic, and
// gives up on it when ctx ends: an engine that ignores its context is
// abandoned (and logged), and the worker goes on with the next chunk.
func (h *Host) call(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	type answer struct {
		doc *protocol.Document
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		defer func() { done <- a }()
		defer func() {
			if r := recover(); r != nil {
				a = answer{err: &PanicError{Value: r, Stack: stack()}}
			}
		}()
		a.doc, a.err = h.cfg.Processor.Process(ctx, c, opts)
	}()
	select {
	case a := <-done:
		return a.doc, a.err
	case <-ctx.Done():
		select {
		case a := <-done:
			return a.doc, fmt.Errorf("%w: %w", ctx.Err(), errOr(a.err))
		case <-time.After(abandonGrace):
		}
		h.log.Warn("engine did not return when its chunk's time was up; abandoning the call", "chunk", c.Meta.ChunkUUID)
		return nil, ctx.Err()
	}
}

// abandonGrace is how long call waits for a processor to return once its
// context has ended.
const abandonGrace = 100 * time.Millisecond

func errOr(err error) error {
	if err == nil {
		return errors.New("the engine returned a result too late")
	}
	return err
}
