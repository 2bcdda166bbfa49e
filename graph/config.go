package graph

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config declares a graph: its nodes, the streams and side packets that
// connect them, and graph-wide settings. Build one with ParseConfig (YAML)
// or NewBuilder (Go). Line fields hold the YAML line a value came from (0
// when built in Go) so diagnostics can point at it.
type Config struct {
	// InputStreams are fed by the application (AddPacketToInputStream).
	InputStreams []StreamRef
	// OutputStreams document the streams the application reads; any
	// stream can be observed, these are checked to exist.
	OutputStreams []StreamRef
	// InputSidePackets are given to StartRun.
	InputSidePackets []StreamRef
	// OutputSidePackets are read after the run with OutputSidePacket.
	OutputSidePackets []StreamRef
	// NumThreads sizes the worker pool; 0 means runtime.NumCPU().
	NumThreads int
	// MaxQueueSize bounds every input stream queue; 0 means the default
	// of 100 and -1 means unbounded. See the package documentation on
	// flow control.
	MaxQueueSize int
	// ReportDeadlock makes a throttling deadlock fail the run instead of
	// being resolved by growing the full queues.
	ReportDeadlock bool
	Nodes          []NodeConfig

	// Lines of the graph-level settings, for diagnostics.
	NumThreadsLine, MaxQueueSizeLine int
}

// NodeConfig declares one node.
type NodeConfig struct {
	// Name identifies the node in errors, profiles and DOT output; it
	// defaults to the calculator name, suffixed with a counter when the
	// calculator is used more than once.
	Name       string
	Calculator string
	// Streams and side packets as "TAG:index:name", "TAG:name" or "name".
	InputStreams      []StreamRef
	OutputStreams     []StreamRef
	InputSidePackets  []StreamRef
	OutputSidePackets []StreamRef
	// Options are checked against the calculator's OptionSpecs.
	Options map[string]any
	// InputStreamHandler overrides the calculator's handler.
	InputStreamHandler HandlerConfig
	// MaxInFlight lets a stateless calculator run Process on this many
	// input timestamps at once; 0 means 1.
	MaxInFlight int
	// MaxQueueSize overrides the graph's queue bound for this node's
	// inputs (0: use the graph's).
	MaxQueueSize int
	// BackEdges lists inputs ("LOOP", "IN:1") fed from downstream, which
	// closes a loop; they are left out of cycle checks and ordering.
	BackEdges []string

	Line            int            // line of the node entry
	CalculatorLine  int            // line of the calculator name
	OptionLines     map[string]int // line of each option
	MaxInFlightLine int
	BackEdgesLine   int
}

// HandlerConfig names an input stream handler and its options. In YAML it
// is either a name (`input_stream_handler: immediate`) or a mapping with
// `name` and `options`.
type HandlerConfig struct {
	Name    string
	Options map[string]any
	Line    int
}

// StreamRef is a port binding as written in a configuration:
// "TAG:index:name", "TAG:name" or "name". Tags are upper case, names lower
// case, as in MediaPipe.
type StreamRef struct {
	Tag   string
	Index int // -1 until assigned: written without an index
	Name  string
	Line  int
}

// Ref returns the binding as a PortRef.
func (s StreamRef) Ref() PortRef { return PortRef{Tag: s.Tag, Index: s.Index, Name: s.Name} }

// String formats the binding as it was written: without an index when
// none was given (Index -1), with it otherwise.
func (s StreamRef) String() string {
	switch {
	case s.Index >= 0:
		return s.Tag + ":" + strconv.Itoa(s.Index) + ":" + s.Name
	case s.Tag == "":
		return s.Name
	default:
		return s.Tag + ":" + s.Name
	}
}

