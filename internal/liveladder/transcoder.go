package liveladder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/vod"
	"github.com/weir-media/weir/protocol"
)

// Defaults of Config.
const (
	DefaultLeaseTTL = 15 * time.Second
	DefaultPreset   = "veryfast"
)

// Config configures a Transcoder.
type Config struct {
	// Meta holds the streams (their ladders) and the liveladder/{id}
	// leases; required.
	Meta metastore.Store
	// Bus is where stream topics are read and rendition topics written;
	// required.
	Bus bus.Bus
	// Group is the consumer group transcoders share (default
	// protocol.GroupLiveLadder).
	Group string
	// Holder names this process in leases (default
	// metastore.DefaultHolder()).
	Holder string
	// LeaseTTL is the liveladder/{id} lease's lifetime (default 15 s):
	// how long a stream waits for its next transcoder after one died.
	LeaseTTL time.Duration
	// FFmpeg is the ffmpeg program (default "ffmpeg"); Preset the x264
	// preset (default veryfast).
	FFmpeg, Preset string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the weir_liveladder_* metrics; nil registers
	// nothing.
	Registry prometheus.Registerer
}

// Transcoder makes the ABR ladders of live streams. It reads every stream
// topic as one member of the weir_liveladder group, so the group spreads
// the streams over the processes running the role. For a live stream with
// a ladder (its row's variants_generated) it holds the lease
// liveladder/{id}, so one process transcodes a stream even while the
// group moves topics, and stamps the lease's token on every record it
// writes (protocol.HeaderPublishToken): the packager drops records of a
// transcoder that lost the stream. Each publisher session (from one
// stream_init to its stream_eof) runs one ffmpeg for every rung at once.
type Transcoder struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	tasks   map[string]*task
	skipped map[string]bool
	// kept counts the records all waiting tasks keep (keep, unkeep).
	kept int
	// restart stops the current Consume so that Run starts another, which
	// delivers again every record not committed: for records a task kept
	// (deferred) and could not handle.
	restart context.CancelFunc
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Transcoder, error) {
	switch {
	case cfg.Meta == nil:
		return nil, errors.New("live ladder: Config.Meta is required")
	case cfg.Bus == nil:
		return nil, errors.New("live ladder: Config.Bus is required")
	}
	if cfg.Group == "" {
		cfg.Group = protocol.GroupLiveLadder
	}
	if cfg.Holder == "" {
		cfg.Holder = metastore.DefaultHolder()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.Preset == "" {
		cfg.Preset = DefaultPreset
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("live ladder metrics: %w", err)
	}
	return &Transcoder{cfg: cfg, log: cfg.Logger.With("component", "live-ladder"), metrics: m,
		tasks: map[string]*task{}, skipped: map[string]bool{}}, nil
}

// Run transcodes until ctx ends, then stops every ffmpeg without ending
// the renditions (the next transcoder carries on) and returns nil.
func (t *Transcoder) Run(ctx context.Context) error {
	defer t.stopAll()
	swept := make(chan struct{})
	go func() { defer close(swept); t.sweep(ctx) }()
	defer func() { <-swept }()
	for ctx.Err() == nil {
		cctx, restart := context.WithCancel(ctx)
		t.mu.Lock()
		t.restart = restart
		t.mu.Unlock()
		err := t.cfg.Bus.Consume(cctx, bus.ConsumeOptions{
			TopicPattern:  protocol.StreamTopicPattern,
			Group:         t.cfg.Group,
			FromBeginning: true,
			MaxDeferred:   maxKeptRecords,
			OnRevoked:     t.revoked,
			Handler:       t.handle,
		})
		restarted := cctx.Err() != nil
		restart()
		switch {
		case ctx.Err() != nil:
			return nil
		case restarted:
			continue
		case err == nil:
			return nil
		}
		t.log.Warn("live ladder: consuming the stream topics failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// sweepEvery is how often the transcoder looks for streams that ended
// without an end marker reaching it (a publisher that timed out).
const sweepEvery = 5 * time.Second

// sweep stops the tasks of streams that ended and have been quiet for
// sweepEvery, so their leases and ffmpegs do not outlive them.
func (t *Transcoder) sweep(ctx context.Context) {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		tasks := make([]*task, 0, len(t.tasks))
		for _, tk := range t.tasks {
			tasks = append(tasks, tk)
		}
		t.mu.Unlock()
		for _, tk := range tasks {
			if !tk.quiet(sweepEvery) {
				continue
			}
			st, err := t.cfg.Meta.GetStream(ctx, tk.id)
			if err != nil || !st.Status.Terminal() {
				continue
			}
			t.mu.Lock()
			if t.tasks[tk.id] == tk {
				delete(t.tasks, tk.id)
				t.skipped[tk.id] = true
			}
			t.mu.Unlock()
			tk.log.Info("live ladder: the stream ended; stopping its transcoder", "status", st.Status)
			tk.stop()
		}
	}
}

func (t *Transcoder) revoked(topic string, _ []int32) {
	id, ok := protocol.StreamIDOf(topic)
	if !ok {
		return
	}
	t.mu.Lock()
	tk := t.tasks[id]
	delete(t.tasks, id)
	delete(t.skipped, id)
	t.mu.Unlock()
	if tk != nil {
		tk.stop()
	}
}

func (t *Transcoder) stopAll() {
	t.mu.Lock()
	tasks := t.tasks
	t.tasks, t.skipped = map[string]*task{}, map[string]bool{}
	t.mu.Unlock()
	for _, tk := range tasks {
		tk.stop()
	}
}

// handle hands a stream topic's record to its stream's task. An error (the
// store could not be read, the lease not taken in time) stops the
// consumer, which redelivers the record.
func (t *Transcoder) handle(ctx context.Context, rec *bus.Record) error {
	id, ok := protocol.StreamIDOf(rec.Topic)
	if !ok {
		return nil
	}
	tk, err := t.task(ctx, id)
	if err != nil || tk == nil {
		return err
	}
	if err := tk.handle(ctx, rec); err != nil {
		return t.failed(tk, err)
	}
	return nil
}

// failed ends task tk after its handling of a record returned err, and
// returns the error for the consumer: nil when the stream finished or went
// to another transcoder.
func (t *Transcoder) failed(tk *task, err error) error {
	t.mu.Lock()
	if t.tasks[tk.id] == tk {
		delete(t.tasks, tk.id)
	}
	t.mu.Unlock()
	tk.stop()
	if errors.Is(err, errFinished) {
		t.mu.Lock()
		t.skipped[tk.id] = true
		t.mu.Unlock()
		return nil
	}
	if errors.Is(err, metastore.ErrLeaseLost) {
		tk.log.Warn("live ladder: lost the stream to another transcoder")
		return nil
	}
	return err
}

// task returns stream id's task, starting one (and taking its lease) when
// the stream is a live stream with a ladder that has not ended; nil when
// the stream needs no transcoding.
func (t *Transcoder) task(ctx context.Context, id string) (*task, error) {
	t.mu.Lock()
	tk, skip := t.tasks[id], t.skipped[id]
	t.mu.Unlock()
	if tk != nil || skip {
		return tk, nil
	}
	st, err := t.cfg.Meta.GetStream(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		t.skip(id)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("live ladder: stream %s: %w", id, err)
	}
	ladder, err := Parse(st.VariantsGenerated)
	if st.Kind != metastore.KindLive || st.Status.Terminal() || len(ladder) == 0 || err != nil {
		if err != nil {
			t.log.Warn("live ladder: the stream's stored ladder does not parse; not transcoding it", "stream", id, "err", err)
		}
		t.skip(id)
		return nil, nil
	}
	t.mu.Lock()
	restart := t.restart
	t.mu.Unlock()
	tk = &task{tr: t, id: id, ladder: ladder, log: t.log.With("stream", id), lastActivity: time.Now(), restart: restart}
	held, err := metastore.Hold(context.WithoutCancel(ctx), t.cfg.Meta, metastore.LiveLadderLeaseName(id), t.cfg.Holder, t.cfg.LeaseTTL, t.log)
	switch {
	case err == nil:
		tk.held = held
		tk.log.Info("live ladder: transcoding the stream", "ladder", Specs(ladder), "token", held.Token())
	case errors.Is(err, metastore.ErrConflict):
		// Held by another transcoder, most likely one that died: wait for
		// it on the task's own goroutine, so that the other streams of
		// this member (and the group's rebalances) do not wait too.
		tk.startWaiting(ctx)
	default:
		return nil, fmt.Errorf("live ladder: lease %s: %w", metastore.LiveLadderLeaseName(id), err)
	}
	t.mu.Lock()
	t.tasks[id] = tk
	t.mu.Unlock()
	t.metrics.streams.Inc()
	return tk, nil
}

func (t *Transcoder) skip(id string) {
	t.mu.Lock()
	t.skipped[id] = true
	t.mu.Unlock()
	t.cfg.Bus.ForgetTopic(protocol.StreamTopic(id))
}

// Bounds on the records kept (deferred) while tasks wait for their
// leases. The bus stops fetching for every stream once maxKeptRecords are
// deferred, so no task may come near it alone: past maxTaskRecords or
// maxBacklogBytes for one task, or past three quarters of maxKeptRecords
// for all, the record that would go over stops the consumer, which starts
// again and delivers the records not committed. About 55 s of a 3 Mb/s
// stream in 10 KiB records fits in a task's share; a failover waits for a
// dead holder's lease (15 s) at most.
const (
	maxKeptRecords  = 8192
	maxTaskRecords  = maxKeptRecords / 4
	maxBacklogBytes = 64 << 20
)

// keep counts rec as kept by waiting task k, or says why it cannot be.
// k.mu is held.
func (t *Transcoder) keep(k *task, rec *bus.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case len(k.backlog) >= maxTaskRecords || k.backlogBytes+len(rec.Value) > maxBacklogBytes:
		return fmt.Errorf("live ladder: stream %s: %d records (%d MiB) came while waiting for its lease", k.id, len(k.backlog), k.backlogBytes>>20)
	case t.kept >= maxKeptRecords*3/4:
		return fmt.Errorf("live ladder: %d records are kept by streams waiting for their leases", t.kept)
	}
	t.kept++
	return nil
}

// unkeep takes n records off the kept count.
func (t *Transcoder) unkeep(n int) {
	t.mu.Lock()
	t.kept -= n
	t.mu.Unlock()
}

// startWaiting makes k wait for the stream's lease on a goroutine of its
// own, most often for one held by a transcoder that died to lapse. Records
// that come meanwhile are deferred (bus.Record.Defer) and kept in order,
// then handled once the lease is held.
func (k *task) startWaiting(ctx context.Context) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.waiting, k.cancelWait, k.waitDone = true, cancel, make(chan struct{})
	k.log.Info("live ladder: the stream's lease is held by another transcoder; waiting for it")
	go func() {
		defer close(k.waitDone)
		held, err := k.waitForLease(wctx)
		k.leaseTaken(ctx, held, err)
	}()
}

// waitForLease tries to take the stream's lease every 250 ms until it
// gets it or ctx ends (the task stopped: the topic went elsewhere). A
// lease that another live transcoder keeps renewing keeps it waiting;
// its records pile up to maxBacklogBytes, and then the consumer starts
// again. A store that fails is retried, less often.
func (k *task) waitForLease(ctx context.Context) (*metastore.HeldLease, error) {
	t := k.tr
	name := metastore.LiveLadderLeaseName(k.id)
	pause := 250 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		held, err := metastore.Hold(ctx, t.cfg.Meta, name, t.cfg.Holder, t.cfg.LeaseTTL, t.log)
		switch {
		case err == nil:
			return held, nil
		case errors.Is(err, metastore.ErrConflict):
			pause = 250 * time.Millisecond
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			k.log.Warn("live ladder: taking the stream's lease failed; retrying", "lease", name, "err", err)
			pause = min(2*pause, 5*time.Second)
		}
	}
}

