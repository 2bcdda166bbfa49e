package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"
)

func TestMaxInFlightRunsInParallelAndDeliversInOrder(t *testing.T) {
	const n = 4
	var inFlight atomic.Int32
	release := make([]chan struct{}, n+1)
	for i := range release {
		release[i] = make(chan struct{})
	}
	square := &funcCalc{process: func(cc *CalculatorContext) error {
		inFlight.Add(1)
		ts := cc.InputTimestamp()
		<-release[ts]
		v := cc.Input("").Value().(int)
		return cc.Output("").Add(v*v, ts)
	}}
	g := build(t, `
input_streams: [in]
num_threads: 6
nodes:
  - name: square
    calculator: Square
    input_streams: [in]
    output_streams: [out]
    max_in_flight: 4
`, WithCalculators(Spec{Name: "Square", New: func() Calculator { return square },
		Contract: Contract{Inputs: in(""), Outputs: in(""), Stateless: true}}))
	rec := observe(t, g, "out")
	start(t, g, nil)
	for i := 1; i <= n; i++ {
		add(t, g, "in", i, Timestamp(i))
	}
	// All four calls must be running at once for this to proceed.
	waitFor(t, "4 Process calls in flight", func() bool { return inFlight.Load() == n })
	for i := n; i >= 1; i-- { // finish the latest first
		close(release[i])
	}
	finish(t, g)
	var got []int
	for _, p := range rec.packets() {
		got = append(got, p.Value().(int))
	}
	if want := []int{1, 4, 9, 16}; !slices.Equal(got, want) {
		t.Fatalf("outputs %v, want %v in timestamp order", got, want)
	}
}

func TestMaxInFlightNeedsAStatelessCalculator(t *testing.T) {
	diags := Validate([]byte(`
input_streams: [in]
nodes:
  - calculator: Counter
    input_streams: [in]
    max_in_flight: 3
`))
	if len(diags) != 1 || diags[0].Line != 6 || !strings.Contains(diags[0].Message, "needs a stateless calculator") {
		t.Fatalf("diagnostics %v", diags)
	}
}

// blocker is a consumer that holds each Process call until released.
func blocker(started chan<- Timestamp, release <-chan struct{}) *funcCalc {
	return &funcCalc{process: func(cc *CalculatorContext) error {
		started <- cc.InputTimestamp()
		select {
		case <-release:
		case <-cc.Context().Done():
		}
		return nil
	}}
}

func TestSourcesAreThrottledByFullQueues(t *testing.T) {
	started := make(chan Timestamp, 100)
	release := make(chan struct{})
	g := build(t, `
max_queue_size: 3
nodes:
  - name: seq
    calculator: Sequence
    output_streams: [n]
    options: {count: 50}
  - name: sink
    calculator: Block
    input_streams: [n]
`, spec("Block", Contract{Inputs: in("")}, blocker(started, release)))
	start(t, g, nil)
	<-started
	// The sink holds packet 0; the source fills the queue to 3 and stops.
	waitFor(t, "a full queue", func() bool { return g.Profile().Nodes[1].Inputs[0].Depth == 3 })
	// Not idle while the sink runs: WaitUntilIdle gives up with the context.
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.WaitUntilIdle(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitUntilIdle with a node running = %v", err)
	}
	if calls := g.Profile().Nodes[0].ProcessCalls; calls != 4 {
		t.Fatalf("throttled source ran %d times, want 4 (one taken, three queued)", calls)
	}
	close(release)
	if err := g.WaitUntilDone(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p := g.Profile()
	if calls := p.Nodes[0].ProcessCalls; calls != 51 { // 50 packets and the stop
		t.Errorf("source Process calls %d, want 51", calls)
	}
	q := p.Nodes[1].Inputs[0]
	if q.MaxDepth != 3 || q.Received != 50 {
		t.Errorf("queue max depth %d received %d, want 3 and 50", q.MaxDepth, q.Received)
	}
}

func TestGraphInputAddModes(t *testing.T) {
	for _, mode := range []AddMode{AddIfNotFull, WaitTillNotFull} {
		t.Run(map[AddMode]string{AddIfNotFull: "add if not full", WaitTillNotFull: "wait till not full"}[mode], func(t *testing.T) {
			started := make(chan Timestamp, 10)
			release := make(chan struct{})
			g := build(t, `
input_streams: [in]
max_queue_size: 2
nodes:
  - calculator: Block
    input_streams: [in]
`, spec("Block", Contract{Inputs: in("")}, blocker(started, release)), WithAddMode(mode))
			start(t, g, nil)
			add(t, g, "in", 1, 1)
			<-started // packet 1 is being processed
			add(t, g, "in", 2, 2)
			add(t, g, "in", 3, 3) // the queue is now full
			if mode == AddIfNotFull {
				err := g.AddPacketToInputStream("in", MakePacket(4, 4))
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "unavailable") {
					t.Fatalf("err = %v, want ErrUnavailable", err)
				}
				close(release)
				idle(t, g)
				add(t, g, "in", 4, 4)
				finish(t, g)
				return
			}
			added := make(chan error, 1)
			go func() { added <- g.AddPacketToInputStream("in", MakePacket(4, 4)) }()
			select {
			case err := <-added:
				t.Fatalf("AddPacketToInputStream returned %v while the queue was full", err)
			case <-time.After(50 * time.Millisecond):
			}
			close(release)
			if err := <-added; err != nil {
				t.Fatal(err)
			}
			finish(t, g)
		})
	}
}

