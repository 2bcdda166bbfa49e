package graph

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Diagnostic is one problem in a graph configuration, with the YAML line it
// comes from (0 for configurations built in Go).
type Diagnostic struct {
	Line    int
	Node    string // the node concerned, if any
	Message string
}

// String formats the diagnostic as "line N: message".
func (d Diagnostic) String() string {
	if d.Line > 0 {
		return "line " + strconv.Itoa(d.Line) + ": " + d.Message
	}
	return d.Message
}

// DiagnosticsError is returned by New and NewFromYAML when a configuration
// does not validate; it holds every problem found.
type DiagnosticsError []Diagnostic

func (e DiagnosticsError) Error() string {
	parts := make([]string, len(e))
	for i, d := range e {
		parts[i] = d.String()
	}
	return "invalid graph config: " + strings.Join(parts, "; ")
}

// Validate parses a YAML configuration and checks it against the registered
// calculators (and those given with WithCalculators): unknown calculators
// and options, ports the calculator does not have or that are left
// unconnected, streams nobody produces or that two nodes produce, type
// mismatches between connected ports, cycles without a back edge. It returns
// every problem found, each with its line, sorted by line; nil means the
// configuration can run.
func Validate(src []byte, opts ...Option) []Diagnostic {
	cfg, diags := ParseConfig(src)
	if len(diags) == 0 {
		_, diags = cfg.check(newSettings(opts).resolver())
	}
	sort.SliceStable(diags, func(i, j int) bool { return diags[i].Line < diags[j].Line })
	return diags
}

// Validate checks a configuration built in Go; see the package function
// Validate.
func (cfg *Config) Validate(opts ...Option) []Diagnostic {
	_, diags := cfg.check(newSettings(opts).resolver())
	return diags
}

// plan is a checked configuration: everything New needs to build a graph.
type plan struct {
	cfg   *Config
	nodes []*nodePlan
	// order is a topological order of node indexes (back edges ignored).
	order []int
}

type nodePlan struct {
	cfg      *NodeConfig
	name     string
	spec     Spec
	contract Contract
	options  Options
	inputs   []PortRef
	outputs  []PortRef
	sideIn   []PortRef
	sideOut  []PortRef
	inSpecs  []*PortSpec
	outSpecs []*PortSpec
	sideInSp []*PortSpec
	sideOutS []*PortSpec
	backEdge []bool // per input
	handler  handlerSpec
	depth    int
}

type producer struct {
	node int // -1 for a graph input
	port int
	line int
}

func refsOf(rs []StreamRef) []PortRef {
	out := make([]PortRef, len(rs))
	for i, r := range rs {
		out[i] = r.Ref()
	}
	return out
}

