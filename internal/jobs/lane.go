package jobs

import (
	"fmt"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// This file holds the flow control of one engine of a running job: a lane.
// It does across the bus what MediaPipe's fixed-size input stream handler
// does inside a graph. A lane keeps at most MaxInFlight of the engine's
// chunks unanswered on the bus; the rest wait in the lane's queue. On a
// live source the queue is bounded: once MaxBacklog chunks are queued or
// in flight, the oldest queued chunk is dropped for each new one, so an
// engine slower than real time stays a bounded distance behind live
// instead of falling ever further behind. A VOD source never drops: its
// chunks wait, since the object store holds them and nothing is lost by
// waiting.
//
// The lane is a pure state machine: it says what to send, retry, drop or
// record and the runner does it, so every rule is tested without a bus.

// work is one chunk of one engine's task, as the runner tracks it.
type work struct {
	msg      *protocol.MediaChunk // ready to produce on the lane's topic
	kind     string
	state    metastore.ChunkState
	attempts int       // sends so far
	sentAt   time.Time // of the last send
	info     string    // why it was dropped, ignored or failed
}

func (w *work) uuid() string { return w.msg.ChunkUUID }

// lanePolicy is a FlowPolicy with its defaults applied.
type lanePolicy struct {
	maxInFlight  int
	maxBacklog   int
	retries      int
	chunkTimeout time.Duration
	// silence is how long an engine instance may send no heartbeat
	// before it is marked down: three heartbeat intervals.
	silence time.Duration
}

// lane is one engine of a running job.
type lane struct {
	engine string
	topic  string
	pol    lanePolicy
	live   bool

	queue    []*work
	inflight map[string]*work
	// finished holds the chunks that reached a terminal state, in this
	// run or an earlier one (read back from the metadata store), so a
	// chunk the chunker cuts again after a restart is not sent again.
	finished map[string]metastore.ChunkState
	// edgeMs is the end of the newest chunk offered: the live edge.
	edgeMs int64
	// instances maps engine instance ids to their last heartbeat.
	instances map[string]time.Time
	// seq is the order the chunks were cut in, for the task's timestamp
	// bound (bounds.go).
	seq chunkSeq
	// route is set for a lane that reads another engine's output
	// (route.go); its chunks are routed, not cut, and its bound follows
	// the parent's.
	route *routeState
}

func newLane(engine, topic string, pol lanePolicy, live bool, finished map[string]metastore.ChunkState) *lane {
	if finished == nil {
		finished = map[string]metastore.ChunkState{}
	}
	return &lane{engine: engine, topic: topic, pol: pol, live: live,
		inflight: map[string]*work{}, finished: finished, instances: map[string]time.Time{}}
}

// terminal reports whether a chunk state is final.
func terminal(s metastore.ChunkState) bool {
	switch s {
	case metastore.ChunkDone, metastore.ChunkIgnored, metastore.ChunkDropped, metastore.ChunkFailed:
		return true
	}
	return false
}

// offer queues a new chunk. It returns false when the chunk was already
// finished in an earlier run (nothing to do), and the chunks dropped to
// make room on a live source, each with its reason set.
func (l *lane) offer(w *work) (queued bool, dropped []*work) {
	l.edgeMs = max(l.edgeMs, w.msg.EndOffsetMs)
	if l.route == nil {
		l.seq.add(w.uuid(), w.msg.EndOffsetMs)
	}
	if terminal(l.finished[w.uuid()]) {
		return false, nil
	}
	if _, busy := l.inflight[w.uuid()]; busy {
		return false, nil
	}
	w.state = metastore.ChunkQueued
	l.queue = append(l.queue, w)
	if !l.live {
		return true, nil
	}
	for len(l.queue) > 0 && len(l.queue)+len(l.inflight) > l.pol.maxBacklog {
		old := l.queue[0]
		l.queue = l.queue[1:]
		l.finish(old, metastore.ChunkDropped, fmt.Sprintf("dropped: engine %.1f s behind live", float64(l.edgeMs-l.oldestStartMs(old))/1000))
		dropped = append(dropped, old)
	}
	return true, dropped
}

// oldestStartMs is where the engine's unanswered work begins: the oldest
// chunk in flight, or w when nothing is.
func (l *lane) oldestStartMs(w *work) int64 {
	oldest := w.msg.StartOffsetMs
	for _, f := range l.inflight {
		oldest = min(oldest, f.msg.StartOffsetMs)
	}
	return oldest
}

// next moves queued chunks into flight, as many as MaxInFlight allows,
// and returns them to be sent.
func (l *lane) next(now time.Time) []*work {
	var out []*work
	for len(l.queue) > 0 && len(l.inflight) < l.pol.maxInFlight {
		w := l.queue[0]
		l.queue = l.queue[1:]
		w.state = metastore.ChunkSent
		w.attempts++
		w.sentAt = now
		l.inflight[w.uuid()] = w
		out = append(out, w)
	}
	return out
}

// answer applies a chunk_processed_status. It returns the chunk when the
// answer changed its state (nil for an answer to a chunk this lane is not
// waiting for: a duplicate, or one from before a restart), and whether it
// was queued again for another attempt.
func (l *lane) answer(st *protocol.ChunkProcessedStatus) (w *work, retry bool) {
	w, ok := l.inflight[st.ChunkUUID]
	if !ok {
		w = l.takeQueued(st.ChunkUUID)
		if w == nil {
			return nil, false
		}
		// Answered before this run sent it: an earlier run's send.
		w.attempts = max(w.attempts, 1)
	}
	delete(l.inflight, st.ChunkUUID)
	switch st.Status {
	case protocol.ChunkSuccess:
		l.finish(w, metastore.ChunkDone, st.InfoMsg)
	case protocol.ChunkIgnored:
		l.finish(w, metastore.ChunkIgnored, st.InfoMsg)
	default:
		reason := st.ErrorMsg
		if reason == "" {
			reason = "engine reported ERROR without a message"
		}
		return w, l.failOrRetry(w, reason)
	}
	return w, false
}

// takeQueued removes and returns the queued chunk uuid, if any.
func (l *lane) takeQueued(uuid string) *work {
	for i, w := range l.queue {
		if w.uuid() == uuid {
			l.queue = append(l.queue[:i:i], l.queue[i+1:]...)
			return w
		}
	}
	return nil
}

// failOrRetry queues w again at the front when it has attempts left, or
// fails it with reason.
func (l *lane) failOrRetry(w *work, reason string) bool {
	if w.attempts <= l.pol.retries {
		w.state = metastore.ChunkQueued
		w.info = reason
		l.queue = append([]*work{w}, l.queue...)
		return true
	}
	l.finish(w, metastore.ChunkFailed, fmt.Sprintf("%s (after %d attempts)", reason, w.attempts))
	return false
}

func (l *lane) finish(w *work, s metastore.ChunkState, info string) {
	w.state = s
	w.info = info
	l.finished[w.uuid()] = s
}

// heartbeat records an instance's heartbeat.
func (l *lane) heartbeat(instance string, at time.Time) { l.instances[instance] = at }

// expire finds chunks whose answer is overdue at now: in flight longer
// than the chunk timeout, or sent more than the silence limit ago while
// an instance of the engine fell silent for that long (it is marked down
// and forgotten, and its unanswered chunks go back on the topic for
// another instance). Each is retried or failed; expire returns them and
// the instances it marked down.
func (l *lane) expire(now time.Time) (changed []*work, down []string) {
	for id, at := range l.instances {
		if now.Sub(at) >= l.pol.silence {
			down = append(down, id)
			delete(l.instances, id)
		}
	}
	for uuid, w := range l.inflight {
		var reason string
		switch age := now.Sub(w.sentAt); {
		case age >= l.pol.chunkTimeout:
			reason = fmt.Sprintf("no answer within %s", l.pol.chunkTimeout)
		case len(down) > 0 && age >= l.pol.silence:
			reason = fmt.Sprintf("engine instance %s silent for %s", down[0], l.pol.silence)
		default:
			continue
		}
		delete(l.inflight, uuid)
		l.failOrRetry(w, reason)
		changed = append(changed, w)
	}
	return changed, down
}

// idle reports whether the lane has nothing queued or in flight.
func (l *lane) idle() bool { return len(l.queue) == 0 && len(l.inflight) == 0 }