// waiters reports how many goroutines wait for the graph to change (a
// throttled feeder, WaitUntilIdle).
func waiters(g *Graph) int {
	g.waitMu.Lock()
	defer g.waitMu.Unlock()
	return len(g.waitList)
}

func TestAddPacketToInputStreamContextGivesUpWhileThrottledAndAddsNothing(t *testing.T) {
	tests := []struct {
		name string
		// stop ends the context: either while the call waits (wait true)
		// or before it is made.
		stop    func(cancel context.CancelFunc)
		wait    bool
		wantErr error
	}{
		{"cancelled while waiting", func(cancel context.CancelFunc) { cancel() }, true, context.Canceled},
		{"cancelled before the call", func(cancel context.CancelFunc) { cancel() }, false, context.Canceled},
		{"deadline while waiting", nil, true, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan Timestamp, 10)
			release := make(chan struct{})
			g := build(t, `
input_streams: [in]
max_queue_size: 2
nodes:
  - calculator: Block
    input_streams: [in]
    output_streams: [out]
`, spec("Block", Contract{Inputs: in(""), Outputs: in("")}, &funcCalc{process: func(cc *CalculatorContext) error {
				started <- cc.InputTimestamp()
				select {
				case <-release:
				case <-cc.Context().Done():
				}
				return cc.Output("").AddPacket(cc.Input(""))
			}}))
			out := observe(t, g, "out")
			start(t, g, nil)
			add(t, g, "in", 1, 1)
			<-started // packet 1 is being processed
			add(t, g, "in", 2, 2)
			add(t, g, "in", 3, 3) // the queue is full: the stream is throttled

			ctx, cancel := context.WithCancel(context.Background())
			if tt.stop == nil { // a deadline that passes while the call waits
				ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
			}
			defer cancel()
			if !tt.wait {
				tt.stop(cancel)
			}
			added := make(chan error, 1)
			go func() { added <- g.AddPacketToInputStreamContext(ctx, "in", MakePacket(4, 4)) }()
			if tt.wait && tt.stop != nil {
				waitFor(t, "the feeder to wait on the full queue", func() bool { return waiters(g) > 0 })
				tt.stop(cancel)
			}
			select {
			case err := <-added:
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), `"in"`) {
					t.Fatalf("err = %v, want %v naming stream \"in\"", err, tt.wantErr)
				}
			case <-time.After(testTimeout):
				t.Fatal("AddPacketToInputStreamContext did not return after its context ended")
			}

			// The graph goes on: the stream is open, the packet at 4 was
			// never added, so 4 is still a valid next timestamp.
			close(release)
			add(t, g, "in", 5, 4)
			finish(t, g)
			var got []any
			for _, p := range out.packets() {
				got = append(got, p.Value())
			}
			if want := []any{1, 2, 3, 5}; !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
		})
	}
}