// check validates cfg and, when it is valid, returns its plan.
func (cfg *Config) check(res resolver) (*plan, []Diagnostic) {
	var diags []Diagnostic
	errf := func(line int, node string, format string, args ...any) {
		diags = append(diags, Diagnostic{Line: line, Node: node, Message: fmt.Sprintf(format, args...)})
	}
	if cfg.NumThreads < 0 {
		errf(cfg.NumThreadsLine, "", "num_threads must be 0 (one per CPU) or more, got %d", cfg.NumThreads)
	}
	if cfg.MaxQueueSize < -1 {
		errf(cfg.MaxQueueSizeLine, "", "max_queue_size must be -1 (unbounded), 0 (default 100) or more, got %d", cfg.MaxQueueSize)
	}
	p := &plan{cfg: cfg}
	names := nodeNames(cfg.Nodes)
	seenName := map[string]int{}
	for i := range cfg.Nodes {
		nc := &cfg.Nodes[i]
		np := &nodePlan{cfg: nc, name: names[i]}
		p.nodes = append(p.nodes, np)
		if prev, dup := seenName[np.name]; dup {
			errf(nc.Line, np.name, "node name %q is already used by the node at line %d", np.name, cfg.Nodes[prev].Line)
		}
		seenName[np.name] = i
		np.inputs, np.outputs = refsOf(nc.InputStreams), refsOf(nc.OutputStreams)
		np.sideIn, np.sideOut = refsOf(nc.InputSidePackets), refsOf(nc.OutputSidePackets)
		np.inSpecs = make([]*PortSpec, len(np.inputs))
		np.outSpecs = make([]*PortSpec, len(np.outputs))
		np.sideInSp = make([]*PortSpec, len(np.sideIn))
		np.sideOutS = make([]*PortSpec, len(np.sideOut))
		np.backEdge = make([]bool, len(np.inputs))
		line := nc.CalculatorLine
		if line == 0 {
			line = nc.Line
		}
		if nc.Calculator == "" {
			continue // reported by the parser or below
		}
		spec, ok := res.lookup(nc.Calculator)
		if !ok {
			msg := fmt.Sprintf("node %q: unknown calculator %q", np.name, nc.Calculator)
			if s := suggest(nc.Calculator, res.names()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errf(line, np.name, "%s", msg)
			continue
		}
		np.spec = spec
		opts, problems := resolveOptions(spec.Options, nc.Options)
		for _, name := range sortedKeys(problems) {
			l := nc.OptionLines[name]
			if l == 0 {
				l = nc.Line
			}
			errf(l, np.name, "node %q: %s", np.name, problems[name])
		}
		np.options = opts
		info := NodeInfo{Name: np.name, Calculator: nc.Calculator, Inputs: np.inputs, Outputs: np.outputs,
			InputSidePackets: np.sideIn, OutputSidePackets: np.sideOut, Options: opts}
		contract, err := spec.contractFor(info)
		if err != nil {
			errf(line, np.name, "node %q (%s): %v", np.name, nc.Calculator, err)
			continue
		}
		np.contract = contract
		for _, k := range []struct {
			kind  portKind
			specs []PortSpec
			refs  []PortRef
			lines []StreamRef
			dst   []*PortSpec
		}{
			{kindInput, contract.Inputs, np.inputs, nc.InputStreams, np.inSpecs},
			{kindOutput, contract.Outputs, np.outputs, nc.OutputStreams, np.outSpecs},
			{kindSideInput, contract.InputSidePackets, np.sideIn, nc.InputSidePackets, np.sideInSp},
			{kindSideOutput, contract.OutputSidePackets, np.sideOut, nc.OutputSidePackets, np.sideOutS},
		} {
			bound, problems := matchPorts(k.kind, k.specs, k.refs)
			copy(k.dst, bound)
			for _, pr := range problems {
				l := nc.Line
				if pr.ref >= 0 && k.lines[pr.ref].Line > 0 {
					l = k.lines[pr.ref].Line
				}
				errf(l, np.name, "node %q (%s): %s", np.name, nc.Calculator, pr.msg)
			}
		}
		for _, be := range nc.BackEdges {
			found := false
			for j, r := range np.inputs {
				if be == r.Key() || (r.Index == 0 && be == r.Tag && be != "") || be == r.Name {
					np.backEdge[j], found = true, true
				}
			}
			if !found {
				l := nc.BackEdgesLine
				if l == 0 {
					l = nc.Line
				}
				errf(l, np.name, "node %q: back edge %q names no input (use TAG, TAG:index or the stream name)", np.name, be)
			}
		}
		h, msgs := parseHandler(nc.InputStreamHandler, contract.InputStreamHandler, np.inputs)
		for _, m := range msgs {
			l := nc.InputStreamHandler.Line
			if l == 0 {
				l = nc.Line
			}
			errf(l, np.name, "node %q: %s", np.name, m)
		}
		np.handler = h
		l := nc.MaxInFlightLine
		if l == 0 {
			l = nc.Line
		}
		switch {
		case nc.MaxInFlight < 0:
			errf(l, np.name, "node %q: max_in_flight must be 1 or more, got %d", np.name, nc.MaxInFlight)
		case nc.MaxInFlight > 1 && !contract.Stateless:
			errf(l, np.name, "node %q: max_in_flight %d needs a stateless calculator and %s is not declared stateless", np.name, nc.MaxInFlight, nc.Calculator)
		case nc.MaxInFlight > 1 && len(np.inputs) == 0:
			errf(l, np.name, "node %q: max_in_flight does not apply to a source node (it has no input streams)", np.name)
		case nc.MaxInFlight > 1 && h.batchSize > 1:
			errf(l, np.name, "node %q: max_in_flight %d cannot be combined with batch_size %d: a batch runs its calls in a row", np.name, nc.MaxInFlight, h.batchSize)
		}
		if h.batchSize > 1 && len(np.inputs) == 0 {
			l := nc.InputStreamHandler.Line
			if l == 0 {
				l = nc.Line
			}
			errf(l, np.name, "node %q: batch_size does not apply to a source node (it has no input streams)", np.name)
		}
		if nc.MaxQueueSize < -1 {
			errf(nc.Line, np.name, "node %q: max_queue_size must be -1, 0 or more, got %d", np.name, nc.MaxQueueSize)
		}
	}

	// Streams: one producer each, every consumed stream produced, types agree.
	producers := map[string]producer{}
	for _, r := range cfg.InputStreams {
		if prev, dup := producers[r.Name]; dup {
			errf(r.Line, "", "graph input stream %q is declared twice (first at line %d)", r.Name, prev.line)
			continue
		}
		producers[r.Name] = producer{node: -1, line: r.Line}
	}
	for i, np := range p.nodes {
		for j, r := range np.cfg.OutputStreams {
			if prev, dup := producers[r.Name]; dup {
				errf(r.Line, np.name, "stream %q is produced twice: by %s and by node %q", r.Name, p.describe(prev), np.name)
				continue
			}
			producers[r.Name] = producer{node: i, port: j, line: r.Line}
		}
	}
	for _, np := range p.nodes {
		for j, r := range np.cfg.InputStreams {
			pr, ok := producers[r.Name]
			if !ok {
				errf(lineOr(r.Line, np.cfg.Line), np.name, "node %q: input stream %q is not connected: no node produces it and it is not a graph input stream", np.name, r.Name)
				continue
			}
			if pr.node >= 0 && np.inSpecs[j] != nil {
				from := p.nodes[pr.node].outSpecs[pr.port]
				if from != nil && !typesCompatible(from.Type, np.inSpecs[j].Type) {
					errf(lineOr(r.Line, np.cfg.Line), np.name, "stream %q: type mismatch: node %q produces %s but node %q input %s expects %s",
						r.Name, p.nodes[pr.node].name, typeName(from.Type), np.name, tagName(r.Tag), typeName(np.inSpecs[j].Type))
				}
			}
		}
	}
	for _, r := range cfg.OutputStreams {
		if _, ok := producers[r.Name]; !ok {
			errf(r.Line, "", "graph output stream %q is produced by no node", r.Name)
		}
	}

	// Side packets.
	sideProducers := map[string]producer{}
	for _, r := range cfg.InputSidePackets {
		sideProducers[r.Name] = producer{node: -1, line: r.Line}
	}
	for i, np := range p.nodes {
		for j, r := range np.cfg.OutputSidePackets {
			if prev, dup := sideProducers[r.Name]; dup {
				errf(r.Line, np.name, "side packet %q is produced twice: by %s and by node %q", r.Name, p.describe(prev), np.name)
				continue
			}
			sideProducers[r.Name] = producer{node: i, port: j, line: r.Line}
		}
	}
	for _, np := range p.nodes {
		for j, r := range np.cfg.InputSidePackets {
			pr, ok := sideProducers[r.Name]
			if !ok {
				errf(lineOr(r.Line, np.cfg.Line), np.name, "node %q: input side packet %q is produced by no node and is not declared in input_side_packets", np.name, r.Name)
				continue
			}
			if pr.node >= 0 && np.sideInSp[j] != nil {
				from := p.nodes[pr.node].sideOutS[pr.port]
				if from != nil && !typesCompatible(from.Type, np.sideInSp[j].Type) {
					errf(lineOr(r.Line, np.cfg.Line), np.name, "side packet %q: type mismatch: node %q produces %s but node %q expects %s",
						r.Name, p.nodes[pr.node].name, typeName(from.Type), np.name, typeName(np.sideInSp[j].Type))
				}
			}
		}
	}
	for _, r := range cfg.OutputSidePackets {
		if pr, ok := sideProducers[r.Name]; !ok || pr.node < 0 {
			errf(r.Line, "", "graph output side packet %q is produced by no node", r.Name)
		}
	}

	// Order: producers before consumers, back edges aside; anything left
	// over sits on a cycle.
	indeg := make([]int, len(p.nodes))
	succ := make([][]int, len(p.nodes))
	for i, np := range p.nodes {
		for j, r := range np.inputs {
			if pr, ok := producers[r.Name]; ok && pr.node >= 0 && !np.backEdge[j] {
				succ[pr.node] = append(succ[pr.node], i)
				indeg[i]++
			}
		}
	}
	var queue []int
	for i := range p.nodes {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		p.order = append(p.order, i)
		for _, j := range succ[i] {
			if indeg[j]--; indeg[j] == 0 {
				queue = append(queue, j)
			}
		}
	}
	if len(p.order) < len(p.nodes) {
		var cyc []string
		line := 0
		for i, np := range p.nodes {
			if indeg[i] > 0 {
				cyc = append(cyc, strconv.Quote(np.name))
				if line == 0 {
					line = np.cfg.Line
				}
			}
		}
		errf(line, "", "nodes %s form a cycle: list the input that closes the loop in the consuming node's back_edges", strings.Join(cyc, ", "))
	}
	// Nodes fed by graph inputs sit one level below them; sources stay at
	// depth 0, the lowest priority.
	for _, i := range p.order {
		np := p.nodes[i]
		if len(np.inputs) > 0 && np.depth == 0 {
			np.depth = 1
		}
		for _, j := range succ[i] {
			if np.depth+1 > p.nodes[j].depth {
				p.nodes[j].depth = np.depth + 1
			}
		}
	}
	if len(diags) > 0 {
		return nil, diags
	}
	return p, nil
}

func (p *plan) describe(pr producer) string {
	if pr.node < 0 {
		return "the graph input"
	}
	np := p.nodes[pr.node]
	if np.cfg.Line > 0 {
		return fmt.Sprintf("node %q (line %d)", np.name, np.cfg.Line)
	}
	return fmt.Sprintf("node %q", np.name)
}

func lineOr(l, alt int) int {
	if l > 0 {
		return l
	}
	return alt
}

// nodeNames gives every node its name: the configured one, or the
// calculator's name, numbered when the calculator appears more than once.
func nodeNames(nodes []NodeConfig) []string {
	count := map[string]int{}
	for _, n := range nodes {
		if n.Name == "" {
			count[n.Calculator]++
		}
	}
	seen := map[string]int{}
	out := make([]string, len(nodes))
	for i, n := range nodes {
		switch {
		case n.Name != "":
			out[i] = n.Name
		case count[n.Calculator] == 1:
			out[i] = n.Calculator
		default:
			seen[n.Calculator]++
			out[i] = fmt.Sprintf("%s_%d", n.Calculator, seen[n.Calculator])
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the known name closest to s, if it is close enough to be
// a likely typo.
func suggest(s string, known []string) string {
	best, bestD := "", len(s)/2+1
	for _, k := range known {
		if strings.EqualFold(k, s) {
			return k
		}
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
