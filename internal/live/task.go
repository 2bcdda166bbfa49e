package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/push"
	"github.com/weir-media/weir/protocol"
)

// eventKind says what a record of a stream topic means to the packager.
type eventKind uint8

const (
	evData eventKind = iota // raw_stream bytes
	evInit                  // stream_init: a publisher (re)connected
	evEOF                   // stream_eof: the publisher left
	evEnd                   // the stream is over: finish it
)

// ingestEvent is what enters a stream's graph.
type ingestEvent struct {
	kind eventKind
	data []byte
	// recvAt is when the ingest received the bytes (from
	// protocol.HeaderReceivedAt), or when the packager read the record.
	recvAt time.Time
}

// streamEnv is a stream graph's input side packet: what its calculators
// share about the stream.
type streamEnv struct {
	id  string
	p   *Packager
	log *slog.Logger
	// stream and segments are the rows as the task found them.
	stream   metastore.Stream
	segments []metastore.Segment
}

// streamTask packages one live stream: it consumes the stream topic and
// feeds the stream's graph until the stream ends or the packager stops.
type streamTask struct {
	p   *Packager
	id  string
	log *slog.Logger

	mu           sync.Mutex
	g            *graph.Graph
	lastTS       graph.Timestamp
	fed          bool // a packet was added (lastTS is valid)
	lastOffset   int64
	seenOffset   bool
	mediaSeen    bool // a publisher has sent something: the timeout applies
	lastActivity time.Time
	finishing    bool
	reason       string
}

func newStreamTask(p *Packager, st metastore.Stream) *streamTask {
	return &streamTask{p: p, id: st.ID, log: p.log.With("stream", st.ID)}
}

// run packages the stream until it ends (true) or ctx ends or the task
// fails (false).
func (t *streamTask) run(ctx context.Context) bool {
	env, err := t.load(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("live stream: cannot load its state; will retry", "err", err)
		}
		return false
	}
	if env.stream.Status.Terminal() {
		return true
	}
	g, err := newStreamGraph(env)
	if err != nil {
		t.log.Error("live stream: building its graph", "err", err)
		return false
	}
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	if err := g.StartRun(gctx, map[string]any{"env": env}); err != nil {
		t.log.Error("live stream: starting its graph", "err", err)
		return false
	}
	t.mu.Lock()
	t.g = g
	if env.stream.Status == metastore.StatusLive {
		// It was live before this task: if its publisher is gone, the
		// timeout must still end it.
		t.mediaSeen = true
		t.lastActivity = time.Now()
	}
	t.mu.Unlock()
	t.p.metrics.streams.Inc()
	defer t.p.metrics.streams.Dec()

	cctx, ccancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t.consume(cctx)
	}()
	go func() {
		defer wg.Done()
		t.watchIdle(cctx)
	}()
	runErr := g.WaitUntilDone(context.Background())
	ccancel()
	wg.Wait()

	t.mu.Lock()
	finishing, reason := t.finishing, t.reason
	t.mu.Unlock()
	switch {
	case runErr == nil && finishing:
		t.log.Info("live stream finished", "reason", reason)
		return true
	case ctx.Err() != nil:
		return false
	default:
		t.log.Error("live stream: packaging failed", "err", runErr)
		t.fail(runErr)
		return false
	}
}

// load reads the stream row and its segments.
func (t *streamTask) load(ctx context.Context) (*streamEnv, error) {
	st, err := t.p.cfg.Meta.GetStream(ctx, t.id)
	if err != nil {
		return nil, err
	}
	segs, err := t.p.cfg.Meta.ListSegments(ctx, t.id, "", 0, 0)
	if err != nil {
		return nil, err
	}
	return &streamEnv{id: t.id, p: t.p, log: t.log, stream: st, segments: segs}, nil
}

// fail moves the stream to failed after a packaging error.
func (t *streamTask) fail(cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := "live packaging failed"
	if cause != nil {
		msg = fmt.Sprintf("live packaging failed: %v", cause)
	}
	if _, err := t.p.cfg.Meta.TransitionStatus(ctx, t.id, metastore.StatusFailed, func(s *metastore.Stream) {
		s.Error = msg
	}); err != nil && !errors.Is(err, metastore.ErrConflict) {
		t.log.Error("live stream: recording the failure", "err", err)
	}
}

