package graph

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func values(pkts []Packet) []string {
	var out []string
	for _, p := range pkts {
		out = append(out, fmt.Sprintf("%v@%v", p.Value(), p.Timestamp()))
	}
	return out
}

func TestBuiltinCalculators(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		feed func(t *testing.T, g *Graph)
		want []string
	}{
		{"PassThrough mirrors tagged ports", `
input_streams: [a, b]
nodes:
  - calculator: PassThrough
    input_streams: ["VIDEO:a", "AUDIO:b"]
    output_streams: ["AUDIO:out", "VIDEO:v"]
`, func(t *testing.T, g *Graph) {
			add(t, g, "a", "frame", 1)
			add(t, g, "b", "chunk", 2)
		}, []string{"chunk@2"}},
		{"TimestampShift keeps PreStream", `
input_streams: [in]
nodes:
  - calculator: TimestampShift
    input_streams: [in]
    output_streams: [out]
    options: {offset: 2ms}
`, func(t *testing.T, g *Graph) { add(t, g, "in", "header", PreStream) }, []string{"header@PreStream"}},
		{"Counter counts", `
input_streams: [in]
nodes:
  - calculator: Counter
    input_streams: [in]
    output_streams: [out]
`, func(t *testing.T, g *Graph) {
			for _, ts := range []Timestamp{5, 9, 12} {
				add(t, g, "in", "x", ts)
			}
		}, []string{"1@5", "2@9", "3@12"}},
		{"Gate follows its ALLOW stream", `
input_streams: [in, allow]
nodes:
  - calculator: Gate
    input_streams: [in, "ALLOW:allow"]
    output_streams: [out]
`, func(t *testing.T, g *Graph) {
			add(t, g, "allow", false, 0)
			add(t, g, "in", "a", 1)
			add(t, g, "allow", true, 2)
			add(t, g, "in", "b", 2)
			add(t, g, "in", "c", 3)
			add(t, g, "allow", false, 4)
			add(t, g, "in", "d", 4)
		}, []string{"b@2", "c@3"}},
		{"Gate closed by option", `
input_streams: [in]
nodes:
  - calculator: Gate
    input_streams: [in]
    output_streams: [out]
    options: {allow: false}
`, func(t *testing.T, g *Graph) { add(t, g, "in", "a", 1) }, nil},
		{"Merge prefers the lowest index", `
input_streams: [a, b]
nodes:
  - calculator: Merge
    input_streams: [a, b]
    output_streams: [out]
`, func(t *testing.T, g *Graph) {
			add(t, g, "a", "a1", 1)
			add(t, g, "b", "b1", 1)
			add(t, g, "b", "b2", 2)
			add(t, g, "a", "a3", 3)
		}, []string{"a1@1", "b2@2", "a3@3"}},
		{"Throttle keeps one per interval", `
input_streams: [in]
nodes:
  - calculator: Throttle
    input_streams: [in]
    output_streams: [out]
    options: {interval: 10us}
`, func(t *testing.T, g *Graph) {
			for _, ts := range []Timestamp{0, 4, 9, 10, 15, 25, 26} {
				add(t, g, "in", int(ts), ts)
			}
		}, []string{"0@0", "10@10", "25@25"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tt.yaml)
			rec := observe(t, g, "out")
			start(t, g, nil)
			tt.feed(t, g)
			finish(t, g)
			if got := values(rec.packets()); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestThrottleRefusesANonPositiveInterval(t *testing.T) {
	for _, interval := range []string{"-1s", "0s"} {
		g := build(t, `
input_streams: [in]
nodes:
  - name: limit
    calculator: Throttle
    input_streams: [in]
    output_streams: [out]
    options: {interval: `+interval+`}
`)
		err := g.StartRun(testCtx(t), nil)
		if err == nil {
			err = g.WaitUntilDone(testCtx(t))
		}
		if err == nil || !strings.Contains(err.Error(), "interval must be positive") || !strings.Contains(err.Error(), "limit") {
			t.Errorf("interval %s: err = %v, want a refusal naming the node and the option", interval, err)
		}
	}
}

func TestCounterSetsTotalSidePacket(t *testing.T) {
	g := build(t, `
output_side_packets: [total]
nodes:
  - calculator: Sequence
    output_streams: [n]
    options: {count: 7}
  - calculator: Counter
    input_streams: [n]
    output_side_packets: ["TOTAL:total"]
`)
	start(t, g, nil)
	if err := g.WaitUntilDone(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if v, ok := g.OutputSidePacket("total"); !ok || v != int64(7) {
		t.Fatalf("total = %v %v, want 7", v, ok)
	}
}

func TestRegistryListsBuiltinsSorted(t *testing.T) {
	var names []string
	for _, s := range Registered() {
		names = append(names, s.Name)
		if s.Doc == "" || !strings.HasPrefix(s.Doc, s.Name) {
			t.Errorf("%s: doc should start with the calculator's name: %q", s.Name, s.Doc)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Registered() not sorted: %v", names)
	}
	for _, want := range []string{"Counter", "Gate", "Merge", "PassThrough", "PreviousLoopback", "Sequence", "Throttle", "TimestampShift"} {
		if !slices.Contains(names, want) {
			t.Errorf("built-in %s not registered", want)
		}
	}
	if _, ok := Lookup("PassThrough"); !ok {
		t.Error("Lookup(PassThrough) failed")
	}
}

func TestRegisterRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "PassThrough", New: func() Calculator { return &passThrough{} }}, "registered twice"},
		{Spec{Name: "9lives", New: func() Calculator { return &passThrough{} }}, "must start with a letter"},
		{Spec{Name: "NoNew"}, "has no New function"},
		{Spec{Name: "BadDefault", New: func() Calculator { return &passThrough{} },
			Options: []OptionSpec{{Name: "n", Type: OptInt, Default: "three"}}}, `option "n" default`},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Errorf("Register(%s) panic = %v, want %q", tt.spec.Name, r, tt.want)
				}
			}()
			Register(tt.spec)
		}()
	}
}