// leaseTaken ends the wait: with the lease, the records kept meanwhile
// are handled in order and acknowledged. Without it (the task stopped)
// they are left to whoever owns the topic next. A record that fails
// ends the task and restarts the consumer, which delivers the records not
// acknowledged again.
func (k *task) leaseTaken(ctx context.Context, held *metastore.HeldLease, err error) {
	k.mu.Lock()
	if err == nil && k.stopped {
		// Stopped as the lease came: the records go to whoever owns the
		// topic next.
		_ = held.Release(context.Background())
		err = context.Canceled
	}
	if err != nil {
		k.waitErr = fmt.Errorf("live ladder: stream %s: waiting for its lease: %w", k.id, err)
		k.dropBacklogLocked()
		k.mu.Unlock()
		return
	}
	// Held from here on, renewed until stop releases it.
	k.held = held
	k.log.Info("live ladder: transcoding the stream", "ladder", Specs(k.ladder), "token", held.Token(), "kept_records", len(k.backlog))
	k.mu.Unlock()
	if err := k.drain(ctx); err != nil {
		k.fail(err)
	}
}

// drain handles the kept records in order, one at a time under k.mu, so
// that records coming meanwhile (kept too, while waiting stays set), a
// revoke or a stop wait for one record at most; waiting ends with the
// last. Each record is acknowledged once handled.
func (k *task) drain(ctx context.Context) error {
	for {
		k.mu.Lock()
		if k.stopped {
			k.dropBacklogLocked()
			k.mu.Unlock()
			return nil // the records go to whoever owns the topic next
		}
		if len(k.backlog) == 0 {
			k.waiting = false
			k.mu.Unlock()
			return nil
		}
		r := k.backlog[0]
		k.backlog = k.backlog[1:]
		k.backlogBytes -= len(r.rec.Value)
		k.tr.unkeep(1)
		err := k.handleLocked(ctx, r.rec)
		if err != nil {
			k.backlog = append([]keptRecord{r}, k.backlog...) // not handled
			k.backlogBytes += len(r.rec.Value)
			k.tr.unkeep(-1)
			k.mu.Unlock()
			return err
		}
		k.mu.Unlock()
		r.ack()
	}
}

