package graph

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Batching is invisible to calculators by design, so these tests look at
// the one trace it leaves on a call: a call batched behind another one
// (cc.held) or heading a batch (batchedBehind). Every scenario that must batch
// asserts that it did, so a runtime that silently stopped batching fails
// here instead of passing vacuously.

// callRecord is what a calculator saw in one Process call.
type callRecord struct {
	ts    Timestamp
	value int
	next  Timestamp // the output's NextTimestampBound when the call began
	held  bool      // the call ran batched behind another one
	more  []Timestamp
}

// batchedBehind lists, in the first call of a batch, the timestamps of the
// calls that will run behind it on the same worker.
func batchedBehind(cc *CalculatorContext) []Timestamp {
	if cc.cur > 0 {
		return nil
	}
	var ts []Timestamp
	for _, c := range cc.calls[1:] {
		ts = append(ts, c.ts)
	}
	return ts
}

// callLog is a concurrency-safe list of callRecords.
type callLog struct {
	mu    sync.Mutex
	calls []callRecord
}

func (l *callLog) record(cc *CalculatorContext) callRecord {
	r := callRecord{ts: cc.InputTimestamp(), next: cc.Output("").NextTimestampBound(), held: cc.held}
	if v, ok := cc.Input("").Value().(int); ok {
		r.value = v
	}
	r.more = batchedBehind(cc)
	l.mu.Lock()
	l.calls = append(l.calls, r)
	l.mu.Unlock()
	return r
}

func (l *callLog) list() []callRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// batched counts the calls that ran batched behind another one.
func (l *callLog) batched() int {
	n := 0
	for _, c := range l.list() {
		if c.held {
			n++
		}
	}
	return n
}

// gatedYAML is a fast node between a graph input and an output; tests hold
// the node in Open (gated) while they queue a burst, so the burst is all
// queued before the node first runs.
const gatedYAML = `
input_streams: [in]
max_queue_size: -1
nodes:
  - name: fast
    calculator: Fast
    input_streams: [in]
    output_streams: [out]
`

// gated wraps calc so that Open waits for gate to close.
func gated(gate <-chan struct{}, calc *funcCalc) *funcCalc {
	open := calc.open
	calc.open = func(cc *CalculatorContext) error {
		<-gate
		if open != nil {
			return open(cc)
		}
		return nil
	}
	return calc
}

func fastSpec(calc *funcCalc, c Contract) Option {
	if c.Inputs == nil {
		c.Inputs = in("")
	}
	if c.Outputs == nil {
		c.Outputs = in("")
	}
	return spec("Fast", c, calc)
}

// event is one observed packet or bound notification, comparable.
type event struct {
	ts    Timestamp
	value any // nil for a bound notification
}

func observedEvents(pkts []Packet) []event {
	out := make([]event, len(pkts))
	for i, p := range pkts {
		out[i] = event{p.Timestamp(), p.Value()}
	}
	return out
}

// chainBounds emits, per input value v at t (with e = t + offset), one of
// the ways a calculator moves its output: a packet at e, an explicit bound
// past e, nothing (the offset, if any, moves the bound), a packet followed
// by a larger bound, a packet later than e, and a bound equal to what the
// offset implies. Consecutive calls therefore chain every kind of bound.
func chainBounds(offset int64) func(cc *CalculatorContext) error {
	return func(cc *CalculatorContext) error {
		t := cc.InputTimestamp()
		e := t.Add(offset)
		v := cc.Input("").Value().(int)
		out := cc.Output("")
		switch v % 6 {
		case 0:
			return out.Add(v, e)
		case 1:
			return out.SetNextTimestampBound(e + 5)
		case 2:
			return nil
		case 3:
			if err := out.Add(v, e); err != nil {
				return err
			}
			return out.SetNextTimestampBound(e + 3)
		case 4:
			return out.Add(v, e+7)
		default:
			return out.SetNextTimestampBound(e + 1)
		}
	}
}

