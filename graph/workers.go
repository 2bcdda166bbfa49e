package graph

import (
	"container/heap"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Workers and where calls run.
//
// Every node has a home worker, and its ready calls wait in that worker's
// own queue: the nodes are split, in topological order, into one stretch
// of consecutive nodes per worker, so a packet crosses from one core to
// another only where a stretch ends, instead of at every node as when any
// worker takes any call. A worker runs its own queue's calls, most urgent
// first, and the call its commit made ready next when that is a deeper
// node of its own (see push).
//
// Homes are a preference, not a partition: a worker whose own queue is
// empty takes a call from another worker's queue when that worker is
// running a long call (one expected to take stealAfter or more, or one
// that is not timed yet: Open, Close, a node's first Process) or has been
// in one run for stealAfter (a call that blocks without being expected
// to), and calls of nodes that run several calls at once (max_in_flight)
// wait in a shared queue that every worker takes from. So slow
// calculators still run side by side on every worker, while fast ones
// stay where their data is. A worker that runs out of calls spins for up
// to its spin time (WithSpin, yielding) before it sleeps.

// stealAfter is how long a call must be expected to take, or a worker be
// stuck in one run, before the other workers may take the calls queued
// behind it. An idle worker watching busy ones looks every stealAfter at
// first, then less often, up to every maxWatch, while they keep moving on.
const (
	stealAfter = 50 * time.Microsecond
	maxWatch   = time.Millisecond
)

// DefaultSpin is how long a worker that ran out of calls waits for more
// before it sleeps, unless WithSpin says otherwise.
const DefaultSpin = 20 * time.Microsecond

// workerQueue is one worker's queue of ready calls, guarded by its mu.
type workerQueue struct {
	mu       sync.Mutex
	heap     taskHeap
	n        atomic.Int32 // len(heap), read without the lock
	sleeping bool
	// long is set while the worker runs a call expected to take
	// stealAfter or more: the calls queued behind it may be taken.
	long atomic.Bool
	// runs counts the runs the worker started, for others watching
	// whether it is stuck in one.
	runs atomic.Uint64
	// wake takes one wake-up while sleeping is set; timer and watch are
	// the sleeping worker's own.
	wake    chan struct{}
	timer   *time.Timer
	watch   []uint64
	backoff time.Duration // the next watch's length
}

func (w *workerQueue) push(cc *CalculatorContext) {
	heap.Push(&w.heap, cc)
	w.n.Store(int32(len(w.heap)))
}

func (w *workerQueue) pop() *CalculatorContext {
	cc := heap.Pop(&w.heap).(*CalculatorContext)
	w.n.Store(int32(len(w.heap)))
	return cc
}

// startWorkers makes the worker queues and starts the workers; the caller
// holds Graph.mu.
func (g *Graph) startWorkers() {
	g.wq = make([]*workerQueue, g.numThreads)
	for i := range g.wq {
		g.wq[i] = &workerQueue{wake: make(chan struct{}, 1), watch: make([]uint64, g.numThreads)}
	}
	for i := range g.wq {
		g.workers.Add(1)
		go g.worker(i)
	}
}

// assignHomes gives every node its home worker: the nodes in topological
// order, cut into one stretch per worker.
func (g *Graph) assignHomes() {
	k := len(g.order)
	for i, n := range g.order {
		n.home = i * g.numThreads / max(k, 1)
	}
}

// enqueue puts a ready call in its queue and wakes a worker for it; the
// caller holds the call's node's lock and has counted it in busy.
func (g *Graph) enqueue(cc *CalculatorContext) bool {
	if cc.n.maxInFlight > 1 && cc.phase == phaseProcess {
		w := &g.shared
		w.mu.Lock()
		if g.stopping.Load() {
			w.mu.Unlock()
			return false
		}
		cc.order = g.taskOrder.Add(1)
		w.push(cc)
		w.mu.Unlock()
		g.wakeAny()
		return true
	}
	w := g.wq[cc.n.home]
	w.mu.Lock()
	if g.stopping.Load() {
		w.mu.Unlock()
		return false
	}
	cc.order = g.taskOrder.Add(1)
	w.push(cc)
	sleeping := w.wakeUp()
	w.mu.Unlock()
	if !sleeping && w.long.Load() {
		g.wakeAny() // its owner is busy for a while: let another take it
	}
	return true
}

// wakeAny wakes one sleeping worker, if any, to look for calls it may
// take.
func (g *Graph) wakeAny() {
	for _, w := range g.wq {
		w.mu.Lock()
		woke := w.wakeUp()
		w.mu.Unlock()
		if woke {
			return
		}
	}
}

// next takes the most urgent call worker i may run, waiting for one: from
// its own queue, the shared queue, or the queue of another worker that is
// busy with a long call. It returns nil when the run is over.
func (g *Graph) next(i int) *CalculatorContext {
	w := g.wq[i]
	for {
		if g.stopWorkers.Load() {
			return nil
		}
		if cc := g.take(w); cc != nil {
			return cc
		}
		if cc := g.steal(i, nil); cc != nil {
			return cc
		}
		if g.spin(w) {
			continue
		}
		if cc := g.sleep(i); cc != nil {
			return cc
		}
	}
}

// take pops the most urgent call of w's queue or the shared queue.
func (g *Graph) take(w *workerQueue) *CalculatorContext {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g.shared.n.Load() > 0 {
		if cc := g.takeShared(w); cc != nil {
			return cc
		}
	}
	if len(w.heap) > 0 {
		return w.pop()
	}
	return nil
}

// sleep waits until worker i is woken: a call for it was queued, another
// worker started a long call with calls queued behind it, or the run
// ends. While another worker has calls queued, it wakes after stealAfter
// (then, while the others keep moving on, after twice as long each time,
// up to maxWatch) and takes one of those calls if that worker is still in
// the same run: a call that takes long without being expected to (waiting
// on a device, a remote service) does not hold up the calls behind it for
// long.
func (g *Graph) sleep(i int) *CalculatorContext {
	w := g.wq[i]
	// Announce the sleep before the last look, so that a call queued
	// after the look finds the worker asleep and wakes it.
	w.mu.Lock()
	empty := len(w.heap) == 0
	w.sleeping = empty
	w.mu.Unlock()
	if !empty || g.shared.n.Load() > 0 || g.stopWorkers.Load() || g.stealable(i) {
		w.mu.Lock()
		w.sleeping = false
		w.mu.Unlock()
		return nil
	}
	// Note the runs of the workers with calls queued.
	watching := false
	for j, v := range g.wq {
		w.watch[j] = 0
		if j != i && v.n.Load() > 0 {
			w.watch[j] = v.runs.Load() | watched
			watching = true
		}
	}
	if !watching {
		<-w.wake
		return nil
	}
	w.backoff = min(max(w.backoff, stealAfter), maxWatch)
	if w.timer == nil {
		w.timer = time.NewTimer(w.backoff)
	} else {
		w.timer.Reset(w.backoff)
	}
	select {
	case <-w.wake:
		w.timer.Stop()
		w.backoff = 0
		return nil
	case <-w.timer.C:
	}
	w.mu.Lock()
	w.sleeping = false
	w.mu.Unlock()
	cc := g.steal(i, w.watch)
	if cc == nil {
		// The workers watched moved on: they are busy, not stuck. Look
		// again later, less often while that goes on.
		w.backoff *= 2
	} else {
		w.backoff = 0
	}
	return cc
}

// wakeUp wakes worker w if it sleeps; the caller holds w.mu.
func (w *workerQueue) wakeUp() bool {
	if !w.sleeping {
		return false
	}
	w.sleeping = false
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up the worker has not taken yet: it will wake
	}
	return true
}