// dropBacklogLocked forgets the kept records without acknowledging them:
// the group delivers them again. k.mu is held.
func (k *task) dropBacklogLocked() {
	k.tr.unkeep(len(k.backlog))
	k.backlog, k.backlogBytes, k.waiting = nil, 0, false
}

// fail ends the task after a kept record failed with err. As when a
// handler fails, the consumer starts again and delivers the records not
// acknowledged; when the stream finished or went to another transcoder,
// the rest need nothing and are acknowledged.
func (k *task) fail(err error) {
	k.mu.Lock()
	rest := k.backlog
	k.dropBacklogLocked()
	k.mu.Unlock()
	if cerr := k.tr.failed(k, err); cerr != nil {
		k.log.Warn("live ladder: restarting the consumer to have the stream's records delivered again", "err", cerr)
		if k.restart != nil {
			k.restart()
		}
		return
	}
	for _, r := range rest {
		r.ack()
	}
}

// errFinished: the stream ended; its later records need nothing.
var errFinished = errors.New("stream finished")

// task transcodes one stream.
type task struct {
	tr     *Transcoder
	id     string
	ladder []vod.Rung
	held   *metastore.HeldLease
	log    *slog.Logger

	// mu serialises handle and stop; lastActivity is when the last
	// record came.
	mu           sync.Mutex
	stopped      bool
	lastActivity time.Time
	lastOffset   int64
	seenOffset   bool
	// probe reads the session's start until the picture size is known;
	// pending holds those bytes for ffmpeg.
	probe   *prober
	pending []byte
	// noVideo: this session has nothing to transcode.
	noVideo bool
	sess    *session
	// open are the rungs whose rendition topic has a session open (a
	// stream_init without its stream_eof); used the rungs ever written.
	open map[string]bool
	used map[string]bool
	// failed is set by an output goroutine that could not produce.
	failed error
	failMu sync.Mutex

	// waiting: the lease is not held yet (startWaiting); backlog keeps
	// the records that came meanwhile, deferred, in order.
	waiting      bool
	backlog      []keptRecord
	backlogBytes int
	waitErr      error              // why the wait ended without the lease
	restart      context.CancelFunc // the Consume the task started under (Transcoder.restart)
	cancelWait   context.CancelFunc
	waitDone     chan struct{}
}