// runChain runs chainBounds over n packets at timestamps 10, 20, ...: with
// burst, every packet is queued before the node opens; without, each packet
// is fed alone and the graph settles before the next, so nothing can batch
// and the observer sees every bound change.
func runChain(t *testing.T, offset int64, withOffset bool, n int, burst bool) (calls []callRecord, observed []event) {
	t.Helper()
	log := &callLog{}
	process := chainBounds(offset)
	gate := make(chan struct{})
	calc := gated(gate, &funcCalc{
		open: func(cc *CalculatorContext) error {
			if withOffset {
				cc.SetTimestampOffset(offset)
			}
			return nil
		},
		process: func(cc *CalculatorContext) error {
			log.record(cc)
			return process(cc)
		},
	})
	g := build(t, gatedYAML, fastSpec(calc, Contract{}))
	rec := observe(t, g, "out", ObserveTimestampBounds())
	start(t, g, nil)
	if !burst {
		close(gate)
	}
	for i := 1; i <= n; i++ {
		add(t, g, "in", i, Timestamp(10*i))
		if !burst {
			idle(t, g)
		}
	}
	if burst {
		close(gate)
	}
	finish(t, g)
	return log.list(), observedEvents(rec.packets())
}

func TestBatchedCallsSeeWhatUnbatchedCallsSee(t *testing.T) {
	const n = 300
	tests := []struct {
		name       string
		offset     int64
		withOffset bool
	}{
		{"no timestamp offset", 0, false},
		{"timestamp offset 0", 0, true},
		{"timestamp offset 3", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refCalls, refSeen := runChain(t, tt.offset, tt.withOffset, n, false)
			gotCalls, gotSeen := runChain(t, tt.offset, tt.withOffset, n, true)

			refBatched, gotBatched := 0, 0
			for _, c := range refCalls {
				if c.held {
					refBatched++
				}
			}
			for _, c := range gotCalls {
				if c.held {
					gotBatched++
				}
			}
			if refBatched != 0 {
				t.Fatalf("reference run fed one packet at a time batched %d calls", refBatched)
			}
			if gotBatched == 0 {
				t.Fatalf("burst of %d packets formed no batch", n)
			}

			// Each call sees the same input and the same output bound.
			if len(gotCalls) != len(refCalls) {
				t.Fatalf("%d calls batched, %d unbatched", len(gotCalls), len(refCalls))
			}
			for i := range refCalls {
				r, g := refCalls[i], gotCalls[i]
				if r.ts != g.ts || r.value != g.value || r.next != g.next {
					t.Fatalf("call %d: batched (held %v) saw input %d@%v, output bound %v; unbatched saw %d@%v, bound %v",
						i, g.held, g.value, g.ts, g.next, r.value, r.ts, r.next)
				}
			}

			// Packets are identical; bound notifications may coalesce (an
			// observer sees a batch's bounds together) but each one seen
			// is a bound the unbatched run reported, in the same order.
			var refPkts, gotPkts []event
			refBounds := map[Timestamp]bool{}
			for _, e := range refSeen {
				if e.value == nil {
					refBounds[e.ts] = true
				} else {
					refPkts = append(refPkts, e)
				}
			}
			for i, e := range gotSeen {
				if i > 0 && e.ts <= gotSeen[i-1].ts {
					t.Fatalf("observer saw %v after %v: not increasing", e, gotSeen[i-1])
				}
				if e.value == nil {
					if !refBounds[e.ts] {
						t.Fatalf("batched run reported bound settling %v, which the unbatched run never did", e.ts)
					}
				} else {
					gotPkts = append(gotPkts, e)
				}
			}
			if !slices.Equal(gotPkts, refPkts) {
				t.Fatalf("batched packets %v\nunbatched %v", gotPkts, refPkts)
			}
			if len(refPkts) < n/3 {
				t.Fatalf("only %d packets out of %d inputs", len(refPkts), n)
			}
			if last, refLast := gotSeen[len(gotSeen)-1], refSeen[len(refSeen)-1]; last != refLast {
				t.Fatalf("last observed %v, unbatched %v", last, refLast)
			}
		})
	}
}

// burstBatched queues n packets in front of a gated node configured by
// yaml and contract, runs it to the end and returns its calls.
func burstBatched(t *testing.T, yaml string, c Contract, process func(cc *CalculatorContext) error, n int) []callRecord {
	t.Helper()
	log := &callLog{}
	gate := make(chan struct{})
	calc := gated(gate, &funcCalc{process: func(cc *CalculatorContext) error {
		log.record(cc)
		return process(cc)
	}})
	g := build(t, yaml, fastSpec(calc, c))
	rec := observe(t, g, "out")
	start(t, g, nil)
	for i := 1; i <= n; i++ {
		add(t, g, "in", i, Timestamp(i))
	}
	close(gate)
	finish(t, g)
	if got := len(rec.packets()); got != n {
		t.Fatalf("observer got %d packets, want %d", got, n)
	}
	return log.list()
}

