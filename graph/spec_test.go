package graph

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// These tests restate, against weir's runtime, the timing scenarios that
// MediaPipe's own framework tests pin down (calculator_graph_test.cc), so a
// calculator written with MediaPipe's rules in mind behaves the same here.

// valve forwards IN while the OPEN packet at the same timestamp is true;
// when closed it emits nothing but, with setBound, promises so explicitly.
func valve(setBound bool) *funcCalc {
	return &funcCalc{process: func(cc *CalculatorContext) error {
		if open, _ := As[bool](cc.Input("OPEN")); open {
			return cc.Output("").AddPacket(cc.Input("IN"))
		}
		if setBound {
			return cc.Output("").SetNextTimestampBound(cc.InputTimestamp().NextAllowedInStream())
		}
		return nil
	}}
}

func valveGraph(t *testing.T, setBound bool, shift string) *Graph {
	t.Helper()
	return build(t, `
input_streams: [in, gate]
nodes:
  - name: valve
    calculator: Valve
    input_streams: ["IN:in", "OPEN:gate"]
    output_streams: [gated]
  - calculator: PassThrough
    input_streams: [gated]
    output_streams: [passed]
  - calculator: TimestampShift
    input_streams: [passed]
    output_streams: [shifted]
    options: {offset: `+shift+`}
  - name: merge
    calculator: Merge
    input_streams: [in, shifted]
    output_streams: [merged]
`, spec("Valve", Contract{Inputs: []PortSpec{{Tag: "IN"}, {Tag: "OPEN", Type: reflect.TypeFor[bool]()}}, Outputs: in("")}, valve(setBound)))
}

func processCalls(t *testing.T, g *Graph, node string) int64 {
	t.Helper()
	for _, n := range g.Profile().Nodes {
		if n.Name == node {
			return n.ProcessCalls
		}
	}
	t.Fatalf("no node %q in the profile", node)
	return 0
}

func TestValveBlockingWithABoundStillLetsADownstreamMergeRun(t *testing.T) {
	tests := []struct {
		name     string
		setBound bool
		// Merge Process calls after the first four inputs (two passed,
		// two blocked) and after two more (one passed, one blocked).
		want4, want6 int64
	}{
		// The valve's bound settles the blocked timestamps on the gated
		// branch, so the merge runs at every timestamp.
		{"closed valve sets the bound", true, 4, 6},
		// Without it the merge cannot tell that nothing comes at 3 on the
		// gated branch: it stops at the first blocked timestamp until the
		// next packet through the valve (at 5) settles 3 and 4 late.
		{"closed valve stays silent", false, 2, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := valveGraph(t, tt.setBound, "0s")
			start(t, g, nil)
			ts := Timestamp(0)
			send := func(v int, pass bool) {
				ts++
				add(t, g, "in", v, ts)
				add(t, g, "gate", pass, ts)
			}
			send(1, true)
			send(2, true)
			send(3, false)
			send(4, false)
			idle(t, g)
			if got := processCalls(t, g, "valve"); got != 4 {
				t.Fatalf("valve ran %d times, want 4", got)
			}
			if got := processCalls(t, g, "merge"); got != tt.want4 {
				t.Fatalf("merge ran %d times after 4 inputs, want %d", got, tt.want4)
			}
			send(5, true)
			send(6, false)
			idle(t, g)
			if got := processCalls(t, g, "merge"); got != tt.want6 {
				t.Fatalf("merge ran %d times after 6 inputs, want %d", got, tt.want6)
			}
			finish(t, g)
			// Once every input is closed every timestamp settles.
			if got := processCalls(t, g, "merge"); got != 6 {
				t.Fatalf("merge ran %d times by the end, want 6", got)
			}
		})
	}
}