const deadlockYAML = `
input_streams: [in_1, in_2]
max_queue_size: 2
nodes:
  - name: join
    calculator: Join
    input_streams: ["A:in_1", "B:in_2"]
    output_streams: [out]
`

func joinForward() Option {
	return spec("Join", Contract{Inputs: in("A", "B"), Outputs: in("")}, &funcCalc{
		process: func(cc *CalculatorContext) error {
			if p := cc.Input("A"); !p.IsEmpty() {
				return cc.Output("").AddPacket(p)
			}
			return nil
		}})
}

func TestDeadlockIsReportedWhenAsked(t *testing.T) {
	g := build(t, deadlockYAML+"report_deadlock: true\n", joinForward(), WithLogger(slog.New(slog.DiscardHandler)))
	start(t, g, nil)
	add(t, g, "in_1", 1, 1)
	add(t, g, "in_1", 2, 2) // in_1 is full, join waits on in_2: nothing can run
	err := g.AddPacketToInputStream("in_1", MakePacket(3, 3))
	if !errors.Is(err, ErrDeadlock) {
		t.Fatalf("third add: %v, want ErrDeadlock", err)
	}
	werr := g.WaitUntilDone(testCtx(t))
	if !errors.Is(werr, ErrDeadlock) || !strings.Contains(werr.Error(), `input stream "in_1" of node "join" (Join) is full (2 packets, max_queue_size 2)`) {
		t.Fatalf("run error %v", werr)
	}
}

func TestDeadlockIsResolvedByGrowingTheFullQueue(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	g := build(t, deadlockYAML, joinForward(), WithLogger(logger))
	rec := observe(t, g, "out")
	start(t, g, nil)
	for i := 1; i <= 9; i++ {
		add(t, g, "in_1", i, Timestamp(i))
		idle(t, g)
	}
	if q := g.Profile().Nodes[0].Inputs[0]; q.MaxQueueSize != 10 || q.Depth != 9 {
		t.Fatalf("in_1 queue %+v, want 9 packets under a grown bound of 10", q)
	}
	add(t, g, "in_2", "x", 30)
	idle(t, g)
	finish(t, g)
	if n := len(rec.packets()); n != 9 {
		t.Fatalf("%d packets out, want 9", n)
	}
	if !strings.Contains(logs.String(), "resolved a deadlock by growing a full queue") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}

func TestCancelStopsTheRunAndClosesNodes(t *testing.T) {
	for _, how := range []string{"Cancel", "context"} {
		t.Run(how, func(t *testing.T) {
			started := make(chan Timestamp, 1)
			var closeErr atomic.Value
			calc := blocker(started, nil)
			calc.close = func(cc *CalculatorContext) error {
				closeErr.Store(fmt.Sprint(cc.GraphErr()))
				return nil
			}
			g := build(t, `
input_streams: [in]
nodes:
  - calculator: Block
    input_streams: [in]
`, spec("Block", Contract{Inputs: in("")}, calc))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := g.StartRun(ctx, nil); err != nil {
				t.Fatal(err)
			}
			add(t, g, "in", 1, 1)
			<-started
			if how == "Cancel" {
				g.Cancel()
			} else {
				cancel()
			}
			if err := g.WaitUntilDone(testCtx(t)); !errors.Is(err, ErrCancelled) {
				t.Fatalf("WaitUntilDone = %v, want ErrCancelled", err)
			}
			if got := closeErr.Load(); got != ErrCancelled.Error() {
				t.Errorf("Close saw GraphErr %v, want %v", got, ErrCancelled)
			}
			if err := g.AddPacketToInputStream("in", MakePacket(2, 2)); !errors.Is(err, ErrCancelled) {
				t.Errorf("add after cancel: %v", err)
			}
		})
	}
}

var errBoom = errors.New("boom")

