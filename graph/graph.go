package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// AddMode is how AddPacketToInputStream behaves when a graph input stream
// is throttled because a queue it feeds is full.
type AddMode int

const (
	// WaitTillNotFull blocks until the queues drain (the default).
	WaitTillNotFull AddMode = iota
	// AddIfNotFull fails at once with an error wrapping ErrUnavailable.
	AddIfNotFull
)

// DefaultMaxQueueSize bounds input queues when the configuration does not.
const DefaultMaxQueueSize = 100

// Option configures a graph (New, NewFromYAML) or a validation.
type Option func(*settings)

type settings struct {
	numThreads     int
	maxQueue       *int
	reportDeadlock *bool
	addMode        AddMode
	specs          []Spec
	logger         *slog.Logger
	name           string
	spin           *time.Duration
}

func newSettings(opts []Option) *settings {
	s := &settings{}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *settings) resolver() resolver {
	r := resolver{}
	for _, sp := range s.specs {
		r[sp.Name] = normalizeSpec(sp)
	}
	return r
}

// WithNumThreads sizes the worker pool, overriding the configuration's
// num_threads. The default is runtime.NumCPU().
func WithNumThreads(n int) Option { return func(s *settings) { s.numThreads = n } }

// WithMaxQueueSize overrides the configuration's max_queue_size (-1:
// unbounded).
func WithMaxQueueSize(n int) Option { return func(s *settings) { s.maxQueue = &n } }

// WithReportDeadlock overrides the configuration's report_deadlock.
func WithReportDeadlock(on bool) Option { return func(s *settings) { s.reportDeadlock = &on } }

// WithAddMode sets how AddPacketToInputStream handles a throttled stream.
func WithAddMode(m AddMode) Option { return func(s *settings) { s.addMode = m } }