func TestNegativeShiftKeepsTheMergeFromRunningAheadOfTheShiftedBranch(t *testing.T) {
	var merged []string
	g := valveGraph(t, true, "-1us")
	if err := g.ObserveOutputStream("merged", func(p Packet) error {
		merged = append(merged, fmt.Sprintf("%v@%v", p.Value(), p.Timestamp()))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, g, nil)
	add(t, g, "in", 7, 7)
	add(t, g, "gate", true, 7)
	idle(t, g)
	// The shifted branch carries 7@6 and promises nothing below 7: the
	// merge runs at 6 only. Running at 7 too would mean it ignored that
	// the shifted branch may still deliver a packet at 7.
	if got := processCalls(t, g, "merge"); got != 1 {
		t.Fatalf("merge ran %d times, want 1 (at 6)", got)
	}
	finish(t, g)
	if got := processCalls(t, g, "merge"); got != 2 {
		t.Fatalf("merge ran %d times by the end, want 2", got)
	}
	if want := []string{"7@6", "7@7"}; !slices.Equal(merged, want) {
		t.Fatalf("merged %v, want %v", merged, want)
	}
}

func TestAdderFedByAnEvenFilterRunsOnlyWhereBothInputsSettle(t *testing.T) {
	evenFilter := &funcCalc{process: func(cc *CalculatorContext) error {
		p := cc.Input("")
		if v, _ := As[int](p); v%2 == 0 {
			return cc.Output("").AddPacket(p)
		}
		return cc.Output("").SetNextTimestampBound(cc.InputTimestamp().NextAllowedInStream())
	}}
	adder := &funcCalc{process: func(cc *CalculatorContext) error {
		sum := 0
		for i := 0; i < cc.InputCount(""); i++ {
			v, ok := As[int](cc.InputAt("", i))
			if !ok {
				return fmt.Errorf("Process ran at %v with input %d empty", cc.InputTimestamp(), i)
			}
			sum += v
		}
		return cc.Output("").Add(sum, cc.InputTimestamp())
	}}
	g := build(t, `
input_streams: [in0_unfiltered, in1_to_be_filtered]
nodes:
  - calculator: EvenFilter
    input_streams: [in1_to_be_filtered]
    output_streams: [in1_filtered]
  - name: adder
    calculator: Adder
    input_streams: [in0_unfiltered, in1_filtered]
    output_streams: [out]
`, spec("EvenFilter", Contract{Inputs: in(""), Outputs: in("")}, evenFilter),
		WithCalculators(Spec{Name: "Adder", New: func() Calculator { return adder },
			Contract: Contract{Inputs: []PortSpec{{Tag: "", Repeated: true}}, Outputs: in("")}}))
	rec := observe(t, g, "out")
	start(t, g, nil)
	sums := func() []string { return values(rec.packets()) }

	add(t, g, "in0_unfiltered", 1, 1)
	add(t, g, "in1_to_be_filtered", 2, 1)
	idle(t, g)
	if want := []string{"3@1"}; !slices.Equal(sums(), want) {
		t.Fatalf("after timestamp 1: %v, want %v", sums(), want)
	}
	// 3 is odd: the filter drops it and moves in1_filtered's bound to 3.
	add(t, g, "in1_to_be_filtered", 3, 2)
	// in0 reaches 3, but in1_filtered may still carry a packet at 3: the
	// adder must not run (it would see an empty input and fail).
	add(t, g, "in0_unfiltered", 3, 3)
	idle(t, g)
	if got := processCalls(t, g, "adder"); got != 1 {
		t.Fatalf("adder ran %d times with only one input at 3, want 1", got)
	}
	add(t, g, "in1_to_be_filtered", 4, 3)
	idle(t, g)
	if want := []string{"3@1", "7@3"}; !slices.Equal(sums(), want) {
		t.Fatalf("after timestamp 3: %v, want %v", sums(), want)
	}
	finish(t, g)
	if want := []string{"3@1", "7@3"}; !slices.Equal(sums(), want) {
		t.Fatalf("at the end: %v, want %v", sums(), want)
	}
	if got := processCalls(t, g, "adder"); got != 2 {
		t.Fatalf("adder ran %d times, want 2", got)
	}
}

func TestOffsetZeroTurnsAnInputAtTIntoBoundTPlusOne(t *testing.T) {
	for _, offset := range []bool{true, false} {
		t.Run(fmt.Sprint("offset=", offset), func(t *testing.T) {
			// Drop consumes every packet and emits nothing, not even a bound.
			drop := &funcCalc{open: func(cc *CalculatorContext) error {
				if offset {
					cc.SetTimestampOffset(0)
				}
				return nil
			}}
			g := build(t, `
input_streams: [in]
nodes:
  - calculator: Drop
    input_streams: [in]
    output_streams: [out]
`, spec("Drop", Contract{Inputs: in(""), Outputs: in("")}, drop))
			rec := observe(t, g, "out", ObserveTimestampBounds())
			start(t, g, nil)
			for _, ts := range []Timestamp{10, 15} {
				add(t, g, "in", "frame", ts)
				idle(t, g) // observe each bound before the next moves it
			}
			var want []Timestamp // no offset: the output never moves
			if offset {
				// A bound notification carries the settled timestamp t:
				// the stream's bound is t+1.
				want = []Timestamp{10, 15}
			}
			if got := timestamps(rec.packets()); !slices.Equal(got, want) {
				t.Fatalf("bound notifications at %v, want %v", got, want)
			}
			finish(t, g)
		})
	}
}

func TestFastSourceIntoSlowSinkDeliversEverythingWithinTheQueueBound(t *testing.T) {
	const count, queue = 300, 4
	for _, feed := range []string{"source node", "graph input stream"} {
		t.Run(feed, func(t *testing.T) {
			var got []int64
			slow := &funcCalc{process: func(cc *CalculatorContext) error {
				v, _ := As[int64](cc.Input(""))
				got = append(got, v)
				time.Sleep(20 * time.Microsecond) // slower than the source; no assertion on time
				return nil
			}}
			head := "input_streams: [n]\nnodes:\n"
			if feed == "source node" {
				head = fmt.Sprintf("nodes:\n  - calculator: Sequence\n    output_streams: [n]\n    options: {count: %d}\n", count)
			}
			g := build(t, head+fmt.Sprintf(`
  - name: sink
    calculator: Slow
    input_streams: [n]
max_queue_size: %d
`, queue), spec("Slow", Contract{Inputs: in("")}, slow))
			start(t, g, nil)
			if feed == "graph input stream" {
				for i := 0; i < count; i++ {
					add(t, g, "n", int64(i), Timestamp(i)) // waits while the sink's queue is full
				}
				if err := g.CloseAllInputStreams(); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.WaitUntilDone(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if len(got) != count {
				t.Fatalf("sink got %d packets, want %d", len(got), count)
			}
			for i, v := range got {
				if v != int64(i) {
					t.Fatalf("packet %d is %d: lost or reordered", i, v)
				}
			}
			var q QueueProfile
			for _, n := range g.Profile().Nodes {
				if n.Name == "sink" {
					q = n.Inputs[0]
				}
			}
			// The queue is the only place packets wait, so memory is bounded
			// by max_queue_size packets however far ahead the producer is.
			if q.MaxDepth > queue || q.MaxQueueSize != queue || q.Dropped != 0 {
				t.Fatalf("sink queue %+v, want at most %d queued, none dropped, bound not grown", q, queue)
			}
		})
	}
}
