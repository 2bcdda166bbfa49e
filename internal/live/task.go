package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
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
	id string
	// rendition is the ladder rung this graph packages, "" for the
	// stream itself; prefix is where its objects go ({id} or
	// {id}/{rendition}).
	rendition, prefix string
	p                 *Packager
	log               *slog.Logger
	// stream and segments are the rows as the task found them.
	stream   metastore.Stream
	segments []metastore.Segment
	// target is the EXT-X-TARGETDURATION of the stream's playlists, and
	// maxSpan the longest segment the segmenter cuts for it (see
	// streamTarget).
	target  int
	maxSpan time.Duration
	// ll: package as Low-Latency HLS (ll.go) with parts of partTarget,
	// numbered from nextPart.
	ll         bool
	partTarget time.Duration
	nextPart   int64
}

// streamTarget returns the EXT-X-TARGETDURATION of a stream's playlists
// and the longest segment to cut for it. A stream that has segments keeps
// the target its playlists already declare (in its details), whatever this
// packager's configuration says, since the target may not change during a
// playlist's life; a new stream gets MaxSegmentDuration rounded up to whole
// seconds. Segments never run past either.
func streamTarget(cfg Config, st metastore.Stream, segs []metastore.Segment) (int, time.Duration) {
	target := ceilSeconds(cfg.MaxSegmentDuration)
	if len(segs) > 0 {
		var d Details
		if json.Unmarshal(st.Details, &d) == nil && d.TargetDurationSeconds > 0 {
			target = d.TargetDurationSeconds
		}
	}
	return target, min(cfg.MaxSegmentDuration, time.Duration(target)*time.Second)
}

// streamTask packages one live stream: the packager hands it the records of
// the stream topic (handle), and it feeds them to the stream's graph until
// the stream ends or the packager gives the topic up.
type streamTask struct {
	p   *Packager
	id  string
	src source
	log *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	// finished is set before done closes: the stream was finished here.
	finished bool

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
	// token is the highest publish token seen (protocol.HeaderPublishToken),
	// starting at the stream's publish lease: records of a publisher
	// holding an older lease are dropped.
	token int64
}

// startStreamTask loads stream id and starts its graph. It returns a nil
// task and no error when the stream needs no packaging (not a live stream,
// or already ended), and an error when its state cannot be read.
func startStreamTask(ctx context.Context, p *Packager, src source) (*streamTask, error) {
	id := src.id
	t := &streamTask{p: p, id: id, src: src, log: p.log.With("stream", src.key()), done: make(chan struct{})}
	env, err := t.load(ctx)
	switch {
	case errors.Is(err, metastore.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("live stream %s: loading its state: %w", id, err)
	case env.stream.Kind != metastore.KindLive:
		return nil, nil
	case src.rendition == "" && env.stream.Status.Terminal():
		return nil, nil
	case src.rendition != "" && env.stream.Status.Terminal():
		// The transcoder may still be writing a rendition after the
		// stream ended: it needs packaging until its own end, which
		// writes its vod.m3u8.
		_, err := p.cfg.Objects.Stat(ctx, vodPlaylistKey(src.key()))
		if env.stream.Status == metastore.StatusFailed || err == nil {
			return nil, nil
		}
	}
	lease := metastore.PublishLeaseName(id)
	if src.rendition != "" {
		// A rendition's records carry the transcoder's token.
		lease = metastore.LiveLadderLeaseName(id)
	}
	if l, err := p.cfg.Meta.GetLease(ctx, lease); err == nil {
		t.token = l.Token
	}
	g, err := newStreamGraph(env)
	if err != nil {
		return nil, fmt.Errorf("live stream %s: building its graph: %w", id, err)
	}
	gctx, cancel := context.WithCancel(ctx)
	if err := g.StartRun(gctx, map[string]any{"env": env}); err != nil {
		cancel()
		return nil, fmt.Errorf("live stream %s: starting its graph: %w", id, err)
	}
	t.g, t.cancel = g, cancel
	if env.stream.Status == metastore.StatusLive {
		// It was live before this task: if its publisher is gone, the
		// timeout must still end it.
		t.markMediaLocked()
	}
	t.lastActivity = time.Now()
	go t.run(gctx)
	return t, nil
}

// run waits for the graph to finish, watching for an idle publisher
// meanwhile. The stream is finished (finished = true) when the graph ends
// after finishLocked; it is failed when the graph fails on its own.
func (t *streamTask) run(ctx context.Context) {
	defer t.p.ended(t)
	defer close(t.done)
	t.p.metrics.streams.Inc()
	defer t.p.metrics.streams.Dec()
	defer t.p.metrics.lastSegment.DeleteLabelValues(t.src.key())
	idleCtx, stopIdle := context.WithCancel(ctx)
	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		t.watchIdle(idleCtx)
	}()
	runErr := t.g.WaitUntilDone(context.Background())
	stopIdle()
	<-idleDone

	t.mu.Lock()
	finishing, reason := t.finishing, t.reason
	t.mu.Unlock()
	switch {
	case runErr == nil && finishing:
		t.log.Info("live stream finished", "reason", reason)
		t.finished = true
	case ctx.Err() != nil:
		// Given up (the topic moved to another packager, or this one is
		// stopping): the next owner carries on.
	case t.src.rendition != "":
		// A rendition's failure leaves the stream alone.
		t.log.Error("live stream: packaging a rendition failed", "err", runErr)
		t.finished = true
	default:
		t.log.Error("live stream: packaging failed", "err", runErr)
		t.fail(runErr)
		t.finished = true
	}
}

