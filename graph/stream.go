package graph

import (
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
)

// Errors the runtime reports; match them with errors.Is.
var (
	// ErrStop, returned from Process, ends the run gracefully: from a
	// source node (one without input streams) it closes that node; from
	// any other node it closes every source and graph input stream, so
	// the graph drains what is in flight and finishes. WaitUntilDone then
	// returns nil.
	ErrStop = errors.New("graph: stop")
	// ErrUnavailable is wrapped by AddPacketToInputStream in AddIfNotFull
	// mode when the stream is throttled.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimestampMismatch is matched by every *TimestampError.
	ErrTimestampMismatch = errors.New("packet timestamp mismatch")
	// ErrDeadlock is wrapped by the run error when report_deadlock is on
	// and throttling stalls the graph.
	ErrDeadlock = errors.New("deadlock")
	// ErrCancelled is the run error after Cancel.
	ErrCancelled = errors.New("graph cancelled")
	// ErrNotRunning is returned by calls that need a running graph.
	ErrNotRunning = errors.New("graph is not running")
)

// TimestampError reports a packet or bound that would make a stream's
// timestamps go back. It matches ErrTimestampMismatch.
type TimestampError struct {
	Stream   string
	Bound    bool // a timestamp bound, not a packet, moved back
	Expected Timestamp
	Received Timestamp
}

func (e *TimestampError) Error() string {
	what := "packet timestamp mismatch"
	if e.Bound {
		what = "timestamp bound moved back"
	}
	return fmt.Sprintf("stream %q: %s: minimum expected timestamp is %v but received %v", e.Stream, what, e.Expected, e.Received)
}

// Is makes errors.Is(err, ErrTimestampMismatch) true.
func (e *TimestampError) Is(target error) bool { return target == ErrTimestampMismatch }

// entry is a queued packet and when it was produced (monoNow), for
// latency profiling.
type entry struct {
	p  Packet
	at time.Duration
}

// deque is a ring buffer of entries whose size is a power of two, so
// positions wrap with a mask rather than a division (the queues are on the
// scheduler's hottest path). Popped slots are cleared so the queue never
// keeps a consumed packet alive.
type deque struct {
	buf  []entry
	head int
	n    int
}

func (d *deque) len() int { return d.n }

func (d *deque) push(e entry) {
	if d.n == len(d.buf) {
		nb := make([]entry, max(8, 2*len(d.buf)))
		for i := 0; i < d.n; i++ {
			nb[i] = d.buf[(d.head+i)&(len(d.buf)-1)]
		}
		d.buf, d.head = nb, 0
	}
	d.buf[(d.head+d.n)&(len(d.buf)-1)] = e
	d.n++
}

// at returns the i-th entry from the front.
func (d *deque) at(i int) *entry { return &d.buf[(d.head+i)&(len(d.buf)-1)] }

func (d *deque) pop() entry {
	e := d.buf[d.head]
	d.buf[d.head] = entry{}
	d.head = (d.head + 1) & (len(d.buf) - 1)
	d.n--
	return e
}

// release drops every entry and the buffer.
func (d *deque) release() { *d = deque{} }

// stream is an output stream: one producer (a node or the application),
// any number of consumer queues. Its state is guarded by its producer's
// lock (Graph.mu for a graph input stream).
type stream struct {
	name      string
	producer  *node // nil for graph input streams
	typ       reflect.Type
	consumers []*inputQueue
	bound     Timestamp // no packet below this may come
	packets   int
	lastPre   bool // the only packet so far was at PreStream
}

func newStream(name string) *stream { return &stream{name: name, bound: PreStream} }

// record advances s past p, already checked.
func (s *stream) record(p Packet) {
	s.packets++
	s.lastPre = s.packets == 1 && p.ts == PreStream
	s.bound = p.ts.NextAllowedInStream()
}

// check reports whether p may be the next packet of s.
func (s *stream) check(p Packet) error {
	ts := p.ts
	if !ts.IsAllowedInStream() {
		return fmt.Errorf("stream %q: timestamp not set or set to a value packets cannot carry: %v", s.name, ts)
	}
	if ts == PostStream && s.packets > 0 {
		return fmt.Errorf("stream %q: a packet at PostStream must be the only packet in the stream", s.name)
	}
	if ts < s.bound {
		if s.lastPre {
			return fmt.Errorf("stream %q: a packet at PreStream must be the only packet in the stream, but another came at %v", s.name, ts)
		}
		return &TimestampError{Stream: s.name, Expected: s.bound, Received: ts}
	}
	if err := checkValueType(p.value, s.typ); err != nil {
		return fmt.Errorf("stream %q: %w", s.name, err)
	}
	return nil
}

// inputQueue is one consumer's end of a stream: the packets a node has not
// consumed yet and the stream's bound as that node sees it. It is guarded
// by its node's lock.
type inputQueue struct {
	n        *node
	idx      int // position in the node's inputs
	s        *stream
	port     PortRef
	backEdge bool
	q        deque
	bound    Timestamp
	maxSize  int // -1: unbounded
	held     int // packets taken by batched calls not committed yet
	full     bool
	// ancestors are the packet sources whose output ends up here; they
	// are throttled while this queue is full.
	ancestors []*source

	added, dropped int64
	maxDepth       int
}

// minTimestampOrBound is the timestamp of the first queued packet, or the
// bound when the queue is empty.
func (q *inputQueue) minTimestampOrBound() (Timestamp, bool) {
	if q.q.len() == 0 {
		return q.bound, true
	}
	return q.q.at(0).p.ts, false
}

// done reports whether nothing more will come on this queue.
func (q *inputQueue) done() bool { return q.q.len() == 0 && q.bound == Done }

// source is something that produces packets without consuming any: a
// source node or a graph input stream. It is throttled while any queue it
// feeds is full; nfull counts those queues, updated under each queue's
// node lock, so it is atomic.
type source struct {
	node  *node       // or
	input *graphInput // one of the two
	nfull atomic.Int32
}

func (s *source) throttled() bool { return s.nfull.Load() > 0 }

// graphInput is a stream fed by the application, guarded by Graph.mu.
type graphInput struct {
	name    string
	s       *stream
	src     *source
	closed  bool
	fanout  []fanout
	stamper stamper
}