// spin waits up to g.spinFor for a call in w's queue or the shared one,
// yielding to other goroutines meanwhile, before the worker sleeps: it
// reports whether one came. Parking a worker and waking it again costs
// its thread a trip through the operating system's scheduler, more than
// the usual gap between two batches of a busy pipeline.
func (g *Graph) spin(w *workerQueue) bool {
	if g.spinFor <= 0 {
		return false
	}
	var start time.Duration
	for k := 1; ; k++ {
		if w.n.Load() > 0 || g.shared.n.Load() > 0 || g.stopWorkers.Load() {
			return true
		}
		if k%16 == 0 { // a clock read costs more than a round
			now := monoNow()
			if start == 0 {
				start = now
			} else if now-start >= g.spinFor {
				return false
			}
		}
		runtime.Gosched()
	}
}

// takeShared pops the shared queue's top call when it is at least as
// urgent as the top of w's own queue; the caller holds w.mu.
func (g *Graph) takeShared(w *workerQueue) *CalculatorContext {
	s := &g.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heap) == 0 {
		return nil
	}
	if len(w.heap) > 0 && taskLess(w.heap[0], s.heap[0]) {
		return nil
	}
	return s.pop()
}

// watched marks a worker's run count noted by a sleeping worker.
const watched = 1 << 63

// steal takes the top call of another worker's queue: one busy with a
// long call, or, with watch (runs noted per worker, the top bit set for
// those watched), one still in the run noted.
func (g *Graph) steal(i int, watch []uint64) *CalculatorContext {
	for j, v := range g.wq {
		if j == i {
			continue
		}
		stuck := watch != nil && watch[j] != 0 && v.runs.Load() == watch[j]&^watched
		if !stuck && !v.long.Load() {
			continue
		}
		v.mu.Lock()
		if len(v.heap) > 0 && (stuck || v.long.Load()) {
			cc := v.pop()
			v.mu.Unlock()
			return cc
		}
		v.mu.Unlock()
	}
	return nil
}

// stealable reports whether another worker busy with a long call has calls
// queued.
func (g *Graph) stealable(i int) bool {
	for j, v := range g.wq {
		if j != i && v.long.Load() {
			v.mu.Lock()
			n := len(v.heap)
			v.mu.Unlock()
			if n > 0 {
				return true
			}
		}
	}
	return false
}

// startLong marks worker i busy with a long call and wakes a sleeping
// worker when calls wait behind it.
func (g *Graph) startLong(i int) {
	w := g.wq[i]
	w.long.Store(true)
	w.mu.Lock()
	waiting := len(w.heap) > 0
	w.mu.Unlock()
	if waiting {
		g.wakeAny()
	}
}

// drainQueues empties every queue of ready calls, once the run is failing.
func (g *Graph) drainQueues() []*CalculatorContext {
	var all []*CalculatorContext
	for _, w := range append([]*workerQueue{&g.shared}, g.wq...) {
		w.mu.Lock()
		all = append(all, w.heap...)
		w.heap = nil
		w.n.Store(0)
		w.mu.Unlock()
	}
	return all
}

// stopAllWorkers ends the workers' loops.
func (g *Graph) stopAllWorkers() {
	g.stopWorkers.Store(true)
	for _, w := range g.wq {
		w.mu.Lock()
		w.wakeUp()
		w.mu.Unlock()
	}
}
