package graph

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// joinCalc records each Process call as "ts:A=..,B=.." ("-" for an empty
// input).
func joinCalc(ev *events, tags ...string) *funcCalc {
	return &funcCalc{process: func(cc *CalculatorContext) error {
		parts := []string{cc.InputTimestamp().String()}
		for _, tag := range tags {
			v := "-"
			if p := cc.Input(tag); !p.IsEmpty() {
				v = fmt.Sprint(p.Value())
			}
			parts = append(parts, tag+"="+v)
		}
		ev.add(strings.Join(parts, " "))
		return nil
	}}
}

func joinGraph(t *testing.T, handler string, ev *events, tags ...string) *Graph {
	var ins []string
	for _, tag := range tags {
		ins = append(ins, fmt.Sprintf("%q", tag+":"+strings.ToLower(tag)))
	}
	return build(t, fmt.Sprintf(`
input_streams: [%s]
nodes:
  - name: join
    calculator: Join
    input_streams: [%s]
    input_stream_handler: %s
`, strings.ToLower(strings.Join(tags, ", ")), strings.Join(ins, ", "), handler),
		spec("Join", Contract{Inputs: in(tags...)}, joinCalc(ev, tags...)))
}

func TestDefaultHandlerSynchronisesInputsOnSettledTimestamps(t *testing.T) {
	var ev events
	g := joinGraph(t, "{name: default}", &ev, "A", "B")
	start(t, g, nil)
	add(t, g, "a", 1, 1)
	add(t, g, "a", 2, 2)
	add(t, g, "a", 3, 3)
	idle(t, g)
	if got := ev.list(); len(got) != 0 {
		t.Fatalf("Process ran before B settled anything: %v", got)
	}
	// B stays silent but promises nothing below 3: timestamps 1 and 2
	// settle on both inputs and are processed with B empty; 3 waits.
	if err := g.SetInputStreamTimestampBound("b", 3); err != nil {
		t.Fatal(err)
	}
	idle(t, g)
	if got, want := ev.list(), []string{"1 A=1 B=-", "2 A=2 B=-"}; !slices.Equal(got, want) {
		t.Fatalf("after B's bound: %v, want %v", got, want)
	}
	add(t, g, "b", "x", 3)
	idle(t, g)
	// Bounds alone never call Process under the default handler.
	if err := g.SetInputStreamTimestampBound("a", 50); err != nil {
		t.Fatal(err)
	}
	if err := g.SetInputStreamTimestampBound("b", 60); err != nil {
		t.Fatal(err)
	}
	finish(t, g)
	want := []string{"1 A=1 B=-", "2 A=2 B=-", "3 A=3 B=x"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("Process calls %v, want %v", got, want)
	}
}

func TestImmediateHandlerProcessesEachInputAsItArrives(t *testing.T) {
	var ev events
	g := joinGraph(t, "immediate", &ev, "A", "B")
	start(t, g, nil)
	add(t, g, "a", 1, 1)
	idle(t, g)
	add(t, g, "a", 2, 2)
	idle(t, g)
	// B's packet at 1 comes after A reached 2: the immediate handler does
	// not wait for or reorder across inputs.
	add(t, g, "b", "x", 1)
	finish(t, g)
	want := []string{"1 A=1 B=-", "2 A=2 B=-", "1 A=- B=x"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("Process calls %v, want %v", got, want)
	}
}

func TestSyncSetHandlerSynchronisesWithinSetsOnly(t *testing.T) {
	var ev events
	g := joinGraph(t, "{name: sync_set, options: {sync_sets: [[A, B]]}}", &ev, "A", "B", "C")
	start(t, g, nil)
	add(t, g, "a", 1, 1)
	add(t, g, "c", "z", 5)
	idle(t, g)
	// C is alone in its set and runs; A waits for B.
	if got, want := ev.list(), []string{"5 A=- B=- C=z"}; !slices.Equal(got, want) {
		t.Fatalf("before B: %v, want %v", got, want)
	}
	add(t, g, "b", "y", 1)
	finish(t, g)
	want := []string{"5 A=- B=- C=z", "1 A=1 B=y C=-"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("Process calls %v, want %v", got, want)
	}
}

