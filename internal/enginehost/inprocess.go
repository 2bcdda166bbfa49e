package enginehost

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/protocol"
)

// The in-process graph: one node running the engine between a graph
// input stream of chunks and a stream of results.
//
//	input_side_packets: [engine, options]
//	input_streams: [chunks]
//	nodes:
//	  - name: <engine name>
//	    calculator: ChunkEngine
//	    input_side_packets: ["ENGINE:engine", "OPTIONS:options"]
//	    input_streams: ["CHUNK:chunks"]
//	    output_streams: ["RESULT:results"]
const (
	// CalculatorName is the calculator that runs a chunk engine.
	CalculatorName = "ChunkEngine"
	streamChunks   = "chunks"
	streamResults  = "results"
	sideEngine     = "engine"
	sideOptions    = "options"
)

// chunkRequest is the packet on the chunk stream: the chunk and the
// context of its processing, whose deadline is the chunk's timeout.
type chunkRequest struct {
	ctx   context.Context
	chunk *engine.Chunk
}

// chunkResult is the packet on the result stream: the engine's answer.
type chunkResult struct {
	doc *protocol.Document
	err error
}

// chunkEngineCalculator runs an engine instance (side packet ENGINE) with
// the task's options (side packet OPTIONS) on each CHUNK packet and emits
// its answer as a RESULT packet at the chunk's timestamp. Engine errors
// and panics are results, not failures of the run: the host reports them
// as the chunk's status.
type chunkEngineCalculator struct {
	graph.Base
	eng  engine.ChunkEngine
	opts engine.Options
}

// Open reads the side packets and declares that results come at their
// chunk's timestamp.
func (c *chunkEngineCalculator) Open(cc *graph.CalculatorContext) error {
	c.eng, _ = cc.InputSidePacket("ENGINE").(engine.ChunkEngine)
	c.opts, _ = cc.InputSidePacket("OPTIONS").(engine.Options)
	if c.eng == nil {
		return fmt.Errorf("side packet ENGINE: no engine")
	}
	cc.SetTimestampOffset(0)
	return nil
}

// Process runs the engine on one chunk.
func (c *chunkEngineCalculator) Process(cc *graph.CalculatorContext) error {
	req, ok := graph.As[chunkRequest](cc.Input("CHUNK"))
	if !ok {
		return nil
	}
	return cc.Output("RESULT").Add(c.run(req), cc.InputTimestamp())
}

func (c *chunkEngineCalculator) run(req chunkRequest) (res chunkResult) {
	defer func() {
		if r := recover(); r != nil {
			res = chunkResult{err: &PanicError{Value: r, Stack: stack()}}
		}
	}()
	doc, err := c.eng.Process(req.ctx, req.chunk, c.opts)
	return chunkResult{doc: doc, err: err}
}

// chunkEngineSpec registers the calculator with the graphs InProcess
// builds.
var chunkEngineSpec = graph.Spec{
	Name: CalculatorName,
	Doc:  "ChunkEngine runs a chunk engine (side packet ENGINE, options OPTIONS) on each CHUNK and emits its RESULT at the chunk's timestamp.",
	New:  func() graph.Calculator { return &chunkEngineCalculator{} },
	Contract: graph.Contract{
		Inputs:  []graph.PortSpec{{Tag: "CHUNK", Type: reflect.TypeFor[chunkRequest](), Doc: "one media chunk, at its start in microseconds"}},
		Outputs: []graph.PortSpec{{Tag: "RESULT", Type: reflect.TypeFor[chunkResult](), Doc: "the engine's answer"}},
		InputSidePackets: []graph.PortSpec{
			{Tag: "ENGINE", Type: reflect.TypeFor[engine.ChunkEngine](), Doc: "the engine instance"},
			{Tag: "OPTIONS", Type: reflect.TypeFor[engine.Options](), Doc: "the task's options"},
		},
	},
}

// InProcess is the Processor of a built-in chunk engine: it runs each
// chunk through a calculator graph whose one node is the engine. Engine
// instances are made by the registration's factory as needed and reused,
// one chunk at a time each.
type InProcess struct {
	name    string
	factory engine.ChunkFactory
	cfg     *graph.Config
	log     *slog.Logger

	mu   sync.Mutex
	idle []engine.ChunkEngine
}