// WithCalculators makes calculators available to this graph (or this
// validation) only, taking precedence over registered ones with the same
// name. Useful for tests and for calculators bound to local state.
func WithCalculators(specs ...Spec) Option {
	return func(s *settings) { s.specs = append(s.specs, specs...) }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithName names the graph in logs and metrics (default "graph").
func WithName(name string) Option { return func(s *settings) { s.name = name } }

// WithSpin sets how long a worker that ran out of calls keeps looking for
// more (yielding to other goroutines) before it sleeps; 0 sleeps at once.
// The default, DefaultSpin, suits a busy pipeline, where the next packet
// comes sooner than a sleeping worker could be woken. A graph fed in
// sparse batches (a live stream's records, tens of milliseconds apart)
// only burns CPU spinning: give it 0.
func WithSpin(d time.Duration) Option { return func(s *settings) { s.spin = &d } }

type nodeState int

const (
	nodeWaiting nodeState = iota // for input side packets
	nodeOpening
	nodeOpen
	nodeClosing
	nodeClosed
)

// portID identifies a port on a node.
type portID struct {
	tag   string
	index int
}

type sidePacket struct {
	name      string
	value     any
	set       bool
	consumers []*node
}

type sideBinding struct {
	ref      PortRef
	sp       *sidePacket
	typ      reflect.Type
	optional bool
}

// node is a calculator instance and its scheduling state. Everything but
// calc, name and the immutable wiring is guarded by mu (see the locking
// notes in scheduler.go).
type node struct {
	mu       sync.Mutex
	g        *Graph
	id       int
	name     string
	calcName string
	spec     Spec
	newCalc  func() Calculator
	calc     Calculator
	options  Options
	log      *slog.Logger

	inputs   []*inputQueue
	inRefs   []PortRef
	inIndex  map[portID]int
	inCount  map[string]int
	outputs  []*stream
	outRefs  []PortRef
	outIndex map[portID]int
	outCount map[string]int
	sideIn   []sideBinding
	sideOut  []sideBinding

	handler handlerSpec
	// simple marks an open node with one input, the default handler
	// without batch_size, no bounds processing, one call at a time and
	// no output side packets: its queued packets are input sets as they
	// are (see fillRun).
	simple        bool
	setReady      []bool
	setTS         []Timestamp
	lastProcessed []Timestamp
	keptTS        Timestamp
	processBounds bool
	offset        int64
	offsetSet     bool
	maxInFlight   int
	priority      int
	home          int // the worker whose queue takes its calls

	src       *source // for source nodes
	state     nodeState
	inflight  int
	nextSeq   uint64
	commitSeq uint64
	finished  map[uint64]*CalculatorContext
	free      []*CalculatorContext
	// pending holds the calls filled while a batch_size batch is
	// collected.
	pending     *CalculatorContext
	stop        bool
	closeQueued bool
	// committing marks a goroutine committing the calls of a node with
	// parallel calls, in order; others leave theirs in finished.
	committing bool
	// fanout groups the node's consumers by node, so a commit takes each
	// consumer's lock once.
	fanout []fanout

	stats nodeStats
}

// fanout is what one consumer node reads from a producer: which of the
// producer's outputs feed which of its input queues.
type fanout struct {
	to    *node
	links []link
}

type link struct {
	out int // the producer's output index
	q   *inputQueue
}

// Graph runs a calculator graph once: build it with New or NewFromYAML,
// attach observers and pollers, StartRun, feed graph input streams, close
// them, WaitUntilDone. All methods are safe for concurrent use.
type Graph struct {
	name     string
	log      *slog.Logger
	cfg      *Config
	nodes    []*node
	order    []*node // producers before consumers
	streams  map[string]*stream
	inputs   map[string]*graphInput
	inList   []*graphInput
	sides    map[string]*sidePacket
	sources  []*source
	outSides []string

	numThreads     int
	maxQueue       int
	reportDeadlock bool
	spinFor        time.Duration // see WithSpin

	// mu serialises the application's calls and idle handling; ext
	// collects what they change for nodes (see scheduler.go).
	mu  sync.Mutex
	ext settler
	// busy counts calls queued or running and application calls under way.
	busy atomic.Int64
	// wq are the workers' queues of ready calls, shared the queue of
	// calls any worker takes (see workers.go).
	wq          []*workerQueue
	shared      workerQueue
	taskOrder   atomic.Uint64
	stopWorkers atomic.Bool

	started     bool
	finished    bool
	failed      bool
	stopping    atomic.Bool // failing: commit and schedule nothing more
	finalizing  bool
	err         error
	closedNodes atomic.Int32
	addMode     AddMode
	sideMu      sync.Mutex
	// Goroutines blocked in waitChange (a throttled feeder, WaitUntilIdle)
	// each wait on their own channel from wakeFree, under waitMu; nwait
	// counts them so that notifying nobody costs one atomic load.
	waitMu    sync.Mutex
	waitList  []chan struct{}
	wakeFree  []chan struct{}
	nwait     atomic.Int32
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	stopAfter func() bool
	workers   sync.WaitGroup
}

// NewFromYAML parses, validates and builds a graph from a YAML
// configuration. A configuration that does not validate returns a
// DiagnosticsError listing every problem with its line.
func NewFromYAML(src []byte, opts ...Option) (*Graph, error) {
	cfg, diags := ParseConfig(src)
	if len(diags) > 0 {
		return nil, DiagnosticsError(diags)
	}
	return New(cfg, opts...)
}

// New validates cfg and builds a graph ready for observers and StartRun.
func New(cfg *Config, opts ...Option) (*Graph, error) {
	st := newSettings(opts)
	for _, s := range st.specs {
		if err := checkSpec(s); err != nil {
			return nil, err
		}
	}
	p, diags := cfg.check(st.resolver())
	if len(diags) > 0 {
		return nil, DiagnosticsError(diags)
	}
	g := &Graph{
		name:           st.name,
		log:            st.logger,
		cfg:            cfg,
		streams:        map[string]*stream{},
		inputs:         map[string]*graphInput{},
		sides:          map[string]*sidePacket{},
		numThreads:     cfg.NumThreads,
		maxQueue:       cfg.MaxQueueSize,
		reportDeadlock: cfg.ReportDeadlock,
		addMode:        st.addMode,
		spinFor:        DefaultSpin,
		done:           make(chan struct{}),
	}
	if st.spin != nil {
		g.spinFor = max(*st.spin, 0)
	}
	if g.name == "" {
		g.name = "graph"
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.log = g.log.With("graph", g.name)
	if st.numThreads > 0 {
		g.numThreads = st.numThreads
	}
	if g.numThreads <= 0 {
		g.numThreads = runtime.NumCPU()
	}
	if st.maxQueue != nil {
		g.maxQueue = *st.maxQueue
	}
	if g.maxQueue == 0 {
		g.maxQueue = DefaultMaxQueueSize
	}
	if st.reportDeadlock != nil {
		g.reportDeadlock = *st.reportDeadlock
	}
	g.ext.g = g

	side := func(name string) *sidePacket {
		sp, ok := g.sides[name]
		if !ok {
			sp = &sidePacket{name: name}
			g.sides[name] = sp
		}
		return sp
	}
	for _, r := range cfg.InputStreams {
		s := newStream(r.Name)
		gi := &graphInput{name: r.Name, s: s}
		gi.src = &source{input: gi}
		g.streams[r.Name] = s
		g.inputs[r.Name] = gi
		g.inList = append(g.inList, gi)
		g.sources = append(g.sources, gi.src)
	}
	for _, r := range cfg.InputSidePackets {
		side(r.Name)
	}
	for _, r := range cfg.OutputSidePackets {
		g.outSides = append(g.outSides, r.Name)
	}
	for i, np := range p.nodes {
		n := g.newNode(np.name, np.cfg.Calculator, np.spec.New, np.contract)
		n.id, n.spec, n.options = i, np.spec, np.options
		n.handler = np.handler
		n.maxInFlight = max(1, np.cfg.MaxInFlight)
		n.priority = np.depth
		for j, r := range np.outputs {
			s := newStream(r.Name)
			s.producer = n
			if np.outSpecs[j] != nil {
				s.typ = np.outSpecs[j].Type
			}
			g.streams[r.Name] = s
			n.addOutput(r, s)
		}
		for j, r := range np.sideOut {
			b := sideBinding{ref: r, sp: side(r.Name)}
			if np.sideOutS[j] != nil {
				b.typ = np.sideOutS[j].Type
			}
			n.sideOut = append(n.sideOut, b)
		}
	}
	for i, np := range p.nodes {
		n := g.nodes[i]
		qsize := g.maxQueue
		if np.cfg.MaxQueueSize != 0 {
			qsize = np.cfg.MaxQueueSize
		}
		for j, r := range np.inputs {
			n.addInput(r, g.streams[r.Name], np.backEdge[j], qsize)
		}
		for j, r := range np.sideIn {
			b := sideBinding{ref: r, sp: side(r.Name)}
			if s := np.sideInSp[j]; s != nil {
				b.typ, b.optional = s.Type, s.Optional
			}
			b.sp.consumers = append(b.sp.consumers, n)
			n.sideIn = append(n.sideIn, b)
		}
	}
	for _, i := range p.order {
		g.order = append(g.order, g.nodes[i])
	}
	return g, nil
}

func (g *Graph) newNode(name, calc string, newCalc func() Calculator, c Contract) *node {
	n := &node{
		g: g, id: len(g.nodes), name: name, calcName: calc, newCalc: newCalc,
		inIndex: map[portID]int{}, inCount: map[string]int{},
		outIndex: map[portID]int{}, outCount: map[string]int{},
		processBounds: c.ProcessTimestampBounds, maxInFlight: 1,
		keptTS: Unset, finished: map[uint64]*CalculatorContext{},
	}
	n.log = g.log.With("node", name)
	g.nodes = append(g.nodes, n)
	return n
}

func (n *node) addOutput(r PortRef, s *stream) {
	n.outIndex[portID{r.Tag, r.Index}] = len(n.outputs)
	n.outCount[r.Tag]++
	n.outputs = append(n.outputs, s)
	n.outRefs = append(n.outRefs, r)
}

func (n *node) addInput(r PortRef, s *stream, backEdge bool, maxSize int) {
	q := &inputQueue{n: n, idx: len(n.inputs), s: s, port: r, backEdge: backEdge, bound: PreStream, maxSize: maxSize}
	s.consumers = append(s.consumers, q)
	n.inIndex[portID{r.Tag, r.Index}] = len(n.inputs)
	n.inCount[r.Tag]++
	n.inputs = append(n.inputs, q)
	n.inRefs = append(n.inRefs, r)
}

// prepare finishes the wiring once observers are attached: handler state,
// source throttling ancestry and calculators.
func (g *Graph) prepare() {
	depth := 0
	for _, n := range g.nodes {
		depth = max(depth, n.priority)
	}
	for _, n := range g.nodes {
		if len(n.inputs) == 0 && len(n.outputs) > 0 && n.src == nil {
			n.src = &source{node: n}
			g.sources = append(g.sources, n.src)
		}
		if n.priority < 0 { // internal sinks run first: they free the most memory
			n.priority = depth + 1
		}
		k := len(n.handler.sets)
		n.setReady, n.setTS, n.lastProcessed = make([]bool, k), make([]Timestamp, k), make([]Timestamp, k)
		for i := range n.lastProcessed {
			n.lastProcessed[i] = Unset
		}
	}
	// A queue's ancestors are the sources upstream of its stream.
	anc := map[*node][]*source{}
	var of func(s *stream) []*source
	of = func(s *stream) []*source {
		if s.producer == nil {
			if gi := g.inputs[s.name]; gi != nil {
				return []*source{gi.src}
			}
			return nil
		}
		return anc[s.producer]
	}
	for _, n := range g.order {
		set := map[*source]bool{}
		var list []*source
		add := func(ss []*source) {
			for _, s := range ss {
				if !set[s] {
					set[s] = true
					list = append(list, s)
				}
			}
		}
		if n.src != nil {
			add([]*source{n.src})
		}
		for _, q := range n.inputs {
			if !q.backEdge {
				add(of(q.s))
			}
		}
		anc[n] = list
	}
	for _, n := range g.nodes {
		for _, q := range n.inputs {
			q.ancestors = of(q.s)
		}
		n.fanout = fanoutOf(n.outputs)
	}
	for _, gi := range g.inList {
		gi.fanout = fanoutOf([]*stream{gi.s})
	}
}

// fanoutOf groups the consumers of streams by node.
func fanoutOf(streams []*stream) []fanout {
	var fo []fanout
	for i, s := range streams {
		for _, q := range s.consumers {
			j := 0
			for j < len(fo) && fo[j].to != q.n {
				j++
			}
			if j == len(fo) {
				fo = append(fo, fanout{to: q.n})
			}
			fo[j].links = append(fo[j].links, link{out: i, q: q})
		}
	}
	return fo
}

// StartRun starts the run. sidePackets gives a value for every declared
// graph input side packet. Cancelling ctx cancels the run (like Cancel).
// A graph runs once.
func (g *Graph) StartRun(ctx context.Context, sidePackets map[string]any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("graph: StartRun called twice; build a new graph for each run")
	}
	declared := map[string]bool{}
	for _, r := range g.cfg.InputSidePackets {
		declared[r.Name] = true
		v, ok := sidePackets[r.Name]
		if !ok {
			return fmt.Errorf("graph: input side packet %q is not given", r.Name)
		}
		sp := g.sides[r.Name]
		for _, n := range sp.consumers {
			for _, b := range n.sideIn {
				if b.sp == sp {
					if err := checkValueType(v, b.typ); err != nil {
						return fmt.Errorf("graph: input side packet %q for node %q: %w", r.Name, n.name, err)
					}
				}
			}
		}
		sp.value, sp.set = v, true
	}
	for name := range sidePackets {
		if !declared[name] {
			return fmt.Errorf("graph: side packet %q is not declared in input_side_packets", name)
		}
	}
	g.prepare()
	for _, n := range g.nodes {
		if n.calc == nil {
			n.calc = n.newCalc()
		}
	}
	g.started = true
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	g.stopAfter = context.AfterFunc(ctx, g.Cancel)
	g.assignHomes()
	g.startWorkers()
	g.log.Debug("graph: run started", "nodes", len(g.nodes), "threads", g.numThreads, "max_queue_size", g.maxQueue)
	g.begin()
	for _, n := range g.nodes {
		n.mu.Lock()
		g.schedule(n, &g.ext)
		n.mu.Unlock()
	}
	g.end()
	return nil
}

// AddPacketToInputStream feeds packet p into graph input stream name.
// Timestamps must increase; a packet that would make the stream go back
// fails the run with a *TimestampError, as MediaPipe does. An empty packet
// at t only advances the bound to t+1.
//
// While a queue downstream of the stream is full (max_queue_size), the
// stream is throttled: in WaitTillNotFull mode the call blocks until it
// drains (or the run ends), in AddIfNotFull mode it fails at once with an
// error wrapping ErrUnavailable. To bound the wait, use
// AddPacketToInputStreamContext.
func (g *Graph) AddPacketToInputStream(name string, p Packet) error {
	return g.AddPacketToInputStreamContext(context.Background(), name, p)
}

// AddPacketToInputStreamContext is AddPacketToInputStream with a context
// for the wait while the stream is throttled: when ctx ends first, the
// packet is not added and the error names the stream and wraps ctx.Err().
// A ctx that has already ended adds nothing. The run is not affected: the
// stream stays open and the graph usable.
func (g *Graph) AddPacketToInputStreamContext(ctx context.Context, name string, p Packet) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	gi := g.input(name)
	if gi == nil {
		return fmt.Errorf("graph: no graph input stream %q", name)
	}
	for {
		if err := g.runErr(); err != nil {
			return fmt.Errorf("graph input stream %q: %w", name, err)
		}
		if gi.closed {
			return fmt.Errorf("graph input stream %q is closed", name)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("graph input stream %q: packet at %v not added: %w", name, p.ts, err)
		}
		if !gi.src.throttled() {
			break
		}
		if g.addMode == AddIfNotFull {
			return fmt.Errorf("graph input stream %q is throttled, a downstream queue is full: %w", name, ErrUnavailable)
		}
		if g.busy.Load() == 0 {
			g.idle() // a throttled idle graph is a deadlock to resolve
		}
		_ = g.waitChange(ctx, func() bool { return gi.src.throttled() && g.runErr() == nil }) // ctx.Err() is checked at the top
	}
	if p.IsEmpty() {
		return g.setInputBound(gi, p.ts.NextAllowedInStream())
	}
	if err := gi.s.check(p); err != nil {
		g.fail(err)
		return err
	}
	// Unlike the other application calls this one does not count itself
	// in busy (begin/end): it holds Graph.mu throughout, so no worker can
	// act on an idle graph before it returns, and it spares two atomic
	// writes per packet on a counter every worker writes too. It looks at
	// an idle graph itself when it is done.
	gi.s.record(p)
	at := gi.stamper.stamp()
	for fi := range gi.fanout {
		fo := &gi.fanout[fi]
		n := fo.to
		n.mu.Lock()
		for _, l := range fo.links {
			if n.state != nodeClosed {
				l.q.push(&g.ext, p, at)
			}
			g.updateFull(&g.ext, l.q)
		}
		g.schedule(n, &g.ext)
		n.mu.Unlock()
	}
	g.ext.drain()
	if g.busy.Load() == 0 {
		g.idle()
	}
	return nil
}