func TestFixedSizeHandlerDropsOldestPacketsWhileBusy(t *testing.T) {
	tests := []struct {
		name    string
		handler string
		want    []int
		dropped int64
	}{
		{"defaults keep the newest", "fixed_size", []int{1, 5}, 3},
		{"target 2", "{name: fixed_size, options: {trigger_queue_size: 3, target_queue_size: 2}}", []int{1, 4, 5}, 2},
		{"default handler keeps all", "default", []int{1, 2, 3, 4, 5}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 10)
			release := make(chan struct{})
			var ev events
			calc := &funcCalc{process: func(cc *CalculatorContext) error {
				started <- struct{}{}
				<-release
				ev.add(fmt.Sprint(cc.Input("").Value()))
				return nil
			}}
			g := build(t, `
input_streams: [frames]
nodes:
  - name: slow
    calculator: Slow
    input_streams: [frames]
    input_stream_handler: `+tt.handler+`
`, spec("Slow", Contract{Inputs: in("")}, calc))
			start(t, g, nil)
			add(t, g, "frames", 1, 1)
			<-started // the engine is busy with frame 1
			for i := 2; i <= 5; i++ {
				add(t, g, "frames", i, Timestamp(i))
			}
			close(release)
			finish(t, g)
			var got []int
			for _, s := range ev.list() {
				var i int
				fmt.Sscan(s, &i)
				got = append(got, i)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("processed %v, want %v", got, tt.want)
			}
			if d := g.Profile().Nodes[0].Inputs[0].Dropped; d != tt.dropped {
				t.Errorf("dropped %d, want %d", d, tt.dropped)
			}
		})
	}
}

func TestBackEdgeLoopComputesRunningSum(t *testing.T) {
	sum := &funcCalc{process: func(cc *CalculatorContext) error {
		v, _ := As[int](cc.Input("IN"))
		prev, _ := As[int](cc.Input("PREV"))
		return cc.Output("").Add(v+prev, cc.InputTimestamp())
	}}
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: PreviousLoopback
    input_streams: ["MAIN:in", "LOOP:sum"]
    output_streams: ["PREV_LOOP:prev"]
    back_edges: [LOOP]
  - calculator: Sum
    input_streams: ["IN:in", "PREV:prev"]
    output_streams: [sum]
`, WithCalculators(Spec{Name: "Sum", New: func() Calculator { return sum },
		Contract: Contract{Inputs: in("IN", "PREV"), Outputs: in("")}}))
	rec := observe(t, g, "sum")
	start(t, g, nil)
	for i := 1; i <= 4; i++ {
		add(t, g, "in", i, Timestamp(i*10))
	}
	finish(t, g)
	var got []int
	for _, p := range rec.packets() {
		got = append(got, p.Value().(int))
	}
	if want := []int{1, 3, 6, 10}; !slices.Equal(got, want) {
		t.Fatalf("running sums %v, want %v", got, want)
	}
	if want := []Timestamp{10, 20, 30, 40}; !slices.Equal(timestamps(rec.packets()), want) {
		t.Fatalf("timestamps %v, want %v", timestamps(rec.packets()), want)
	}
}

// TestPreviousLoopbackIgnoresLoopPacketsAfterItClosed pins an order that
// used to fail the run one time in a few hundred: MAIN ends together with
// its last packet, which the loop's previous answer pairs with at once, so
// PreviousLoopback closes PREV_LOOP; then comes its end-of-MAIN call at Max
// (immediate handler with bounds processing), and only then the loop's
// answer to the last timestamp. That answer has nothing left to pair with
// and must not touch the closed stream.
func TestPreviousLoopbackIgnoresLoopPacketsAfterItClosed(t *testing.T) {
	sawMax := make(chan struct{})
	var once sync.Once
	loopback := func() Calculator {
		lb := &previousLoopback{prevMain: Unstarted, prevNonEmpty: Unstarted, prevLoop: Unset}
		return &funcCalc{process: func(cc *CalculatorContext) error {
			err := lb.Process(cc)
			if cc.InputTimestamp() == Max {
				once.Do(func() { close(sawMax) })
			}
			return err
		}}
	}
	// last ends MAIN in the call that sends its last packet.
	last := &funcCalc{process: func(cc *CalculatorContext) error {
		out := cc.Output("")
		err := out.AddPacket(cc.Input(""))
		if cc.Input("").Value() == 4 {
			out.Close()
		}
		return err
	}}
	sum := &funcCalc{process: func(cc *CalculatorContext) error {
		if cc.InputTimestamp() == 40 {
			<-sawMax // the last answer comes back after the loopback closed
		}
		v, _ := As[int](cc.Input("IN"))
		prev, _ := As[int](cc.Input("PREV"))
		return cc.Output("").Add(v+prev, cc.InputTimestamp())
	}}
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: Last
    input_streams: [in]
    output_streams: [main]
  - calculator: Loopback
    input_streams: ["MAIN:main", "LOOP:sum"]
    output_streams: ["PREV_LOOP:prev"]
    back_edges: [LOOP]
  - calculator: Sum
    input_streams: ["IN:main", "PREV:prev"]
    output_streams: [sum]
`, WithCalculators(Spec{Name: "Loopback", New: loopback, Contract: Contract{
		Inputs: in("MAIN", "LOOP"), Outputs: in("PREV_LOOP"), InputStreamHandler: HandlerImmediate, ProcessTimestampBounds: true}}),
		spec("Last", Contract{Inputs: in(""), Outputs: in("")}, last),
		spec("Sum", Contract{Inputs: in("IN", "PREV"), Outputs: in("")}, sum))
	rec := observe(t, g, "sum")
	start(t, g, nil)
	for i := 1; i <= 4; i++ {
		add(t, g, "in", i, Timestamp(i*10))
		if i < 4 {
			idle(t, g) // the loop's answer to i is back before i+1 comes
		}
	}
	finish(t, g)
	var got []int
	for _, p := range rec.packets() {
		got = append(got, p.Value().(int))
	}
	if want := []int{1, 3, 6, 10}; !slices.Equal(got, want) {
		t.Fatalf("running sums %v, want %v", got, want)
	}
}

