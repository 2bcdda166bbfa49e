package graph

import (
	"container/heap"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

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

func (g *Graph) worker() {
	defer g.workers.Done()
	g.mu.Lock()
	for {
		for len(g.heap) == 0 && !g.stopWorkers {
			g.work.Wait()
		}
		if g.stopWorkers {
			g.mu.Unlock()
			return
		}
		cc := heap.Pop(&g.heap).(*CalculatorContext)
		g.running++
		g.mu.Unlock()
		ran := g.runBatch(cc)
		g.mu.Lock()
		batch := cc.more
		g.complete(cc)
		for i, f := range batch {
			if i+1 < ran {
				g.complete(f)
			} else {
				g.drop(f, false)
			}
		}
		clear(batch)
		g.running--
		g.settle()
	}
}

// runBatch runs cc and the calls batched behind it, without the lock, and
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

// invoke runs one calculator call without the lock.
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

// complete takes a finished call back under the lock and commits it, in
// input timestamp order for nodes with parallel calls.
func (g *Graph) complete(cc *CalculatorContext) {
	n := cc.n
	n.stats.record(cc)
	if g.failed {
		g.drop(cc, true)
		return
	}
	if cc.phase != phaseProcess || n.maxInFlight == 1 {
		g.commit(cc)
		return
	}
	n.finished[cc.seq] = cc
	for !g.failed {
		next, ok := n.finished[n.commitSeq]
		if !ok {
			break
		}
		delete(n.finished, n.commitSeq)
		n.commitSeq++
		g.commit(next)
	}
}

// drop discards a call after the run failed; ran tells whether the
// calculator saw it.
func (g *Graph) drop(cc *CalculatorContext, ran bool) {
	cc.n.inflight--
	g.unhold(cc)
	if ran && cc.phase == phaseClose {
		cc.n.state = nodeClosed
	}
	cc.release()
}

// unhold stops counting a batched call's input packets in their queues.
func (g *Graph) unhold(cc *CalculatorContext) {
	if !cc.held {
		return
	}
	cc.held = false
	for i, p := range cc.inputs {
		if !p.IsEmpty() {
			q := cc.n.inputs[i]
			q.held--
			g.updateFull(q)
		}
	}
}

func (g *Graph) nodeErr(n *node, ph phase, err error) error {
	if ph == phaseProcess {
		return fmt.Errorf("node %q (%s): %w", n.name, n.calcName, err)
	}
	return fmt.Errorf("node %q (%s): %s: %w", n.name, n.calcName, ph, err)
}

// commit applies a call's effects: its error, its packets and bounds, its
// side packets, and the node's state change.
func (g *Graph) commit(cc *CalculatorContext) {
	n := cc.n
	n.inflight--
	g.unhold(cc)
	defer cc.recycle()
	err := cc.result
	if errors.Is(err, ErrStop) && !errors.Is(cc.err, ErrStop) {
		switch {
		case len(n.inputs) == 0:
			n.stop = true
		case cc.phase != phaseClose:
			g.closeAllPacketSources()
		}
		err = nil
	}
	if err != nil {
		g.fail(g.nodeErr(n, cc.phase, err))
		return
	}
	for _, o := range cc.outputs {
		if err := g.commitOutput(n, o, cc); err != nil {
			g.fail(g.nodeErr(n, cc.phase, err))
			return
		}
	}
	if len(cc.sideOut) > 0 { // ranging over a nil map still costs a map iteration
		for i, v := range cc.sideOut {
			b := n.sideOut[i]
			if b.sp.set {
				g.fail(g.nodeErr(n, cc.phase, fmt.Errorf("output side packet %q is set twice", b.sp.name)))
				return
			}
			b.sp.value, b.sp.set = v, true
			for _, c := range b.sp.consumers {
				g.markDirty(c)
			}
		}
	}
	switch cc.phase {
	case phaseOpen:
		n.state = nodeOpen
	case phaseClose:
		n.state = nodeClosed
		g.closedNodes++
		for _, s := range n.outputs {
			g.setBound(s, Done)
		}
		for _, q := range n.inputs {
			q.dropped += int64(q.q.len()) // early_close leaves packets behind
			q.q.release()
			g.updateFull(q)
		}
		return
	}
	g.markDirty(n)
}

// commitOutput delivers an output's packets and computes its new bound the
// way MediaPipe does: the largest of the bound implied by the timestamp
// offset, the explicit SetNextTimestampBound and the last packet.
func (g *Graph) commitOutput(n *node, o *OutputStream, cc *CalculatorContext) error {
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
		g.emit(s, p, cc.end)
	}
	if o.closed || cc.phase == phaseClose {
		g.setBound(s, Done)
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
	if nb != Unset {
		g.setBound(s, nb)
	}
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

func (g *Graph) propagateOffset(n *node, b Timestamp) {
	ob := offsetBound(b, n.offset)
	if ob == Unset {
		return
	}
	for _, s := range n.outputs {
		if ob > s.bound {
			g.setBound(s, ob)
		}
	}
}

// emit appends p (already checked) to every consumer of s; at is when p
// was produced (monoNow), for the consumers' input latency.
func (g *Graph) emit(s *stream, p Packet, at time.Duration) {
	s.packets++
	s.lastPre = s.packets == 1 && p.ts == PreStream
	s.bound = p.ts.NextAllowedInStream()
	for _, q := range s.consumers {
		if q.n.state == nodeClosed {
			continue
		}
		q.q.push(entry{p: p, at: at})
		q.added++
		q.bound = s.bound
		q.maxDepth = max(q.maxDepth, q.q.len())
		if q.n.handler.kind == handlerFixedSize {
			q.n.eraseSurplus(false)
		}
		g.updateFull(q)
		g.markDirty(q.n)
	}
}

// setBound raises the bound of s (never lowers it) and tells consumers.
func (g *Graph) setBound(s *stream, b Timestamp) {
	if b <= s.bound {
		return
	}
	s.bound = b
	for _, q := range s.consumers {
		if b > q.bound {
			q.bound = b
			g.markDirty(q.n)
		}
	}
}

// updateFull tracks a queue crossing its max_queue_size and throttles or
// releases the sources upstream of it.
func (g *Graph) updateFull(q *inputQueue) {
	full := q.maxSize >= 0 && q.q.len()+q.held >= q.maxSize
	if full == q.full {
		return
	}
	q.full = full
	for _, s := range q.ancestors {
		if full {
			s.nfull++
			continue
		}
		s.nfull--
		if s.nfull == 0 {
			g.wakeDue = true // a feeder may wait for this
			if s.node != nil {
				g.markDirty(s.node)
			}
		}
	}
}

func (g *Graph) markDirty(n *node) {
	if !n.dirty {
		n.dirty = true
		g.dirty = append(g.dirty, n)
	}
}

// settle re-evaluates every node whose inputs changed, then looks for an
// idle graph (deadlock, loops to close, the end of the run) and wakes
// waiters.
func (g *Graph) settle() {
	for i := 0; i < len(g.dirty); i++ { // schedule may add more
		n := g.dirty[i]
		n.dirty = false
		g.schedule(n)
	}
	g.dirty = g.dirty[:0]
	if g.failed {
		g.maybeFinalize()
	} else if g.started && !g.finished && g.running == 0 && len(g.heap) == 0 {
		g.wakeDue = true // for WaitUntilIdle
		g.idle()
	}
	g.notify()
}

// schedule queues every call node n is ready for.
func (g *Graph) schedule(n *node) {
	if g.failed || !g.started || g.finished {
		return
	}
	switch n.state {
	case nodeWaiting:
		for _, b := range n.sideIn {
			if !b.sp.set {
				return
			}
		}
		n.state = nodeOpening
		g.queue(g.newContext(n, phaseOpen, Unstarted))
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
			g.queueClose(n)
		case !n.src.throttled():
			g.queue(g.newContext(n, phaseProcess, Unset))
		}
		return
	}
	if n.stop && n.inflight == 0 {
		g.queueClose(n)
		return
	}
	for n.inflight < n.maxInFlight {
		r, ts := n.nextInput()
		switch r {
		case notReady:
			if n.inflight == 0 && n.offsetSet {
				if len(n.pending) > 0 {
					// As in MediaPipe, a batch being collected holds the
					// offset bound at its first timestamp.
					ts = n.pending[0].ts
				}
				g.propagateOffset(n, ts)
			}
			return
		case readyClose:
			if n.inflight == 0 && len(n.pending) > 0 {
				g.flushPending(n) // a partial batch runs before Close
				return
			}
			if n.inflight == 0 {
				if n.offsetSet {
					// With an offset the outputs end with the inputs: Close
					// can set side packets but emit no packets.
					g.propagateOffset(n, Done)
				}
				g.queueClose(n)
			}
			return
		}
		cc := g.newContext(n, phaseProcess, ts)
		n.fill(cc, ts)
		if n.handler.batchSize > 1 {
			n.pending = append(n.pending, cc)
			if len(n.pending) == n.handler.batchSize {
				g.flushPending(n)
			}
			continue
		}
		g.queue(cc)
		g.batch(n, cc)
	}
}

// flushPending queues the calls a batch_size node has collected, to run
// back to back on one worker like a batch (see batch). Their input packets
// left the queues when they were filled, as in MediaPipe, so they do not
// count against max_queue_size. The first call's outputs start from the
// streams' bounds now: an offset bound may have moved them since it was
// filled.
func (g *Graph) flushPending(n *node) {
	head := n.pending[0]
	head.startOutputs()
	g.queue(head)
	for _, cc := range n.pending[1:] {
		n.inflight++
		cc.seq = n.nextSeq
		n.nextSeq++
		head.more = append(head.more, cc)
	}
	clear(n.pending)
	n.pending = n.pending[:0]
}

// dropPending releases the calls a batch_size node was collecting, after a
// failure.
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
// all, so one worker runs them in a row and the graph takes its lock once
// for all of them instead of once per call. Only nodes whose later input
// sets are already decided batch: one call at a time, the default handler
// (what is ready now stays the next thing to process whatever arrives
// later), no bounds processing (a call per bound change). Batched calls
// keep their input packets counted in their queues until they are
// committed, so max_queue_size throttles sources exactly as without
// batching. A queue holding a single ready packet, the usual case for a
// graph that keeps up, makes no batch and adds no latency; a slow
// calculator (a call of batchBudget or more) never batches.
func (g *Graph) batch(n *node, head *CalculatorContext) {
	if n.maxInFlight != 1 || n.handler.kind != handlerDefault || n.processBounds {
		return
	}
	limit := n.stats.batchLimit()
	for len(head.more) < limit-1 {
		r, ts := n.nextInput()
		if r != readyProcess {
			return
		}
		cc := g.takeContext(n, phaseProcess, ts)
		cc.held = true
		n.fill(cc, ts)
		n.inflight++
		cc.seq = n.nextSeq
		n.nextSeq++
		head.more = append(head.more, cc)
	}
}

func (g *Graph) queueClose(n *node) {
	if n.closeQueued {
		return
	}
	n.closeQueued = true
	n.state = nodeClosing
	g.queue(g.newContext(n, phaseClose, Done))
}

func (g *Graph) queue(cc *CalculatorContext) {
	n := cc.n
	n.inflight++
	if cc.phase == phaseProcess {
		cc.seq = n.nextSeq
		n.nextSeq++
	}
	cc.order = g.taskOrder
	g.taskOrder++
	heap.Push(&g.heap, cc)
	g.work.Signal()
}

// newContext prepares a call: fresh output shards that start at the
// streams' current bounds. Contexts are recycled per node, since a context
// is only valid during its call.
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
// bounds.
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

// recycle releases cc and keeps it for the node's next call.
func (cc *CalculatorContext) recycle() {
	cc.release()
	cc.n.free = append(cc.n.free, cc)
}

// idle runs when nothing is running or queued. A throttled source that is
// still active means a deadlock: no node can run to drain the full queue.
// With every source finished, the nodes left open sit on loops and are
// closed in order, as MediaPipe does.
func (g *Graph) idle() {
	throttled := false
	for _, s := range g.sources {
		if s.throttled() && g.active(s) {
			throttled = true
		}
	}
	if throttled {
		g.resolveDeadlock()
		if !g.failed {
			g.settle()
		}
		return
	}
	for _, s := range g.sources {
		if g.active(s) {
			return
		}
	}
	for _, n := range g.order {
		switch n.state {
		case nodeWaiting:
			var missing []string
			for _, b := range n.sideIn {
				if !b.sp.set {
					missing = append(missing, fmt.Sprintf("%q", b.sp.name))
				}
			}
			g.fail(fmt.Errorf("node %q (%s): never opened: input side packet %s was not produced", n.name, n.calcName, strings.Join(missing, ", ")))
			return
		case nodeOpen:
			if n.inflight == 0 && len(n.pending) > 0 {
				g.flushPending(n)
				return
			}
			if n.inflight == 0 {
				g.queueClose(n)
				return
			}
		}
	}
	if g.closedNodes == len(g.nodes) {
		g.finish(nil)
	}
}

// active reports whether a source may still produce packets.
func (g *Graph) active(s *source) bool {
	if s.input != nil {
		return !s.input.closed
	}
	return s.node.state < nodeClosing
}

// resolveDeadlock grows every full queue by one packet so the throttled
// sources can go on (logging each growth), or, with report_deadlock, fails
// the run naming the full queues.
func (g *Graph) resolveDeadlock() {
	var full []*inputQueue
	for _, n := range g.nodes {
		for _, q := range n.inputs {
			if q.full {
				full = append(full, q)
			}
		}
	}
	if g.reportDeadlock {
		var parts []string
		for _, q := range full {
			parts = append(parts, fmt.Sprintf("input stream %q of node %q (%s) is full (%d packets, max_queue_size %d)",
				q.s.name, q.n.name, q.n.calcName, q.q.len(), q.maxSize))
		}
		g.fail(fmt.Errorf("%w: every node is idle while packet sources are throttled: %s; raise max_queue_size or feed the node's other inputs",
			ErrDeadlock, strings.Join(parts, "; ")))
		return
	}
	for _, q := range full {
		q.maxSize = q.q.len() + 1
		g.log.Warn("graph: resolved a deadlock by growing a full queue; consider a larger max_queue_size",
			"stream", q.s.name, "node", q.n.name, "max_queue_size", q.maxSize)
		g.updateFull(q)
	}
}

// fail records the run's first error and starts shutting down.
func (g *Graph) fail(err error) {
	if g.failed || g.finished {
		return
	}
	g.failed, g.err = true, err
	if !errors.Is(err, ErrCancelled) {
		g.log.Error("graph: run failed", "err", err)
	}
	g.stopping.Store(true)
	g.cancel()
	for _, cc := range g.heap {
		for _, f := range cc.more {
			g.drop(f, false)
		}
		clear(cc.more)
		g.drop(cc, false)
	}
	g.heap = nil
	for _, n := range g.nodes {
		n.dropPending()
	}
	g.maybeFinalize()
	g.notifyAll()
}

func (g *Graph) maybeFinalize() {
	if g.failed && g.running == 0 && !g.finalizing && !g.finished {
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
		if n.state == nodeOpen || n.state == nodeClosing {
			cc := g.newContext(n, phaseClose, Done)
			cc.graphErr = g.err
			calls = append(calls, cc)
		}
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
		cc.n.state = nodeClosed
		cc.release()
	}
	g.finish(g.err)
	g.mu.Unlock()
}

// finish ends the run and releases every queued packet.
func (g *Graph) finish(err error) {
	if g.finished {
		return
	}
	g.finished, g.err = true, err
	g.stopWorkers = true
	g.work.Broadcast()
	for _, n := range g.nodes {
		for _, q := range n.inputs {
			q.q.release()
		}
	}
	g.stopAfter()
	g.cancel()
	close(g.done)
	g.notifyAll()
	if err == nil {
		g.log.Debug("graph: run finished")
	}
}
