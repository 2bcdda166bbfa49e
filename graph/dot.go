package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// Dot renders a configuration as a Graphviz digraph: nodes as boxes
// labelled with name and calculator, graph input and output streams as
// ellipses, streams as edges labelled with their names, back edges dashed,
// side packets dotted. Streams nobody produces are drawn as red ellipses so
// an invalid configuration still renders.
func Dot(cfg *Config) string {
	var b strings.Builder
	q := strconv.Quote
	b.WriteString("digraph weir {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	names := nodeNames(cfg.Nodes)
	streamProducer := map[string]string{}
	sideProducer := map[string]string{}
	for _, r := range cfg.InputStreams {
		id := "input:" + r.Name
		streamProducer[r.Name] = id
		fmt.Fprintf(&b, "  %s [shape=ellipse, label=%s];\n", q(id), q(r.Name))
	}
	for _, r := range cfg.InputSidePackets {
		id := "side:" + r.Name
		sideProducer[r.Name] = id
		fmt.Fprintf(&b, "  %s [shape=note, label=%s];\n", q(id), q(r.Name))
	}
	for i, n := range cfg.Nodes {
		id := "node:" + names[i]
		fmt.Fprintf(&b, "  %s [label=%s];\n", q(id), q(names[i]+"\n"+n.Calculator))
		for _, r := range n.OutputStreams {
			streamProducer[r.Name] = id
		}
		for _, r := range n.OutputSidePackets {
			sideProducer[r.Name] = id
		}
	}
	missing := map[string]bool{}
	from := func(producers map[string]string, name string) string {
		if id, ok := producers[name]; ok {
			return id
		}
		id := "missing:" + name
		if !missing[id] {
			missing[id] = true
			fmt.Fprintf(&b, "  %s [shape=ellipse, color=red, fontcolor=red, label=%s];\n", q(id), q(name+"?"))
		}
		return id
	}
	for i, n := range cfg.Nodes {
		id := "node:" + names[i]
		refs := refsOf(n.InputStreams)
		for _, r := range n.InputStreams {
			attrs := []string{"label=" + q(edgeLabel(r))}
			for _, be := range n.BackEdges {
				if findInput(refs, be) >= 0 && refs[findInput(refs, be)].Key() == r.Ref().Key() {
					attrs = append(attrs, "style=dashed", "constraint=false")
				}
			}
			fmt.Fprintf(&b, "  %s -> %s [%s];\n", q(from(streamProducer, r.Name)), q(id), strings.Join(attrs, ", "))
		}
		for _, r := range n.InputSidePackets {
			fmt.Fprintf(&b, "  %s -> %s [style=dotted, label=%s];\n", q(from(sideProducer, r.Name)), q(id), q(edgeLabel(r)))
		}
	}
	for _, r := range cfg.OutputStreams {
		id := "output:" + r.Name
		fmt.Fprintf(&b, "  %s [shape=ellipse, peripheries=2, label=%s];\n", q(id), q(r.Name))
		fmt.Fprintf(&b, "  %s -> %s;\n", q(from(streamProducer, r.Name)), q(id))
	}
	for _, r := range cfg.OutputSidePackets {
		id := "output_side:" + r.Name
		fmt.Fprintf(&b, "  %s [shape=note, peripheries=2, label=%s];\n", q(id), q(r.Name))
		fmt.Fprintf(&b, "  %s -> %s [style=dotted];\n", q(from(sideProducer, r.Name)), q(id))
	}
	b.WriteString("}\n")
	return b.String()
}

// edgeLabel shows the stream name, and the consuming port when tagged.
func edgeLabel(r StreamRef) string {
	if r.Tag == "" && r.Index <= 0 {
		return r.Name
	}
	return r.Name + " → " + r.Ref().Key()
}
