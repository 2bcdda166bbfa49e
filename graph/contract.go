package graph

import (
	"fmt"
	"reflect"
	"strconv"
)

// PortSpec declares one input or output of a calculator: a stream or a side
// packet, addressed by an upper-case tag and an index. Ports without a tag
// (Tag "") are addressed by index only, like MediaPipe's untagged streams.
type PortSpec struct {
	// Tag names the port ("VIDEO", "ALLOW"); "" for index-only ports.
	Tag string
	// Type is the payload type packets on the port must have (assignable
	// to); nil accepts any payload. The graph checks that connected ports
	// agree before running and checks every packet emitted on a typed
	// output.
	Type reflect.Type
	// Optional ports may be left unconnected.
	Optional bool
	// Repeated ports accept indexes 0..n-1 ("IN:0:a", "IN:1:b"); otherwise
	// only index 0 exists.
	Repeated bool
	// Doc is one line for generated documentation.
	Doc string
}

// Contract is what a calculator declares about itself: its ports and how
// the framework should feed it. The graph uses the contract to validate a
// configuration before running it and to set up each node.
type Contract struct {
	Inputs            []PortSpec
	Outputs           []PortSpec
	InputSidePackets  []PortSpec
	OutputSidePackets []PortSpec

	// InputStreamHandler is the handler used when the node configuration
	// names none: "default" (or ""), "immediate", "sync_set",
	// "fixed_size" or "early_close". See the package documentation for
	// their behaviour.
	InputStreamHandler string
	// ProcessTimestampBounds asks for Process calls on every settled
	// timestamp, even when no packet arrived (see
	// CalculatorContext.SetProcessTimestampBounds).
	ProcessTimestampBounds bool
	// Stateless declares that Process may run concurrently on several
	// input timestamps (a node's max_in_flight above 1). Open and Close
	// still run alone. Outputs of concurrent calls are delivered in input
	// timestamp order.
	Stateless bool
}

// PortRef is one connection of a node: tag, index and the stream or side
// packet name it is bound to.
type PortRef struct {
	Tag   string
	Index int
	Name  string
}

// Key returns "TAG:index", the port's identity on its node.
func (r PortRef) Key() string { return r.Tag + ":" + strconv.Itoa(r.Index) }

// String returns the MediaPipe form "TAG:index:name", omitting an empty tag
// and a zero index.
func (r PortRef) String() string {
	switch {
	case r.Tag == "" && r.Index == 0:
		return r.Name
	case r.Index == 0:
		return r.Tag + ":" + r.Name
	default:
		return r.Tag + ":" + strconv.Itoa(r.Index) + ":" + r.Name
	}
}

// NodeInfo describes a configured node to a calculator's GetContract, so a
// calculator whose ports depend on the configuration (a merge with any
// number of inputs) can declare exactly what it was given.
type NodeInfo struct {
	Name              string
	Calculator        string
	Inputs            []PortRef
	Outputs           []PortRef
	InputSidePackets  []PortRef
	OutputSidePackets []PortRef
	Options           Options
}

// CountTag returns how many of refs use tag.
func CountTag(refs []PortRef, tag string) int {
	n := 0
	for _, r := range refs {
		if r.Tag == tag {
			n++
		}
	}
	return n
}

// portKind names a family of ports in messages.
type portKind string

const (
	kindInput      portKind = "input stream"
	kindOutput     portKind = "output stream"
	kindSideInput  portKind = "input side packet"
	kindSideOutput portKind = "output side packet"
)

// portProblem is a port mismatch; ref is the index of the offending
// connection, or -1 when the problem is a missing connection.
type portProblem struct {
	ref int
	msg string
}

// matchPorts checks a node's connections against the declared ports and
// returns, for each connection, the PortSpec it binds to (nil where it binds
// to none), plus the problems found.
func matchPorts(kind portKind, specs []PortSpec, refs []PortRef) ([]*PortSpec, []portProblem) {
	var problems []portProblem
	bound := make([]*PortSpec, len(refs))
	byTag := map[string]*PortSpec{}
	for i := range specs {
		byTag[specs[i].Tag] = &specs[i]
	}
	seen := map[string]bool{}
	for i, r := range refs {
		s, ok := byTag[r.Tag]
		if !ok {
			problems = append(problems, portProblem{i, fmt.Sprintf("%s %q: the calculator has no %s tagged %s (it has: %s)",
				kind, r.String(), kind, tagName(r.Tag), tagList(specs))})
			continue
		}
		if r.Index > 0 && !s.Repeated {
			problems = append(problems, portProblem{i, fmt.Sprintf("%s %q: %s takes only index 0", kind, r.String(), tagName(r.Tag))})
			continue
		}
		seen[r.Key()] = true
		bound[i] = s
	}
	for _, s := range specs {
		if !s.Optional && !seen[s.Tag+":0"] {
			problems = append(problems, portProblem{-1, fmt.Sprintf("required %s %s is not connected", kind, tagName(s.Tag))})
		}
	}
	return bound, problems
}

func tagName(tag string) string {
	if tag == "" {
		return `"" (untagged)`
	}
	return tag
}

func tagList(specs []PortSpec) string {
	if len(specs) == 0 {
		return "none"
	}
	s := ""
	for i, p := range specs {
		if i > 0 {
			s += ", "
		}
		s += tagName(p.Tag)
	}
	return s
}

// typeName formats a declared port type, "any" for nil.
func typeName(t reflect.Type) string {
	if t == nil {
		return "any"
	}
	return t.String()
}

// typesCompatible reports whether values produced as from can be consumed
// as to. Undeclared types are compatible with everything.
func typesCompatible(from, to reflect.Type) bool {
	if from == nil || to == nil {
		return true
	}
	if from.AssignableTo(to) {
		return true
	}
	// A producer declaring an interface may emit values the consumer
	// accepts; only the run-time check can tell.
	return from.Kind() == reflect.Interface && to.Implements(from) || from.Kind() == reflect.Interface && to.Kind() == reflect.Interface
}

// checkValueType reports an error when v is not assignable to t.
func checkValueType(v any, t reflect.Type) error {
	if t == nil || v == nil {
		return nil
	}
	vt := reflect.TypeOf(v)
	if vt == t || vt.AssignableTo(t) {
		return nil
	}
	return fmt.Errorf("packet type mismatch: got %s, want %s", vt, t)
}
