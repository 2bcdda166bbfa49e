package graph

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// rendezvous makes Process at each timestamp wait until every one of want
// nodes is inside Process at that timestamp, so a test passes only if those
// calls run side by side. A call that waits longer than testTimeout fails.
type rendezvous struct {
	mu      sync.Mutex
	want    int
	arrived map[Timestamp]int
	met     map[Timestamp]chan struct{}
}

func newRendezvous(want int) *rendezvous {
	return &rendezvous{want: want, arrived: map[Timestamp]int{}, met: map[Timestamp]chan struct{}{}}
}

func (r *rendezvous) calc() *funcCalc {
	return &funcCalc{process: func(cc *CalculatorContext) error {
		ts := cc.InputTimestamp()
		r.mu.Lock()
		ch, ok := r.met[ts]
		if !ok {
			ch = make(chan struct{})
			r.met[ts] = ch
		}
		r.arrived[ts]++
		if r.arrived[ts] == r.want {
			close(ch)
		}
		r.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-time.After(testTimeout):
			return fmt.Errorf("at %v: the other calls never ran beside this one", ts)
		}
	}}
}

func TestNodesStayOnTheirHomeWorkerInStretchesOfTheTopologicalOrder(t *testing.T) {
	g := build(t, chainYAML(5), WithNumThreads(2))
	start(t, g, nil)
	// Five chained nodes on two workers: the first three on one, the last
	// two on the other, so a packet crosses between cores once.
	var homes []int
	for _, n := range g.order {
		homes = append(homes, n.home)
	}
	if want := []int{0, 0, 0, 1, 1}; fmt.Sprint(homes) != fmt.Sprint(want) {
		t.Fatalf("homes %v, want %v", homes, want)
	}
	finish(t, g)
}

func TestCallsOfNodesSharingAHomeWorkerRunSideBySideWhenOneBlocks(t *testing.T) {
	// Two blocking nodes on worker 0 (the first two of four in
	// topological order): each call waits for the other node's call at
	// the same timestamp, so the run finishes only if the idle worker
	// takes calls from the busy one. The first calls are not timed yet
	// (taken at once); later ones were measured short, so the idle worker
	// takes them once the busy one is stuck in one call for stealAfter.
	r := newRendezvous(2)
	g := build(t, `
input_streams: [in]
nodes:
  - {name: a, calculator: Meet, input_streams: [in]}
  - {name: b, calculator: Meet, input_streams: [in]}
  - {name: c, calculator: PassThrough, input_streams: [in], output_streams: [x]}
  - {name: d, calculator: PassThrough, input_streams: [x], output_streams: [y]}
`, WithNumThreads(2), spec("Meet", Contract{Inputs: in("")}, r.calc()))
	start(t, g, nil)
	for _, n := range g.nodes[:2] {
		if n.home != 0 {
			t.Fatalf("node %s has home %d, want 0", n.name, n.home)
		}
	}
	for i := 1; i <= 20; i++ {
		add(t, g, "in", i, Timestamp(i))
		idle(t, g) // one timestamp at a time: the calls must meet
	}
	finish(t, g)
}

func TestParallelCallsOfOneNodeRunOnEveryWorker(t *testing.T) {
	// max_in_flight calls wait in the queue every worker takes from.
	r := newRendezvous(3)
	g := build(t, `
input_streams: [in]
num_threads: 3
nodes:
  - {name: a, calculator: Meet, input_streams: [in], max_in_flight: 3}
`, spec("Meet", Contract{Inputs: in(""), Stateless: true}, &funcCalc{process: func(cc *CalculatorContext) error {
		// Three calls at consecutive timestamps meet at one rendezvous.
		return r.calc().process(contextAt(cc, (cc.InputTimestamp()-1)/3))
	}}))
	start(t, g, nil)
	for i := 1; i <= 9; i++ {
		add(t, g, "in", i, Timestamp(i))
	}
	finish(t, g)
}

// contextAt returns a context whose input timestamp reads ts, for
// calculators that share a rendezvous across timestamps.
func contextAt(cc *CalculatorContext, ts Timestamp) *CalculatorContext {
	c := *cc
	c.ts = ts
	return &c
}

func TestIdleWorkersSleepInsteadOfSpinning(t *testing.T) {
	if processCPU() == 0 {
		t.Skip("no process CPU time on this platform")
	}
	g := build(t, chainYAML(5), WithNumThreads(2))
	start(t, g, nil)
	for i := range 100 {
		add(t, g, "s0", i, Timestamp(i))
	}
	idle(t, g)
	// Workers spin for DefaultSpin after their last call, then sleep: an
	// idle graph costs (next to) no CPU. One spinning worker would burn
	// the whole window.
	const window = 300 * time.Millisecond
	c0 := processCPU()
	time.Sleep(window)
	if used := processCPU() - c0; used > window/4 {
		t.Fatalf("an idle graph used %v of CPU in %v", used, window)
	}
	finish(t, g)
}

func TestWithSpinZeroSleepsAtOnceAndLosesNothing(t *testing.T) {
	g := build(t, chainYAML(5), WithNumThreads(2), WithSpin(0))
	if g.spinFor != 0 {
		t.Fatalf("spinFor = %v with WithSpin(0)", g.spinFor)
	}
	rec := observe(t, g, "s5")
	start(t, g, nil)
	if g.spin(&workerQueue{}) {
		t.Fatal("spin reported a call on an idle graph")
	}
	const n = 500
	for i := range n {
		add(t, g, "s0", i, Timestamp(i))
		if i%50 == 0 {
			idle(t, g) // let the workers run dry and sleep
		}
	}
	finish(t, g)
	got := rec.packets()
	if len(got) != n {
		t.Fatalf("observer got %d packets, want %d", len(got), n)
	}
	for i, p := range got {
		if p.Timestamp() != Timestamp(i) || p.Value() != i {
			t.Fatalf("packet %d is %v at %v", i, p.Value(), p.Timestamp())
		}
	}
}

func TestSpinDefaultsAndNegative(t *testing.T) {
	if g := build(t, chainYAML(1)); g.spinFor != DefaultSpin {
		t.Fatalf("default spinFor = %v, want %v", g.spinFor, DefaultSpin)
	}
	if g := build(t, chainYAML(1), WithSpin(-time.Second)); g.spinFor != 0 {
		t.Fatalf("WithSpin(-1s) gave spinFor %v, want 0", g.spinFor)
	}
}
