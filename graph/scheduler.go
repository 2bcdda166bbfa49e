package graph

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Locking. No graph-wide lock sits on the path of a packet:
//
//   - node.mu guards a node's input queues, its input stream handler's
//     state, its call bookkeeping (state, calls in flight, sequence
//     numbers, a batch being collected, recycled contexts), its profile and
//     the streams it produces.
//   - each worker's queue of ready calls has its own lock (workerQueue.mu;
//     the shared queue's is taken after one of them, never before).
//   - Graph.mu serialises the application's calls (feeding, bounds,
//     closing, cancelling) and idle handling.
//   - Graph.waitMu guards the goroutines waiting for a change, Graph.sideMu
//     the side packets.
//
// The order is Graph.mu, then one node.mu, then a queue's lock, waitMu or
// sideMu.
// No goroutine ever holds two node locks: what a change on one node means
// for another (a bound for its consumers, a source released from
// throttling) is collected in a settler while the first lock is held and
// applied once it is released. A commit delivers a node's packets to each
// consumer under that consumer's lock alone, before the node may run
// again, so packets still arrive in order.
//
// Idleness. Graph.busy counts work under way: calls queued or running (a
// batch counts once) and application calls in progress. Work only starts
// from work, so busy leaves 0 only under Graph.mu (an application call, or
// idle handling that schedules something). Whoever holds Graph.mu and
// reads 0 therefore sees the whole graph at rest, the consistent view that
// deadlock resolution, closing loops, WaitUntilIdle and the end of the run
// need.

// taskHeap orders ready calls: nodes nearer the graph's outputs first (they
// free memory and deliver results), sources last, and first come first
// served among equals so parallel calls of one node start in timestamp
// order.
type taskHeap []*CalculatorContext

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return taskLess(h[i], h[j]) }