func TestErrorsNameTheFailingNodeAndStopTheGraph(t *testing.T) {
	tests := []struct {
		name string
		calc *funcCalc
		want string
	}{
		{"Process", &funcCalc{process: func(cc *CalculatorContext) error {
			if cc.InputTimestamp() == 3 {
				return fmt.Errorf("frame %d: %w", cc.InputTimestamp(), errBoom)
			}
			return nil
		}}, `node "detector" (Failing): frame 3: boom`},
		{"Open", &funcCalc{open: func(*CalculatorContext) error { return errBoom }}, `node "detector" (Failing): Open: boom`},
		{"panic", &funcCalc{process: func(*CalculatorContext) error { panic("bad frame") }}, `node "detector" (Failing): panic in Process: bad frame`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var closed atomic.Bool
			g := build(t, `
input_streams: [in]
nodes:
  - calculator: Counter
    input_streams: [in]
    output_streams: [counted]
  - name: detector
    calculator: Failing
    input_streams: [counted]
`, spec("Failing", Contract{Inputs: in("")}, tt.calc), WithLogger(slog.New(slog.DiscardHandler)),
				WithCalculators(Spec{Name: "Counter", Contract: Contract{Inputs: in(""), Outputs: in("")},
					New: func() Calculator {
						return &funcCalc{
							process: func(cc *CalculatorContext) error { return cc.Output("").AddPacket(cc.Input("")) },
							close:   func(*CalculatorContext) error { closed.Store(true); return nil },
						}
					}}))
			start(t, g, nil)
			for i := 1; i <= 5; i++ {
				if err := g.AddPacketToInputStream("in", MakePacket(i, Timestamp(i))); err != nil {
					break // the run may already have failed
				}
			}
			err := g.WaitUntilDone(testCtx(t))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("run error %q, want prefix %q", err, tt.want)
			}
			if tt.name != "panic" && !errors.Is(err, errBoom) {
				t.Errorf("errors.Is(err, errBoom) = false for %v", err)
			}
			// A node that had opened is closed after the failure (in the
			// Open case the other node may not have opened at all).
			if tt.name != "Open" && !closed.Load() {
				t.Error("the healthy node was not closed after the failure")
			}
		})
	}
}

