package jobs

import (
	"time"

	"github.com/weir-media/weir/internal/aggregator"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// This file sends the timestamp bounds of a job's tasks on its results
// topic (protocol.TimestampBound), the promise an aggregator needs to
// finish a window of time without waiting for the job's end. The runner is
// the authority for every task it runs:
//
//   - a chunk task's bound is the end of the longest run of settled chunks
//     from the first one cut: a chunk that succeeded (with output or
//     without), was ignored, dropped by flow control or failed on every
//     try settles, so an empty chunk, a dropped one and a failed one all
//     move the bound. Chunks are cut in time order, so nothing the engine
//     still writes can start before it; an answer to a chunk already
//     failed (a timeout) may, and an aggregator records it as late;
//   - a stream task's bound is its engine's Emitter's;
//   - every task starts at the source's start, and is done (bound past the
//     end of time) once its work is over: a chunk task when the source is
//     cut and its chunks settled, a stream task when its engine returned.
//
// A bound is sent when it enters a new aggregation window, or a second
// after the last one sent; a tick sends what is still held back. Bounds
// go out after the records they cover: a chunk's answer is read from the
// topic before the runner settles it, and a stream engine's bound moves
// after its output was produced.

// boundEvery is the longest a moved bound is held back.
const boundEvery = time.Second

// span is one chunk offered to a lane.
type span struct {
	uuid  string
	endMs int64
}

// chunkSeq is the order in which a lane's chunks were cut, from the first
// not yet settled, and where the settled run before it ends.
type chunkSeq struct {
	pending []span
	known   map[string]bool
	endMs   int64
	settled bool // some chunk has settled: endMs means something
}

// add records a chunk the chunker cut, once.
func (s *chunkSeq) add(uuid string, endMs int64) {
	if s.known == nil {
		s.known = map[string]bool{}
	}
	if s.known[uuid] {
		return
	}
	s.known[uuid] = true
	s.pending = append(s.pending, span{uuid, endMs})
}

// advance moves past the chunks settled in finished and returns the end
// of the settled run, with false while no chunk has settled.
func (s *chunkSeq) advance(finished map[string]metastore.ChunkState) (int64, bool) {
	i := 0
	for ; i < len(s.pending) && terminal(finished[s.pending[i].uuid]); i++ {
		s.endMs = max(s.endMs, s.pending[i].endMs)
		s.settled = true
	}
	s.pending = s.pending[i:]
	return s.endMs, s.settled
}

// taskBound is what was sent of one task's bound.
type taskBound struct {
	taskID   string
	engine   string
	sent     bool
	sentMs   int64
	heldMs   int64 // the newest bound, sent or not
	lastSend time.Time
	done     bool
}

// boundOf returns the lane's bound state; ru.mu held.
func (ru *run) boundOf(l *lane) *taskBound {
	b := ru.bounds[l.engine]
	if b == nil {
		b = &taskBound{taskID: ru.tasks[l.engine].ID, engine: l.engine}
		ru.bounds[l.engine] = b
	}
	return b
}

// noteBound records that l's task has passed ms and returns the message
// to send now, nil when nothing new is due; ru.mu held.
func (ru *run) noteBound(l *lane, ms int64, now time.Time) *protocol.TimestampBound {
	b := ru.boundOf(l)
	if b.done || (b.sent && ms <= b.heldMs) {
		return nil
	}
	b.heldMs = max(b.heldMs, ms)
	w := max(ru.req.Aggregate.WindowDuration().Milliseconds(), 1)
	if b.sent && b.heldMs/w == b.sentMs/w && now.Sub(b.lastSend) < boundEvery {
		return nil
	}
	return ru.boundMessage(b, now, false)
}

// boundMessage marks b's held bound sent and makes its message; ru.mu
// held.
func (ru *run) boundMessage(b *taskBound, now time.Time, done bool) *protocol.TimestampBound {
	b.sent, b.sentMs, b.lastSend, b.done = true, b.heldMs, now, done
	return &protocol.TimestampBound{Header: protocol.Header{Type: protocol.TypeTimestampBound,
		TimestampUTC: protocol.NowMillis(), TaskID: b.taskID, TDOID: ru.tdo(), JobID: ru.job.ID},
		EngineID: b.engine, TimestampBoundMs: b.heldMs, Done: done}
}

// sendBounds produces bound messages on the results topic.
func (ru *run) sendBounds(ms ...*protocol.TimestampBound) {
	for _, m := range ms {
		if m == nil {
			continue
		}
		if err := ru.produce(protocol.ResultsTopic(ru.job.ID), m); err != nil && ru.ctx.Err() == nil {
			ru.log.Warn("send timestamp bound", "engine", m.EngineID, "bound_ms", m.TimestampBoundMs, "err", err)
		}
	}
}

// settled sends the bound of a chunk lane after its chunks changed.
func (ru *run) settled(l *lane) {
	ru.mu.Lock()
	var m *protocol.TimestampBound
	if ms, ok := boundOfLane(l); ok {
		m = ru.noteBound(l, ms, time.Now())
	}
	ru.mu.Unlock()
	ru.sendBounds(m)
}

// boundOfLane is a chunk lane's bound: the end of its settled run of
// chunks, or, for a lane reading another engine's output, its parent's
// bound held at its oldest unsettled chunk (route.go); ru.mu held.
func boundOfLane(l *lane) (int64, bool) {
	if l.route != nil {
		return l.route.bound(l.finished)
	}
	return l.seq.advance(l.finished)
}

// streamBound sends a stream task's bound as its engine moves it.
func (ru *run) streamBound(l *lane, ms int64) {
	ru.mu.Lock()
	m := ru.noteBound(l, ms, time.Now())
	ru.mu.Unlock()
	ru.sendBounds(m)
}

// startBounds sends every task's first bound, the source's start, and
// says at once that a stream engine finished in an earlier run is done.
func (ru *run) startBounds(offsetMs int64) {
	now := time.Now()
	var ms []*protocol.TimestampBound
	ru.mu.Lock()
	for _, l := range ru.lanes {
		b := ru.boundOf(l)
		if b.sent {
			continue
		}
		b.heldMs = max(b.heldMs, offsetMs)
		ms = append(ms, ru.boundMessage(b, now, l.topic == "" && !ru.hostsStream(l)))
	}
	ru.mu.Unlock()
	ru.sendBounds(ms...)
}

// hostsStream reports whether l is a stream engine this run runs.
func (ru *run) hostsStream(l *lane) bool {
	for _, st := range ru.streams {
		if st.lane == l {
			return true
		}
	}
	return false
}

// finishBound says l's task is done.
func (ru *run) finishBound(l *lane) {
	ru.mu.Lock()
	var m *protocol.TimestampBound
	if b := ru.boundOf(l); !b.done {
		m = ru.boundMessage(b, time.Now(), true)
	}
	ru.mu.Unlock()
	ru.sendBounds(m)
}

// tickBounds sends the bounds held back for a second, and, once the
// source is cut, says which chunk tasks are done.
func (ru *run) tickBounds(now time.Time) {
	var ms []*protocol.TimestampBound
	ru.mu.Lock()
	for _, l := range ru.lanes {
		b := ru.boundOf(l)
		if at, ok := boundOfLane(l); ok && l.topic != "" {
			// As settled would: a bound entering a new window goes out
			// now, not a second later.
			if m := ru.noteBound(l, at, now); m != nil {
				ms = append(ms, m)
				continue
			}
		}
		switch {
		case b.done:
		case l.route != nil && l.route.done(l.finished) && l.idle():
			ms = append(ms, ru.boundMessage(b, now, true))
		case l.route == nil && l.topic != "" && ru.chunked.Load() && l.idle() && len(l.seq.pending) == 0:
			ms = append(ms, ru.boundMessage(b, now, true))
		case b.sent && b.heldMs > b.sentMs && now.Sub(b.lastSend) >= boundEvery:
			ms = append(ms, ru.boundMessage(b, now, false))
		}
	}
	ru.mu.Unlock()
	ru.sendBounds(ms...)
}

// boundsDone reports whether every task has been said done.
func (ru *run) boundsDone() bool {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	for _, l := range ru.lanes {
		if b := ru.bounds[l.engine]; b == nil || !b.done {
			return false
		}
	}
	return true
}

// newAggregator makes the job's aggregator: one input per engine task,
// windows and stall timeout from the request.
func (ru *run) newAggregator() (*aggregator.Aggregator, error) {
	tasks := make([]aggregator.Task, 0, len(ru.lanes))
	for _, l := range ru.lanes {
		tasks = append(tasks, aggregator.Task{ID: ru.tasks[l.engine].ID, Engine: l.engine})
	}
	return aggregator.New(aggregator.Config{JobID: ru.job.ID, TDOID: ru.tdo(), Tasks: tasks,
		Window: ru.req.Aggregate.WindowDuration(), StallTimeout: ru.req.Aggregate.Stall(),
		Bus: ru.r.cfg.Bus, Store: ru.r.cfg.Meta, Metrics: ru.r.aggM, Log: ru.log})
}
