package graph_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/weir-media/weir/graph"
)

// upper is a calculator: it upper-cases strings, keeping timestamps.
type upper struct{ graph.Base }

func (upper) Process(cc *graph.CalculatorContext) error {
	s, ok := graph.As[string](cc.Input("TEXT"))
	if !ok {
		return nil // nothing at this timestamp
	}
	return cc.Output("TEXT").Add(strings.ToUpper(s), cc.InputTimestamp())
}

// Example declares a graph in YAML with a calculator of its own, feeds it
// and reads the results.
func Example() {
	spec := graph.Spec{
		Name: "Upper",
		Doc:  "Upper upper-cases TEXT.",
		New:  func() graph.Calculator { return upper{} },
		Contract: graph.Contract{
			Inputs:  []graph.PortSpec{{Tag: "TEXT", Type: reflect.TypeFor[string]()}},
			Outputs: []graph.PortSpec{{Tag: "TEXT", Type: reflect.TypeFor[string]()}},
		},
	}
	g, err := graph.NewFromYAML([]byte(`
input_streams: [words]
nodes:
  - calculator: Upper
    input_streams: ["TEXT:words"]
    output_streams: ["TEXT:shouted"]
  - calculator: TimestampShift
    input_streams: [shouted]
    output_streams: [late]
    options: {offset: 1s}
`), graph.WithCalculators(spec))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = g.ObserveOutputStream("late", func(p graph.Packet) error {
		fmt.Println(p.Value(), p.Timestamp())
		return nil
	})
	ctx := context.Background()
	if err := g.StartRun(ctx, nil); err != nil {
		fmt.Println(err)
		return
	}
	for i, w := range []string{"real", "time"} {
		_ = g.AddPacketToInputStream("words", graph.MakePacket(w, graph.Timestamp(i*40_000)))
	}
	_ = g.CloseAllInputStreams()
	fmt.Println(g.WaitUntilDone(ctx))
	// Output:
	// REAL 1000000
	// TIME 1040000
	// <nil>
}

// ExampleValidate shows the diagnostics for a configuration with mistakes.
func ExampleValidate() {
	diags := graph.Validate([]byte(`input_streams: [frames]
nodes:
  - calculator: PassThru
    input_streams: [frames]
    output_streams: [out]
  - calculator: Throttle
    input_streams: [framez]
    output_streams: [sampled]
`))
	for _, d := range diags {
		fmt.Println(d)
	}
	// Output:
	// line 3: node "PassThru": unknown calculator "PassThru" (did you mean "PassThrough"?)
	// line 6: node "Throttle": required option "interval" is not set
	// line 7: node "Throttle": input stream "framez" is not connected: no node produces it and it is not a graph input stream
}

// ExampleNewBuilder builds the same kind of graph in Go.
func ExampleNewBuilder() {
	b := graph.NewBuilder().InputStream("frames").OutputStream("sampled")
	b.Node("Throttle", "sample").In("", "frames").Out("", "sampled").Option("interval", "1s").
		Handler(graph.HandlerFixedSize, nil)
	cfg, err := b.Config()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(cfg.Validate()), "problems")
	// Output: 0 problems
}