func TestCloseRunsWhenAllInputsAreDone(t *testing.T) {
	var ev events
	calc := &funcCalc{
		open: func(cc *CalculatorContext) error {
			ev.add("open@" + cc.InputTimestamp().String() + " in=" + cc.Input("A").Timestamp().String())
			return nil
		},
		process: func(cc *CalculatorContext) error { ev.add("process@" + cc.InputTimestamp().String()); return nil },
		close: func(cc *CalculatorContext) error {
			ev.add(fmt.Sprintf("close@%v done=%v", cc.InputTimestamp(), cc.InputDone("A", 0) && cc.InputDone("B", 0)))
			return nil
		},
	}
	g := build(t, `
input_streams: [a, b]
nodes:
  - calculator: Life
    input_streams: ["A:a", "B:b"]
`, spec("Life", Contract{Inputs: in("A", "B")}, calc))
	start(t, g, nil)
	add(t, g, "a", 1, 1)
	add(t, g, "b", 1, 1)
	if err := g.CloseInputStream("a"); err != nil {
		t.Fatal(err)
	}
	idle(t, g)
	if got := ev.list(); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "close") }) {
		t.Fatalf("Close ran with input b still open: %v", got)
	}
	finish(t, g)
	want := []string{"open@Unstarted in=Unset", "process@1", "close@Done done=true"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestSidePacketsFlowFromGraphAndNodes(t *testing.T) {
	type key struct{}
	producer := &funcCalc{open: func(cc *CalculatorContext) error {
		scale := cc.InputSidePacket("SCALE").(int)
		return cc.SetOutputSidePacket("FACTOR", scale*10)
	}}
	consumer := &funcCalc{process: func(cc *CalculatorContext) error {
		f := cc.InputSidePacket("FACTOR").(int)
		return cc.Output("").Add(cc.Input("").Value().(int)*f, cc.InputTimestamp())
	}}
	yaml := `
input_streams: [in]
input_side_packets: [scale]
output_side_packets: [factor]
nodes:
  - calculator: Producer
    input_side_packets: ["SCALE:scale"]
    output_side_packets: ["FACTOR:factor"]
  - calculator: Consumer
    input_streams: [in]
    input_side_packets: ["FACTOR:factor"]
    output_streams: [out]
`
	opts := []Option{
		WithCalculators(Spec{Name: "Producer", New: func() Calculator { return producer }, Contract: Contract{
			InputSidePackets:  []PortSpec{{Tag: "SCALE"}},
			OutputSidePackets: []PortSpec{{Tag: "FACTOR"}},
		}}),
		WithCalculators(Spec{Name: "Consumer", New: func() Calculator { return consumer }, Contract: Contract{
			Inputs: in(""), Outputs: in(""), InputSidePackets: []PortSpec{{Tag: "FACTOR"}},
		}}),
	}
	t.Run("run", func(t *testing.T) {
		g := build(t, yaml, opts...)
		rec := observe(t, g, "out")
		start(t, g, map[string]any{"scale": 3})
		add(t, g, "in", 2, 1)
		finish(t, g)
		if got := rec.packets(); len(got) != 1 || got[0].Value() != 60 {
			t.Fatalf("outputs %v, want 60", got)
		}
		if v, ok := g.OutputSidePacket("factor"); !ok || v != 30 {
			t.Errorf("output side packet = %v %v, want 30", v, ok)
		}
	})
	t.Run("missing", func(t *testing.T) {
		g := build(t, yaml, opts...)
		err := g.StartRun(testCtx(t), nil)
		if err == nil || !strings.Contains(err.Error(), `input side packet "scale" is not given`) {
			t.Fatalf("StartRun = %v", err)
		}
	})
	t.Run("undeclared", func(t *testing.T) {
		g := build(t, yaml, opts...)
		err := g.StartRun(testCtx(t), map[string]any{"scale": 1, "other": key{}})
		if err == nil || !strings.Contains(err.Error(), `side packet "other" is not declared`) {
			t.Fatalf("StartRun = %v", err)
		}
	})
}

func TestANodeWhoseInputSidePacketIsNeverProducedFailsTheRunNamingIt(t *testing.T) {
	// The producer closes without setting its output side packet, so the
	// consumer can never open; once the graph is idle the run fails.
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: Producer
    input_streams: [in]
    output_side_packets: ["FACTOR:factor"]
  - name: consumer
    calculator: Consumer
    input_streams: [in]
    input_side_packets: ["FACTOR:factor"]
`, spec("Producer", Contract{Inputs: in(""), OutputSidePackets: []PortSpec{{Tag: "FACTOR"}}}, &funcCalc{}),
		spec("Consumer", Contract{Inputs: in(""), InputSidePackets: []PortSpec{{Tag: "FACTOR"}}}, &funcCalc{}))
	start(t, g, nil)
	add(t, g, "in", 1, 1)
	if err := g.CloseAllInputStreams(); err != nil {
		t.Fatal(err)
	}
	err := g.WaitUntilDone(testCtx(t))
	if want := `node "consumer" (Consumer): never opened: input side packet "factor" was not produced`; err == nil || err.Error() != want {
		t.Fatalf("run error %v, want %q", err, want)
	}
}

func TestPacketsEmittedInOpenReachDownstream(t *testing.T) {
	header := &funcCalc{
		open: func(cc *CalculatorContext) error {
			if !cc.Input("").IsEmpty() || cc.InputTimestamp() != Unstarted {
				return fmt.Errorf("inputs not empty in Open: %v @%v", cc.Input(""), cc.InputTimestamp())
			}
			return cc.Output("HEADER").Add("stream header", PreStream)
		},
		process: func(cc *CalculatorContext) error { return cc.Output("").AddPacket(cc.Input("")) },
	}
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: Header
    input_streams: [in]
    output_streams: [out, "HEADER:header"]
`, spec("Header", Contract{Inputs: in(""), Outputs: in("", "HEADER")}, header))
	headers := observe(t, g, "header")
	start(t, g, nil)
	idle(t, g)
	if got := headers.packets(); len(got) != 1 || got[0].Timestamp() != PreStream || got[0].Value() != "stream header" {
		t.Fatalf("header stream %v before any input, want the PreStream packet", got)
	}
	finish(t, g)
}