// keptRecord is a record deferred while its task waits for the lease.
type keptRecord struct {
	rec *bus.Record
	ack func()
}

// handle feeds one record of the stream topic, or keeps it (deferred)
// while the task waits for the lease.
func (k *task) handle(ctx context.Context, rec *bus.Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastActivity = time.Now()
	if k.waiting {
		if err := k.tr.keep(k, rec); err != nil {
			return err
		}
		k.backlog = append(k.backlog, keptRecord{rec: rec, ack: rec.Defer()})
		k.backlogBytes += len(rec.Value)
		return nil
	}
	if k.held == nil {
		// The wait ended without the lease, and the task is on its way
		// out: the record goes back to the bus with the error.
		return k.waitErr
	}
	return k.handleLocked(ctx, rec)
}

// handleLocked feeds one record to the transcoding. k.mu is held.
func (k *task) handleLocked(ctx context.Context, rec *bus.Record) error {
	if err := k.held.Context().Err(); err != nil {
		return fmt.Errorf("%w", context.Cause(k.held.Context()))
	}
	if k.seenOffset && rec.Offset <= k.lastOffset {
		return nil
	}
	k.lastOffset, k.seenOffset = rec.Offset, true
	if err := k.outputErr(); err != nil {
		return err
	}
	msg, _ := protocol.Decode(rec.Key, rec.Value)
	switch m := msg.(type) {
	case *protocol.StreamInit:
		if err := k.endSession(ctx); err != nil {
			return err
		}
		k.probe = newProber()
	case *protocol.RawStream:
		return k.data(ctx, m.Data)
	case *protocol.StreamEOF:
		return k.endSession(ctx)
	case *protocol.EngineHeartbeat:
		v, ok := rec.Header(protocol.HeaderLiveEnd)
		if !ok {
			return nil
		}
		if err := k.endSession(ctx); err != nil {
			return err
		}
		for name := range k.used {
			r, err := endMarker(k.id, name, v)
			if err == nil {
				err = k.produce(ctx, r)
			}
			if err != nil {
				return err
			}
		}
		k.log.Info("live ladder: the stream ended; renditions closed", "renditions", len(k.used))
		return errFinished
	}
	return nil
}

