package engine

import (
	"fmt"
	"sort"
	"sync"
)

// Factory makes instances of an engine: a ChunkFactory, StreamFactory or
// BatchFactory, matching the spec's mode. A host calls it once per engine
// instance it runs; an instance may process many chunks or streams in turn,
// never two at once. An error (a model that will not load) stops the
// instance from starting.
type Factory interface {
	// Mode is the engine mode the factory's engines run in.
	Mode() Mode
}

// ChunkFactory makes chunk engines.
type ChunkFactory func() (ChunkEngine, error)

// StreamFactory makes stream engines.
type StreamFactory func() (StreamEngine, error)

// BatchFactory makes batch engines.
type BatchFactory func() (BatchEngine, error)

// Mode implements Factory.
func (ChunkFactory) Mode() Mode { return ModeChunk }

// Mode implements Factory.
func (StreamFactory) Mode() Mode { return ModeStream }

// Mode implements Factory.
func (BatchFactory) Mode() Mode { return ModeBatch }

// Registration is a registered engine: its spec, normalized (option
// defaults and bounds in their Go types), and its factory.
type Registration struct {
	Spec    Spec
	Factory Factory
}

// Registry is a set of engines by name. The package keeps one, Default, to
// which built-in engines add themselves from init functions with Register;
// hosts, the REST API and the docs read it. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	engines map[string]Registration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{engines: map[string]Registration{}} }

// Register adds an engine. It fails when the spec is invalid (a
// *SpecError), the factory is nil or of another mode than the spec's, or
// the name is taken.
func (r *Registry) Register(spec Spec, f Factory) error {
	n, err := spec.normalized()
	if err != nil {
		return err
	}
	if f == nil || isNilFactory(f) {
		return fmt.Errorf("engine %q: no factory", spec.Name)
	}
	if f.Mode() != n.Mode {
		return fmt.Errorf("engine %q: engineMode is %s but the factory makes %s engines", spec.Name, n.Mode, f.Mode())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.engines[n.Name]; dup {
		return fmt.Errorf("engine %q is already registered", n.Name)
	}
	r.engines[n.Name] = Registration{Spec: n, Factory: f}
	return nil
}

// isNilFactory catches a typed nil func, which a nil interface check
// misses.
func isNilFactory(f Factory) bool {
	switch x := f.(type) {
	case ChunkFactory:
		return x == nil
	case StreamFactory:
		return x == nil
	case BatchFactory:
		return x == nil
	}
	return false
}

// Lookup returns the engine called name.
func (r *Registry) Lookup(name string) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.engines[name]
	return reg, ok
}

// List returns every engine, sorted by name.
func (r *Registry) List() []Registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Registration, 0, len(r.engines))
	for _, reg := range r.engines {
		out = append(out, reg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out
}

var defaultRegistry = NewRegistry()

// Default returns the registry that Register adds to.
func Default() *Registry { return defaultRegistry }

// Register adds an engine to the Default registry, normally from an init
// function. It panics on any error Registry.Register reports: a bad spec
// or a taken name is a programming mistake, best found when the program
// starts.
func Register(spec Spec, f Factory) {
	if err := defaultRegistry.Register(spec, f); err != nil {
		panic(err)
	}
}
