package graph

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestTimingSampleIsEveryCallThenAboutOneInStride(t *testing.T) {
	var s nodeStats
	for i := 1; i <= timingWarmup; i++ {
		if !s.sample() {
			t.Fatalf("call %d of the warm-up not timed", i)
		}
	}
	const draws = 64000
	timed, gap, maxGap := 0, 0, 0
	for i := 0; i < draws; i++ {
		if s.sample() {
			timed++
			gap = 0
			continue
		}
		gap++
		maxGap = max(maxGap, gap)
	}
	// Gaps are drawn uniformly from [0, 2*stride-2]: one call in stride
	// on average, never a longer run of untimed calls than that.
	if maxGap > 2*timingStride-2 {
		t.Errorf("%d untimed calls in a row, want at most %d", maxGap, 2*timingStride-2)
	}
	if lo, hi := draws/(2*timingStride), draws*2/timingStride; timed < lo || timed > hi {
		t.Errorf("%d of %d calls timed after the warm-up, want about %d", timed, draws, draws/timingStride)
	}
}

func TestProfileCountsStayExactWhileTimingIsSampled(t *testing.T) {
	tests := []struct {
		name      string
		perCall   int
		calls     int
		allTimed  bool
		wantBatch bool // the long run must batch, so counts cover batched calls
	}{
		// Under the warm-up every call is timed and ProcessTotal is their sum.
		{"short run is timed in full", 40, 1, true, false},
		{"long batched run is sampled", 100, 100, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total := tt.perCall * tt.calls
			var batched atomic.Int64
			fast := &funcCalc{process: func(cc *CalculatorContext) error {
				if cc.held {
					batched.Add(1)
				}
				return cc.Output("").AddPacket(cc.Input(""))
			}}
			g := build(t, burstYAML, WithNumThreads(1), fastSpec(fast, Contract{}),
				spec("Burst", Contract{Outputs: in("")}, burstSource(tt.perCall, tt.calls)))
			rec := observe(t, g, "out")
			start(t, g, nil)
			if err := g.WaitUntilDone(testCtx(t)); err != nil {
				t.Fatalf("WaitUntilDone: %v", err)
			}
			if got := len(rec.packets()); got != total {
				t.Fatalf("observer got %d packets, want %d", got, total)
			}
			if b := batched.Load(); tt.wantBatch && b == 0 {
				t.Fatalf("no call batched over %d calls in bursts of %d", total, tt.perCall)
			}
			p := g.Profile()
			timed := map[string]int64{}
			for _, n := range g.nodes {
				n.mu.Lock()
				timed[n.name] = n.stats.timed
				n.mu.Unlock()
			}
			for _, n := range p.Nodes {
				if n.Name == "source" {
					continue
				}
				if n.ProcessCalls != int64(total) || n.InputLatencyCount != int64(total) || n.Inputs[0].Received != int64(total) {
					t.Errorf("%s: %d calls, %d latencies, %d received; want %d each", n.Name, n.ProcessCalls, n.InputLatencyCount, n.Inputs[0].Received, total)
				}
				tm := timed[n.Name]
				calls := time.Duration(n.ProcessCalls)
				if tt.allTimed {
					// Exact: the sum of every call, the mean its quotient.
					if tm != n.ProcessCalls || n.ProcessTotal < n.ProcessMean*calls || n.ProcessTotal >= (n.ProcessMean+1)*calls {
						t.Errorf("%s: %d of %d calls timed, total %v, mean %v; want all timed and total = mean × calls",
							n.Name, tm, n.ProcessCalls, n.ProcessTotal, n.ProcessMean)
					}
					continue
				}
				if tm <= timingWarmup || tm >= n.ProcessCalls/4 {
					t.Errorf("%s: %d of %d calls timed, want the warm-up and then about one in %d", n.Name, tm, n.ProcessCalls, timingStride)
				}
				// Extrapolated from the sampled mean (rounding aside).
				if d := n.ProcessTotal - n.ProcessMean*calls; d < -calls || d > calls {
					t.Errorf("%s: total %v, mean %v × %d calls", n.Name, n.ProcessTotal, n.ProcessMean, n.ProcessCalls)
				}
				if n.ProcessMean <= 0 || n.ProcessP50 <= 0 || n.ProcessP99 < n.ProcessP50 {
					t.Errorf("%s: mean %v, p50 %v, p99 %v", n.Name, n.ProcessMean, n.ProcessP50, n.ProcessP99)
				}
			}
		})
	}
}

func TestSlowCallsAreAllTimedAndFastOnesSampled(t *testing.T) {
	var s nodeStats
	run := func(calls int, d time.Duration) (timed int) {
		for range calls {
			c := call{timed: s.sample(), consumed: true}
			if c.timed {
				timed++
				c.dur = d
			}
			s.record(&c)
		}
		return timed
	}
	run(timingWarmup, time.Microsecond) // the warm-up, all timed
	if got := run(2000, time.Microsecond); got > 2000/4 {
		t.Fatalf("fast calls: %d of 2000 timed, want about one in %d", got, timingStride)
	}
	// A node that becomes slow is timed in full from its next timed
	// call on (within a few sampling gaps).
	run(10*timingStride, timeAllAbove)
	if got := run(500, timeAllAbove); got != 500 {
		t.Fatalf("slow calls: %d of 500 timed, want all", got)
	}
	// And sampled again once it is fast.
	run(10, time.Microsecond)
	if got := run(2000, time.Microsecond); got > 2000/4 {
		t.Fatalf("fast again: %d of 2000 timed", got)
	}
}

func TestFedPacketsAreStampedEveryOneThenAboutOneInStride(t *testing.T) {
	var s stamper
	for i := 1; i <= timingWarmup; i++ {
		if s.stamp() == 0 {
			t.Fatalf("fed packet %d of the warm-up not stamped", i)
		}
	}
	const fed = 32000
	stamped := 0
	for range fed {
		if s.stamp() != 0 {
			stamped++
		}
	}
	if lo, hi := fed/(2*stampStride), fed*2/stampStride; stamped < lo || stamped > hi {
		t.Errorf("%d of %d fed packets stamped after the warm-up, want about %d", stamped, fed, fed/stampStride)
	}
}

func TestInputLatencyCountsEveryConsumingCallWhileStampsAreSampled(t *testing.T) {
	const n = 3000 // well past the stamping warm-up
	g := build(t, passYAML)
	start(t, g, nil)
	for i := range n {
		add(t, g, "in", i, Timestamp(i))
	}
	finish(t, g)
	p := g.Profile().Nodes[0]
	if p.ProcessCalls != n || p.InputLatencyCount != n {
		t.Fatalf("%d calls, %d consuming calls counted; want %d each", p.ProcessCalls, p.InputLatencyCount, n)
	}
	if p.InputLatencyMean <= 0 || p.InputLatencyP99 <= 0 {
		t.Fatalf("input latency mean %v, p99 %v: want measured", p.InputLatencyMean, p.InputLatencyP99)
	}
}
