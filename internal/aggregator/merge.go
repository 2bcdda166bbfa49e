package aggregator

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/metastore"
)

// share is one task's part of one window: the packet a task's graph
// input carries at the window's last microsecond.
type share struct {
	seq            int64
	startMs, endMs int64
	engine         string
	results        []metastore.Result
	// forced: the task was timed out; its results so far, and no promise.
	forced bool
	final  bool
	// offset is the results topic offset read when the share was added.
	offset int64
}

// merged is a window as WindowMerge emits it.
type merged struct {
	seq            int64
	startMs, endMs int64
	results        []metastore.Result
	missing        []string
	final          bool
	through        int64
}

// windowMerge is the WindowMerge calculator: at each window's timestamp
// it joins every task's share into one window.
type windowMerge struct{ graph.Base }

// Open declares outputs at the input timestamps, so the output stream's
// bound follows the inputs'.
func (windowMerge) Open(cc *graph.CalculatorContext) error {
	cc.SetTimestampOffset(0)
	return nil
}

// Process merges the shares at the input timestamp. Every task feeds a
// share for every window, so every input has one.
func (windowMerge) Process(cc *graph.CalculatorContext) error {
	var m *merged
	for i := range cc.InputCount(tagResults) {
		s, ok := graph.As[*share](cc.InputAt(tagResults, i))
		if !ok {
			return fmt.Errorf("window at %v: input %d has no share", cc.InputTimestamp(), i)
		}
		if m == nil {
			m = &merged{seq: s.seq, startMs: s.startMs, endMs: s.endMs, through: -1}
		}
		m.add(s)
	}
	if m == nil {
		return nil
	}
	slices.SortFunc(m.results, compareResults)
	slices.Sort(m.missing)
	return cc.Output(tagWindow).Add(m, cc.InputTimestamp())
}

func (m *merged) add(s *share) {
	m.results = append(m.results, s.results...)
	if s.forced {
		m.missing = append(m.missing, s.engine)
	}
	m.final = m.final || s.final
	m.through = max(m.through, s.offset)
}

// compareResults orders results as the store lists them: start, end,
// engine, chunk.
func compareResults(a, b metastore.Result) int {
	return cmp.Or(cmp.Compare(a.StartMs, b.StartMs), cmp.Compare(a.EndMs, b.EndMs),
		cmp.Compare(a.Engine, b.Engine), cmp.Compare(a.ChunkUUID, b.ChunkUUID), cmp.Compare(a.Rev, b.Rev))
}

const (
	tagResults   = "RESULTS"
	tagWindow    = "WINDOW"
	windowStream = "windows"
	calcName     = "WindowMerge"
)

var mergeSpec = graph.Spec{
	Name: calcName,
	Doc:  "WindowMerge joins every engine task's share of a window, at the window's timestamp, into the window's merged results.",
	New:  func() graph.Calculator { return windowMerge{} },
	Contract: graph.Contract{
		Inputs:  []graph.PortSpec{{Tag: tagResults, Repeated: true, Type: reflect.TypeFor[*share](), Doc: "one engine task's shares"}},
		Outputs: []graph.PortSpec{{Tag: tagWindow, Type: reflect.TypeFor[*merged](), Doc: "merged windows"}},
	},
}

// inputName is the graph input stream of the i-th task.
func inputName(i int) string { return "task" + strconv.Itoa(i) }

// newGraph builds the aggregator's graph for n tasks:
//
//	input_streams: [task0, task1, ...]
//	nodes:
//	  - calculator: WindowMerge
//	    input_streams: ["RESULTS:0:task0", "RESULTS:1:task1", ...]
//	    output_streams: ["WINDOW:windows"]
func newGraph(n int, opts ...graph.Option) (*graph.Graph, error) {
	b := graph.NewBuilder().NumThreads(1)
	node := b.Node(calcName, "merge")
	for i := range n {
		b.InputStream(inputName(i))
		node.In(tagResults+":"+strconv.Itoa(i), inputName(i))
	}
	node.Out(tagWindow, windowStream)
	cfg, err := b.Config()
	if err != nil {
		return nil, err
	}
	return graph.New(cfg, append(opts, graph.WithCalculators(mergeSpec))...)
}
