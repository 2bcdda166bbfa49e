package graph

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"weak"
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

// stamps records each Process call's input timestamp, forwards its input
// (offset 0), and records Close.
func stamps(ev *events) *funcCalc {
	return &funcCalc{
		open: func(cc *CalculatorContext) error { cc.SetTimestampOffset(0); return nil },
		process: func(cc *CalculatorContext) error {
			ev.add(cc.InputTimestamp().String())
			return cc.Output("").AddPacket(cc.Input(""))
		},
		close: func(cc *CalculatorContext) error { ev.add("close"); return nil },
	}
}

func TestDefaultHandlerBatchSizeHoldsInputsUntilTheBatchIsFullAndFlushesAPartialBatchOnClose(t *testing.T) {
	var ev events
	// max_queue_size 1 and AddIfNotFull: packets waiting for their batch
	// have left the queue, as in MediaPipe, so they never throttle the
	// feeder.
	g := build(t, `
input_streams: [in]
max_queue_size: 1
nodes:
  - calculator: Stamps
    input_streams: [in]
    output_streams: [out]
    input_stream_handler: {name: default, options: {batch_size: 3}}
`, spec("Stamps", Contract{Inputs: in(""), Outputs: in("")}, stamps(&ev)), WithAddMode(AddIfNotFull))
	rec := observe(t, g, "out")
	start(t, g, nil)
	idle(t, g) // opened: packets no longer wait in the queue for Open
	steps := []struct {
		feed []Timestamp
		want []string // every call so far
	}{
		{[]Timestamp{1, 2}, nil},
		{[]Timestamp{3}, []string{"1", "2", "3"}},
		{[]Timestamp{4, 5}, []string{"1", "2", "3"}},
	}
	for i, s := range steps {
		for _, ts := range s.feed {
			add(t, g, "in", int(ts), ts)
		}
		idle(t, g)
		if got := ev.list(); !slices.Equal(got, s.want) {
			t.Fatalf("after step %d: calls %v, want %v", i, got, s.want)
		}
	}
	finish(t, g)
	if got, want := ev.list(), []string{"1", "2", "3", "4", "5", "close"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if got, want := timestamps(rec.packets()), []Timestamp{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func TestBatchSizeHoldsTheOffsetBoundAtTheFirstBatchedTimestamp(t *testing.T) {
	// MediaPipe's CalculatorGraph.CheckBatchProcessingBoundPropagation: an
	// input bound that arrives while a batch is being collected must not
	// carry the output bound past the batch's first timestamp, or the
	// batch's packets would go back in time when it runs.
	var ev events
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: Stamps
    input_streams: [in]
    output_streams: [out]
    input_stream_handler: {name: default, options: {batch_size: 2}}
`, spec("Stamps", Contract{Inputs: in(""), Outputs: in("")}, stamps(&ev)))
	rec := observe(t, g, "out", ObserveTimestampBounds())
	start(t, g, nil)
	add(t, g, "in", 1, 10)
	if err := g.SetInputStreamTimestampBound("in", 50); err != nil {
		t.Fatal(err)
	}
	idle(t, g)
	for _, p := range rec.packets() {
		if p.Timestamp() >= 10 {
			t.Fatalf("output settled %v while the packet at 10 waits in a batch", p.Timestamp())
		}
	}
	add(t, g, "in", 2, 60) // the batch is full: both run
	finish(t, g)
	var got []Timestamp
	for _, p := range rec.packets() {
		if !p.IsEmpty() {
			got = append(got, p.Timestamp())
		}
	}
	if want := []Timestamp{10, 60}; !slices.Equal(got, want) {
		t.Fatalf("packets %v, want %v", got, want)
	}
}

func TestBatchSizeIsCheckedAgainstMaxInFlightAndSourceNodes(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"max_in_flight", `
input_streams: [a]
nodes:
  - calculator: PassThrough
    input_streams: [a]
    output_streams: [b]
    max_in_flight: 2
    input_stream_handler: {name: default, options: {batch_size: 4}}
`, `max_in_flight 2 cannot be combined with batch_size 4`},
		{"source node", `
nodes:
  - calculator: Sequence
    output_streams: [b]
    input_stream_handler: {name: default, options: {batch_size: 4}}
`, `batch_size does not apply to a source node`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := Validate([]byte(tt.yaml))
			if len(diags) != 1 || !strings.Contains(diags[0].Message, tt.want) {
				t.Fatalf("diagnostics %v, want one containing %q", diags, tt.want)
			}
		})
	}
}

func TestEarlyCloseHandlerClosesTheNodeWhenAnyInputIsDone(t *testing.T) {
	var ev events
	g := build(t, `
input_streams: [a, b]
nodes:
  - name: join
    calculator: Join
    input_streams: ["A:a", "B:b"]
    input_stream_handler: early_close
`, spec("Join", Contract{Inputs: in("A", "B")}, boundCalls(&ev, "A", "B")))
	start(t, g, nil)
	add(t, g, "a", 1, 1)
	add(t, g, "b", 2, 1)
	add(t, g, "a", 3, 2) // waits for B to settle 2
	idle(t, g)
	if got, want := ev.list(), []string{"1 A=1@1 B=2@1"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	// B finishes: the node closes at once, though A is open and holds a
	// packet, which is dropped, as MediaPipe's EarlyCloseInputStreamHandler
	// does.
	if err := g.CloseInputStream("b"); err != nil {
		t.Fatal(err)
	}
	idle(t, g)
	if got, want := ev.list(), []string{"1 A=1@1 B=2@1", "close"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if q := g.Profile().Nodes[0].Inputs[0]; q.Dropped != 1 || q.Depth != 0 {
		t.Fatalf("input A: dropped %d, depth %d; want 1 dropped, none left", q.Dropped, q.Depth)
	}
	finish(t, g)
}

func TestCancelReleasesTheInputsOfABatchBeingCollected(t *testing.T) {
	var ev events
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: Stamps
    input_streams: [in]
    output_streams: [out]
    input_stream_handler: {name: default, options: {batch_size: 4}}
`, spec("Stamps", Contract{Inputs: in(""), Outputs: in("")}, stamps(&ev)))
	start(t, g, nil)
	payload := &[1 << 16]byte{}
	ref := weak.Make(payload)
	add(t, g, "in", payload, 1)
	payload = nil
	add(t, g, "in", 2, 2)
	idle(t, g)
	g.Cancel()
	if err := g.WaitUntilDone(testCtx(t)); !errors.Is(err, ErrCancelled) {
		t.Fatalf("WaitUntilDone: %v, want ErrCancelled", err)
	}
	// The batch never ran, Close did, and nothing holds its packets.
	if got, want := ev.list(), []string{"close"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for i := 0; i < 5 && ref.Value() != nil; i++ {
		runtime.GC()
	}
	if ref.Value() != nil {
		t.Fatal("a packet of the cancelled batch is still referenced")
	}
}

// The tests below pin the differences from MediaPipe that weir keeps on
// purpose (docs/graph.md, "Differences from MediaPipe").

func TestNextAllowedInStreamLeavesTimestampsPacketsCannotCarryAsTheyAre(t *testing.T) {
	// MediaPipe gives Min for Unset and Unstarted and OneOverPostStream
	// for Done; weir never moves a timestamp down, and a bound computed
	// from a timestamp that was never set is refused instead of silently
	// becoming Min.
	for _, ts := range []Timestamp{Unset, Unstarted, OneOverPostStream, Done} {
		if got := ts.NextAllowedInStream(); got != ts {
			t.Errorf("%v.NextAllowedInStream() = %v, want %v", ts, got, ts)
		}
	}
	g := build(t, `
input_streams: [in]
nodes:
  - name: early
    calculator: Early
    input_streams: [in]
    output_streams: [out]
`, spec("Early", Contract{Inputs: in(""), Outputs: in("")}, &funcCalc{open: func(cc *CalculatorContext) error {
		return cc.Output("").SetNextTimestampBound(cc.InputTimestamp().NextAllowedInStream())
	}}))
	start(t, g, nil)
	err := g.WaitUntilDone(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), `node "early" (Early): Open: stream "out": timestamp bound set to a value streams cannot have: Unstarted`) {
		t.Fatalf("run error %v, want the bound from Open's input timestamp refused", err)
	}
}

func TestOffsetPassesBoundsAboveMaxOnSoDownstreamNeedNotWaitForASummary(t *testing.T) {
	// MediaPipe's OutputStreamHandler::TryPropagateTimestampBound passes
	// only ordinary bounds through an offset (a TODO in its source); weir
	// passes PostStream on too, so a join downstream settles every
	// ordinary timestamp once only a summary can still come.
	var ev events
	g := build(t, `
input_streams: [in, other]
nodes:
  - calculator: PassThrough
    input_streams: [in]
    output_streams: [passed]
  - name: join
    calculator: Join
    input_streams: ["A:passed", "B:other"]
`, spec("Join", Contract{Inputs: in("A", "B")}, joinCalc(&ev, "A", "B")))
	start(t, g, nil)
	add(t, g, "other", "x", 100)
	if err := g.SetInputStreamTimestampBound("in", PostStream); err != nil {
		t.Fatal(err)
	}
	idle(t, g)
	if got, want := ev.list(), []string{"100 A=- B=x"}; !slices.Equal(got, want) {
		t.Fatalf("join calls %v, want %v", got, want)
	}
	finish(t, g)
}