func TestOnlyEligibleNodesBatch(t *testing.T) {
	pass := func(cc *CalculatorContext) error {
		return cc.Output("").AddPacket(cc.Input(""))
	}
	slow := func(cc *CalculatorContext) error {
		// Sleep lasts at least this long, so every timed call is over
		// the batch budget whatever the machine.
		time.Sleep(2 * batchBudget)
		return pass(cc)
	}
	bounds := func(cc *CalculatorContext) error {
		if cc.Input("").IsEmpty() {
			return nil
		}
		return pass(cc)
	}
	tests := []struct {
		name      string
		yaml      string
		contract  Contract
		process   func(cc *CalculatorContext) error
		n         int
		wantBatch bool
	}{
		{"fast node with the default handler batches", gatedYAML, Contract{}, pass, 200, true},
		{"slow node never batches", gatedYAML, Contract{}, slow, 40, false},
		{"immediate handler never batches", gatedYAML + "    input_stream_handler: immediate\n", Contract{}, pass, 200, false},
		{"fixed_size handler never batches", gatedYAML +
			"    input_stream_handler: {name: fixed_size, options: {trigger_queue_size: 1001, target_queue_size: 1000}}\n", Contract{}, pass, 200, false},
		{"bounds processing never batches", gatedYAML, Contract{ProcessTimestampBounds: true}, bounds, 200, false},
		{"parallel calls never batch", gatedYAML + "    max_in_flight: 2\n", Contract{Stateless: true}, pass, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := burstBatched(t, tt.yaml, tt.contract, tt.process, tt.n)
			batched := 0
			var ts []Timestamp
			for _, c := range calls {
				if c.held {
					batched++
				}
				if !c.ts.IsRangeValue() || !c.ts.IsAllowedInStream() {
					continue
				}
				ts = append(ts, c.ts)
			}
			if got := batched > 0; got != tt.wantBatch {
				t.Fatalf("%d of %d calls batched, want batching %v", batched, len(calls), tt.wantBatch)
			}
			if tt.contract.Stateless {
				slices.Sort(ts) // parallel calls may start out of order
			}
			want := make([]Timestamp, tt.n)
			for i := range want {
				want[i] = Timestamp(i + 1)
			}
			if !slices.Equal(ts, want) {
				t.Fatalf("processed %v, want every timestamp once in order", ts)
			}
		})
	}
}

func TestFailureMidBatchDropsTheRestOfTheBatch(t *testing.T) {
	tests := []struct {
		name    string
		act     func(g *Graph, ts Timestamp) error
		wantErr func(err error, ts Timestamp) bool
	}{
		{
			name: "returned error",
			act:  func(_ *Graph, ts Timestamp) error { return fmt.Errorf("boom at %v", ts) },
			wantErr: func(err error, ts Timestamp) bool {
				return strings.Contains(err.Error(), fmt.Sprintf("node %q (Fast): boom at %v", "fast", ts))
			},
		},
		{
			name: "panic",
			act:  func(_ *Graph, ts Timestamp) error { panic(fmt.Sprintf("bad frame %v", ts)) },
			wantErr: func(err error, ts Timestamp) bool {
				return strings.Contains(err.Error(), fmt.Sprintf("node %q (Fast): panic in Process: bad frame %v", "fast", ts))
			},
		},
		{
			name:    "Cancel",
			act:     func(g *Graph, _ Timestamp) error { g.Cancel(); return nil },
			wantErr: func(err error, _ Timestamp) bool { return errors.Is(err, ErrCancelled) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 300
			log := &callLog{}
			var (
				g      *Graph
				mu     sync.Mutex
				target = Unset // the batched call that fails
				doomed []Timestamp
			)
			gate := make(chan struct{})
			calc := gated(gate, &funcCalc{process: func(cc *CalculatorContext) error {
				r := log.record(cc)
				mu.Lock()
				if target == Unset && len(r.more) >= 2 {
					// Fail the first call batched behind this one, so
					// that at least one more call is batched after it.
					target, doomed = r.more[0], r.more[1:]
				}
				fail := r.ts == target
				mu.Unlock()
				if err := cc.Output("").Add(r.value, r.ts); err != nil {
					return err
				}
				if fail {
					return tt.act(g, r.ts)
				}
				return nil
			}})
			g = build(t, gatedYAML, fastSpec(calc, Contract{}))
			rec := observe(t, g, "out")
			start(t, g, nil)
			for i := 1; i <= n; i++ {
				add(t, g, "in", i, Timestamp(i))
			}
			close(gate)
			err := g.WaitUntilDone(testCtx(t))
			mu.Lock()
			defer mu.Unlock()
			if target == Unset {
				t.Fatalf("no batch of 3 calls formed in a burst of %d (run error %v)", n, err)
			}
			if err == nil || !tt.wantErr(err, target) {
				t.Fatalf("run error %v, want one for the call at %v", err, target)
			}
			calls := log.list()
			if last := calls[len(calls)-1]; last.ts != target || !last.held {
				t.Fatalf("last call at %v (held %v), want the batched call at %v that failed; doomed %v", last.ts, last.held, target, doomed)
			}
			for _, p := range rec.packets() {
				if p.Timestamp() >= target {
					t.Fatalf("observer got %v at %v, at or after the failed call at %v", p.Value(), p.Timestamp(), target)
				}
			}
		})
	}
}

