package graph

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

const passYAML = `
input_streams: [in]
nodes:
  - calculator: PassThrough
    input_streams: [in]
    output_streams: [out]
`

func TestGraphInputTimestampsMustIncrease(t *testing.T) {
	tests := []struct {
		name  string
		feed  func(g *Graph) error
		want  string
		isMis bool
	}{
		{
			name: "packet below the bound",
			feed: func(g *Graph) error {
				if err := g.AddPacketToInputStream("in", MakePacket(1, 20)); err != nil {
					return err
				}
				return g.AddPacketToInputStream("in", MakePacket(2, 10))
			},
			want:  `stream "in": packet timestamp mismatch: minimum expected timestamp is 21 but received 10`,
			isMis: true,
		},
		{
			name: "repeated timestamp",
			feed: func(g *Graph) error {
				_ = g.AddPacketToInputStream("in", MakePacket(1, 5))
				return g.AddPacketToInputStream("in", MakePacket(2, 5))
			},
			want:  `minimum expected timestamp is 6 but received 5`,
			isMis: true,
		},
		{
			name: "bound moving back",
			feed: func(g *Graph) error {
				_ = g.SetInputStreamTimestampBound("in", 21)
				return g.SetInputStreamTimestampBound("in", 10)
			},
			want:  `stream "in": timestamp bound moved back: minimum expected timestamp is 21 but received 10`,
			isMis: true,
		},
		{
			name: "packet below a bound",
			feed: func(g *Graph) error {
				_ = g.SetInputStreamTimestampBound("in", 100)
				return g.AddPacketToInputStream("in", MakePacket(1, 99))
			},
			want:  `minimum expected timestamp is 100 but received 99`,
			isMis: true,
		},
		{
			name: "unset timestamp",
			feed: func(g *Graph) error { return g.AddPacketToInputStream("in", MakePacket(1, Unset)) },
			want: `timestamp not set or set to a value packets cannot carry: Unset`,
		},
		{
			name: "PreStream not alone",
			feed: func(g *Graph) error {
				_ = g.AddPacketToInputStream("in", MakePacket("header", PreStream))
				return g.AddPacketToInputStream("in", MakePacket(1, 0))
			},
			want: `a packet at PreStream must be the only packet in the stream, but another came at 0`,
		},
		{
			name: "PostStream not alone",
			feed: func(g *Graph) error {
				_ = g.AddPacketToInputStream("in", MakePacket(1, 0))
				return g.AddPacketToInputStream("in", MakePacket("total", PostStream))
			},
			want: `a packet at PostStream must be the only packet in the stream`,
		},
		{
			name: "nothing after PostStream",
			feed: func(g *Graph) error {
				_ = g.AddPacketToInputStream("in", MakePacket("total", PostStream))
				return g.AddPacketToInputStream("in", MakePacket(1, Max))
			},
			want:  `minimum expected timestamp is OneOverPostStream but received Max`,
			isMis: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, passYAML)
			start(t, g, nil)
			err := tt.feed(g)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if errors.Is(err, ErrTimestampMismatch) != tt.isMis {
				t.Errorf("errors.Is(err, ErrTimestampMismatch) = %v", !tt.isMis)
			}
			// As in MediaPipe, a stream going back fails the run.
			if done := g.WaitUntilDone(testCtx(t)); done == nil || done.Error() != err.Error() {
				t.Errorf("run error = %v, want %v", done, err)
			}
		})
	}
}