func TestStopFromSourceAndFromProcess(t *testing.T) {
	t.Run("source", func(t *testing.T) {
		g := build(t, `
nodes:
  - calculator: Sequence
    output_streams: [n]
    options: {count: 5, first_timestamp: 100, interval: 10}
  - calculator: Counter
    input_streams: [n]
    output_streams: [count]
`)
		rec := observe(t, g, "count")
		start(t, g, nil)
		if err := g.WaitUntilDone(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if got := timestamps(rec.packets()); !slices.Equal(got, []Timestamp{100, 110, 120, 130, 140}) {
			t.Fatalf("counts at %v", got)
		}
	})
	t.Run("non-source closes the sources and drains", func(t *testing.T) {
		stopper := &funcCalc{process: func(cc *CalculatorContext) error {
			if err := cc.Output("").AddPacket(cc.Input("")); err != nil {
				return err
			}
			if cc.Input("").Value() == 3 {
				return ErrStop
			}
			return nil
		}}
		g := build(t, `
input_streams: [in]
nodes:
  - calculator: Stopper
    input_streams: [in]
    output_streams: [out]
`, spec("Stopper", Contract{Inputs: in(""), Outputs: in("")}, stopper))
		rec := observe(t, g, "out")
		start(t, g, nil)
		for i := 1; i <= 3; i++ {
			add(t, g, "in", i, Timestamp(i))
		}
		if err := g.WaitUntilDone(testCtx(t)); err != nil {
			t.Fatalf("a stop is not a failure: %v", err)
		}
		if n := len(rec.packets()); n != 3 {
			t.Errorf("%d packets delivered, want 3", n)
		}
		if err := g.AddPacketToInputStream("in", MakePacket(4, 4)); err == nil {
			t.Error("the graph input stream should be closed after the stop")
		}
	})
}

func TestNoPacketIsKeptAliveOnceIdle(t *testing.T) {
	g := build(t, `
input_streams: [in]
nodes:
  - calculator: PassThrough
    input_streams: [in]
    output_streams: [mid]
  - calculator: Counter
    input_streams: [mid]
    output_streams: [out]
`)
	rec := observe(t, g, "out")
	start(t, g, nil)
	payload := &[1 << 16]byte{}
	ref := weak.Make(payload)
	add(t, g, "in", payload, 1)
	payload = nil
	idle(t, g)
	if len(rec.packets()) != 1 {
		t.Fatal("packet did not go through")
	}
	for i := 0; i < 5 && ref.Value() != nil; i++ {
		runtime.GC()
	}
	if ref.Value() != nil {
		t.Fatal("the payload is still referenced after the graph went idle")
	}
	finish(t, g)
}

func TestOutputStreamPollerDeliversPacketsThenEOF(t *testing.T) {
	for _, bounds := range []bool{false, true} {
		t.Run(fmt.Sprint("bounds=", bounds), func(t *testing.T) {
			g := build(t, passYAML)
			var opts []ObserveOption
			if bounds {
				opts = append(opts, ObserveTimestampBounds())
			}
			poller, err := g.AddOutputStreamPoller("out", opts...)
			if err != nil {
				t.Fatal(err)
			}
			start(t, g, nil)
			add(t, g, "in", "a", 1)
			idle(t, g)
			if err := g.SetInputStreamTimestampBound("in", 10); err != nil {
				t.Fatal(err)
			}
			idle(t, g)
			add(t, g, "in", "b", 10)
			if err := g.CloseAllInputStreams(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				p, err := poller.Next(testCtx(t))
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%v@%v", p.Value(), p.Timestamp()))
			}
			want := []string{"a@1", "b@10"}
			if bounds {
				want = []string{"a@1", "<nil>@9", "b@10"}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("polled %v, want %v", got, want)
			}
			if err := g.WaitUntilDone(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestObserverErrorFailsTheRun(t *testing.T) {
	g := build(t, passYAML, WithLogger(slog.New(slog.DiscardHandler)))
	if err := g.ObserveOutputStream("out", func(Packet) error { return errBoom }); err != nil {
		t.Fatal(err)
	}
	start(t, g, nil)
	add(t, g, "in", 1, 1)
	if err := g.WaitUntilDone(testCtx(t)); !errors.Is(err, errBoom) || !strings.Contains(err.Error(), `node "observer_out"`) {
		t.Fatalf("run error %v", err)
	}
}

func TestCallsOnAGraphThatIsNotRunning(t *testing.T) {
	g := build(t, passYAML)
	if err := g.AddPacketToInputStream("in", MakePacket(1, 1)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("add before StartRun: %v", err)
	}
	if err := g.AddPacketToInputStream("nope", MakePacket(1, 1)); err == nil || !strings.Contains(err.Error(), `no graph input stream "nope"`) {
		t.Errorf("unknown stream: %v", err)
	}
	if err := g.WaitUntilDone(testCtx(t)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("WaitUntilDone before StartRun: %v", err)
	}
	if err := g.ObserveOutputStream("nope", func(Packet) error { return nil }); err == nil {
		t.Error("observing an unknown stream should fail")
	}
	start(t, g, nil)
	if err := g.StartRun(testCtx(t), nil); err == nil {
		t.Error("a second StartRun should fail")
	}
	if err := g.ObserveOutputStream("out", func(Packet) error { return nil }); err == nil {
		t.Error("observing after StartRun should fail")
	}
	finish(t, g)
	if err := g.AddPacketToInputStream("in", MakePacket(1, 1)); err == nil {
		t.Error("add after the run should fail")
	}
}

func TestManyGraphsRunConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := NewFromYAML([]byte(passYAML), WithNumThreads(2))
			if err != nil {
				t.Error(err)
				return
			}
			var n atomic.Int32
			_ = g.ObserveOutputStream("out", func(Packet) error { n.Add(1); return nil })
			ctx := context.Background()
			if err := g.StartRun(ctx, nil); err != nil {
				t.Error(err)
				return
			}
			for j := 0; j < 200; j++ {
				_ = g.AddPacketToInputStream("in", MakePacket(j, Timestamp(j)))
			}
			_ = g.CloseAllInputStreams()
			if err := g.WaitUntilDone(ctx); err != nil || n.Load() != 200 {
				t.Errorf("run: %v, %d packets", err, n.Load())
			}
		}()
	}
	wg.Wait()
}

func TestNodesNearerTheOutputsRunFirst(t *testing.T) {
	var ev events
	started := make(chan struct{})
	release := make(chan struct{})
	mid := &funcCalc{process: func(cc *CalculatorContext) error {
		close(started)
		<-release
		ev.add("mid")
		return cc.Output("").AddPacket(cc.Input(""))
	}}
	record := func(name string) *funcCalc {
		return &funcCalc{process: func(*CalculatorContext) error { ev.add(name); return nil }}
	}
	g := build(t, `
input_streams: [a, b]
num_threads: 1
nodes:
  - {name: early, calculator: Early, input_streams: [a]}
  - {name: mid, calculator: Mid, input_streams: [b], output_streams: [m]}
  - {name: late, calculator: Late, input_streams: [m]}
`, spec("Early", Contract{Inputs: in("")}, record("early")),
		spec("Mid", Contract{Inputs: in(""), Outputs: in("")}, mid),
		spec("Late", Contract{Inputs: in("")}, record("late")))
	start(t, g, nil)
	add(t, g, "b", 1, 1)
	<-started // the only worker is busy in mid
	add(t, g, "a", 1, 1)
	close(release)
	finish(t, g)
	// early was ready first, but late is deeper in the graph: it runs
	// before early once mid hands it a packet.
	if got, want := ev.list(), []string{"mid", "late", "early"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
