package graph

import (
	"container/heap"
	"errors"
	"fmt"
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
//   - Graph.runMu guards the heap of ready calls; idle workers sleep on
//     Graph.runCond.
//   - Graph.mu serialises the application's calls (feeding, bounds,
//     closing, cancelling) and idle handling.
//   - Graph.waitMu guards the goroutines waiting for a change, Graph.sideMu
//     the side packets.
//
// The order is Graph.mu, then one node.mu, then runMu, waitMu or sideMu.
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

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if h[i].n.priority != h[j].n.priority {
		return h[i].n.priority > h[j].n.priority
	}
	return h[i].order < h[j].order
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
	calls  []*CalculatorContext // a batch's committed calls
	before []Timestamp          // output bounds before the commit
	after  []Timestamp          // and after
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

func (g *Graph) worker() {
	defer g.workers.Done()
	st := &settler{g: g}
	for {
		cc := g.next()
		if cc == nil {
			return
		}
		ran := g.runBatch(cc)
		g.complete(st, cc, ran)
		st.drain()
		g.release()
	}
}

// next takes the most urgent ready call, waiting for one; nil when the run
// is over.
func (g *Graph) next() *CalculatorContext {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	for len(g.heap) == 0 && !g.stopWorkers {
		g.sleeping++
		g.runCond.Wait()
		g.sleeping--
	}
	if g.stopWorkers {
		return nil
	}
	return heap.Pop(&g.heap).(*CalculatorContext)
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

// runBatch runs cc and the calls batched behind it, without a lock, and
// returns how many ran. A call that fails ends the batch; the rest are
// dropped. The packets of every call are stamped with one clock read taken
// when the batch ends, just before they are queued downstream.
func (g *Graph) runBatch(cc *CalculatorContext) int {
	g.invoke(cc)
	ran := 1
	prev := cc
	for _, f := range cc.more {
		if (prev.result != nil && (prev.err != nil || !errors.Is(prev.result, ErrStop))) || g.stopping.Load() {
			break
		}
		f.follow(prev)
		g.invoke(f)
		ran++
		prev = f
	}
	emitted := cc.emitted()
	for _, f := range cc.more[:ran-1] {
		emitted = emitted || f.emitted()
	}
	if emitted {
		at := monoNow()
		cc.end = at
		for _, f := range cc.more[:ran-1] {
			f.end = at
		}
	}
	return ran
}

// follow starts the outputs of a batched call where the previous call of
// the batch leaves them once committed: its packets, explicit bound, offset
// bound and closing all count, so the call sees exactly the streams it
// would have seen unbatched.
func (cc *CalculatorContext) follow(prev *CalculatorContext) {
	n := cc.n
	for i, o := range cc.outputs {
		po := prev.outputs[i]
		next := po.next
		if n.offsetSet {
			next = max(next, offsetAfter(prev.ts, n.offset))
		}
		o.next, o.closed, o.updated = next, po.closed || next == Done, Unset
		if o.closed {
			o.next = Done
		}
		o.prior = po.prior + len(po.packets)
		o.onlyPre = o.prior == 1 && (po.onlyPre || (po.prior == 0 && po.packets[0].ts == PreStream))
	}
}

// invoke runs one calculator call without a lock.
func (g *Graph) invoke(cc *CalculatorContext) {
	if cc.timed {
		cc.start = monoNow()
	}
	defer func() {
		if r := recover(); r != nil {
			cc.result = fmt.Errorf("panic in %s: %v\n%s", cc.phase, r, debug.Stack())
		}
		if cc.timed {
			cc.dur = monoNow() - cc.start
		}
		if cc.err != nil { // misuse of an output beats the returned error
			cc.result = cc.err
		}
	}()
	switch cc.phase {
	case phaseOpen:
		cc.result = cc.n.calc.Open(cc)
	case phaseProcess:
		cc.result = cc.n.calc.Process(cc)
	case phaseClose:
		cc.result = cc.n.calc.Close(cc)
	}
}

// complete commits a finished batch, in input timestamp order for nodes
// with parallel calls: a call that finishes before an earlier one waits
// for it, and one goroutine at a time commits a node's calls.
func (g *Graph) complete(st *settler, cc *CalculatorContext, ran int) {
	n := cc.n
	if cc.phase != phaseProcess || n.maxInFlight == 1 {
		g.commit(st, cc, ran)
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
		g.commit(st, next, 1)
		n.mu.Lock()
	}
	n.committing = false
	n.mu.Unlock()
}

// commit applies a batch's effects in three steps. Under the node's lock:
// errors, the streams' packets and bounds, side packets and the node's
// state. Then, holding one consumer's lock at a time, the packets and
// bounds go to the consumers, which are re-evaluated. Last, under the
// node's lock again, the calls leave the node, which may run again: until
// then no other call of the node can commit, so its packets arrive in
// order.
func (g *Graph) commit(st *settler, head *CalculatorContext, ran int) {
	n := head.n
	more := head.more // release (drop) empties head.more
	calls := st.calls[:0]
	var failure error
	stopAll := false
	n.mu.Lock()
	st.before = st.before[:0]
	for _, s := range n.outputs {
		st.before = append(st.before, s.bound)
	}
	for i := 0; i < ran; i++ {
		cc := head
		if i > 0 {
			cc = more[i-1]
		}
		n.stats.record(cc)
		if failure != nil || g.stopping.Load() {
			g.drop(st, cc, true)
			continue
		}
		stop, err := g.apply(st, cc)
		if err != nil {
			failure = g.nodeErr(n, cc.phase, err)
			g.stopping.Store(true) // commit nothing more anywhere
			g.drop(st, cc, true)
			continue
		}
		stopAll = stopAll || stop
		calls = append(calls, cc)
	}
	for _, f := range more[ran-1:] {
		g.drop(st, f, false)
	}
	st.after = st.after[:0]
	for _, s := range n.outputs {
		st.after = append(st.after, s.bound)
	}
	n.mu.Unlock()

	if failure == nil && len(calls) > 0 {
		g.deliver(st, n, calls)
	}

	n.mu.Lock()
	n.inflight -= len(calls)
	for _, cc := range calls {
		if cc != head {
			cc.recycle()
		}
	}
	clear(more)
	if len(calls) > 0 && calls[0] == head {
		head.recycle()
	}
	g.schedule(n, st)
	n.mu.Unlock()
	clear(calls)
	st.calls = calls[:0]

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

// deliver hands the packets and new bounds of a node's committed calls to
// its consumers, one consumer node (and lock) at a time, all of a node's
// inputs from this commit at once.
func (g *Graph) deliver(st *settler, n *node, calls []*CalculatorContext) {
	for fi := range n.fanout {
		fo := &n.fanout[fi]
		moved := false
		for _, l := range fo.links {
			if st.after[l.out] != st.before[l.out] || hasPackets(calls, l.out) {
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
				for _, cc := range calls {
					for _, p := range cc.outputs[l.out].packets {
						q.push(st, p, cc.end)
					}
				}
			}
			q.bound = max(q.bound, st.after[l.out])
			g.updateFull(st, q)
		}
		g.schedule(c, st)
		c.mu.Unlock()
	}
}

func hasPackets(calls []*CalculatorContext, out int) bool {
	for _, cc := range calls {
		if len(cc.outputs[out].packets) > 0 {
			return true
		}
	}
	return false
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

// drop discards a call after the run failed; ran tells whether the
// calculator saw it. The caller holds the node's lock.
func (g *Graph) drop(st *settler, cc *CalculatorContext, ran bool) {
	cc.n.inflight--
	g.unhold(st, cc)
	if ran && cc.phase == phaseClose {
		cc.n.state = nodeClosed
	}
	cc.release()
}

// unhold stops counting a batched call's input packets in their queues.
func (g *Graph) unhold(st *settler, cc *CalculatorContext) {
	if !cc.held {
		return
	}
	cc.held = false
	for i, p := range cc.inputs {
		if !p.IsEmpty() {
			q := cc.n.inputs[i]
			q.held--
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

// apply commits one call's effects on its node and the node's streams,
// under the node's lock: its error, its packets and bounds (delivered to
// consumers afterwards, see deliver), its side packets, and the node's
// state change. stopAll reports an ErrStop that closes every packet
// source.
func (g *Graph) apply(st *settler, cc *CalculatorContext) (stopAll bool, err error) {
	n := cc.n
	g.unhold(st, cc)
	err = cc.result
	if errors.Is(err, ErrStop) && !errors.Is(cc.err, ErrStop) {
		switch {
		case len(n.inputs) == 0:
			n.stop = true
		case cc.phase != phaseClose:
			stopAll = true
		}
		err = nil
	}
	if err != nil {
		return false, err
	}
	for _, o := range cc.outputs {
		if err := g.applyOutput(n, o, cc); err != nil {
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

// applyOutput applies an output's packets to its stream and computes the
// stream's new bound the way MediaPipe does: the largest of the bound
// implied by the timestamp offset, the explicit SetNextTimestampBound and
// the last packet.
func (g *Graph) applyOutput(n *node, o *OutputStream, cc *CalculatorContext) error {
	s := o.s
	before := s.bound
	// AddPacket checked every packet against the shard, which started from
	// the stream's state and was the only writer since: only calls that ran
	// in parallel (max_in_flight) can disagree with the stream by now.
	recheck := n.maxInFlight > 1
	for _, p := range o.packets {
		if recheck {
			if err := s.check(p); err != nil {
				return err
			}
		}
		s.record(p)
	}
	if o.closed || cc.phase == phaseClose {
		s.bound = Done
		return nil
	}
	nb := Unset
	if n.offsetSet && cc.phase == phaseProcess {
		if ib := offsetAfter(cc.ts, n.offset); ib > s.bound {
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
		r, ts := n.nextInput(st)
		switch r {
		case notReady:
			if n.inflight == 0 && n.offsetSet {
				if len(n.pending) > 0 {
					// As in MediaPipe, a batch being collected holds the
					// offset bound at its first timestamp.
					ts = n.pending[0].ts
				}
				g.propagateOffset(st, n, ts)
			}
			return
		case readyClose:
			if n.inflight == 0 && len(n.pending) > 0 {
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
		cc := g.newContext(n, phaseProcess, ts)
		n.fill(st, cc, ts)
		if n.handler.batchSize > 1 {
			n.pending = append(n.pending, cc)
			if len(n.pending) == n.handler.batchSize {
				g.flushPending(st, n)
			}
			continue
		}
		n.admit(cc)
		g.batch(st, n, cc)
		g.push(st, cc)
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
// count against max_queue_size. The first call's outputs start from the
// streams' bounds now: an offset bound may have moved them since it was
// filled.
func (g *Graph) flushPending(st *settler, n *node) {
	head := n.pending[0]
	head.startOutputs()
	n.admit(head)
	for _, cc := range n.pending[1:] {
		n.admit(cc)
		head.more = append(head.more, cc)
	}
	clear(n.pending)
	n.pending = n.pending[:0]
	g.push(st, head)
}

// dropPending releases the calls a batch_size node was collecting, after a
// failure; the caller holds n's lock.
func (n *node) dropPending() {
	for _, cc := range n.pending {
		cc.release()
	}
	clear(n.pending)
	n.pending = n.pending[:0]
}

// batchSize caps the Process calls one worker runs back to back for a
// node; batchBudget caps the time they are expected to take, since the
// outputs of a batch reach downstream only when the whole batch is done.
const (
	batchSize   = 16
	batchBudget = 20 * time.Microsecond
)

// batch appends to head the node's next ready calls, up to batchSize in
// all, so one worker runs them in a row and commits them together, taking
// the node's and each consumer's lock once for all of them instead of once
// per call. Only nodes whose later input sets are already decided batch:
// one call at a time, the default handler (what is ready now stays the
// next thing to process whatever arrives later), no bounds processing (a
// call per bound change). Batched calls keep their input packets counted
// in their queues until they are committed, so max_queue_size throttles
// sources exactly as without batching. A queue holding a single ready
// packet, the usual case for a graph that keeps up, makes no batch and
// adds no latency; a slow calculator (a call of batchBudget or more) never
// batches.
func (g *Graph) batch(st *settler, n *node, head *CalculatorContext) {
	if n.maxInFlight != 1 || n.handler.kind != handlerDefault || n.processBounds {
		return
	}
	limit := n.stats.batchLimit()
	for len(head.more) < limit-1 {
		r, ts := n.nextInput(st)
		if r != readyProcess {
			return
		}
		cc := g.takeContext(n, phaseProcess, ts)
		cc.held = true
		n.fill(st, cc, ts)
		n.admit(cc)
		head.more = append(head.more, cc)
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

// push hands a call (and its batch) to the workers, or drops it once the
// run is failing; the caller holds the node's lock.
func (g *Graph) push(st *settler, cc *CalculatorContext) {
	g.runMu.Lock()
	if g.stopping.Load() {
		g.runMu.Unlock()
		for _, f := range cc.more {
			g.drop(st, f, false)
		}
		clear(cc.more)
		g.drop(st, cc, false)
		return
	}
	cc.order = g.taskOrder
	g.taskOrder++
	heap.Push(&g.heap, cc)
	g.busy.Add(1)
	if g.sleeping > 0 {
		g.runCond.Signal()
	}
	g.runMu.Unlock()
}

// newContext prepares a call: fresh output shards that start at the
// streams' current bounds. Contexts are recycled per node, since a context
// is only valid during its call. The caller holds the node's lock.
func (g *Graph) newContext(n *node, ph phase, ts Timestamp) *CalculatorContext {
	cc := g.takeContext(n, ph, ts)
	cc.startOutputs()
	return cc
}

// takeContext is newContext without starting the outputs, for a call
// batched behind another: follow starts them when the batch runs.
func (g *Graph) takeContext(n *node, ph phase, ts Timestamp) *CalculatorContext {
	var cc *CalculatorContext
	if k := len(n.free); k > 0 {
		cc = n.free[k-1]
		n.free[k-1] = nil
		n.free = n.free[:k-1]
	} else {
		cc = &CalculatorContext{n: n, inputBuf: make([]Packet, len(n.inputs)), doneBuf: make([]bool, len(n.inputs))}
		cc.outputs = make([]*OutputStream, len(n.outputs))
		shards := make([]OutputStream, len(n.outputs))
		for i, s := range n.outputs {
			shards[i] = OutputStream{cc: cc, s: s, typ: s.typ}
			cc.outputs[i] = &shards[i]
		}
	}
	cc.phase, cc.ts = ph, ts
	cc.timed = ph == phaseProcess && n.stats.sample()
	if ph == phaseProcess && len(n.inputs) > 0 {
		cc.inputs, cc.inputDone = cc.inputBuf, cc.doneBuf
	}
	return cc
}

// startOutputs starts the call's output shards at the streams' current
// bounds; the caller holds the node's lock.
func (cc *CalculatorContext) startOutputs() {
	for i, s := range cc.n.outputs {
		o := cc.outputs[i] // cc, s and typ are set once; release emptied packets
		o.next, o.updated, o.closed = s.bound, Unset, s.bound == Done
		o.prior, o.onlyPre = s.packets, s.lastPre
	}
}

// emitted reports whether the call added packets to any output.
func (cc *CalculatorContext) emitted() bool {
	for _, o := range cc.outputs {
		if len(o.packets) > 0 {
			return true
		}
	}
	return false
}

// release drops the call's references to packets so nothing outlives its
// use.
func (cc *CalculatorContext) release() {
	for i := range cc.inputBuf {
		if cc.inputBuf[i].value != nil {
			cc.inputBuf[i].value = nil
		}
	}
	cc.inputs, cc.inputDone, cc.sideOut = nil, nil, nil
	for _, o := range cc.outputs {
		for i := range o.packets {
			o.packets[i].value = nil
		}
		o.packets = o.packets[:0]
	}
	cc.err, cc.graphErr, cc.result = nil, nil, nil
	cc.more, cc.held = cc.more[:0], false
	cc.arrival, cc.start, cc.end, cc.dur, cc.seq, cc.order, cc.timed = 0, 0, 0, 0, 0, 0, false
}

// recycle releases cc and keeps it for the node's next call; the caller
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
	defer n.mu.Unlock()
	switch n.state {
	case nodeWaiting:
		var missing []string
		g.sideMu.Lock()
		for _, b := range n.sideIn {
			if !b.sp.set {
				missing = append(missing, fmt.Sprintf("%q", b.sp.name))
			}
		}
		g.sideMu.Unlock()
		g.fail(fmt.Errorf("node %q (%s): never opened: input side packet %s was not produced", n.name, n.calcName, strings.Join(missing, ", ")))
		return true
	case nodeOpen:
		if n.inflight == 0 && len(n.pending) > 0 {
			g.flushPending(st, n)
			return true
		}
		if n.inflight == 0 {
			g.queueClose(st, n)
			return true
		}
	}
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
	g.runMu.Lock()
	queued := g.heap
	g.heap = nil
	g.runMu.Unlock()
	st := &settler{g: g}
	for _, cc := range queued {
		n := cc.n
		n.mu.Lock()
		for _, f := range cc.more {
			g.drop(st, f, false)
		}
		clear(cc.more)
		g.drop(st, cc, false)
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
		g.invoke(cc)
		if cc.result != nil && !errors.Is(cc.result, ErrStop) {
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
	g.runMu.Lock()
	g.stopWorkers = true
	g.runCond.Broadcast()
	g.runMu.Unlock()
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