func TestCalculatorOutputTimestampsMustIncrease(t *testing.T) {
	tests := []struct {
		name string
		emit func(cc *CalculatorContext) error
		want string
	}{
		{"packet going back", func(cc *CalculatorContext) error {
			_ = cc.Output("").Add(1, 20)
			return cc.Output("").Add(2, 10)
		}, `node "bad" (Emitter): stream "out": packet timestamp mismatch: minimum expected timestamp is 21 but received 10`},
		{"ignored error still fails the call", func(cc *CalculatorContext) error {
			_ = cc.Output("").Add(1, 20)
			_ = cc.Output("").Add(2, 10)
			return nil
		}, `node "bad" (Emitter): stream "out": packet timestamp mismatch: minimum expected timestamp is 21 but received 10`},
		{"bound going back", func(cc *CalculatorContext) error {
			_ = cc.Output("").SetNextTimestampBound(21)
			return nil
		}, ``},
		{"unknown output", func(cc *CalculatorContext) error {
			return cc.Output("NOPE").Add(1, 1)
		}, `node "bad" (Emitter): node has no output stream NOPE:0`},
		{"packet after close", func(cc *CalculatorContext) error {
			cc.Output("").Close()
			return cc.Output("").Add(1, 1)
		}, `node "bad" (Emitter): stream "out": packet sent to a closed stream`},
		{"illegal bound", func(cc *CalculatorContext) error {
			return cc.Output("").SetNextTimestampBound(Unstarted)
		}, `timestamp bound set to a value streams cannot have: Unstarted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			calc := &funcCalc{process: func(cc *CalculatorContext) error {
				calls++
				if tt.name == "bound going back" {
					if calls == 1 {
						return cc.Output("").SetNextTimestampBound(21)
					}
					return cc.Output("").SetNextTimestampBound(10)
				}
				return tt.emit(cc)
			}}
			g := build(t, `
input_streams: [in]
nodes:
  - name: bad
    calculator: Emitter
    input_streams: [in]
    output_streams: [out]
`, spec("Emitter", Contract{Inputs: in(""), Outputs: in("")}, calc))
			start(t, g, nil)
			add(t, g, "in", 1, 1)
			want := tt.want
			if tt.name == "bound going back" {
				add(t, g, "in", 2, 2)
				want = `node "bad" (Emitter): stream "out": timestamp bound moved back: minimum expected timestamp is 21 but received 10`
			}
			err := g.WaitUntilDone(testCtx(t))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("run error = %v, want it to contain %q", err, want)
			}
		})
	}
}

func TestEmptyPacketAdvancesTheBoundByOne(t *testing.T) {
	calc := &funcCalc{process: func(cc *CalculatorContext) error {
		// Emit nothing at the input timestamp, explicitly.
		return cc.Output("").Add(nil, cc.InputTimestamp())
	}}
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: Silent
    input_streams: [in]
    output_streams: [out]
`, spec("Silent", Contract{Inputs: in(""), Outputs: in("")}, calc))
	bounds := observe(t, g, "out", ObserveTimestampBounds())
	start(t, g, nil)
	add(t, g, "in", "a", 10)
	idle(t, g) // each bound is observed before the next one moves it
	add(t, g, "in", "b", 20)
	idle(t, g)
	finish(t, g)
	got := bounds.packets()
	// Each empty packet at t settles t (bound t+1); nothing carries data.
	if want := []Timestamp{10, 20}; !slices.Equal(timestamps(got), want) {
		t.Fatalf("bound notifications at %v, want %v", timestamps(got), want)
	}
	for _, p := range got {
		if !p.IsEmpty() {
			t.Errorf("bound notification carries data: %v", p)
		}
	}
}

func TestTimestampOffsetPropagatesBoundsWithoutProcess(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		bound  Timestamp
		settle Timestamp // timestamp of the bound notification downstream
	}{
		{"offset 0", passYAML, 100, 99},
		{"offset 10us", `
input_streams: [in]
nodes:
  - calculator: TimestampShift
    input_streams: [in]
    output_streams: [out]
    options: {offset: 10us}
`, 100, 109},
		{"negative offset", `
input_streams: [in]
nodes:
  - calculator: TimestampShift
    input_streams: [in]
    output_streams: [out]
    options: {offset: -50us}
`, 100, 49},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tt.yaml)
			rec := observe(t, g, "out", ObserveTimestampBounds())
			start(t, g, nil)
			if err := g.SetInputStreamTimestampBound("in", tt.bound); err != nil {
				t.Fatal(err)
			}
			idle(t, g)
			got := rec.packets()
			if len(got) != 1 || !got[0].IsEmpty() || got[0].Timestamp() != tt.settle {
				t.Fatalf("downstream saw %v, want one bound notification at %v", got, tt.settle)
			}
			if calls := g.Profile().Nodes[0].ProcessCalls; calls != 0 {
				t.Errorf("Process ran %d times for a bounds-only input, want 0", calls)
			}
		})
	}
}