var (
	tagPattern  = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	namePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// ParseStreamRef parses "TAG:index:name", "TAG:name" or "name". The tag
// may be empty in the three-part form (":1:name") to address an untagged
// port by index.
func ParseStreamRef(s string) (StreamRef, error) {
	parts := strings.Split(s, ":")
	r := StreamRef{Index: -1}
	switch len(parts) {
	case 1:
		r.Name = parts[0]
	case 2:
		r.Tag, r.Name = parts[0], parts[1]
	case 3:
		r.Tag, r.Name = parts[0], parts[2]
		i, err := strconv.Atoi(parts[1])
		if err != nil || i < 0 || i > 1<<20 {
			return r, fmt.Errorf("%q: index %q is not a small non-negative integer", s, parts[1])
		}
		r.Index = i
	default:
		return r, fmt.Errorf("%q: want TAG:index:name, TAG:name or name", s)
	}
	if (len(parts) == 2 || r.Tag != "") && !tagPattern.MatchString(r.Tag) {
		return r, fmt.Errorf("%q: tag %q must be upper case letters, digits and _", s, r.Tag)
	}
	if !namePattern.MatchString(r.Name) {
		return r, fmt.Errorf("%q: name %q must be lower case letters, digits and _, not starting with a digit", s, r.Name)
	}
	return r, nil
}

// assignIndexes gives refs written without an index the next free index of
// their tag, in order, and reports clashes.
func assignIndexes(refs []StreamRef) []string {
	var problems []string
	next := map[string]int{}
	used := map[string]bool{}
	for i := range refs {
		r := &refs[i]
		if r.Index < 0 {
			r.Index = next[r.Tag]
		}
		if r.Index >= next[r.Tag] {
			next[r.Tag] = r.Index + 1
		}
		k := r.Tag + ":" + strconv.Itoa(r.Index)
		if used[k] {
			problems = append(problems, fmt.Sprintf("%s: port %s is bound twice", r, k))
		}
		used[k] = true
	}
	return problems
}

// ParseConfig parses a YAML graph configuration. It returns the config and
// every problem found while reading it (syntax, unknown fields, malformed
// stream names), each with its line. Semantic checks (unknown calculators,
// unconnected streams, types) are done by Validate and New.
func ParseConfig(src []byte) (*Config, []Diagnostic) {
	p := &parser{}
	cfg := p.parse(src)
	return cfg, p.diags
}

type parser struct{ diags []Diagnostic }

func (p *parser) errf(line int, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{Line: line, Message: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func (p *parser) parse(src []byte) *Config {
	cfg := &Config{}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line := 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringIndex(msg); m != nil && m[0] == 0 {
			msg = strings.TrimLeft(msg[m[1]:], ": ")
		}
		p.errf(line, "%s", msg)
		return cfg
	}
	if len(doc.Content) == 0 {
		p.errf(1, "the graph configuration is empty")
		return cfg
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errf(root.Line, "the graph configuration must be a mapping (input_streams, nodes, ...)")
		return cfg
	}
	p.fields(root, func(key string, k, v *yaml.Node) bool {
		switch key {
		case "input_streams":
			cfg.InputStreams = p.refs(v)
		case "output_streams":
			cfg.OutputStreams = p.refs(v)
		case "input_side_packets":
			cfg.InputSidePackets = p.refs(v)
		case "output_side_packets":
			cfg.OutputSidePackets = p.refs(v)
		case "num_threads":
			cfg.NumThreads, cfg.NumThreadsLine = p.int(v), v.Line
		case "max_queue_size":
			cfg.MaxQueueSize, cfg.MaxQueueSizeLine = p.int(v), v.Line
		case "report_deadlock":
			cfg.ReportDeadlock = p.bool(v)
		case "nodes":
			if v.Kind != yaml.SequenceNode {
				p.errf(v.Line, "nodes must be a list")
				return true
			}
			for _, n := range v.Content {
				cfg.Nodes = append(cfg.Nodes, p.node(n))
			}
		default:
			return false
		}
		return true
	}, "input_streams, output_streams, input_side_packets, output_side_packets, num_threads, max_queue_size, report_deadlock, nodes")
	for _, refs := range [][]StreamRef{cfg.InputStreams, cfg.OutputStreams, cfg.InputSidePackets, cfg.OutputSidePackets} {
		for i := range refs {
			if refs[i].Tag != "" || refs[i].Index > 0 {
				p.errf(refs[i].Line, "graph-level %q: graph streams and side packets are plain names", refs[i].String())
			}
			refs[i].Index = 0
		}
	}
	return cfg
}

// fields walks a mapping's keys; handle returns false for unknown keys.
func (p *parser) fields(m *yaml.Node, handle func(key string, k, v *yaml.Node) bool, known string) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			p.errf(k.Line, "keys must be plain names")
			continue
		}
		if seen[key] {
			p.errf(k.Line, "field %q is set twice", key)
			continue
		}
		seen[key] = true
		if !handle(key, k, v) {
			p.errf(k.Line, "unknown field %q (known: %s)", key, known)
		}
	}
}