func TestLoopWithoutBackEdgeIsRejected(t *testing.T) {
	diags := Validate([]byte(`
input_streams: [in]
nodes:
  - name: a
    calculator: Merge
    input_streams: [in, b_out]
    output_streams: [a_out]
  - name: b
    calculator: PassThrough
    input_streams: [a_out]
    output_streams: [b_out]
`))
	if len(diags) != 1 || !strings.Contains(diags[0].Message, `nodes "a", "b" form a cycle`) || diags[0].Line != 4 {
		t.Fatalf("diagnostics %v, want one cycle report at line 4", diags)
	}
}

func TestHandlerOptionsAreChecked(t *testing.T) {
	tests := []struct{ handler, want string }{
		{"bogus", `unknown input stream handler "bogus"`},
		{"{name: fixed_size, options: {target_queue_size: 3}}", "need 1 <= target_queue_size < trigger_queue_size, got 3 and 2"},
		{"{name: immediate, options: {x: 1}}", `input stream handler immediate takes no options, got "x"`},
		{"{name: sync_set, options: {sync_sets: [[A, Q]]}}", "sync_set: Q names no input"},
		{"{name: sync_set, options: {sync_sets: [[A], [A]]}}", "is in two sync sets"},
		{"{name: default, options: {batch_size: 0}}", "batch_size must be 1 or more, got 0"},
		{"{name: default, options: {batch_size: many}}", "batch_size:"},
		{"{name: default, options: {batch: 2}}", `unknown option "batch" (options: batch_size)`},
		{"{name: early_close, options: {x: 1}}", `input stream handler early_close takes no options, got "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.handler, func(t *testing.T) {
			diags := Validate([]byte(`
input_streams: [a]
nodes:
  - calculator: PassThrough
    input_streams: ["A:a"]
    output_streams: ["A:b"]
    input_stream_handler: `+tt.handler+"\n"), WithCalculators())
			if len(diags) != 1 || !strings.Contains(diags[0].Message, tt.want) || diags[0].Line != 7 {
				t.Fatalf("diagnostics %v, want one at line 7 containing %q", diags, tt.want)
			}
		})
	}
}

func TestParseHandlerBuildsSyncSets(t *testing.T) {
	inputs := []PortRef{{Tag: "A", Name: "a"}, {Tag: "B", Name: "b"}, {Tag: "C", Name: "c"}}
	tests := []struct {
		hc   HandlerConfig
		want [][]int
	}{
		{HandlerConfig{}, [][]int{{0, 1, 2}}},
		{HandlerConfig{Name: "immediate"}, [][]int{{0}, {1}, {2}}},
		{HandlerConfig{Name: "sync_set", Options: map[string]any{"sync_sets": []any{[]any{"C", "a"}}}}, [][]int{{2, 0}, {1}}},
	}
	for _, tt := range tests {
		h, problems := parseHandler(tt.hc, "", inputs)
		if len(problems) > 0 || !reflect.DeepEqual(h.sets, tt.want) {
			t.Errorf("parseHandler(%+v) = %v %v, want %v", tt.hc, h.sets, problems, tt.want)
		}
	}
}