func TestLargerOfOffsetAndExplicitBoundWins(t *testing.T) {
	tests := []struct {
		name     string
		explicit func(ts Timestamp) Timestamp
		want     Timestamp // settled timestamp downstream after Process at 10
	}{
		{"explicit larger", func(ts Timestamp) Timestamp { return ts + 50 }, 59},
		{"offset larger", func(ts Timestamp) Timestamp { return ts }, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calc := &funcCalc{
				open: func(cc *CalculatorContext) error { cc.SetTimestampOffset(0); return nil },
				process: func(cc *CalculatorContext) error {
					return cc.Output("").SetNextTimestampBound(tt.explicit(cc.InputTimestamp()))
				},
			}
			g := build(t, `
input_streams: [in]
nodes:
  - calculator: Bounder
    input_streams: [in]
    output_streams: [out]
`, spec("Bounder", Contract{Inputs: in(""), Outputs: in("")}, calc))
			rec := observe(t, g, "out", ObserveTimestampBounds())
			start(t, g, nil)
			add(t, g, "in", 1, 10)
			idle(t, g)
			got := rec.packets()
			if len(got) == 0 || got[len(got)-1].Timestamp() != tt.want {
				t.Fatalf("bound notifications %v, want the last at %v", timestamps(got), tt.want)
			}
		})
	}
}

func TestProcessTimestampBoundsCallsProcessOncePerSettledTimestamp(t *testing.T) {
	for _, bounds := range []bool{false, true} {
		t.Run(map[bool]string{false: "packets only", true: "bounds processing"}[bounds], func(t *testing.T) {
			var ev events
			calc := &funcCalc{
				open: func(cc *CalculatorContext) error { cc.SetProcessTimestampBounds(bounds); return nil },
				process: func(cc *CalculatorContext) error {
					p := cc.Input("")
					kind := "packet"
					if p.IsEmpty() {
						kind = "bound"
					}
					ev.add(cc.InputTimestamp().String() + ":" + kind)
					return nil
				},
			}
			g := build(t, `
input_streams: [in]
nodes:
  - calculator: Watcher
    input_streams: [in]
`, spec("Watcher", Contract{Inputs: in("")}, calc))
			start(t, g, nil)
			steps := []func() error{
				func() error { return g.SetInputStreamTimestampBound("in", 5) },
				func() error { return g.AddPacketToInputStream("in", MakePacket(1, 7)) },
				func() error { return g.SetInputStreamTimestampBound("in", 10) },
				func() error { return g.SetInputStreamTimestampBound("in", 10) }, // no change, no call
			}
			for _, s := range steps {
				if err := s(); err != nil {
					t.Fatal(err)
				}
				idle(t, g)
			}
			finish(t, g)
			want := []string{"7:packet"}
			if bounds {
				want = []string{"4:bound", "7:packet", "9:bound"}
			}
			if got := ev.list(); !slices.Equal(got, want) {
				t.Fatalf("Process calls %v, want %v", got, want)
			}
		})
	}
}

func TestOffsetClosesOutputsWithInputsSoCloseCannotEmit(t *testing.T) {
	for _, offset := range []bool{false, true} {
		t.Run(map[bool]string{false: "no offset", true: "offset 0"}[offset], func(t *testing.T) {
			calc := &funcCalc{
				open: func(cc *CalculatorContext) error {
					if offset {
						cc.SetTimestampOffset(0)
					}
					return nil
				},
				close: func(cc *CalculatorContext) error { return cc.Output("").Add("summary", PostStream) },
			}
			g := build(t, `
input_streams: [in]
nodes:
  - name: summary
    calculator: Summarizer
    input_streams: [in]
    output_streams: [out]
`, spec("Summarizer", Contract{Inputs: in(""), Outputs: in("")}, calc), WithLogger(slog.New(slog.DiscardHandler)))
			rec := observe(t, g, "out")
			start(t, g, nil)
			_ = g.CloseAllInputStreams()
			err := g.WaitUntilDone(testCtx(t))
			if offset {
				if err == nil || !strings.Contains(err.Error(), `node "summary" (Summarizer): Close: stream "out": packet sent to a closed stream`) {
					t.Fatalf("run error %v", err)
				}
				return
			}
			if err != nil || len(rec.packets()) != 1 || rec.packets()[0].Timestamp() != PostStream {
				t.Fatalf("run error %v, packets %v; want the PostStream summary", err, rec.packets())
			}
		})
	}
}
