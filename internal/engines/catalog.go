package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/metastore"
)

// Kind says where an engine runs.
type Kind string

const (
	// KindBuiltin engines run inside weir and register in code.
	KindBuiltin Kind = "builtin"
	// KindExternal engines run elsewhere and register with a manifest.
	KindExternal Kind = "external"
)

// Status is whether an engine can take work now.
type Status string

const (
	StatusAvailable   Status = "available"
	StatusUnavailable Status = "unavailable"
	// StatusUnknown: weir cannot tell, as for a Kafka engine, which is
	// seen only through the heartbeats of its work.
	StatusUnknown Status = "unknown"
)

// Entry is one engine of the catalog, with its availability at the time
// it was read.
type Entry struct {
	Spec engine.Spec
	Kind Kind
	// HTTP or Kafka says how an external engine is reached.
	HTTP  *engine.HTTPEndpoint
	Kafka *engine.KafkaEndpoint
	// Source is where an external engine's manifest came from: "api" or
	// "file:<path>".
	Source       string
	RegisteredAt time.Time
	UpdatedAt    time.Time

	Status Status
	// Reason says why the engine is not available, or why its status is
	// unknown.
	Reason string
	// Install is the command that installs what a built-in engine is
	// missing ("apt-get install -y ffmpeg").
	Install string
}

// Errors of the catalog's writes; test them with errors.Is.
var (
	// ErrNotFound: no engine, built-in or external, has the name.
	ErrNotFound = errors.New("engine not found")
	// ErrBuiltin: the name belongs to a built-in engine, which cannot be
	// replaced or removed by a manifest.
	ErrBuiltin = errors.New("built-in engine")
)

// DefaultReadyTimeout bounds an HTTP engine's readiness check.
const DefaultReadyTimeout = 2 * time.Second

// Catalog lists the built-in engines of a registry together with the
// external engines of a metadata store, and registers external ones.
type Catalog struct {
	builtin      *engine.Registry
	meta         metastore.Store
	client       *http.Client
	readyTimeout time.Duration
	log          *slog.Logger
}

// CatalogOption configures a Catalog.
type CatalogOption func(*Catalog)

// WithHTTPClient sets the client of HTTP engines' readiness checks.
func WithHTTPClient(c *http.Client) CatalogOption { return func(cat *Catalog) { cat.client = c } }

// WithReadyTimeout bounds each HTTP engine's readiness check (default
// DefaultReadyTimeout).
func WithReadyTimeout(d time.Duration) CatalogOption {
	return func(cat *Catalog) { cat.readyTimeout = d }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) CatalogOption { return func(cat *Catalog) { cat.log = l } }

