package graph

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in the tests; generous for a loaded machine.
const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// build makes a graph from YAML and fails the test on error. The graph is
// cancelled at cleanup so a failing test never leaks workers.
func build(t *testing.T, yaml string, opts ...Option) *Graph {
	t.Helper()
	// Quiet by default; a test that inspects logs passes its own logger.
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	g, err := NewFromYAML([]byte(yaml), opts...)
	if err != nil {
		t.Fatalf("NewFromYAML: %v", err)
	}
	t.Cleanup(func() {
		g.Cancel()
		_ = g.WaitUntilDone(context.Background())
	})
	return g
}

func start(t *testing.T, g *Graph, side map[string]any) {
	t.Helper()
	if err := g.StartRun(testCtx(t), side); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
}

func add(t *testing.T, g *Graph, stream string, v any, ts Timestamp) {
	t.Helper()
	if err := g.AddPacketToInputStream(stream, MakePacket(v, ts)); err != nil {
		t.Fatalf("AddPacketToInputStream(%s, %v@%v): %v", stream, v, ts, err)
	}
}

func idle(t *testing.T, g *Graph) {
	t.Helper()
	if err := g.WaitUntilIdle(testCtx(t)); err != nil {
		t.Fatalf("WaitUntilIdle: %v", err)
	}
}

func finish(t *testing.T, g *Graph) {
	t.Helper()
	if err := g.CloseAllInputStreams(); err != nil {
		t.Fatalf("CloseAllInputStreams: %v", err)
	}
	if err := g.WaitUntilDone(testCtx(t)); err != nil {
		t.Fatalf("WaitUntilDone: %v", err)
	}
}

// recorder collects packets from an observer.
type recorder struct {
	mu   sync.Mutex
	pkts []Packet
}

func observe(t *testing.T, g *Graph, stream string, opts ...ObserveOption) *recorder {
	t.Helper()
	r := &recorder{}
	err := g.ObserveOutputStream(stream, func(p Packet) error {
		r.mu.Lock()
		r.pkts = append(r.pkts, p)
		r.mu.Unlock()
		return nil
	}, opts...)
	if err != nil {
		t.Fatalf("ObserveOutputStream(%s): %v", stream, err)
	}
	return r
}

func (r *recorder) packets() []Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Packet(nil), r.pkts...)
}

// events is a concurrency-safe log of strings, for asserting call order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// funcCalc is a test calculator made of optional functions.
type funcCalc struct {
	open, process, close func(cc *CalculatorContext) error
}

func (c *funcCalc) Open(cc *CalculatorContext) error {
	if c.open != nil {
		return c.open(cc)
	}
	return nil
}

func (c *funcCalc) Process(cc *CalculatorContext) error {
	if c.process != nil {
		return c.process(cc)
	}
	return nil
}

func (c *funcCalc) Close(cc *CalculatorContext) error {
	if c.close != nil {
		return c.close(cc)
	}
	return nil
}

// spec registers a test calculator for one graph.
func spec(name string, c Contract, calc *funcCalc) Option {
	return WithCalculators(Spec{Name: name, Contract: c, New: func() Calculator { return calc }})
}

func in(tags ...string) []PortSpec {
	var out []PortSpec
	for _, t := range tags {
		out = append(out, PortSpec{Tag: t})
	}
	return out
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func timestamps(pkts []Packet) []Timestamp {
	out := make([]Timestamp, len(pkts))
	for i, p := range pkts {
		out[i] = p.Timestamp()
	}
	return out
}
