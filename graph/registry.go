package graph

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Spec registers a calculator: its name in graph configurations, how to
// make one, what it declares and the options it takes. The spec is at once
// the calculator's validation, its documentation and its example, so
// `weir graph calculators`, `weir engines list` and the docs are generated
// from the registry.
type Spec struct {
	// Name is how configurations refer to the calculator, e.g.
	// "PassThrough". Names are unique within a registry.
	Name string
	// Doc describes what the calculator does, first sentence first.
	Doc string
	// New makes a fresh calculator for one node. It is called once per
	// node per run.
	New func() Calculator
	// Contract declares the calculator's ports; used when GetContract is
	// nil.
	Contract Contract
	// GetContract, when set, computes the contract from the node's
	// configuration, for calculators whose ports vary (any number of
	// inputs, say). Returned errors are reported against the node.
	GetContract func(NodeInfo) (Contract, error)
	// Options declares the node options the calculator accepts, with
	// types and defaults. Unknown options are configuration errors.
	Options []OptionSpec
}

// OptionType is the type of a node option.
type OptionType string

// Option types. YAML integers are accepted for float options; durations are
// Go duration strings ("250ms", "1m30s").
const (
	OptString   OptionType = "string"
	OptInt      OptionType = "int"
	OptFloat    OptionType = "float"
	OptBool     OptionType = "bool"
	OptDuration OptionType = "duration"
)

// OptionSpec declares one node option.
type OptionSpec struct {
	Name     string
	Type     OptionType
	Default  any // in the option's Go type: string, int64, float64, bool, time.Duration
	Required bool
	Doc      string
}

// Options holds a node's option values, already checked against the
// calculator's OptionSpecs and filled with defaults, so the typed getters
// return the configured value or the default.
type Options struct{ values map[string]any }

// Value returns the raw value of an option and whether it is set (or has a
// default).
func (o Options) Value(name string) (any, bool) { v, ok := o.values[name]; return v, ok }

// String returns a string option ("" when unset).
func (o Options) String(name string) string { s, _ := o.values[name].(string); return s }

// Int returns an int option (0 when unset).
func (o Options) Int(name string) int64 { i, _ := o.values[name].(int64); return i }

// Float returns a float option (0 when unset).
func (o Options) Float(name string) float64 { f, _ := o.values[name].(float64); return f }

// Bool returns a bool option (false when unset).
func (o Options) Bool(name string) bool { b, _ := o.values[name].(bool); return b }

// Duration returns a duration option (0 when unset).
func (o Options) Duration(name string) time.Duration {
	d, _ := o.values[name].(time.Duration)
	return d
}

// resolveOptions converts raw configuration values to their declared types
// and fills defaults. It returns one message per problem, keyed by option
// name ("" for problems not tied to one option).
func resolveOptions(specs []OptionSpec, raw map[string]any) (Options, map[string]string) {
	out := Options{values: map[string]any{}}
	problems := map[string]string{}
	byName := map[string]OptionSpec{}
	for _, s := range specs {
		byName[s.Name] = s
		if s.Default != nil {
			out.values[s.Name] = s.Default
		}
	}
	for name, v := range raw {
		s, ok := byName[name]
		if !ok {
			names := make([]string, 0, len(specs))
			for _, s := range specs {
				names = append(names, s.Name)
			}
			if len(names) == 0 {
				problems[name] = fmt.Sprintf("unknown option %q: the calculator takes no options", name)
			} else {
				problems[name] = fmt.Sprintf("unknown option %q (options: %s)", name, strings.Join(names, ", "))
			}
			continue
		}
		cv, err := convertOption(s.Type, v)
		if err != nil {
			problems[name] = fmt.Sprintf("option %q: %v", name, err)
			continue
		}
		out.values[name] = cv
	}
	for _, s := range specs {
		if _, ok := raw[s.Name]; s.Required && !ok {
			problems[s.Name] = fmt.Sprintf("required option %q is not set", s.Name)
		}
	}
	return out, problems
}

