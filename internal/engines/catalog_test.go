package engines

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

type nopChunk struct{}

func (nopChunk) Process(context.Context, *engine.Chunk, engine.Options) (*protocol.Document, error) {
	return nil, nil
}

// newCatalog is a catalog over a fresh SQLite store and a registry holding
// the probe engine and one that needs a program nobody has.
func newCatalog(t *testing.T) (*Catalog, metastore.Store) {
	t.Helper()
	meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	reg := engine.NewRegistry()
	factory := engine.ChunkFactory(func() (engine.ChunkEngine, error) { return nopChunk{}, nil })
	if err := reg.Register(probeSpec, factory); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(engine.Spec{Name: "ocr", Mode: engine.ModeChunk, Summary: "Reads text",
		Inputs: []string{"image/*"}, Outputs: []string{"text"},
		Requires: []engine.Requirement{{Command: "weir-test-no-tesseract", DebianPackage: "tesseract-ocr", Why: "to read text"}},
	}, factory); err != nil {
		t.Fatal(err)
	}
	return NewCatalog(reg, meta), meta
}

func manifest(t *testing.T, text string) *engine.Manifest {
	t.Helper()
	m, err := engine.ParseManifest([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func httpManifest(name, url string) string {
	return `{"name":"` + name + `","engineMode":"chunk","summary":"s","inputs":["audio/wav"],"outputs":["transcript"],"http":{"url":"` + url + `"}}`
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestCatalogListsBuiltinAndExternalEnginesWithTheirAvailability(t *testing.T) {
	ctx := context.Background()
	cat, _ := newCatalog(t)
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/asr/ready" {
			http.NotFound(w, r)
		}
	}))
	defer ready.Close()
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	down := closedURL(t)
	for _, m := range []string{
		httpManifest("asr", ready.URL+"/asr/"),
		httpManifest("busy", busy.URL),
		httpManifest("down", down),
		`{"name":"silence","engineMode":"stream","summary":"s","inputs":["audio/*"],"outputs":["tag"],"kafka":{}}`,
	} {
		if _, _, err := cat.Register(ctx, manifest(t, m), "api"); err != nil {
			t.Fatal(err)
		}
	}
	list, err := cat.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Entry{}
	var names []string
	for _, e := range list {
		got[e.Spec.Name] = e
		names = append(names, e.Spec.Name)
	}
	if strings.Join(names, ",") != "asr,busy,down,ocr,probe,silence" {
		t.Fatalf("List = %v", names)
	}
	check := func(name string, kind Kind, status Status, reason string) {
		t.Helper()
		e := got[name]
		if e.Kind != kind || e.Status != status || !strings.Contains(e.Reason, reason) {
			t.Errorf("%s = kind %s status %s reason %q; want %s %s %q", name, e.Kind, e.Status, e.Reason, kind, status, reason)
		}
	}
	check("probe", KindBuiltin, StatusAvailable, "")
	check("ocr", KindBuiltin, StatusUnavailable, "weir-test-no-tesseract is not on PATH (to read text)")
	check("asr", KindExternal, StatusAvailable, "")
	check("busy", KindExternal, StatusUnavailable, "GET "+busy.URL+"/ready answered 503 Service Unavailable")
	check("down", KindExternal, StatusUnavailable, "GET "+down+"/ready: ")
	check("silence", KindExternal, StatusUnknown, "heartbeats")
	if got["ocr"].Install != "apt-get install -y tesseract-ocr" {
		t.Errorf("ocr install = %q", got["ocr"].Install)
	}
	if k := got["silence"].Kafka; k == nil || k.Topic != "chunk_silence" || k.Group != "weir_engine_silence" {
		t.Errorf("silence kafka = %+v", k)
	}
	if got["asr"].Source != "api" || got["asr"].RegisteredAt.IsZero() {
		t.Errorf("asr = %+v", got["asr"])
	}
}

func TestCatalogGetFindsEitherKind(t *testing.T) {
	ctx := context.Background()
	cat, _ := newCatalog(t)
	if e, err := cat.Get(ctx, "probe"); err != nil || e.Kind != KindBuiltin || e.Spec.Mode != engine.ModeChunk {
		t.Fatalf("Get(probe) = %+v, %v", e, err)
	}
	if _, _, err := cat.Register(ctx, manifest(t, httpManifest("asr", closedURL(t))), "api"); err != nil {
		t.Fatal(err)
	}
	if e, err := cat.Get(ctx, "asr"); err != nil || e.Kind != KindExternal || e.Status != StatusUnavailable {
		t.Fatalf("Get(asr) = %+v, %v", e, err)
	}
	if _, err := cat.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) || err.Error() != "engine nope: engine not found" {
		t.Fatalf("Get(nope) = %v", err)
	}
}