// data takes a raw_stream's bytes: probed first, then fed to ffmpeg.
func (k *task) data(ctx context.Context, b []byte) error {
	if k.noVideo || len(b) == 0 {
		return nil
	}
	if k.sess != nil {
		if err := k.sess.write(b); err != nil {
			k.log.Warn("live ladder: ffmpeg failed; waiting for the next publisher session", "err", err)
			k.tr.metrics.failures.Inc()
			k.sess.kill()
			k.sess = nil
			k.noVideo = true
			return k.closeOpen(ctx)
		}
		return nil
	}
	if k.probe == nil {
		// Taken over mid-session: no stream_init came first.
		k.probe = newProber()
	}
	k.pending = append(k.pending, b...)
	if !k.probe.feed(b) {
		return nil
	}
	pending, p := k.pending, k.probe
	k.pending, k.probe = nil, nil
	if p.noVideo {
		k.noVideo = true
		k.log.Info("live ladder: the session has no H.264 video to transcode")
		return nil
	}
	rungs := Rungs(k.ladder, p.width, p.height)
	if len(rungs) == 0 {
		k.noVideo = true
		k.log.Info("live ladder: every rung is taller than the source; nothing to transcode", "width", p.width, "height", p.height)
		return nil
	}
	if err := k.startSession(ctx, rungs, p.height > p.width); err != nil {
		return err
	}
	k.log.Info("live ladder: session started", "width", p.width, "height", p.height, "rungs", Specs(rungs))
	return k.data(ctx, pending)
}