// input finds graph input stream name: by comparing names while there are
// few (the usual case, cheaper than hashing the name for every packet).
func (g *Graph) input(name string) *graphInput {
	if len(g.inList) <= 8 {
		for _, gi := range g.inList {
			if gi.name == name {
				return gi
			}
		}
		return nil
	}
	return g.inputs[name]
}

// SetGraphInputStreamAddMode changes the add mode while running.
func (g *Graph) SetGraphInputStreamAddMode(m AddMode) {
	g.mu.Lock()
	g.addMode = m
	g.notifyAll() // a blocked feeder re-checks the mode
	g.mu.Unlock()
}

// SetInputStreamTimestampBound promises that graph input stream name will
// carry no packet below bound, letting nodes that wait on it run. A bound
// below the current one fails the run with a *TimestampError.
func (g *Graph) SetInputStreamTimestampBound(name string, bound Timestamp) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	gi, ok := g.inputs[name]
	if !ok {
		return fmt.Errorf("graph: no graph input stream %q", name)
	}
	if err := g.runErr(); err != nil {
		return fmt.Errorf("graph input stream %q: %w", name, err)
	}
	if gi.closed {
		return fmt.Errorf("graph input stream %q is closed", name)
	}
	return g.setInputBound(gi, bound)
}

func (g *Graph) setInputBound(gi *graphInput, bound Timestamp) error {
	if bound < gi.s.bound {
		err := &TimestampError{Stream: gi.name, Bound: true, Expected: gi.s.bound, Received: bound}
		g.fail(err)
		return err
	}
	g.begin()
	if bound == Done {
		gi.closed = true
		g.notifyAll()
	}
	setBound(&g.ext, gi.s, bound)
	g.end()
	return nil
}