func TestCatalogRegisterReplacesExternalsAndRefusesBuiltinNames(t *testing.T) {
	ctx := context.Background()
	cat, _ := newCatalog(t)
	_, created, err := cat.Register(ctx, manifest(t, httpManifest("asr", "http://127.0.0.1:1")), "api")
	if err != nil || !created {
		t.Fatalf("Register = %v, %v", created, err)
	}
	e, created, err := cat.Register(ctx, manifest(t, httpManifest("asr", "http://127.0.0.1:2")), "api")
	if err != nil || created || e.HTTP.URL != "http://127.0.0.1:2" {
		t.Fatalf("Register again = %+v, %v, %v", e, created, err)
	}
	_, _, err = cat.Register(ctx, manifest(t, httpManifest("probe", "http://127.0.0.1:1")), "api")
	if !errors.Is(err, ErrBuiltin) {
		t.Fatalf("Register(probe) = %v", err)
	}
	if err := cat.Remove(ctx, "probe"); !errors.Is(err, ErrBuiltin) {
		t.Fatalf("Remove(probe) = %v", err)
	}
	if err := cat.Remove(ctx, "asr"); err != nil {
		t.Fatal(err)
	}
	if err := cat.Remove(ctx, "asr"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove twice = %v", err)
	}
	bad := &engine.Manifest{Spec: engine.Spec{Name: "x"}}
	var se *engine.SpecError
	if _, _, err := cat.Register(ctx, bad, "api"); !errors.As(err, &se) {
		t.Fatalf("Register of an invalid manifest = %v", err)
	}
}

func TestCatalogShowsAStoredManifestThatNoLongerParses(t *testing.T) {
	ctx := context.Background()
	cat, meta := newCatalog(t)
	if _, _, err := meta.PutEngine(ctx, metastore.Engine{Name: "old", Manifest: json.RawMessage(`{"name":"old","engineMode":"legacy"}`)}); err != nil {
		t.Fatal(err)
	}
	e, err := cat.Get(ctx, "old")
	if err != nil || e.Status != StatusUnavailable || !strings.Contains(e.Reason, "stored manifest is not valid") || !strings.Contains(e.Reason, "engineMode") {
		t.Fatalf("Get(old) = %+v, %v", e, err)
	}
}

func TestCatalogIgnoresAnExternalEngineABuiltinShadows(t *testing.T) {
	ctx := context.Background()
	cat, meta := newCatalog(t)
	if _, _, err := meta.PutEngine(ctx, metastore.Engine{Name: "ocr", Manifest: json.RawMessage(httpManifest("ocr", "http://127.0.0.1:1"))}); err != nil {
		t.Fatal(err)
	}
	list, err := cat.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list {
		if e.Spec.Name == "ocr" {
			n++
			if e.Kind != KindBuiltin {
				t.Errorf("ocr listed as %s", e.Kind)
			}
		}
	}
	if n != 1 {
		t.Fatalf("ocr listed %d times", n)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const silenceYAML = "name: silence\nengineMode: stream\nsummary: Finds silence\ninputs: [audio/*]\noutputs: [tag]\nkafka: {}\n"

func TestLoadDirRegistersEveryManifestFile(t *testing.T) {
	ctx := context.Background()
	cat, meta := newCatalog(t)
	dir := writeFiles(t, map[string]string{
		"asr.json":        httpManifest("asr", "http://127.0.0.1:8888"),
		"silence.yml":     silenceYAML,
		"README.md":       "not a manifest",
		"sub/nested.yaml": "not read: subdirectories are skipped",
		"scenes.YAML":     strings.ReplaceAll(silenceYAML, "silence", "scenes"),
	})
	names, err := cat.LoadDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "asr,scenes,silence" {
		t.Fatalf("LoadDir = %v", names)
	}
	rec, err := meta.GetEngine(ctx, "silence")
	if err != nil || rec.Source != "file:"+filepath.Join(dir, "silence.yml") {
		t.Fatalf("silence = %+v, %v", rec, err)
	}
	// Loading again, as every restart does, replaces and creates nothing.
	if _, err := cat.LoadDir(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if all, _ := meta.ListEngines(ctx); len(all) != 3 {
		t.Fatalf("engines after a second load: %d", len(all))
	}
}

func TestLoadDirRegistersNothingWhenOneFileIsBad(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		says  []string
	}{
		{"bad member", map[string]string{"a.yaml": silenceYAML, "b.yaml": strings.Replace(silenceYAML, "kafka: {}", "kafka: {topik: x}", 1)},
			[]string{"b.yaml", `engine "silence": kafka.topik: unknown member`}},
		{"same name twice", map[string]string{"a.yaml": silenceYAML, "b.yaml": silenceYAML},
			[]string{"a.yaml and ", "b.yaml both register engine \"silence\""}},
		{"built-in name", map[string]string{"a.yaml": strings.ReplaceAll(silenceYAML, "silence", "probe")},
			[]string{"a.yaml: engine probe: built-in engine"}},
		{"too large", map[string]string{"a.yaml": silenceYAML + "# " + strings.Repeat("x", engine.MaxManifestBytes)},
			[]string{"more than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, meta := newCatalog(t)
			_, err := cat.LoadDir(context.Background(), writeFiles(t, tt.files))
			if err == nil {
				t.Fatal("LoadDir succeeded")
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if all, _ := meta.ListEngines(context.Background()); len(all) != 0 {
				t.Errorf("registered %d engines", len(all))
			}
		})
	}
	cat, _ := newCatalog(t)
	if _, err := cat.LoadDir(context.Background(), filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "engines dir") {
		t.Errorf("missing dir: %v", err)
	}
}

func TestDefaultRegistryHoldsTheBuiltins(t *testing.T) {
	reg, ok := engine.Default().Lookup("probe")
	if !ok || reg.Factory.Mode() != engine.ModeChunk {
		t.Fatalf("probe = %+v, %v", reg, ok)
	}
}
