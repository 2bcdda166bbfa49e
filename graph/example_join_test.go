package graph_test

import (
	"context"
	"fmt"
	"reflect"

	"github.com/weir-media/weir/graph"
)

// caption joins two streams: each FRAME with the TEXT (a subtitle) at the
// same timestamp, if there is one. docs/graph.md walks through this
// example; keep the two in step.
type caption struct{ graph.Base }

func (caption) Open(cc *graph.CalculatorContext) error {
	cc.SetTimestampOffset(0) // output at input timestamps: bounds propagate
	return nil
}

func (caption) Process(cc *graph.CalculatorContext) error {
	frame, ok := graph.As[string](cc.Input("FRAME"))
	if !ok {
		return nil // a subtitle without a frame: nothing to caption
	}
	text := "(no subtitle)"
	if s, ok := graph.As[string](cc.Input("TEXT")); ok {
		text = s
	}
	return cc.Output("").Add(frame+": "+text, cc.InputTimestamp())
}

// Example_twoInputs runs a calculator with two synchronised inputs. The
// default input stream handler calls Process once per timestamp, only when
// that timestamp is settled on both inputs: a frame waits for the subtitle
// stream to pass its timestamp, by a packet or by a bound.
func Example_twoInputs() {
	spec := graph.Spec{
		Name: "Caption",
		Doc:  "Caption joins each FRAME with the TEXT at the same timestamp.",
		New:  func() graph.Calculator { return caption{} },
		Contract: graph.Contract{
			Inputs: []graph.PortSpec{
				{Tag: "FRAME", Type: reflect.TypeFor[string]()},
				{Tag: "TEXT", Type: reflect.TypeFor[string]()},
			},
			Outputs: []graph.PortSpec{{Tag: "", Type: reflect.TypeFor[string]()}},
		},
	}
	g, err := graph.NewFromYAML([]byte(`
input_streams: [frames, subtitles]
nodes:
  - calculator: Caption
    input_streams: ["FRAME:frames", "TEXT:subtitles"]
    output_streams: [captioned]
`), graph.WithCalculators(spec))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = g.ObserveOutputStream("captioned", func(p graph.Packet) error {
		fmt.Printf("%8v  %v\n", p.Timestamp(), p.Value())
		return nil
	})
	ctx := context.Background()
	if err := g.StartRun(ctx, nil); err != nil {
		fmt.Println(err)
		return
	}
	feed := func(stream, v string, ts graph.Timestamp) {
		if err := g.AddPacketToInputStream(stream, graph.MakePacket(v, ts)); err != nil {
			fmt.Println(err)
		}
	}
	feed("frames", "frame 0", 0)
	feed("frames", "frame 1", 40_000)
	feed("frames", "frame 2", 80_000)
	_ = g.WaitUntilIdle(ctx)
	fmt.Println("idle: the subtitle stream has settled nothing yet")
	feed("subtitles", "hello", 0)
	// No subtitle before 80ms: frame 1 is settled on both inputs.
	_ = g.SetInputStreamTimestampBound("subtitles", 80_000)
	feed("subtitles", "world", 80_000)
	_ = g.CloseAllInputStreams()
	fmt.Println(g.WaitUntilDone(ctx))
	// Output:
	// idle: the subtitle stream has settled nothing yet
	//        0  frame 0: hello
	//    40000  frame 1: (no subtitle)
	//    80000  frame 2: world
	// <nil>
}