// CloseInputStream closes graph input stream name: its bound becomes Done
// and nodes reading it can finish. Closing twice is harmless.
func (g *Graph) CloseInputStream(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	gi, ok := g.inputs[name]
	if !ok {
		return fmt.Errorf("graph: no graph input stream %q", name)
	}
	if !g.started {
		return fmt.Errorf("graph input stream %q: %w", name, ErrNotRunning)
	}
	g.begin()
	g.closeInput(&g.ext, gi)
	g.end()
	return nil
}

// CloseAllInputStreams closes every graph input stream.
func (g *Graph) CloseAllInputStreams() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		return ErrNotRunning
	}
	g.begin()
	for _, gi := range g.inList {
		g.closeInput(&g.ext, gi)
	}
	g.end()
	return nil
}

// CloseAllPacketSources closes every graph input stream and stops every
// source node (its Close runs after its current Process); the graph then
// drains and finishes. It is what a non-source calculator returning ErrStop
// triggers.
func (g *Graph) CloseAllPacketSources() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		return ErrNotRunning
	}
	g.begin()
	g.closeAllPacketSources(&g.ext)
	g.end()
	return nil
}

// closeInput closes a graph input stream; the caller holds Graph.mu.
func (g *Graph) closeInput(st *settler, gi *graphInput) {
	if gi.closed {
		return
	}
	gi.closed = true
	g.notifyAll()
	setBound(st, gi.s, Done)
}

