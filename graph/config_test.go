package graph

import (
	"context"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

func TestValidateReportsProblemsWithTheirLines(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"syntax error", "input_streams: [in\nnodes: []\n", 1, "did not find expected ',' or ']'"},
		{"bad indentation", "num_threads: 2\nmax_queue_size: 2\n  report_deadlock: true\n", 3, "mapping values are not allowed in this context"},
		{"not a mapping", "- a\n- b\n", 1, "must be a mapping"},
		{"unknown top-level field", "input_stream: [in]\n", 1, `unknown field "input_stream"`},
		{"unknown node field", `
nodes:
  - calculator: Sequence
    output_streams: [n]
    outputs: [x]
`, 5, `unknown field "outputs"`},
		{"unknown calculator with a suggestion", `
input_streams: [in]
nodes:
  - calculator: PassThru
    input_streams: [in]
    output_streams: [out]
`, 4, `node "PassThru": unknown calculator "PassThru" (did you mean "PassThrough"?)`},
		{"node without calculator", `
nodes:
  - name: lost
`, 3, `node "lost" has no calculator`},
		{"unconnected input", `
input_streams: [in]
nodes:
  - calculator: PassThrough
    input_streams:
      - in
      - missing
    output_streams: [a, b]
`, 7, `input stream "missing" is not connected: no node produces it and it is not a graph input stream`},
		{"stream produced twice", `
input_streams: [in]
nodes:
  - name: first
    calculator: PassThrough
    input_streams: [in]
    output_streams: [out]
  - name: second
    calculator: Counter
    input_streams: [in]
    output_streams: [out]
`, 11, `stream "out" is produced twice: by node "first" (line 4) and by node "second"`},
		{"graph input produced by a node", `
input_streams: [in]
nodes:
  - calculator: Sequence
    output_streams: [in]
`, 5, `stream "in" is produced twice: by the graph input and by node "Sequence"`},
		{"type mismatch", `
nodes:
  - calculator: Sequence
    output_streams: [n]
  - calculator: Gate
    input_streams: [n, "ALLOW:n"]
    output_streams: [out]
`, 6, `stream "n": type mismatch: node "Sequence" produces int64 but node "Gate" input ALLOW expects bool`},
		{"malformed stream name", `
input_streams: [in]
nodes:
  - calculator: PassThrough
    input_streams: ["Video:in"]
    output_streams: [out]
`, 5, `tag "Video" must be upper case`},
		{"port bound twice", `
input_streams: [a, b]
nodes:
  - calculator: Merge
    input_streams: [":0:a", ":0:b"]
    output_streams: [out]
`, 4, `port :0 is bound twice`},
		{"unknown tag", `
input_streams: [in]
nodes:
  - calculator: Counter
    input_streams: [in, "FOO:in"]
`, 5, `input stream "FOO:in": the calculator has no input stream tagged FOO (it has: "" (untagged))`},
		{"required input missing", `
input_streams: [in]
nodes:
  - calculator: PreviousLoopback
    input_streams: ["MAIN:in"]
    output_streams: ["PREV_LOOP:p"]
`, 4, `required input stream LOOP is not connected`},
		{"unknown option", `
nodes:
  - calculator: Sequence
    output_streams: [n]
    options:
      count: 3
      cuont: 4
`, 7, `unknown option "cuont" (options: count, start, step, first_timestamp, interval)`},
		{"option of the wrong type", `
nodes:
  - calculator: Sequence
    output_streams: [n]
    options:
      count: ten
`, 6, `option "count": want int, got string ten`},
		{"required option", `
input_streams: [in]
nodes:
  - calculator: Throttle
    input_streams: [in]
    output_streams: [out]
`, 4, `required option "interval" is not set`},
		{"bad duration", `
input_streams: [in]
nodes:
  - calculator: Throttle
    input_streams: [in]
    output_streams: [out]
    options: {interval: soon}
`, 7, `option "interval": want a duration such as "250ms"`},
		{"duplicate node names", `
input_streams: [in]
nodes:
  - name: x
    calculator: Counter
    input_streams: [in]
  - name: x
    calculator: Counter
    input_streams: [in]
`, 7, `node name "x" is already used by the node at line 4`},
		{"graph output not produced", `
input_streams: [in]
output_streams: [nowhere]
nodes:
  - calculator: Counter
    input_streams: [in]
`, 3, `graph output stream "nowhere" is produced by no node`},
		{"undeclared side packet", `
input_streams: [in]
nodes:
  - calculator: Gate
    input_streams: [in]
    output_streams: [out]
    input_side_packets: ["ALLOW:allow"]
`, 7, `input side packet "allow" is produced by no node and is not declared in input_side_packets`},
		{"back edge naming no input", `
input_streams: [in]
nodes:
  - calculator: PassThrough
    input_streams: [in]
    output_streams: [out]
    back_edges: [LOOP]
`, 7, `back edge "LOOP" names no input`},
		{"negative threads", "num_threads: -2\n", 1, "num_threads must be 0 (one per CPU) or more, got -2"},
		{"non-integer queue size", "max_queue_size: lots\n", 1, `want an integer, got "lots"`},
		{"graph streams are plain names", "input_streams: [\"IN:in\"]\n", 1, `graph streams and side packets are plain names`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := Validate([]byte(tt.yaml))
			if len(diags) != 1 {
				t.Fatalf("got %d diagnostics %v, want one", len(diags), diags)
			}
			if diags[0].Line != tt.line || !strings.Contains(diags[0].Message, tt.want) {
				t.Fatalf("got %q, want line %d: ...%s...", diags[0], tt.line, tt.want)
			}
		})
	}
}