// burstSource emits perCall packets per Process call at consecutive
// timestamps and returns ErrStop with the last burst of its calls-th call.
func burstSource(perCall, calls int) *funcCalc {
	made := 0
	return &funcCalc{process: func(cc *CalculatorContext) error {
		for i := 0; i < perCall; i++ {
			made++
			if err := cc.Output("").Add(made, Timestamp(made)); err != nil {
				return err
			}
		}
		if made == perCall*calls {
			return ErrStop
		}
		return nil
	}}
}

const burstYAML = `
max_queue_size: -1
nodes:
  - name: source
    calculator: Burst
    output_streams: [mid]
  - name: fast
    calculator: Fast
    input_streams: [mid]
    output_streams: [out]
`

func TestErrStopDrainsBatchedBursts(t *testing.T) {
	const perCall, calls = 64, 8
	const total = perCall * calls
	tests := []struct {
		name    string
		threads int
		stopAt  Timestamp // the fast node returns ErrStop here; Unset: only the source stops
	}{
		{"source stops after its last burst, one worker", 1, Unset},
		{"source stops after its last burst, two workers", 2, Unset},
		{"consumer stops mid-burst, one worker", 1, total/2 - 6},
		{"consumer stops mid-burst, two workers", 2, total/2 - 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &callLog{}
			fast := &funcCalc{process: func(cc *CalculatorContext) error {
				r := log.record(cc)
				if err := cc.Output("").Add(r.value*10, r.ts); err != nil {
					return err
				}
				if r.ts == tt.stopAt {
					return ErrStop
				}
				return nil
			}}
			g := build(t, burstYAML, WithNumThreads(tt.threads), fastSpec(fast, Contract{}),
				spec("Burst", Contract{Outputs: in("")}, burstSource(perCall, calls)))
			rec := observe(t, g, "out")
			start(t, g, nil)
			if err := g.WaitUntilDone(testCtx(t)); err != nil {
				t.Fatalf("WaitUntilDone: %v", err)
			}
			got := rec.packets()
			// ErrStop from the consumer closes the source, but what was
			// already made is drained: whole bursts through the one holding
			// stopAt. With one worker the source runs only once the
			// consumer's queue is empty, so at most the call already queued
			// when the consumer stopped adds one burst more; with two the
			// source may have run to its end before the consumer stopped.
			want := total
			if tt.stopAt != Unset {
				want = len(got)
				first := (int(tt.stopAt) + perCall - 1) / perCall * perCall
				most := total
				if tt.threads == 1 {
					most = first + perCall
				}
				if want%perCall != 0 || want < first || want > most {
					t.Fatalf("observer got %d packets, want whole bursts of %d, from %d to %d, after ErrStop at %v",
						want, perCall, first, most, tt.stopAt)
				}
			}
			if len(got) != want {
				t.Fatalf("observer got %d packets, want %d", len(got), want)
			}
			for i, p := range got {
				if p.Timestamp() != Timestamp(i+1) || p.Value() != (i+1)*10 {
					t.Fatalf("packet %d is %v@%v, want %d@%d", i, p.Value(), p.Timestamp(), (i+1)*10, i+1)
				}
			}
			if b := log.batched(); b == 0 {
				t.Fatalf("no batch formed over %d calls in bursts of %d", len(log.list()), perCall)
			}
		})
	}
}