// NewCatalog returns a catalog of builtin's engines and meta's external
// ones.
func NewCatalog(builtin *engine.Registry, meta metastore.Store, opts ...CatalogOption) *Catalog {
	c := &Catalog{builtin: builtin, meta: meta, client: http.DefaultClient, readyTimeout: DefaultReadyTimeout, log: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// List returns every engine, sorted by name, each with its availability;
// HTTP engines are asked for /ready concurrently. An external engine that
// a built-in one has come to shadow is left out (and logged).
func (c *Catalog) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	for _, reg := range c.builtin.List() {
		out = append(out, builtinEntry(reg))
	}
	stored, err := c.meta.ListEngines(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range stored {
		if _, shadowed := c.builtin.Lookup(rec.Name); shadowed {
			c.log.Warn("engines: an external engine has the name of a built-in one and is ignored; remove it",
				"engine", rec.Name, "source", rec.Source)
			continue
		}
		out = append(out, externalEntry(rec))
	}
	var wg sync.WaitGroup
	for i := range out {
		if out[i].HTTP != nil && out[i].Status == "" {
			wg.Go(func() { c.checkReady(ctx, &out[i]) })
		}
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Get returns the engine called name with its availability, or an error
// wrapping ErrNotFound.
func (c *Catalog) Get(ctx context.Context, name string) (Entry, error) {
	if reg, ok := c.builtin.Lookup(name); ok {
		return builtinEntry(reg), nil
	}
	rec, err := c.meta.GetEngine(ctx, name)
	if errors.Is(err, metastore.ErrNotFound) {
		return Entry{}, fmt.Errorf("engine %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, err
	}
	e := externalEntry(rec)
	if e.HTTP != nil && e.Status == "" {
		c.checkReady(ctx, &e)
	}
	return e, nil
}

// Register stores an external engine's manifest, replacing the one of the
// same name, and reports whether it is new. The manifest must be valid
// (ParseManifest gives one); a built-in engine's name fails with
// ErrBuiltin. Source says where the manifest came from.
func (c *Catalog) Register(ctx context.Context, m *engine.Manifest, source string) (Entry, bool, error) {
	if err := m.Validate(); err != nil {
		return Entry{}, false, err
	}
	if _, ok := c.builtin.Lookup(m.Name); ok {
		return Entry{}, false, fmt.Errorf("engine %s: %w: a manifest cannot replace it; choose another name", m.Name, ErrBuiltin)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Entry{}, false, fmt.Errorf("engine %s: %w", m.Name, err)
	}
	rec, created, err := c.meta.PutEngine(ctx, metastore.Engine{Name: m.Name, Manifest: raw, Source: source})
	if err != nil {
		return Entry{}, false, err
	}
	return externalEntry(rec), created, nil
}

// Remove deletes an external engine. A built-in engine's name fails with
// ErrBuiltin, an unknown one with ErrNotFound.
func (c *Catalog) Remove(ctx context.Context, name string) error {
	if _, ok := c.builtin.Lookup(name); ok {
		return fmt.Errorf("engine %s: %w: it cannot be removed", name, ErrBuiltin)
	}
	err := c.meta.DeleteEngine(ctx, name)
	if errors.Is(err, metastore.ErrNotFound) {
		return fmt.Errorf("engine %s: %w", name, ErrNotFound)
	}
	return err
}

// LoadDir registers the manifests in dir: every *.yaml, *.yml and *.json
// file, not descending into subdirectories. Every file is read and checked
// before any is stored, so one bad file registers nothing; errors name the
// file, and two files naming one engine are refused. It returns the names
// registered, in file order.
func (c *Catalog) LoadDir(ctx context.Context, dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("engines dir: %w", err)
	}
	type loaded struct {
		path string
		m    *engine.Manifest
	}
	var all []loaded
	byName := map[string]string{}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := readManifestFile(path)
		if err != nil {
			return nil, fmt.Errorf("engines dir: %w", err)
		}
		m, err := engine.ParseManifest(data)
		if err != nil {
			return nil, fmt.Errorf("engines dir: %s: %w", path, err)
		}
		if other, dup := byName[m.Name]; dup {
			return nil, fmt.Errorf("engines dir: %s and %s both register engine %q", other, path, m.Name)
		}
		if _, ok := c.builtin.Lookup(m.Name); ok {
			return nil, fmt.Errorf("engines dir: %s: engine %s: %w: choose another name", path, m.Name, ErrBuiltin)
		}
		byName[m.Name] = path
		all = append(all, loaded{path, m})
	}
	names := make([]string, 0, len(all))
	for _, l := range all {
		abs, err := filepath.Abs(l.path)
		if err != nil {
			abs = l.path
		}
		if _, _, err := c.Register(ctx, l.m, "file:"+abs); err != nil {
			return names, fmt.Errorf("engines dir: %s: %w", l.path, err)
		}
		names = append(names, l.m.Name)
	}
	return names, nil
}

// readManifestFile reads a manifest, refusing one larger than
// engine.MaxManifestBytes before reading it all.
func readManifestFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, engine.MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

func builtinEntry(reg engine.Registration) Entry {
	e := Entry{Spec: reg.Spec, Kind: KindBuiltin, Status: StatusAvailable}
	if err := reg.Spec.Available(); err != nil {
		e.Status, e.Reason = StatusUnavailable, err.Error()
		var ue *engine.UnavailableError
		if errors.As(err, &ue) {
			e.Install = ue.Install()
		}
	}
	return e
}

// externalEntry reads a stored manifest. One that no longer parses (a
// newer weir is stricter, say) is listed as unavailable with the reason,
// so it can be seen and fixed rather than vanish.
func externalEntry(rec metastore.Engine) Entry {
	e := Entry{Kind: KindExternal, Source: rec.Source, RegisteredAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt}
	m, err := engine.ParseManifest(rec.Manifest)
	if err != nil {
		e.Spec = engine.Spec{Name: rec.Name}
		e.Status, e.Reason = StatusUnavailable, "its stored manifest is not valid: "+err.Error()+"; register it again"
		return e
	}
	e.Spec, e.HTTP, e.Kafka = m.Spec, m.HTTP, m.Kafka
	if m.Kafka != nil {
		e.Status, e.Reason = StatusUnknown, "a Kafka engine is seen only through the heartbeats of its work"
	}
	return e
}

// checkReady asks an HTTP engine's /ready webhook and records the answer.
func (c *Catalog) checkReady(ctx context.Context, e *Entry) {
	ctx, cancel := context.WithTimeout(ctx, c.readyTimeout)
	defer cancel()
	target := e.HTTP.ReadyURL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		e.Status, e.Reason = StatusUnavailable, err.Error()
		return
	}
	resp, err := c.client.Do(req)
	if err != nil {
		e.Status, e.Reason = StatusUnavailable, fmt.Sprintf("GET %s: %v", target, unwrapURLError(err))
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.Status, e.Reason = StatusUnavailable, fmt.Sprintf("GET %s answered %s", target, resp.Status)
		return
	}
	e.Status = StatusAvailable
}

// unwrapURLError drops *url.Error's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