func TestValidGraphsHaveNoDiagnostics(t *testing.T) {
	for _, yaml := range []string{passYAML, `
input_streams: [frames, allow]
output_streams: [sampled]
num_threads: 2
max_queue_size: -1
report_deadlock: true
nodes:
  - name: gate
    calculator: Gate
    input_streams: [frames, "ALLOW:allow"]
    output_streams: [gated]
  - name: sample
    calculator: Throttle
    input_streams: [gated]
    output_streams: [sampled]
    options: {interval: 1s}
    input_stream_handler: {name: fixed_size, options: {trigger_queue_size: 4, target_queue_size: 2}}
`} {
		if diags := Validate([]byte(yaml)); len(diags) != 0 {
			t.Errorf("unexpected diagnostics %v for\n%s", diags, yaml)
		}
	}
}

func TestNewReportsEveryDiagnostic(t *testing.T) {
	_, err := NewFromYAML([]byte(`
nodes:
  - calculator: Nope
  - calculator: Counter
    input_streams: [missing]
`))
	de, ok := err.(DiagnosticsError)
	if !ok || len(de) != 2 {
		t.Fatalf("err = %v, want two diagnostics", err)
	}
	want := `invalid graph config: line 3: node "Nope": unknown calculator "Nope"; line 5: node "Counter": input stream "missing" is not connected`
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q\nwant prefix %q", err, want)
	}
}

