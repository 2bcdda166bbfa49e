package graph

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// These tests pin down behaviours where weir once differed from MediaPipe's
// framework (timestamp.cc, the input stream handlers, calculator_node.cc,
// calculator_graph_bounds_test.cc), so a calculator ported from MediaPipe
// sees the same calls at the same timestamps.

// boundCalls records each Process call as "ts A=<timestamp>[done]
// B=...", one entry per input, and each Close as "close".
func boundCalls(ev *events, tags ...string) *funcCalc {
	return &funcCalc{
		process: func(cc *CalculatorContext) error {
			parts := []string{cc.InputTimestamp().String()}
			for _, tag := range tags {
				p := cc.Input(tag)
				v := p.Timestamp().String()
				if !p.IsEmpty() {
					v = fmt.Sprintf("%v@%v", p.Value(), p.Timestamp())
				}
				if cc.InputDone(tag, 0) {
					v += "(done)"
				}
				parts = append(parts, tag+"="+v)
			}
			ev.add(strings.Join(parts, " "))
			return nil
		},
		close: func(cc *CalculatorContext) error { ev.add("close"); return nil },
	}
}

func TestImmediateHandlerWithBoundsProcessingSeesAClosedInputAtMaxBeforeClose(t *testing.T) {
	var ev events
	g := build(t, `
input_streams: [a, b]
nodes:
  - name: watch
    calculator: Watch
    input_streams: ["A:a", "B:b"]
    input_stream_handler: immediate
`, spec("Watch", Contract{Inputs: in("A", "B"), ProcessTimestampBounds: true}, boundCalls(&ev, "A", "B")))
	start(t, g, nil)
	add(t, g, "a", 1, 10)
	idle(t, g)
	if err := g.CloseInputStream("a"); err != nil {
		t.Fatal(err)
	}
	idle(t, g)
	if err := g.CloseInputStream("b"); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitUntilDone(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// As in MediaPipe's ImmediateInputStreamHandlerTest.ProcessTimestampBounds:
	// each input's end is shown once, at Timestamp::Done().PreviousAllowedInStream(),
	// which is Max, then Close runs.
	want := []string{
		"10 A=1@10 B=Unstarted",
		"Max A=Max(done) B=Unstarted",
		"Max A=Max(done) B=Max(done)",
		"close",
	}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// processBoundToPacket is MediaPipe's ProcessBoundToPacketCalculator: with
// the immediate handler and bounds processing, it emits its input
// timestamp at every input timestamp the output can still take.
func processBoundToPacket() *funcCalc {
	return &funcCalc{process: func(cc *CalculatorContext) error {
		ts := cc.Input("").Timestamp()
		out := cc.Output("")
		if ts == cc.InputTimestamp() && ts >= out.NextTimestampBound() {
			return out.Add(ts, ts)
		}
		return nil
	}}
}

func TestCalculatorFedASinglePostStreamPacketThatEmitsAtItsInputTimestampFinishesCleanly(t *testing.T) {
	// MediaPipe's CalculatorGraphBoundsTest.PostStreamPacketToSetProcessTimestampBound.
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: ProcessBoundToPacket
    input_streams: [in]
    output_streams: [out]
`, spec("ProcessBoundToPacket", Contract{Inputs: in(""), Outputs: in(""),
		InputStreamHandler: HandlerImmediate, ProcessTimestampBounds: true}, processBoundToPacket()))
	rec := observe(t, g, "out")
	start(t, g, nil)
	add(t, g, "in", 0, PostStream)
	idle(t, g)
	if got := timestamps(rec.packets()); !slices.Equal(got, []Timestamp{PostStream}) {
		t.Fatalf("output timestamps %v, want [PostStream]", got)
	}
	if err := g.CloseAllPacketSources(); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitUntilDone(context.Background()); err != nil {
		t.Fatalf("WaitUntilDone: %v", err)
	}
	if got := timestamps(rec.packets()); !slices.Equal(got, []Timestamp{PostStream}) {
		t.Fatalf("output timestamps after the run %v, want [PostStream]", got)
	}
}

func TestNodeClosesOnceItsInputsCanTakeNoMorePacketsWithoutWaitingForTheProducer(t *testing.T) {
	tests := []struct {
		name string
		feed func(g *Graph) error
		want []string
	}{
		{"packet at Max", func(g *Graph) error { return g.AddPacketToInputStream("in", MakePacket(1, Max)) },
			[]string{"Max A=1@Max", "close"}},
		{"packet at PostStream", func(g *Graph) error { return g.AddPacketToInputStream("in", MakePacket(1, PostStream)) },
			[]string{"PostStream A=1@PostStream", "close"}},
		{"bound OneOverPostStream", func(g *Graph) error { return g.SetInputStreamTimestampBound("in", OneOverPostStream) },
			[]string{"close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev events
			g := build(t, `
input_streams: [in]
nodes:
  - calculator: Watch
    input_streams: ["A:in"]
`, spec("Watch", Contract{Inputs: in("A")}, boundCalls(&ev, "A")))
			start(t, g, nil)
			if err := tt.feed(g); err != nil {
				t.Fatal(err)
			}
			// The graph input is still open, but its bound is
			// OneOverPostStream: MediaPipe's SyncSet::GetReadiness treats
			// that as done and the node closes now.
			idle(t, g)
			if got := ev.list(); !slices.Equal(got, tt.want) {
				t.Fatalf("calls before the input closed %v, want %v", got, tt.want)
			}
			finish(t, g)
		})
	}
}

func TestImmediateHandlerRunsProcessWhenAnyOneInputIsDone(t *testing.T) {
	// MediaPipe's ImmediateInputStreamHandlerTest.StreamDoneReady, through a
	// whole graph: each input's end makes the node ready once, and Process
	// runs with empty inputs at the lowest timestamp settled on the inputs
	// still open, rather than waiting for every input to finish.
	var ev events
	g := build(t, `
input_streams: [a, b, c]
nodes:
  - name: watch
    calculator: Watch
    input_streams: ["A:a", "B:b", "C:c"]
    input_stream_handler: immediate
`, spec("Watch", Contract{Inputs: in("A", "B", "C")}, boundCalls(&ev, "A", "B", "C")))
	start(t, g, nil)
	steps := []struct {
		do   func() error
		want []string // calls this step adds
	}{
		{func() error { return g.AddPacketToInputStream("a", MakePacket(1, 10)) },
			[]string{"10 A=1@10 B=Unstarted C=Unstarted"}},
		{func() error { return g.SetInputStreamTimestampBound("c", 5) }, nil},
		{func() error { return g.CloseInputStream("b") },
			[]string{"4 A=10 B=Max(done) C=4"}},
		{func() error { return g.SetInputStreamTimestampBound("a", 200) }, nil},
		{func() error { return g.CloseInputStream("a") },
			[]string{"4 A=Max(done) B=Max(done) C=4"}},
		{func() error { return g.CloseInputStream("c") }, []string{"close"}},
	}
	var want []string
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		idle(t, g)
		want = append(want, s.want...)
		if got := ev.list(); !slices.Equal(got, want) {
			t.Fatalf("after step %d: calls\n%s\nwant\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if err := g.WaitUntilDone(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}