func (p *parser) node(n *yaml.Node) NodeConfig {
	nc := NodeConfig{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, "a node must be a mapping with at least a calculator")
		return nc
	}
	p.fields(n, func(key string, k, v *yaml.Node) bool {
		switch key {
		case "name":
			nc.Name = p.str(v)
		case "calculator":
			nc.Calculator, nc.CalculatorLine = p.str(v), v.Line
		case "input_streams":
			nc.InputStreams = p.refs(v)
		case "output_streams":
			nc.OutputStreams = p.refs(v)
		case "input_side_packets":
			nc.InputSidePackets = p.refs(v)
		case "output_side_packets":
			nc.OutputSidePackets = p.refs(v)
		case "options":
			nc.Options, nc.OptionLines = p.mapping(v)
		case "input_stream_handler":
			nc.InputStreamHandler = p.handler(v)
		case "max_in_flight":
			nc.MaxInFlight, nc.MaxInFlightLine = p.int(v), v.Line
		case "max_queue_size":
			nc.MaxQueueSize = p.int(v)
		case "back_edges":
			nc.BackEdgesLine = v.Line
			for _, s := range p.scalars(v) {
				nc.BackEdges = append(nc.BackEdges, s.Value)
			}
		default:
			return false
		}
		return true
	}, "name, calculator, input_streams, output_streams, input_side_packets, output_side_packets, options, input_stream_handler, max_in_flight, max_queue_size, back_edges")
	if nc.Calculator == "" {
		p.errf(n.Line, "node %s has no calculator", quoteOr(nc.Name, "at this line"))
	}
	for _, refs := range [][]StreamRef{nc.InputStreams, nc.OutputStreams, nc.InputSidePackets, nc.OutputSidePackets} {
		for _, msg := range assignIndexes(refs) {
			p.errf(n.Line, "%s", msg)
		}
	}
	return nc
}

func quoteOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return strconv.Quote(s)
}

func (p *parser) handler(v *yaml.Node) HandlerConfig {
	h := HandlerConfig{Line: v.Line}
	switch v.Kind {
	case yaml.ScalarNode:
		h.Name = v.Value
	case yaml.MappingNode:
		p.fields(v, func(key string, _, v *yaml.Node) bool {
			switch key {
			case "name":
				h.Name = p.str(v)
			case "options":
				h.Options, _ = p.mapping(v)
			default:
				return false
			}
			return true
		}, "name, options")
	default:
		p.errf(v.Line, "input_stream_handler must be a name or a mapping with name and options")
	}
	return h
}

// scalars accepts a single scalar or a list of scalars.
func (p *parser) scalars(v *yaml.Node) []*yaml.Node {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return nil
		}
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				p.errf(e.Line, "want a plain string here")
				continue
			}
			out = append(out, e)
		}
		return out
	}
	p.errf(v.Line, "want a string or a list of strings")
	return nil
}

func (p *parser) refs(v *yaml.Node) []StreamRef {
	var out []StreamRef
	for _, s := range p.scalars(v) {
		r, err := ParseStreamRef(s.Value)
		if err != nil {
			p.errf(s.Line, "%v", err)
			continue
		}
		r.Line = s.Line
		out = append(out, r)
	}
	return out
}

func (p *parser) str(v *yaml.Node) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errf(v.Line, "want a string")
		return ""
	}
	return v.Value
}

func (p *parser) int(v *yaml.Node) int {
	var i int
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&i) != nil {
		p.errf(v.Line, "want an integer, got %q", v.Value)
		return 0
	}
	return i
}

func (p *parser) bool(v *yaml.Node) bool {
	var b bool
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&b) != nil {
		p.errf(v.Line, "want true or false, got %q", v.Value)
		return false
	}
	return b
}

func (p *parser) mapping(v *yaml.Node) (map[string]any, map[string]int) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		p.errf(v.Line, "want a mapping of option names to values")
		return nil, nil
	}
	values := map[string]any{}
	lines := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		var x any
		if err := val.Decode(&x); err != nil {
			p.errf(val.Line, "option %q: %v", k.Value, err)
			continue
		}
		if _, dup := values[k.Value]; dup {
			p.errf(k.Line, "option %q is set twice", k.Value)
		}
		values[k.Value] = x
		lines[k.Value] = k.Line
	}
	return values, lines
}

// Builder assembles a Config in Go. Mistakes in stream names are kept and
// reported by Config, so calls can be chained.
type Builder struct {
	cfg  Config
	errs []string
}

// NewBuilder starts an empty graph configuration.
func NewBuilder() *Builder { return &Builder{} }

func (b *Builder) ref(s string) (StreamRef, bool) {
	r, err := ParseStreamRef(s)
	if err != nil {
		b.errs = append(b.errs, err.Error())
		return r, false
	}
	return r, true
}

func (b *Builder) plain(dst *[]StreamRef, names []string) *Builder {
	for _, n := range names {
		if r, ok := b.ref(n); ok {
			r.Index = 0
			*dst = append(*dst, r)
		}
	}
	return b
}

// InputStream declares graph input streams.
func (b *Builder) InputStream(names ...string) *Builder { return b.plain(&b.cfg.InputStreams, names) }