func taskLess(a, b *CalculatorContext) bool {
	if a.n.priority != b.n.priority {
		return a.n.priority > b.n.priority
	}
	return a.order < b.order
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(*CalculatorContext)) }
func (h *taskHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// settler carries the effects of a change on one node that reach other
// nodes: bounds to pass to a stream's consumers and nodes to re-evaluate.
// Each worker has its own; application calls use Graph.ext under Graph.mu.
// It also holds a worker's scratch space for commits.
type settler struct {
	g      *Graph
	bounds []boundChange
	touch  []*node
	before []Timestamp // output bounds before a commit
	after  []Timestamp // and after
	// next is the first call of a deeper node that a worker's commit made
	// ready, which the worker runs next itself (see push); deeper is the
	// depth it must exceed, that of the node committed.
	next   *CalculatorContext
	worker bool
	id     int // the worker's index
	deeper int
}

type boundChange struct {
	s *stream
	b Timestamp
}

// drain applies what was collected, taking one node lock at a time, until
// nothing is left. The bounds collected together reach their consumers
// before any of them is re-evaluated, so that a node sees the effects of
// one change (closing every graph input, an offset bound on all of a
// node's outputs) at once. Re-evaluating a node may collect more.
func (st *settler) drain() {
	for b, t := 0, 0; b < len(st.bounds) || t < len(st.touch); {
		for ; b < len(st.bounds); b++ {
			bc := st.bounds[b]
			for _, q := range bc.s.consumers {
				n := q.n
				n.mu.Lock()
				raised := bc.b > q.bound
				if raised {
					q.bound = bc.b
				}
				n.mu.Unlock()
				if raised {
					st.touch = append(st.touch, n)
				}
			}
		}
		for round := t; t < len(st.touch); t++ {
			n := st.touch[t]
			if slices.Contains(st.touch[round:t], n) {
				continue
			}
			n.mu.Lock()
			st.g.schedule(n, st)
			n.mu.Unlock()
		}
	}
	clear(st.bounds)
	clear(st.touch)
	st.bounds, st.touch = st.bounds[:0], st.touch[:0]
}

func (g *Graph) worker(id int) {
	defer g.workers.Done()
	st := &settler{g: g, worker: true, id: id, deeper: math.MaxInt}
	w := g.wq[id]
	for {
		cc := st.next
		st.next = nil
		if cc == nil {
			if cc = g.next(id); cc == nil {
				return
			}
		} else if g.stopping.Load() { // failed since: queued calls are dropped
			cc.n.mu.Lock()
			g.drop(st, cc)
			cc.n.mu.Unlock()
			g.release()
			continue
		}
		w.runs.Add(1)
		long := cc.long
		if long {
			g.startLong(id)
		}
		g.run(cc)
		if long {
			w.long.Store(false)
		}
		g.complete(st, cc)
		st.drain()
		g.release()
	}
}

// release ends a unit of work; the last one out looks at the idle graph.
func (g *Graph) release() {
	if g.busy.Add(-1) == 0 {
		g.mu.Lock()
		if g.busy.Load() == 0 {
			g.idle()
		}
		g.mu.Unlock()
	}
}

// begin and end bracket an application call that changes the graph; both
// run under Graph.mu.
func (g *Graph) begin() { g.busy.Add(1) }

func (g *Graph) end() {
	g.ext.drain()
	if g.busy.Add(-1) == 0 {
		g.idle()
	}
}

// run makes a context's calls, one after another, without a lock. A call
// that fails ends the batch: the rest do not run. The packets of every call
// are stamped with one clock read taken when the batch ends, just before
// they are queued downstream.
func (g *Graph) run(cc *CalculatorContext) {
	g.runCalls(cc)
	for _, o := range cc.outputs {
		if len(o.packets) > 0 {
			cc.end = monoNow()
			break
		}
	}
}

// runCalls runs the calls under one deferred recover: a panic fails the
// call that panicked and ends the batch.
func (g *Graph) runCalls(cc *CalculatorContext) {
	defer func() {
		if r := recover(); r != nil {
			c := &cc.calls[cc.cur]
			if c.timed {
				c.dur = monoNow() - c.dur
			}
			cc.ran = cc.cur + 1
			cc.result = fmt.Errorf("panic in %s: %v\n%s", cc.phase, r, debug.Stack())
			if cc.err != nil { // misuse of an output beats the panic it led to
				cc.result = cc.err
			}
		}
	}()
	serial := cc.n.maxInFlight == 1
	for i := range cc.calls {
		if i > 0 && g.stopping.Load() {
			return
		}
		cc.begin(i)
		c := &cc.calls[i]
		if c.timed {
			c.dur = monoNow()
			if c.arrival != 0 {
				c.arrival = max(c.dur-c.arrival, 1)
			}
		}
		var err error
		switch cc.phase {
		case phaseOpen:
			err = cc.n.calc.Open(cc)
		case phaseProcess:
			err = cc.n.calc.Process(cc)
		case phaseClose:
			err = cc.n.calc.Close(cc)
		}
		if c.timed {
			c.dur = monoNow() - c.dur
		}
		cc.ran = i + 1
		if cc.err != nil { // misuse of an output beats the returned error
			err = cc.err
		}
		if err != nil {
			if !errors.Is(err, ErrStop) || errors.Is(cc.err, ErrStop) {
				cc.result = err
				return
			}
			cc.stop = true
		}
		if serial && cc.phase != phaseClose {
			if err := cc.endCall(); err != nil {
				cc.result = err
				return
			}
		}
	}
}

// begin makes call i of the batch the current one.
func (cc *CalculatorContext) begin(i int) {
	c := &cc.calls[i]
	cc.cur, cc.ts, cc.held = i, c.ts, c.held
	if k := len(cc.n.inputs); cc.phase == phaseProcess && k > 0 {
		cc.inputs, cc.inputDone = cc.callIn[i*k:(i+1)*k:(i+1)*k], cc.callDone[i*k:(i+1)*k:(i+1)*k]
	}
	for _, o := range cc.outputs {
		o.base, o.mark, o.updated = o.next, len(o.packets), Unset
	}
}

// endCall does, once a call of a node that runs one call at a time has
// returned, what committing it would do to its outputs' bounds, so the next
// call of a batch starts where this one leaves them: the largest of the
// bound implied by the timestamp offset, the explicit
// SetNextTimestampBound and the last packet, as in MediaPipe. An explicit
// bound below what the stream had promised before the call, with no packet
// after it, is an error.
func (cc *CalculatorContext) endCall() error {
	n := cc.n
	for _, o := range cc.outputs {
		if o.updated != Unset && o.updated < o.base && len(o.packets) == o.mark && !o.closed {
			return &TimestampError{Stream: o.s.name, Bound: true, Expected: o.base, Received: o.updated}
		}
		if n.offsetSet && cc.phase == phaseProcess {
			o.next = max(o.next, offsetAfter(cc.ts, n.offset))
		}
		if o.next == Done {
			o.closed = true
		}
		if o.closed {
			o.next = Done
		}
	}
	return nil
}

// complete commits a finished batch, in input timestamp order for nodes
// with parallel calls: a call that finishes before an earlier one waits
// for it, and one goroutine at a time commits a node's calls.
func (g *Graph) complete(st *settler, cc *CalculatorContext) {
	n := cc.n
	if cc.phase != phaseProcess || n.maxInFlight == 1 {
		g.commit(st, cc)
		return
	}
	n.mu.Lock()
	n.finished[cc.seq] = cc
	if n.committing {
		n.mu.Unlock()
		return
	}
	n.committing = true
	for {
		next, ok := n.finished[n.commitSeq]
		if !ok {
			break
		}
		delete(n.finished, n.commitSeq)
		n.commitSeq++
		n.mu.Unlock()
		g.commit(st, next)
		n.mu.Lock()
	}
	n.committing = false
	n.mu.Unlock()
}

// commit applies a batch's effects in three steps. Under the node's lock:
// errors, the streams' packets and bounds, side packets and the node's
// state. Then, holding one consumer's lock at a time, the packets and
// bounds go to the consumers, which are re-evaluated. Last, under the
// node's lock again, the batch leaves the node, which may run again: until
// then no other call of the node can commit, so its packets arrive in
// order.
func (g *Graph) commit(st *settler, cc *CalculatorContext) {
	n := cc.n
	var failure error
	stopAll, ok := false, false
	n.mu.Lock()
	if cc.phase == phaseProcess {
		for i := range cc.ran {
			n.stats.record(&cc.calls[i])
		}
	}
	g.unhold(st, cc)
	st.before = st.before[:0]
	for _, s := range n.outputs {
		st.before = append(st.before, s.bound)
	}
	switch {
	case g.stopping.Load():
	case cc.result != nil:
		failure = g.nodeErr(n, cc.phase, cc.result)
		g.stopping.Store(true) // commit nothing more anywhere
	default:
		var err error
		if stopAll, err = g.apply(st, cc); err != nil {
			failure = g.nodeErr(n, cc.phase, err)
			g.stopping.Store(true)
		} else {
			ok = true
		}
	}
	if !ok && cc.ran > 0 && cc.phase == phaseClose {
		n.state = nodeClosed
	}
	st.after = st.after[:0]
	for _, s := range n.outputs {
		st.after = append(st.after, s.bound)
	}
	n.mu.Unlock()

	if ok {
		st.deeper = n.priority
		g.deliver(st, n, cc)
		st.deeper = math.MaxInt
	}

	n.mu.Lock()
	n.inflight--
	cc.recycle()
	g.schedule(n, st)
	n.mu.Unlock()

	if failure != nil || stopAll {
		g.mu.Lock()
		if failure != nil {
			g.fail(failure)
		} else {
			g.closeAllPacketSources(st)
		}
		st.drain()
		g.mu.Unlock()
	}
}

// deliver hands the packets and new bounds of a committed batch to the
// node's consumers, one consumer node (and lock) at a time, all of a
// consumer's inputs at once.
func (g *Graph) deliver(st *settler, n *node, cc *CalculatorContext) {
	for fi := range n.fanout {
		fo := &n.fanout[fi]
		moved := false
		for _, l := range fo.links {
			if st.after[l.out] != st.before[l.out] || len(cc.outputs[l.out].packets) > 0 {
				moved = true
				break
			}
		}
		if !moved {
			continue
		}
		c := fo.to
		c.mu.Lock()
		for _, l := range fo.links {
			q := l.q
			if c.state != nodeClosed {
				q.pushAll(st, cc.outputs[l.out].packets, cc.end)
			}
			q.bound = max(q.bound, st.after[l.out])
			g.updateFull(st, q)
		}
		g.schedule(c, st)
		c.mu.Unlock()
	}
}

// push queues p, produced at at (monoNow), on q; the caller holds q's
// node's lock.
func (q *inputQueue) push(st *settler, p Packet, at time.Duration) {
	q.q.push(entry{p: p, at: at})
	q.added++
	q.bound = max(q.bound, p.ts.NextAllowedInStream())
	q.maxDepth = max(q.maxDepth, q.q.len())
	if q.n.handler.kind == handlerFixedSize {
		q.n.eraseSurplus(st, false)
	}
}

// pushAll queues packets, produced at at (monoNow), on q; the caller holds
// q's node's lock.
func (q *inputQueue) pushAll(st *settler, packets []Packet, at time.Duration) {
	if len(packets) == 0 {
		return
	}
	if q.n.handler.kind == handlerFixedSize {
		for _, p := range packets {
			q.push(st, p, at)
		}
		return
	}
	for _, p := range packets {
		q.q.push(entry{p: p, at: at})
	}
	q.added += int64(len(packets))
	q.bound = max(q.bound, packets[len(packets)-1].ts.NextAllowedInStream())
	q.maxDepth = max(q.maxDepth, q.q.len())
}

// drop discards a context that never ran, once the run is failing; the
// caller holds the node's lock.
func (g *Graph) drop(st *settler, cc *CalculatorContext) {
	cc.n.inflight--
	g.unhold(st, cc)
	cc.release()
}

// unhold stops counting the input packets of a batch's held calls in their
// queues; the caller holds the node's lock.
func (g *Graph) unhold(st *settler, cc *CalculatorContext) {
	for qi, held := range cc.nheld {
		if held > 0 {
			q := cc.n.inputs[qi]
			q.held -= held
			cc.nheld[qi] = 0
			g.updateFull(st, q)
		}
	}
}

func (g *Graph) nodeErr(n *node, ph phase, err error) error {
	if ph == phaseProcess {
		return fmt.Errorf("node %q (%s): %w", n.name, n.calcName, err)
	}
	return fmt.Errorf("node %q (%s): %s: %w", n.name, n.calcName, ph, err)
}

// apply commits a batch's effects on its node and the node's streams,
// under the node's lock: its packets and bounds (delivered to consumers
// afterwards, see deliver), its side packets, and the node's state change.
// stopAll reports an ErrStop that closes every packet source.
func (g *Graph) apply(st *settler, cc *CalculatorContext) (stopAll bool, err error) {
	n := cc.n
	if cc.stop {
		switch {
		case len(n.inputs) == 0:
			n.stop = true
		case cc.phase != phaseClose:
			stopAll = true
		}
	}
	for _, o := range cc.outputs {
		if n.maxInFlight > 1 {
			err = g.applyParallel(n, o, cc)
		} else {
			applySerial(o, cc)
		}
		if err != nil {
			return false, err
		}
	}
	if len(cc.sideOut) > 0 { // ranging over a nil map still costs a map iteration
		if err := g.setSidePackets(st, n, cc.sideOut); err != nil {
			return false, err
		}
	}
	switch cc.phase {
	case phaseOpen:
		n.state = nodeOpen
		n.simple = len(n.inputs) == 1 && n.handler.kind == handlerDefault && n.handler.batchSize <= 1 &&
			!n.processBounds && n.maxInFlight == 1 && len(n.sideOut) == 0
	case phaseClose:
		n.state = nodeClosed
		g.closedNodes.Add(1)
		for _, s := range n.outputs {
			s.bound = Done
		}
		for _, q := range n.inputs {
			q.dropped += int64(q.q.len()) // early_close leaves packets behind
			q.q.release()
			g.updateFull(st, q)
		}
	}
	return stopAll, nil
}

// applySerial applies an output of a node that runs one call at a time:
// its shard started from the stream's state, was its only writer since,
// and endCall already checked and computed each call's bound.
func applySerial(o *OutputStream, cc *CalculatorContext) {
	s := o.s
	if len(o.packets) > 0 {
		s.packets += len(o.packets)
		s.lastPre = s.packets == 1 && o.packets[0].ts == PreStream
		s.bound = max(s.bound, o.packets[len(o.packets)-1].ts.NextAllowedInStream())
	}
	if o.closed || cc.phase == phaseClose {
		s.bound = Done
		return
	}
	s.bound = max(s.bound, o.next)
}

func (g *Graph) setSidePackets(st *settler, n *node, values map[int]any) error {
	g.sideMu.Lock()
	defer g.sideMu.Unlock()
	for i, v := range values {
		b := n.sideOut[i]
		if b.sp.set {
			return fmt.Errorf("output side packet %q is set twice", b.sp.name)
		}
		b.sp.value, b.sp.set = v, true
		st.touch = append(st.touch, b.sp.consumers...)
	}
	return nil
}

// applyParallel applies an output of a call that ran beside others of its
// node (max_in_flight), whose shard started from a state its siblings have
// changed since: its packets are checked against the stream again, and the
// stream's new bound is computed the way MediaPipe does: the largest of the
// bound implied by the timestamp offset, the explicit SetNextTimestampBound
// and the last packet.
func (g *Graph) applyParallel(n *node, o *OutputStream, cc *CalculatorContext) error {
	s := o.s
	before := s.bound
	for _, p := range o.packets {
		if err := s.check(p); err != nil {
			return err
		}
		s.record(p)
	}
	if o.closed || cc.phase == phaseClose {
		s.bound = Done
		return nil
	}
	nb := Unset
	if n.offsetSet && cc.phase == phaseProcess {
		if ib := offsetAfter(cc.calls[0].ts, n.offset); ib > s.bound {
			nb = ib
		}
	}
	if o.updated != Unset {
		// Only a bound below what the stream had promised before this call
		// is an error; packets added after it in the call raise it anyway.
		if cand := max(nb, o.updated); cand < before && len(o.packets) == 0 {
			return &TimestampError{Stream: s.name, Bound: true, Expected: before, Received: cand}
		}
		nb = max(nb, o.updated)
	}
	s.bound = max(s.bound, nb)
	return nil
}

// offsetAfter is the output bound implied by a timestamp offset once input
// timestamp ts has been processed.
func offsetAfter(ts Timestamp, offset int64) Timestamp {
	switch {
	case ts == PreStream:
		return Min
	case ts == Max:
		if offset >= 0 {
			return PostStream
		}
		return Max.Add(offset).NextAllowedInStream()
	case ts == PostStream:
		return OneOverPostStream
	case ts.IsRangeValue():
		return (ts + 1).Add(offset)
	}
	return Unset
}

// offsetBound is the output bound implied by a timestamp offset when the
// node's lowest input timestamp or bound is b and nothing is ready.
func offsetBound(b Timestamp, offset int64) Timestamp {
	switch {
	case b.IsRangeValue():
		return b.Add(offset)
	case b > Max:
		return b
	}
	return Unset
}

// propagateOffset raises n's output bounds to what its offset implies; the
// caller holds n's lock.
func (g *Graph) propagateOffset(st *settler, n *node, b Timestamp) {
	ob := offsetBound(b, n.offset)
	if ob == Unset {
		return
	}
	for _, s := range n.outputs {
		setBound(st, s, ob)
	}
}

// setBound raises the bound of s (never lowers it), under the lock of s's
// producer, and collects the change for s's consumers.
func setBound(st *settler, s *stream, b Timestamp) {
	if b <= s.bound {
		return
	}
	s.bound = b
	st.bounds = append(st.bounds, boundChange{s, b})
}

// updateFull tracks a queue crossing its max_queue_size and throttles or
// releases the sources upstream of it; the caller holds q's node's lock.
func (g *Graph) updateFull(st *settler, q *inputQueue) {
	full := q.maxSize >= 0 && q.q.len()+q.held >= q.maxSize
	if full == q.full {
		return
	}
	q.full = full
	for _, s := range q.ancestors {
		if full {
			s.nfull.Add(1)
			continue
		}
		if s.nfull.Add(-1) == 0 {
			if s.node != nil {
				st.touch = append(st.touch, s.node)
			} else {
				g.notifyAll() // a feeder may wait for this
			}
		}
	}
}

// schedule queues every call node n is ready for; the caller holds n's
// lock.
func (g *Graph) schedule(n *node, st *settler) {
	if g.stopping.Load() || !g.started {
		return
	}
	switch n.state {
	case nodeWaiting:
		if !g.sidePacketsSet(n) {
			return
		}
		n.state = nodeOpening
		g.queue(st, g.newContext(n, phaseOpen, Unstarted))
		return
	case nodeOpen:
	default:
		return
	}
	if len(n.inputs) == 0 {
		switch {
		case n.inflight > 0:
		case n.stop || len(n.outputs) == 0:
			// A node without streams at all only deals in side packets:
			// it closes right after Open.
			g.queueClose(st, n)
		case !n.src.throttled():
			g.queue(st, g.newContext(n, phaseProcess, Unset))
		}
		return
	}
	if n.stop && n.inflight == 0 {
		g.queueClose(st, n)
		return
	}
	for n.inflight < n.maxInFlight {
		if n.simple && n.inputs[0].q.len() > 0 {
			cc := g.takeContext(n, phaseProcess)
			cc.startOutputs()
			n.fillRun(st, cc, n.stats.batchLimit())
			g.queue(st, cc)
			continue
		}
		r, ts := n.nextInput(st)
		switch r {
		case notReady:
			if n.inflight == 0 && n.offsetSet {
				if n.pending != nil {
					// As in MediaPipe, a batch being collected holds the
					// offset bound at its first timestamp.
					ts = n.pending.calls[0].ts
				}
				g.propagateOffset(st, n, ts)
			}
			return
		case readyClose:
			if n.inflight == 0 && n.pending != nil {
				g.flushPending(st, n) // a partial batch runs before Close
				return
			}
			if n.inflight == 0 {
				if n.offsetSet {
					// With an offset the outputs end with the inputs: Close
					// can set side packets but emit no packets.
					g.propagateOffset(st, n, Done)
				}
				g.queueClose(st, n)
			}
			return
		}
		if n.handler.batchSize > 1 {
			if n.pending == nil {
				n.pending = g.takeContext(n, phaseProcess)
			}
			n.fill(st, n.pending, ts, false)
			if len(n.pending.calls) == n.handler.batchSize {
				g.flushPending(st, n)
			}
			continue
		}
		cc := g.takeContext(n, phaseProcess)
		cc.startOutputs()
		n.fill(st, cc, ts, false)
		g.batch(st, n, cc)
		g.queue(st, cc)
	}
}

func (g *Graph) sidePacketsSet(n *node) bool {
	if len(n.sideIn) == 0 {
		return true
	}
	g.sideMu.Lock()
	defer g.sideMu.Unlock()
	for _, b := range n.sideIn {
		if !b.sp.set {
			return false
		}
	}
	return true
}

// flushPending queues the calls a batch_size node has collected, to run
// back to back on one worker like a batch (see batch). Their input packets
// left the queues when they were filled, as in MediaPipe, so they do not
// count against max_queue_size. Their outputs start from the streams'
// bounds now: an offset bound may have moved them since the first was
// filled.
func (g *Graph) flushPending(st *settler, n *node) {
	cc := n.pending
	n.pending = nil
	cc.startOutputs()
	g.queue(st, cc)
}

// dropPending releases the calls a batch_size node was collecting, after a
// failure; the caller holds n's lock.
func (n *node) dropPending() {
	if n.pending != nil {
		n.pending.release()
		n.pending = nil
	}
}

// batchSize caps the Process calls one worker runs back to back for a
// node; batchBudget caps the time they are expected to take, since the
// outputs of a batch reach downstream only when the whole batch is done.
const (
	batchSize   = 64
	batchBudget = 20 * time.Microsecond
)

// batch adds to cc, the context of a call about to be queued, the node's
// next ready calls, up to batchSize in all, so one worker runs them in a
// row on that context and commits them together, taking the node's and
// each consumer's lock once for all of them instead of once per call. Only
// nodes whose later input sets are already decided batch: one call at a
// time, the default handler (what is ready now stays the next thing to
// process whatever arrives later), no bounds processing (a call per bound
// change), no output side packets (set once per run). Batched calls keep
// their input packets counted in their queues until they are committed,
// so max_queue_size throttles sources exactly as without batching. A queue
// holding a single ready packet, the usual case for a graph that keeps
// up, makes no batch and adds no latency; a slow calculator (a call of
// batchBudget or more) never batches.
func (g *Graph) batch(st *settler, n *node, cc *CalculatorContext) {
	if n.maxInFlight != 1 || n.handler.kind != handlerDefault || n.processBounds || len(n.sideOut) > 0 {
		return
	}
	limit := n.stats.batchLimit()
	for len(cc.calls) < limit {
		r, ts := n.nextInput(st)
		if r != readyProcess {
			return
		}
		n.fill(st, cc, ts, true)
	}
}

func (g *Graph) queueClose(st *settler, n *node) {
	if n.closeQueued {
		return
	}
	n.closeQueued = true
	n.state = nodeClosing
	g.queue(st, g.newContext(n, phaseClose, Done))
}

func (g *Graph) queue(st *settler, cc *CalculatorContext) {
	cc.n.admit(cc)
	g.push(st, cc)
}

// admit counts a call as in flight on its node and numbers Process calls
// for committing in order; the caller holds the node's lock.
func (n *node) admit(cc *CalculatorContext) {
	n.inflight++
	if cc.phase == phaseProcess {
		cc.seq = n.nextSeq
		n.nextSeq++
	}
}

// push hands a context to the workers, or drops it once the run is
// failing; the caller holds the node's lock and counts in busy itself, so
// undoing this call's count never lets busy reach 0. The first call of a
// deeper node of its own that a worker's commit makes ready (a consumer
// of what the worker just made), the worker keeps and runs next: on data
// still in its cache, without a trip through a queue, while what else
// became ready (the committed node's own next batch, say) waits in the
// queue of its node's home worker (see workers.go). A stretch of a chain
// is then worked down by its worker batch by batch, in a pipeline. Only
// deeper nodes, so a worker always returns to its queue after at most the
// graph's depth in calls: a source that makes itself ready again cannot
// keep a worker to itself.
func (g *Graph) push(st *settler, cc *CalculatorContext) {
	cc.long = cc.phase != phaseProcess || cc.n.stats.expected(len(cc.calls)) >= stealAfter
	if st.worker && st.next == nil && cc.n.priority > st.deeper && cc.n.home == st.id && !g.stopping.Load() {
		g.busy.Add(1)
		st.next = cc
		return
	}
	g.busy.Add(1)
	if !g.enqueue(cc) {
		g.busy.Add(-1)
		g.drop(st, cc)
	}
}

// newContext prepares a call without inputs (Open, Close, a source's
// Process): output shards that start at the streams' current bounds. The
// caller holds the node's lock.
func (g *Graph) newContext(n *node, ph phase, ts Timestamp) *CalculatorContext {
	cc := g.takeContext(n, ph)
	cc.startOutputs()
	cc.addCall(ts, false)
	return cc
}

// takeContext takes a context for the node's next calls. Contexts are
// recycled per node, since a context is only valid during its calls: a
// node that runs one call at a time needs one.
func (g *Graph) takeContext(n *node, ph phase) *CalculatorContext {
	var cc *CalculatorContext
	if k := len(n.free); k > 0 {
		cc = n.free[k-1]
		n.free[k-1] = nil
		n.free = n.free[:k-1]
	} else {
		cc = &CalculatorContext{n: n, nheld: make([]int, len(n.inputs))}
		cc.outputs = make([]*OutputStream, len(n.outputs))
		shards := make([]OutputStream, len(n.outputs))
		for i, s := range n.outputs {
			shards[i] = OutputStream{cc: cc, s: s, typ: s.typ}
			cc.outputs[i] = &shards[i]
		}
	}
	cc.phase = ph
	return cc
}

// addCall adds a call at ts to the context, with room for its inputs
// (which fill sets, every one); the caller holds the node's lock.
func (cc *CalculatorContext) addCall(ts Timestamp, held bool) *call {
	n := cc.n
	cc.calls = resize(cc.calls, len(cc.calls)+1)
	c := &cc.calls[len(cc.calls)-1] // field by field, see fillRun
	c.ts, c.arrival, c.dur = ts, 0, 0
	c.timed, c.held, c.consumed = cc.phase == phaseProcess && n.stats.sample(), held, false
	if k := len(n.inputs); cc.phase == phaseProcess && k > 0 {
		cc.callIn = extend(cc.callIn, k)
		cc.callDone = extend(cc.callDone, k)
	}
	return &cc.calls[len(cc.calls)-1]
}

// extend lengthens s by k elements that the caller overwrites; within the
// capacity it writes nothing (release cleared what was used).
func extend[T any](s []T, k int) []T {
	if len(s)+k <= cap(s) {
		return s[:len(s)+k]
	}
	return append(s, make([]T, k)...)
}

// startOutputs starts the context's output shards at the streams' current
// bounds; the caller holds the node's lock.
func (cc *CalculatorContext) startOutputs() {
	for i, s := range cc.n.outputs {
		o := cc.outputs[i] // cc, s and typ are set once; release emptied packets
		o.next, o.updated, o.closed = s.bound, Unset, s.bound == Done
		o.prior, o.onlyPre = s.packets, s.lastPre
	}
}

// release drops the context's references to packets so nothing outlives
// its use.
func (cc *CalculatorContext) release() {
	clear(cc.callIn)
	clear(cc.nheld)
	cc.callIn, cc.callDone, cc.calls = cc.callIn[:0], cc.callDone[:0], cc.calls[:0]
	cc.inputs, cc.inputDone, cc.sideOut = nil, nil, nil
	for _, o := range cc.outputs {
		clear(o.packets)
		o.packets = o.packets[:0]
	}
	cc.err, cc.graphErr, cc.result = nil, nil, nil
	cc.cur, cc.held, cc.stop, cc.ran = 0, false, false, 0
	cc.end, cc.seq, cc.order = 0, 0, 0
}

// recycle releases cc and keeps it for the node's next calls; the caller
// holds the node's lock.
func (cc *CalculatorContext) recycle() {
	cc.release()
	cc.n.free = append(cc.n.free, cc)
}

// idle runs under Graph.mu when nothing is running or queued (busy is 0).
// After a failure it finishes the run. A throttled source that is still
// active means a deadlock: no node can run to drain the full queue. With
// every source finished, the nodes left open sit on loops and are closed
// in order, as MediaPipe does. Waiters (WaitUntilIdle, a throttled feeder)
// are woken to look again.
func (g *Graph) idle() {
	defer g.notifyAll()
	if g.failed {
		g.maybeFinalize()
		return
	}
	if !g.started || g.finished {
		return
	}
	st := &g.ext
	throttled := false
	for _, s := range g.sources {
		if s.throttled() && g.active(s) {
			throttled = true
		}
	}
	if throttled {
		g.resolveDeadlock(st)
		st.drain()
		if !g.failed && g.busy.Load() == 0 {
			g.idle()
		}
		return
	}
	for _, s := range g.sources {
		if g.active(s) {
			return
		}
	}
	for _, n := range g.order {
		if g.idleNode(st, n) {
			st.drain()
			return
		}
	}
	if int(g.closedNodes.Load()) == len(g.nodes) {
		g.finish(nil)
	}
}

// idleNode handles one node of an idle graph whose sources are done: it
// reports a node that could never open, runs a partial batch_size batch,
// or closes a node left open on a loop. It reports whether it did
// anything.
func (g *Graph) idleNode(st *settler, n *node) bool {
	n.mu.Lock()
	switch n.state {
	case nodeWaiting:
		n.mu.Unlock()
		var missing []string
		g.sideMu.Lock()
		for _, b := range n.sideIn {
			if !b.sp.set {
				missing = append(missing, fmt.Sprintf("%q", b.sp.name))
			}
		}
		g.sideMu.Unlock()
		// fail takes every node's lock.
		g.fail(fmt.Errorf("node %q (%s): never opened: input side packet %s was not produced", n.name, n.calcName, strings.Join(missing, ", ")))
		return true
	case nodeOpen:
		did := n.inflight == 0
		if did && n.pending != nil {
			g.flushPending(st, n)
		} else if did {
			g.queueClose(st, n)
		}
		n.mu.Unlock()
		return did
	}
	n.mu.Unlock()
	return false
}

// active reports whether a source may still produce packets; the caller
// holds Graph.mu.
func (g *Graph) active(s *source) bool {
	if s.input != nil {
		return !s.input.closed
	}
	s.node.mu.Lock()
	defer s.node.mu.Unlock()
	return s.node.state < nodeClosing
}

// resolveDeadlock grows every full queue by one packet so the throttled
// sources can go on (logging each growth), or, with report_deadlock, fails
// the run naming the full queues.
func (g *Graph) resolveDeadlock(st *settler) {
	var parts []string
	for _, n := range g.nodes {
		n.mu.Lock()
		for _, q := range n.inputs {
			if !q.full {
				continue
			}
			if g.reportDeadlock {
				parts = append(parts, fmt.Sprintf("input stream %q of node %q (%s) is full (%d packets, max_queue_size %d)",
					q.s.name, q.n.name, q.n.calcName, q.q.len(), q.maxSize))
				continue
			}
			q.maxSize = q.q.len() + 1
			g.log.Warn("graph: resolved a deadlock by growing a full queue; consider a larger max_queue_size",
				"stream", q.s.name, "node", q.n.name, "max_queue_size", q.maxSize)
			g.updateFull(st, q)
		}
		n.mu.Unlock()
	}
	if g.reportDeadlock {
		g.fail(fmt.Errorf("%w: every node is idle while packet sources are throttled: %s; raise max_queue_size or feed the node's other inputs",
			ErrDeadlock, strings.Join(parts, "; ")))
	}
}

// fail records the run's first error and starts shutting down; the caller
// holds Graph.mu and no node lock.
func (g *Graph) fail(err error) {
	if g.failed || g.finished {
		return
	}
	g.failed, g.err = true, err
	if !errors.Is(err, ErrCancelled) {
		g.log.Error("graph: run failed", "err", err)
	}
	g.stopping.Store(true) // push drops from now on
	g.cancel()
	queued := g.drainQueues()
	st := &settler{g: g}
	for _, cc := range queued {
		n := cc.n
		n.mu.Lock()
		g.drop(st, cc)
		n.mu.Unlock()
	}
	g.busy.Add(-int64(len(queued)))
	for _, n := range g.nodes {
		n.mu.Lock()
		n.dropPending()
		n.mu.Unlock()
	}
	g.maybeFinalize()
	g.notifyAll()
}

func (g *Graph) maybeFinalize() {
	if g.failed && g.busy.Load() == 0 && !g.finalizing && !g.finished {
		g.finalizing = true
		go g.finalize()
	}
}

// finalize closes every node that was opened and not closed after a
// failure, so calculators release what they hold, then ends the run.
func (g *Graph) finalize() {
	g.mu.Lock()
	var calls []*CalculatorContext
	for _, n := range g.order {
		n.mu.Lock()
		if n.state == nodeOpen || n.state == nodeClosing {
			cc := g.newContext(n, phaseClose, Done)
			cc.graphErr = g.err
			calls = append(calls, cc)
		}
		n.mu.Unlock()
	}
	g.mu.Unlock()
	for _, cc := range calls {
		g.run(cc)
		if cc.result != nil {
			cc.n.log.Debug("graph: Close after failure returned an error", "err", cc.result)
		}
	}
	g.mu.Lock()
	for _, cc := range calls {
		cc.n.mu.Lock()
		cc.n.state = nodeClosed
		cc.release()
		cc.n.mu.Unlock()
	}
	g.finish(g.err)
	g.mu.Unlock()
}

// finish ends the run and releases every queued packet; the caller holds
// Graph.mu.
func (g *Graph) finish(err error) {
	if g.finished {
		return
	}
	g.finished, g.err = true, err
	g.stopAllWorkers()
	for _, n := range g.nodes {
		n.mu.Lock()
		for _, q := range n.inputs {
			q.q.release()
		}
		n.mu.Unlock()
	}
	g.stopAfter()
	g.cancel()
	close(g.done)
	g.notifyAll()
	if err == nil {
		g.log.Debug("graph: run finished")
	}
}