// NewInProcess returns the Processor of a registered chunk engine (from
// engine.Default().Lookup, say). Stream and batch engines are refused.
func NewInProcess(reg engine.Registration, log *slog.Logger) (*InProcess, error) {
	f, ok := reg.Factory.(engine.ChunkFactory)
	if !ok || f == nil {
		return nil, fmt.Errorf("engine %q: in-process hosting runs chunk engines; this one is a %s engine", reg.Spec.Name, modeOf(reg))
	}
	if log == nil {
		log = slog.Default()
	}
	b := graph.NewBuilder().InputSidePacket(sideEngine, sideOptions).InputStream(streamChunks).NumThreads(1)
	b.Node(CalculatorName, reg.Spec.Name).
		SideIn("ENGINE", sideEngine).SideIn("OPTIONS", sideOptions).
		In("CHUNK", streamChunks).Out("RESULT", streamResults)
	cfg, err := b.Config()
	if err != nil {
		return nil, fmt.Errorf("engine %q: graph: %w", reg.Spec.Name, err)
	}
	p := &InProcess{name: reg.Spec.Name, factory: f, cfg: cfg, log: log}
	// Build once now so a mistake in the graph shows at start, not on
	// the first chunk.
	if _, err := p.newGraph(); err != nil {
		return nil, err
	}
	return p, nil
}

func modeOf(reg engine.Registration) engine.Mode {
	if reg.Factory == nil {
		return reg.Spec.Mode
	}
	return reg.Factory.Mode()
}

func (p *InProcess) newGraph() (*graph.Graph, error) {
	g, err := graph.New(p.cfg, graph.WithCalculators(chunkEngineSpec), graph.WithLogger(p.log), graph.WithName("engine-"+p.name))
	if err != nil {
		return nil, fmt.Errorf("engine %q: graph: %w", p.name, err)
	}
	return g, nil
}

// Process implements Processor: it runs one graph whose engine node gets
// the chunk at its start time in microseconds.
func (p *InProcess) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	eng, err := p.instance()
	if err != nil {
		return nil, err
	}
	res, err := p.run(ctx, eng, c, opts)
	if err != nil {
		// The engine may still be running (it ignored its context): it
		// is not reused.
		return nil, err
	}
	p.release(eng)
	return res.doc, res.err
}

// run feeds one chunk through a fresh graph and returns the engine's
// answer.
func (p *InProcess) run(ctx context.Context, eng engine.ChunkEngine, c *engine.Chunk, opts engine.Options) (chunkResult, error) {
	g, err := p.newGraph()
	if err != nil {
		return chunkResult{}, err
	}
	var res chunkResult
	got := false
	if err := g.ObserveOutputStream(streamResults, func(pk graph.Packet) error {
		res, got = pk.Value().(chunkResult)
		return nil
	}); err != nil {
		return chunkResult{}, err
	}
	if err := g.StartRun(ctx, map[string]any{sideEngine: eng, sideOptions: opts}); err != nil {
		return chunkResult{}, fmt.Errorf("engine %q: graph: %w", p.name, err)
	}
	ts := graph.Timestamp(c.Meta.StartOffsetMs * 1000)
	if err := g.AddPacketToInputStreamContext(ctx, streamChunks, graph.MakePacket(chunkRequest{ctx: ctx, chunk: c}, ts)); err != nil {
		g.Cancel()
		return chunkResult{}, err
	}
	if err := g.CloseAllInputStreams(); err != nil {
		g.Cancel()
		return chunkResult{}, err
	}
	if err := g.WaitUntilDone(ctx); err != nil {
		g.Cancel()
		if ctx.Err() != nil {
			return chunkResult{}, ctx.Err()
		}
		return chunkResult{}, fmt.Errorf("engine %q: graph: %w", p.name, err)
	}
	if !got {
		return chunkResult{}, fmt.Errorf("engine %q: graph finished without a result", p.name)
	}
	return res, nil
}

// instance returns an idle engine instance, or makes one.
func (p *InProcess) instance() (engine.ChunkEngine, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		eng := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return eng, nil
	}
	p.mu.Unlock()
	eng, err := p.factory()
	if err != nil {
		return nil, fmt.Errorf("engine %q: start an instance: %w", p.name, err)
	}
	if eng == nil {
		return nil, fmt.Errorf("engine %q: start an instance: the factory returned no engine", p.name)
	}
	return eng, nil
}

func (p *InProcess) release(eng engine.ChunkEngine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, eng)
}