// stop ends the task without finishing the stream and waits until its
// graph has stopped writing.
func (t *streamTask) stop() {
	t.cancel()
	<-t.done
}

// load reads the stream row and its segments.
func (t *streamTask) load(ctx context.Context) (*streamEnv, error) {
	st, err := t.p.cfg.Meta.GetStream(ctx, t.id)
	if err != nil {
		return nil, err
	}
	segs, err := t.p.cfg.Meta.ListSegments(ctx, t.id, t.src.rendition, 0, 0)
	if err != nil {
		return nil, err
	}
	env := &streamEnv{id: t.id, rendition: t.src.rendition, prefix: t.src.key(), p: t.p, log: t.log, stream: st, segments: segs}
	env.target, env.maxSpan = streamTarget(t.p.cfg, st, segs)
	var d Details
	if json.Unmarshal(st.Details, &d) == nil && d.LowLatency {
		env.ll, env.nextPart, env.partTarget = true, d.NextPart, t.p.cfg.PartTarget
		if d.PartTargetMS > 0 && (len(segs) > 0 || t.src.rendition != "") {
			// The declared part target does not change mid-stream, and
			// a ladder's renditions declare the stream's.
			env.partTarget = time.Duration(d.PartTargetMS) * time.Millisecond
		}
		if t.src.rendition != "" {
			// A rendition of an LL stream is LL too. Its part numbers
			// are not kept in the stream's details (those are the
			// source's): they go on past any its segments can have used.
			env.nextPart = renditionNextPart(segs, env.maxSpan, env.partTarget)
		}
	}
	return env, nil
}

// renditionNextPart is the first part number a rendition's LL packager
// may use after segs: a segment has at most maxSpan/partTarget + 1 parts
// (and one more for a cut at the limit), so segments 0..n, and the
// segment n+1 that was being cut when an earlier packager stopped, used
// fewer than (n+2) times that many numbers.
func renditionNextPart(segs []metastore.Segment, maxSpan, partTarget time.Duration) int64 {
	if len(segs) == 0 || partTarget <= 0 {
		return 0
	}
	perSegment := int64(maxSpan/partTarget) + 2
	return (segs[len(segs)-1].ChunkIndex + 2) * perSegment
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
	if t.stale(rec) {
		return nil
	}
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
		if m.MimeType != mpegts.MimeType && m.FFmpegFormat != mpegts.FFmpegFormat {
			t.log.Warn("live stream: stream_init announces something other than MPEG-TS; reading it as MPEG-TS",
				"mimeType", m.MimeType, "ffmpegFormat", m.FFmpegFormat)
		}
		ev.kind = evInit
		t.markMediaLocked()
	case *protocol.RawStream:
		ev.kind, ev.data = evData, m.Data
		if v, ok := rec.Header(protocol.HeaderReceivedAt); ok {
			if at, err := protocol.ParseReceivedAt(v); err == nil {
				ev.recvAt = at
			}
		}
		t.markMediaLocked()
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
	// A full graph queue holds the consumer here (back-pressure), but
	// never past the end of ctx.
	if err := t.g.AddPacketToInputStreamContext(ctx, "ingest", graph.MakePacket(ev, ts)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Warn("live stream: the graph refused a record", "offset", rec.Offset, "err", err)
		return nil
	}
	t.lastTS, t.fed = ts, true
	return nil
}

// stale reports whether rec was written by a publisher that has since lost
// the stream's publish lease to another (its protocol.HeaderPublishToken is
// below one seen before, or below the lease when the task started): such a
// record is dropped, counted and logged. Records without the header
// (external adapters) are never stale. t.mu is held.
func (t *streamTask) stale(rec *bus.Record) bool {
	v, ok := rec.Header(protocol.HeaderPublishToken)
	if !ok {
		return false
	}
	tok, err := protocol.ParsePublishToken(v)
	if err != nil {
		t.log.Warn("live stream: ignoring a bad publish token header", "offset", rec.Offset, "err", err)
		return false
	}
	if tok < t.token {
		t.p.metrics.staleRecords.Inc()
		t.log.Warn("live stream: dropping a record of a publisher that lost the stream", "offset", rec.Offset, "token", tok, "current", t.token)
		return true
	}
	t.token = tok
	return false
}

// markMediaLocked notes that the stream has received media. The first time,
// its last-segment gauge starts at now, so a stream that gets media but
// never a segment shows up in alerts. t.mu is held, or t is not shared yet.
func (t *streamTask) markMediaLocked() {
	if !t.mediaSeen {
		t.p.metrics.lastSegment.WithLabelValues(t.src.key()).SetToCurrentTime()
	}
	t.mediaSeen = true
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
			if t.src.rendition != "" {
				// A rendition's transcoder ends it after the stream
				// (its end marker); without one, the rendition ends
				// once it has been quiet a while after the stream.
				t.mu.Lock()
				ended = ended && time.Since(t.lastActivity) >= statusCheckInterval
				t.mu.Unlock()
			}
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