func TestBatchedPacketsCountAgainstMaxQueueSize(t *testing.T) {
	const maxQueue = 8
	var (
		mu       sync.Mutex
		returned int  // Process calls that returned
		blocked  bool // a batched call has been held once
	)
	inBatch, release := make(chan struct{}), make(chan struct{})
	gate := make(chan struct{})
	calc := gated(gate, &funcCalc{process: func(cc *CalculatorContext) error {
		defer func() {
			mu.Lock()
			returned++
			mu.Unlock()
		}()
		mu.Lock()
		hold := cc.held && !blocked
		blocked = blocked || hold
		mu.Unlock()
		if hold {
			// Sit inside a batch: its packets have left the queue but
			// are not committed, so they must still fill it.
			close(inBatch)
			<-release
		}
		return cc.Output("").AddPacket(cc.Input(""))
	}})
	g := build(t, strings.Replace(gatedYAML, "max_queue_size: -1", fmt.Sprintf("max_queue_size: %d", maxQueue), 1),
		fastSpec(calc, Contract{}), WithAddMode(AddIfNotFull))
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the graph is cancelled, should the test fail
	rec := observe(t, g, "out")
	start(t, g, nil)

	added := 0
	// fill adds until the stream is throttled and checks that the packets
	// not yet through Process never exceed the bound, plus the one call
	// that may be running unbatched (its packet has left the queue, as
	// without batching). Calls that returned may still await their commit,
	// so this undercounts what the queue holds and can only err towards
	// passing.
	fill := func(limit int) (throttled bool) {
		for {
			err := g.AddPacketToInputStream("in", MakePacket(added+1, Timestamp(added+1)))
			if errors.Is(err, ErrUnavailable) {
				return true
			}
			if err != nil {
				t.Fatalf("AddPacketToInputStream: %v", err)
			}
			added++
			mu.Lock()
			done := returned
			mu.Unlock()
			if pending := added - done; pending > limit {
				t.Fatalf("%d packets added, %d processed: %d in the graph, want at most %d (max_queue_size %d)", added, done, pending, limit, maxQueue)
			}
			for _, q := range g.Profile().Nodes[0].Inputs {
				if q.Depth > maxQueue || q.MaxDepth > maxQueue {
					t.Fatalf("queue %+v exceeds max_queue_size %d", q, maxQueue)
				}
			}
		}
	}
	fill(maxQueue)
	if added != maxQueue {
		t.Fatalf("the stream took %d packets before throttling with the node still opening, want %d", added, maxQueue)
	}
	close(gate)
	deadline := time.Now().Add(testTimeout)
wait:
	for {
		select {
		case <-inBatch:
			break wait
		default:
		}
		if time.Now().After(deadline) || added > 20000 {
			t.Fatalf("no batch formed after %d packets", added)
		}
		fill(maxQueue + 1)
		time.Sleep(50 * time.Microsecond)
	}
	// The node is stuck inside a batch, and the call heading it has
	// returned: nothing drains and no unbatched call runs, so the packets
	// not through Process must fit the bound.
	fill(maxQueue)
	for _, n := range g.nodes {
		if n.name == "fast" {
			// Throttled means full: what is queued plus what the batch
			// holds uncommitted is the bound, not less and not more.
			n.mu.Lock()
			if q := n.inputs[0]; q.q.len()+q.held != maxQueue || q.held == 0 {
				t.Errorf("throttled queue holds %d queued + %d batched packets, want %d with some batched", q.q.len(), q.held, maxQueue)
			}
			n.mu.Unlock()
		}
	}
	unblock()
	if err := g.CloseAllInputStreams(); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitUntilDone(testCtx(t)); err != nil {
		t.Fatalf("WaitUntilDone: %v", err)
	}
	got := rec.packets()
	if len(got) != added {
		t.Fatalf("observer got %d packets, want all %d added", len(got), added)
	}
	for i, p := range got {
		if p.Timestamp() != Timestamp(i+1) {
			t.Fatalf("packet %d at %v, want %d", i, p.Timestamp(), i+1)
		}
	}
}