func TestParseStreamRef(t *testing.T) {
	tests := []struct {
		in      string
		want    StreamRef
		wantErr string
	}{
		{"frames", StreamRef{Index: -1, Name: "frames"}, ""},
		{"VIDEO:frames", StreamRef{Tag: "VIDEO", Index: -1, Name: "frames"}, ""},
		{"IN:2:audio_1", StreamRef{Tag: "IN", Index: 2, Name: "audio_1"}, ""},
		{":1:x", StreamRef{Index: 1, Name: "x"}, ""},
		{"IN:-1:x", StreamRef{}, "not a small non-negative integer"},
		{"in:x", StreamRef{}, "must be upper case"},
		{"IN:Frames", StreamRef{}, "must be lower case"},
		{"a:b:c:d", StreamRef{}, "want TAG:index:name"},
		{"", StreamRef{}, "must be lower case"},
	}
	for _, tt := range tests {
		got, err := ParseStreamRef(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStreamRef(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseStreamRef(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestUntaggedStreamsGetSuccessiveIndexes(t *testing.T) {
	cfg, diags := ParseConfig([]byte(`
input_streams: [a, b, c]
nodes:
  - calculator: Merge
    input_streams: [a, b, "VIDEO:c", "VIDEO:1:d"]
`))
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	var got []string
	for _, r := range cfg.Nodes[0].InputStreams {
		got = append(got, r.Ref().Key()+"="+r.Name)
	}
	if want := []string{":0=a", ":1=b", "VIDEO:0=c", "VIDEO:1=d"}; !slices.Equal(got, want) {
		t.Fatalf("ports %v, want %v", got, want)
	}
}

func TestBuilderMatchesYAML(t *testing.T) {
	b := NewBuilder().InputStream("in").OutputStream("out").NumThreads(2).MaxQueueSize(10)
	b.Node("PassThrough", "pass").In("", "in").Out("", "mid")
	b.Node("TimestampShift", "").In("", "mid").Out("", "out").Option("offset", "5us")
	cfg, err := b.Config()
	if err != nil {
		t.Fatal(err)
	}
	yamlCfg, diags := ParseConfig([]byte(`
input_streams: [in]
output_streams: [out]
num_threads: 2
max_queue_size: 10
nodes:
  - name: pass
    calculator: PassThrough
    input_streams: [in]
    output_streams: [mid]
  - calculator: TimestampShift
    input_streams: [mid]
    output_streams: [out]
    options: {offset: 5us}
`))
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if !reflect.DeepEqual(stripLines(cfg), stripLines(yamlCfg)) {
		t.Fatalf("builder config\n%+v\ndiffers from YAML\n%+v", stripLines(cfg), stripLines(yamlCfg))
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := observe(t, g, "out")
	if err := g.StartRun(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	add(t, g, "in", "x", 10)
	finish(t, g)
	if got := rec.packets(); len(got) != 1 || got[0].Timestamp() != 15 {
		t.Fatalf("got %v, want x@15", got)
	}
}

func TestBuilderReportsMalformedNames(t *testing.T) {
	b := NewBuilder().InputStream("In")
	b.Node("Merge", "").In("lower", "a").In("", "a").In("", "b")
	b.Node("Merge", "").In("", "x").In(":0", "y")
	_, err := b.Config()
	if err == nil || !strings.Contains(err.Error(), `name "In" must be lower case`) ||
		!strings.Contains(err.Error(), `tag "lower" must be upper case`) || !strings.Contains(err.Error(), "port :0 is bound twice") {
		t.Fatalf("err = %v", err)
	}
}

// stripLines clears position fields so configs built in Go and parsed from
// YAML compare equal.
func stripLines(c *Config) Config {
	out := *c
	out.NumThreadsLine, out.MaxQueueSizeLine = 0, 0
	strip := func(rs []StreamRef) []StreamRef {
		var o []StreamRef
		for _, r := range rs {
			r.Line = 0
			o = append(o, r)
		}
		return o
	}
	out.InputStreams, out.OutputStreams = strip(c.InputStreams), strip(c.OutputStreams)
	out.Nodes = nil
	for _, n := range c.Nodes {
		n.Line, n.CalculatorLine, n.OptionLines, n.MaxInFlightLine, n.BackEdgesLine = 0, 0, nil, 0, 0
		n.InputStreams, n.OutputStreams = strip(n.InputStreams), strip(n.OutputStreams)
		n.InputStreamHandler.Line = 0
		out.Nodes = append(out.Nodes, n)
	}
	return out
}

func TestDotRendersNodesStreamsAndBackEdges(t *testing.T) {
	cfg, diags := ParseConfig([]byte(`
input_streams: [in]
output_streams: [sum]
input_side_packets: [limit]
nodes:
  - calculator: PreviousLoopback
    input_streams: ["MAIN:in", "LOOP:sum"]
    output_streams: ["PREV_LOOP:prev"]
    back_edges: [LOOP]
  - name: adder
    calculator: Sum
    input_streams: ["IN:in", "PREV:prev", ghost]
    input_side_packets: ["LIMIT:limit"]
    output_streams: [sum]
`))
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	dot := Dot(cfg)
	for _, want := range []string{
		`digraph weir {`,
		`"input:in" [shape=ellipse, label="in"];`,
		`"side:limit" [shape=note, label="limit"];`,
		`"node:adder" [label="adder\nSum"];`,
		`"input:in" -> "node:PreviousLoopback" [label="in → MAIN:0"];`,
		`"node:adder" -> "node:PreviousLoopback" [label="sum → LOOP:0", style=dashed, constraint=false];`,
		`"node:PreviousLoopback" -> "node:adder" [label="prev → PREV:0"];`,
		`"missing:ghost" [shape=ellipse, color=red, fontcolor=red, label="ghost?"];`,
		`"side:limit" -> "node:adder" [style=dotted, label="limit → LIMIT:0"];`,
		`"node:adder" -> "output:sum";`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s\n%s", want, dot)
		}
	}
	testenv.RequireTool(t, "dot")
	cmd := exec.Command("dot", "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("graphviz rejects the output: %v\n%s", err, out)
	}
}