// OutputStream declares graph output streams.
func (b *Builder) OutputStream(names ...string) *Builder {
	return b.plain(&b.cfg.OutputStreams, names)
}

// InputSidePacket declares graph input side packets.
func (b *Builder) InputSidePacket(names ...string) *Builder {
	return b.plain(&b.cfg.InputSidePackets, names)
}

// OutputSidePacket declares graph output side packets.
func (b *Builder) OutputSidePacket(names ...string) *Builder {
	return b.plain(&b.cfg.OutputSidePackets, names)
}

// NumThreads sets the worker pool size.
func (b *Builder) NumThreads(n int) *Builder { b.cfg.NumThreads = n; return b }

// MaxQueueSize sets the input queue bound (-1: unbounded).
func (b *Builder) MaxQueueSize(n int) *Builder { b.cfg.MaxQueueSize = n; return b }

// ReportDeadlock makes throttling deadlocks fail the run.
func (b *Builder) ReportDeadlock(on bool) *Builder { b.cfg.ReportDeadlock = on; return b }

// Node adds a node running calculator and returns it for configuration.
// name may be empty to get the default name.
func (b *Builder) Node(calculator, name string) *NodeBuilder {
	b.cfg.Nodes = append(b.cfg.Nodes, NodeConfig{Name: name, Calculator: calculator})
	return &NodeBuilder{b: b, i: len(b.cfg.Nodes) - 1}
}

// Config returns the configuration, or an error listing malformed stream
// names and port clashes. Semantic checks happen in New.
func (b *Builder) Config() (*Config, error) {
	cfg := b.cfg
	cfg.Nodes = append([]NodeConfig(nil), b.cfg.Nodes...)
	errs := append([]string(nil), b.errs...)
	for i := range cfg.Nodes {
		n := &cfg.Nodes[i]
		for _, refs := range [][]StreamRef{n.InputStreams, n.OutputStreams, n.InputSidePackets, n.OutputSidePackets} {
			for _, m := range assignIndexes(refs) {
				errs = append(errs, fmt.Sprintf("node %s: %s", quoteOr(n.Name, n.Calculator), m))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("graph config: %s", strings.Join(errs, "; "))
	}
	return &cfg, nil
}

// NodeBuilder configures one node of a Builder.
type NodeBuilder struct {
	b *Builder
	i int
}

func (n *NodeBuilder) node() *NodeConfig { return &n.b.cfg.Nodes[n.i] }

func (n *NodeBuilder) bind(dst *[]StreamRef, port, name string) *NodeBuilder {
	s := name
	if port != "" {
		s = port + ":" + name
	}
	if r, ok := n.b.ref(s); ok {
		*dst = append(*dst, r)
	}
	return n
}

// In binds input port ("IN", "IN:1", or "" for the next untagged index) to
// stream.
func (n *NodeBuilder) In(port, stream string) *NodeBuilder {
	return n.bind(&n.node().InputStreams, port, stream)
}

// Out binds output port to stream.
func (n *NodeBuilder) Out(port, stream string) *NodeBuilder {
	return n.bind(&n.node().OutputStreams, port, stream)
}

// SideIn binds an input side packet port.
func (n *NodeBuilder) SideIn(port, name string) *NodeBuilder {
	return n.bind(&n.node().InputSidePackets, port, name)
}

// SideOut binds an output side packet port.
func (n *NodeBuilder) SideOut(port, name string) *NodeBuilder {
	return n.bind(&n.node().OutputSidePackets, port, name)
}

// Option sets a node option.
func (n *NodeBuilder) Option(name string, v any) *NodeBuilder {
	nc := n.node()
	if nc.Options == nil {
		nc.Options = map[string]any{}
	}
	nc.Options[name] = v
	return n
}

// Handler sets the node's input stream handler and its options (nil for
// none).
func (n *NodeBuilder) Handler(name string, options map[string]any) *NodeBuilder {
	n.node().InputStreamHandler = HandlerConfig{Name: name, Options: options}
	return n
}

// MaxInFlight allows that many concurrent Process calls (stateless
// calculators only).
func (n *NodeBuilder) MaxInFlight(k int) *NodeBuilder { n.node().MaxInFlight = k; return n }

// MaxQueueSize overrides the queue bound of this node's inputs.
func (n *NodeBuilder) MaxQueueSize(k int) *NodeBuilder { n.node().MaxQueueSize = k; return n }

// BackEdge marks input port ("LOOP" or "LOOP:0") as fed from downstream.
func (n *NodeBuilder) BackEdge(port string) *NodeBuilder {
	n.node().BackEdges = append(n.node().BackEdges, port)
	return n
}