// closeAllPacketSources closes the graph input streams and stops the
// source nodes; the caller holds Graph.mu and no node lock.
func (g *Graph) closeAllPacketSources(st *settler) {
	for _, gi := range g.inList {
		g.closeInput(st, gi)
	}
	for _, s := range g.sources {
		if n := s.node; n != nil {
			n.mu.Lock()
			if !n.stop {
				n.stop = true
				st.touch = append(st.touch, n)
			}
			n.mu.Unlock()
		}
	}
}

// Cancel aborts the run: nothing new is scheduled, calculators' contexts
// are cancelled, every opened node is closed and WaitUntilDone returns
// ErrCancelled.
func (g *Graph) Cancel() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started && !g.finished {
		g.fail(ErrCancelled)
	}
}

// WaitUntilDone waits for the run to finish and returns its error: nil
// after a clean finish (every node closed), ErrCancelled after Cancel, or
// the first failure. Close the graph input streams first, or the run never
// finishes. It returns ctx.Err() if ctx ends first; the run goes on.
func (g *Graph) WaitUntilDone(ctx context.Context) error {
	g.mu.Lock()
	started := g.started
	g.mu.Unlock()
	if !started {
		return ErrNotRunning
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// WaitUntilIdle waits until nothing runs and nothing can be scheduled: every
// packet fed so far has been processed as far as it can go. A source node
// that has not stopped keeps the graph busy. It returns the run's error if
// the run failed, or ctx.Err().
func (g *Graph) WaitUntilIdle(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		return ErrNotRunning
	}
	for {
		if g.failed || g.finished {
			return g.err
		}
		if g.busy.Load() == 0 {
			g.idle() // what an idle graph does (closing loops, say) is not idle yet
			if g.busy.Load() == 0 && !g.failed && !g.finished {
				return nil
			}
			continue
		}
		if err := g.waitChange(ctx, func() bool { return g.busy.Load() != 0 }); err != nil {
			return err
		}
	}
}

// OutputSidePacket returns the value of side packet name, set by a node
// during the run.
func (g *Graph) OutputSidePacket(name string) (any, bool) {
	g.sideMu.Lock()
	defer g.sideMu.Unlock()
	sp, ok := g.sides[name]
	if !ok || !sp.set {
		return nil, false
	}
	return sp.value, true
}

func (g *Graph) runErr() error {
	switch {
	case !g.started:
		return ErrNotRunning
	case g.failed:
		return g.err
	case g.finished:
		return ErrNotRunning
	}
	return nil
}

// waitChange releases Graph.mu until a change a waiter may be waiting for
// (a source no longer throttled, a graph input closed, an idle graph, the
// end of the run) or until ctx ends; blocked, called once the waiter is
// registered, tells whether to wait at all, so a change that came just
// before is not missed. Callers re-check their condition.
func (g *Graph) waitChange(ctx context.Context, blocked func() bool) error {
	g.waitMu.Lock()
	var ch chan struct{}
	if k := len(g.wakeFree); k > 0 {
		ch = g.wakeFree[k-1]
		g.wakeFree = g.wakeFree[:k-1]
	} else {
		ch = make(chan struct{}, 1)
	}
	g.waitList = append(g.waitList, ch)
	g.nwait.Add(1)
	g.waitMu.Unlock()
	if blocked() {
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		g.mu.Lock()
	}
	g.waitMu.Lock()
	if i := slices.Index(g.waitList, ch); i >= 0 { // not notified
		g.waitList = slices.Delete(g.waitList, i, i+1)
		g.nwait.Add(-1)
	}
	select { // a notification that raced with ctx
	case <-ch:
	default:
	}
	g.wakeFree = append(g.wakeFree, ch)
	g.waitMu.Unlock()
	return ctx.Err()
}

// notifyAll wakes every waiter. It takes only waitMu, so it may be called
// under any lock.
func (g *Graph) notifyAll() {
	if g.nwait.Load() == 0 {
		return
	}
	g.waitMu.Lock()
	for _, ch := range g.waitList {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	g.nwait.Add(-int32(len(g.waitList)))
	clear(g.waitList)
	g.waitList = g.waitList[:0]
	g.waitMu.Unlock()
}