// consume reads the stream topic until ctx ends.
func (t *streamTask) consume(ctx context.Context) {
	topic := protocol.StreamTopic(t.id)
	// Creating the topic up front (one partition, in order) lets the
	// consumer subscribe at once instead of discovering the topic when the
	// publisher's first record creates it, which delays the first segments.
	if err := t.p.cfg.Bus.CreateTopic(ctx, topic, 1); err != nil && ctx.Err() == nil {
		t.log.Warn("live stream: creating its topic", "topic", topic, "err", err)
	}
	opts := bus.ConsumeOptions{
		Topics:        []string{topic},
		Group:         t.p.cfg.Group,
		FromBeginning: true,
		Handler:       t.handle,
	}
	for ctx.Err() == nil {
		err := t.p.cfg.Bus.Consume(ctx, opts)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			return // the bus client was closed
		}
		t.log.Warn("live stream: consuming its topic failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// statusCheckInterval is how often a stream task looks at its stream's
// status for an end it was not told about.
const statusCheckInterval = 2 * time.Second

// handle feeds one record of the stream topic to the graph. It never
// fails: a record the packager cannot use is logged and skipped, so one
// bad record cannot stop a stream.
func (t *streamTask) handle(ctx context.Context, rec *bus.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finishing || t.g == nil {
		return nil
	}
	if t.seenOffset && rec.Offset <= t.lastOffset {
		return nil // redelivered after a rebalance
	}
	t.lastOffset, t.seenOffset = rec.Offset, true
	now := time.Now()
	t.lastActivity = now

	msg, err := protocol.Decode(rec.Key, rec.Value)
	if msg == nil {
		t.log.Warn("live stream: skipping a record that is not a protocol message", "offset", rec.Offset, "err", err)
		return nil
	}
	ev := &ingestEvent{recvAt: now}
	switch m := msg.(type) {
	case *protocol.StreamInit:
		if err != nil {
			t.log.Warn("live stream: stream_init has a bad field; using it anyway", "offset", rec.Offset, "err", err)
		}
		if m.MimeType != push.MimeTypeTS && m.FFmpegFormat != push.FFmpegFormatTS {
			t.log.Warn("live stream: stream_init announces something other than MPEG-TS; reading it as MPEG-TS",
				"mimeType", m.MimeType, "ffmpegFormat", m.FFmpegFormat)
		}
		ev.kind = evInit
		t.mediaSeen = true
	case *protocol.RawStream:
		ev.kind, ev.data = evData, m.Data
		if v, ok := rec.Header(protocol.HeaderReceivedAt); ok {
			if at, err := protocol.ParseReceivedAt(v); err == nil {
				ev.recvAt = at
			}
		}
		t.mediaSeen = true
	case *protocol.StreamEOF:
		ev.kind = evEOF
	case *protocol.EngineHeartbeat:
		if _, ok := rec.Header(protocol.HeaderLiveEnd); !ok {
			return nil
		}
		ev.kind = evEnd
	default:
		t.log.Warn("live stream: skipping a record that does not belong on a stream topic", "offset", rec.Offset, "type", msg.MessageType())
		return nil
	}
	if ev.kind == evEnd {
		t.finishLocked("ended on request")
		return nil
	}
	ts := graph.Timestamp(rec.Offset)
	if t.fed && ts <= t.lastTS {
		ts = t.lastTS + 1
	}
	if err := t.g.AddPacketToInputStream("ingest", graph.MakePacket(ev, ts)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Warn("live stream: the graph refused a record", "offset", rec.Offset, "err", err)
		return nil
	}
	t.lastTS, t.fed = ts, true
	return nil
}

// watchIdle ends the stream once its publisher has been gone for
// PublisherTimeout.
func (t *streamTask) watchIdle(ctx context.Context) {
	timeout := t.p.cfg.PublisherTimeout
	tick := time.NewTicker(min(max(timeout/10, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A stream ended or failed elsewhere (ended through the API
		// before any media came, or with no controller to write the
		// end marker) is finished here too.
		ended := false
		if time.Since(lastCheck) >= statusCheckInterval {
			lastCheck = time.Now()
			st, err := t.p.cfg.Meta.GetStream(ctx, t.id)
			ended = err == nil && st.Status.Terminal()
		}
		t.mu.Lock()
		switch {
		case t.finishing:
		case ended:
			t.finishLocked("the stream ended elsewhere")
		case t.mediaSeen && time.Since(t.lastActivity) >= timeout:
			t.finishLocked(fmt.Sprintf("publisher gone for %v", timeout))
		}
		t.mu.Unlock()
	}
}

// finishLocked flushes the stream and closes the graph's input: the
// playlist writer then writes the final playlists. t.mu is held.
func (t *streamTask) finishLocked(reason string) {
	if t.finishing {
		return
	}
	t.finishing, t.reason = true, reason
	ts := graph.Timestamp(0)
	if t.fed {
		ts = t.lastTS + 1
	}
	if err := t.g.AddPacketToInputStream("ingest", graph.MakePacket(&ingestEvent{kind: evEnd, recvAt: time.Now()}, ts)); err != nil {
		t.log.Warn("live stream: could not queue its end", "err", err)
	}
	t.lastTS, t.fed = ts, true
	if err := t.g.CloseAllInputStreams(); err != nil {
		t.log.Warn("live stream: closing its graph input", "err", err)
	}
}

// endMarker builds the record that ends stream id when it reaches the
// stream's packager: a DONE engine_heartbeat from the live controller,
// carrying protocol.HeaderLiveEnd. A heartbeat may appear anywhere on a stream
// topic, so other readers of the topic are not disturbed.
func endMarker(id string) (*bus.Record, error) {
	hb := &protocol.EngineHeartbeat{
		Header:           protocol.Header{TaskID: id, TDOID: id},
		EngineID:         "weir-live-control",
		EngineInstanceID: "weir-live-control_" + id,
		Count:            1,
		Status:           protocol.HeartbeatDone,
	}
	key, value, err := protocol.Encode(hb)
	if err != nil {
		return nil, fmt.Errorf("end marker of stream %s: %w", id, err)
	}
	return &bus.Record{
		Topic:   protocol.StreamTopic(id),
		Key:     key,
		Value:   value,
		Headers: []bus.Header{{Key: protocol.HeaderLiveEnd, Value: protocol.FormatLiveEnd("ended on request")}},
	}, nil
}