func (k *task) startSession(ctx context.Context, rungs []vod.Rung, portrait bool) error {
	if k.open == nil {
		k.open, k.used = map[string]bool{}, map[string]bool{}
	}
	for _, r := range rungs {
		topic := protocol.RenditionTopic(k.id, r.Name)
		if err := k.tr.cfg.Bus.CreateTopic(ctx, topic, 1); err != nil {
			return fmt.Errorf("live ladder: %w", err)
		}
		init := &protocol.StreamInit{
			Header:    protocol.Header{TaskID: k.id, TDOID: k.id},
			ChunkSize: protocol.MaxChunkSize,
			MimeType:  mpegts.MimeType, FFmpegFormat: mpegts.FFmpegFormat,
		}
		key, value, err := protocol.Encode(init)
		if err != nil {
			return err
		}
		if err := k.produce(ctx, &bus.Record{Topic: topic, Key: key, Value: value}); err != nil {
			return err
		}
		k.open[r.Name], k.used[r.Name] = true, true
	}
	rawKey := []byte(protocol.TypeRawStream)
	lctx := k.held.Context()
	counters := make([]prometheus.Counter, len(rungs))
	for i, r := range rungs {
		counters[i] = k.tr.metrics.bytes.WithLabelValues(r.Name)
	}
	sess, err := startSession(lctx, k.tr.cfg.FFmpeg, k.tr.cfg.Preset, rungs, portrait, func(i int, b []byte) error {
		rec := &bus.Record{Topic: protocol.RenditionTopic(k.id, rungs[i].Name), Key: rawKey, Value: append([]byte(nil), b...),
			Headers: []bus.Header{{Key: protocol.HeaderReceivedAt, Value: protocol.FormatReceivedAt(time.Now())}}}
		err := k.produce(lctx, rec)
		if err == nil {
			counters[i].Add(float64(len(b)))
		}
		if err != nil {
			k.failMu.Lock()
			k.failed = cmpOr(k.failed, err)
			k.failMu.Unlock()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("live ladder: %w", err)
	}
	k.sess = sess
	k.tr.metrics.sessions.Inc()
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (k *task) outputErr() error {
	k.failMu.Lock()
	defer k.failMu.Unlock()
	return k.failed
}

// endSession finishes the running ffmpeg and closes the session on the
// rendition topics (stream_eof).
func (k *task) endSession(ctx context.Context) error {
	k.probe, k.pending, k.noVideo = nil, nil, false
	if k.sess != nil {
		if err := k.sess.finish(ctx); err != nil {
			k.log.Warn("live ladder: ffmpeg ended badly", "err", err)
			k.tr.metrics.failures.Inc()
		}
		k.sess = nil
	}
	if err := k.outputErr(); err != nil {
		return err
	}
	return k.closeOpen(ctx)
}

// closeOpen writes stream_eof on every rendition topic with a session open.
func (k *task) closeOpen(ctx context.Context) error {
	for name := range k.open {
		eof := &protocol.StreamEOF{Header: protocol.Header{TaskID: k.id, TDOID: k.id}}
		key, value, err := protocol.Encode(eof)
		if err == nil {
			err = k.produce(ctx, &bus.Record{Topic: protocol.RenditionTopic(k.id, name), Key: key, Value: value})
		}
		if err != nil {
			return err
		}
		delete(k.open, name)
	}
	return nil
}

// produce writes rec with the lease's fencing token.
func (k *task) produce(ctx context.Context, rec *bus.Record) error {
	rec.Headers = append(rec.Headers, bus.Header{Key: protocol.HeaderPublishToken, Value: protocol.FormatPublishToken(k.held.Token())})
	return k.tr.cfg.Bus.Produce(ctx, rec)
}

// quiet reports whether no record came for d. A task waiting for its
// lease is never quiet: the records it keeps still need transcoding, even
// when the stream ended meanwhile.
func (k *task) quiet(d time.Duration) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.waiting && time.Since(k.lastActivity) >= d
}

// stop kills ffmpeg and gives the lease up without ending the renditions;
// a task still waiting for the lease stops waiting.
func (k *task) stop() {
	if k.cancelWait != nil {
		k.cancelWait()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	k.stopped = true
	k.tr.metrics.streams.Dec()
	if k.sess != nil {
		k.sess.kill()
		k.sess = nil
	}
	if k.held == nil {
		return // never held: a waiting task
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.held.Release(ctx); err != nil {
		k.log.Debug("live ladder: releasing the lease", "err", err)
	}
}

// endMarker is the record that ends rendition name of stream id, as the
// live controller's marker ends the stream.
func endMarker(id, name string, reason []byte) (*bus.Record, error) {
	hb := &protocol.EngineHeartbeat{
		Header:           protocol.Header{TaskID: id, TDOID: id},
		EngineID:         "weir-liveladder",
		EngineInstanceID: "weir-liveladder_" + id,
		Count:            1,
		Status:           protocol.HeartbeatDone,
	}
	key, value, err := protocol.Encode(hb)
	if err != nil {
		return nil, err
	}
	return &bus.Record{Topic: protocol.RenditionTopic(id, name), Key: key, Value: value,
		Headers: []bus.Header{{Key: protocol.HeaderLiveEnd, Value: reason}}}, nil
}