func convertOption(t OptionType, v any) (any, error) {
	switch t {
	case OptString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case OptBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case OptInt:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case uint64:
			if x <= math.MaxInt64 {
				return int64(x), nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int64(x), nil
			}
		}
	case OptFloat:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case uint64:
			return float64(x), nil
		}
	case OptDuration:
		switch x := v.(type) {
		case time.Duration:
			return x, nil
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, fmt.Errorf("want a duration such as \"250ms\": %w", err)
			}
			return d, nil
		}
		return nil, fmt.Errorf("want a duration such as \"250ms\", got %T %v", v, v)
	default:
		return nil, fmt.Errorf("option type %q is not supported", t)
	}
	return nil, fmt.Errorf("want %s, got %T %v", t, v, v)
}

// registry is a set of calculator specs. The package keeps one global
// registry; a graph may add its own specs on top (WithCalculators).
type registry struct {
	mu    sync.RWMutex
	specs map[string]Spec
}

var global = &registry{specs: map[string]Spec{}}

var calculatorName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// checkSpec reports what makes a spec unusable.
func checkSpec(s Spec) error {
	if !calculatorName.MatchString(s.Name) {
		return fmt.Errorf("graph: calculator name %q must start with a letter and hold only letters, digits and _", s.Name)
	}
	if s.New == nil {
		return fmt.Errorf("graph: calculator %q has no New function", s.Name)
	}
	seen := map[string]bool{}
	for _, o := range s.Options {
		if seen[o.Name] {
			return fmt.Errorf("graph: calculator %q declares option %q twice", s.Name, o.Name)
		}
		seen[o.Name] = true
		if o.Default != nil {
			if _, err := convertOption(o.Type, o.Default); err != nil {
				return fmt.Errorf("graph: calculator %q option %q default: %w", s.Name, o.Name, err)
			}
		}
	}
	return nil
}

// Register adds a calculator to the global registry, normally from an init
// function. It panics if the spec is invalid or the name is taken, as
// registration mistakes are programming errors found at start-up.
func Register(s Spec) {
	if err := checkSpec(s); err != nil {
		panic(err)
	}
	global.mu.Lock()
	defer global.mu.Unlock()
	if _, dup := global.specs[s.Name]; dup {
		panic(fmt.Sprintf("graph: calculator %q registered twice", s.Name))
	}
	global.specs[s.Name] = normalizeSpec(s)
}

// normalizeSpec stores option defaults in their Go types so Options getters
// see int64 for an int default written as 3.
func normalizeSpec(s Spec) Spec {
	s.Options = slices.Clone(s.Options)
	for i, o := range s.Options {
		if o.Default != nil {
			s.Options[i].Default, _ = convertOption(o.Type, o.Default)
		}
	}
	return s
}

// Registered returns every globally registered calculator, sorted by name.
func Registered() []Spec {
	global.mu.RLock()
	defer global.mu.RUnlock()
	out := make([]Spec, 0, len(global.specs))
	for _, s := range global.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the globally registered calculator called name.
func Lookup(name string) (Spec, bool) {
	global.mu.RLock()
	defer global.mu.RUnlock()
	s, ok := global.specs[name]
	return s, ok
}

// resolver finds specs: the graph's own first, then the global registry.
type resolver map[string]Spec

func (r resolver) lookup(name string) (Spec, bool) {
	if s, ok := r[name]; ok {
		return s, true
	}
	return Lookup(name)
}

// names lists every calculator name the resolver knows, for suggestions.
func (r resolver) names() []string {
	var out []string
	for n := range r {
		out = append(out, n)
	}
	for _, s := range Registered() {
		if _, ok := r[s.Name]; !ok {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

// contractFor computes a node's contract from its spec.
func (s Spec) contractFor(info NodeInfo) (Contract, error) {
	if s.GetContract != nil {
		return s.GetContract(info)
	}
	return s.Contract, nil
}
