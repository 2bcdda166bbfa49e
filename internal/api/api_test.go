package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// published is one message the bus received.
type published struct {
	Topic string
	Key   string
	Value json.RawMessage
}

// recordingBus is the in-memory bus with what the tests ask of it.
type recordingBus struct{ *bustest.Bus }

// setErr makes publishing fail with err; nil mends it.
func (p recordingBus) setErr(err error) { p.FailProduce(err) }

func (p recordingBus) messages(topic string) []published {
	var out []published
	for _, r := range p.Records(topic) {
		out = append(out, published{Topic: r.Topic, Key: string(r.Key), Value: r.Value})
	}
	return out
}

// env is a Server over real stores in a temporary data directory.
type env struct {
	t       testing.TB
	dir     string
	srv     *Server
	meta    *metastore.SQLite
	objects objstore.Store
	pub     recordingBus
	reg     *prometheus.Registry
}

// newEnv opens the real SQLite metadata store and file object store under
// dir (a fresh temp dir when empty) and builds a Server over them.
func newEnv(t testing.TB, dir string, configure ...func(*Config)) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "weir.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { meta.Close() })
	fs, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatalf("open fs store: %v", err)
	}
	t.Cleanup(func() { fs.Close() })
	e := &env{t: t, dir: dir, meta: meta, objects: fs, pub: recordingBus{bustest.New()}, reg: prometheus.NewRegistry()}
	cfg := Config{
		Meta:         meta,
		Objects:      fs,
		Bus:          e.pub,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry:     e.reg,
		Version:      "1.2.3-test",
		KafkaBrokers: []string{"127.0.0.1:9092"},
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// do serves one request in-process and returns the recorded response.
func (e *env) do(method, target string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// doJSON sends v (a string is sent verbatim) as a JSON body.
func (e *env) doJSON(method, target string, v any, headers ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var body []byte
	switch b := v.(type) {
	case string:
		body = []byte(b)
	case nil:
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.do(method, target, bytes.NewReader(body), append([]string{"Content-Type", "application/json"}, headers...)...)
}

// decode unmarshals a response body, failing the test on error.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, rec.Body.String(), err)
	}
	return v
}

// problem is the RFC 9457 body every error carries.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// wantProblem checks rec is a problem document with status and a detail
// containing every fragment.
func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, fragments ...string) problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, rec.Body.String())
	}
	p := decode[problem](t, rec)
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	for _, f := range fragments {
		if !strings.Contains(p.Detail, f) {
			t.Errorf("problem detail %q does not mention %q", p.Detail, f)
		}
	}
	return p
}

func TestNewRequiresDependencies(t *testing.T) {
	e := newEnv(t, "")
	base := Config{Meta: e.meta, Objects: e.objects, Bus: e.pub}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no metadata store", func(c *Config) { c.Meta = nil }, "Meta"},
		{"no object store", func(c *Config) { c.Objects = nil }, "Objects"},
		{"no bus", func(c *Config) { c.Bus = nil }, "Bus"},
		{"base URL without host", func(c *Config) { c.BaseURL = "localhost" }, "BaseURL"},
		{"rtmp base without scheme", func(c *Config) { c.RTMPBase = "example.com:1935" }, "RTMPBase"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestHealthAlwaysOK(t *testing.T) {
	e := newEnv(t, "", func(c *Config) {
		c.Ready = map[string]func(context.Context) error{"bus": func(context.Context) error { return errors.New("down") }}
	})
	rec := e.do("GET", "/health", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[HealthResponse](t, rec)
	if got.Status != "ok" || got.Version != "1.2.3-test" {
		t.Fatalf("health %+v", got)
	}
}

func TestReady(t *testing.T) {
	busErr := errors.New("broker 127.0.0.1:9092 unreachable")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	cases := []struct {
		name       string
		checks     map[string]func(context.Context) error
		wantStatus int
		wantFailed []string
	}{
		{"all pass", map[string]func(context.Context) error{"bus": func(context.Context) error { return nil }}, 200, nil},
		{"bus fails", map[string]func(context.Context) error{"bus": func(context.Context) error { return busErr }}, 503, []string{"bus"}},
		{"hung check times out", map[string]func(context.Context) error{"bus": func(ctx context.Context) error {
			<-release // ignores cancellation until the test ends
			return nil
		}}, 503, []string{"bus"}},
		{"panicking check fails", map[string]func(context.Context) error{"objects": func(context.Context) error { panic("boom") }}, 503, []string{"objects"}},
		{"two fail", map[string]func(context.Context) error{
			"bus":      func(context.Context) error { return busErr },
			"metadata": func(context.Context) error { return errors.New("database is locked") },
		}, 503, []string{"bus", "metadata"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "", func(c *Config) { c.Ready = tc.checks; c.ReadyTimeout = 200 * time.Millisecond })
			rec := e.do("GET", "/ready", nil)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			got := decode[ReadyResponse](t, rec)
			if strings.Join(got.Failed, ",") != strings.Join(tc.wantFailed, ",") {
				t.Fatalf("failed %v, want %v", got.Failed, tc.wantFailed)
			}
			// The default store checks are always there alongside the given ones.
			for _, name := range []string{"metadata", "objects"} {
				if _, ok := got.Checks[name]; !ok {
					t.Errorf("check %q missing from %v", name, got.Checks)
				}
			}
			for _, name := range tc.wantFailed {
				if got.Checks[name].OK || got.Checks[name].Error == "" {
					t.Errorf("check %s = %+v, want a failure with its reason", name, got.Checks[name])
				}
			}
			if tc.name == "bus fails" && got.Checks["bus"].Error != busErr.Error() {
				t.Errorf("bus error %q, want %q", got.Checks["bus"].Error, busErr)
			}
		})
	}
}

func TestReadyFailsWhenMetadataStoreClosed(t *testing.T) {
	e := newEnv(t, "")
	e.meta.Close()
	rec := e.do("GET", "/ready", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := decode[ReadyResponse](t, rec); got.Checks["metadata"].OK {
		t.Fatalf("metadata check passed on a closed store: %+v", got)
	}
}

func TestBusReportsBrokers(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.KafkaBrokers = []string{"10.0.0.1:9092", "10.0.0.2:9092"} })
	got := decode[BusResponse](t, e.do("GET", "/bus", nil))
	if strings.Join(got.Brokers, ",") != "10.0.0.1:9092,10.0.0.2:9092" {
		t.Fatalf("brokers %v", got.Brokers)
	}
}

func TestMetricsExposeRoutesNotPaths(t *testing.T) {
	e := newEnv(t, "")
	// A collector someone else registered on the shared registry.
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_bus_test_records_total", Help: "test"})
	e.reg.MustRegister(other)
	other.Add(3)

	e.do("GET", "/vod/vod-000000000001/metadata", nil)
	e.do("GET", "/vod/vod-000000000002/metadata", nil)
	e.do("GET", "/health", nil)
	e.do("GET", "/hls/live-000000000001/seg_1.ts", nil)
	e.do("GET", "/hls/x/..%2f..%2fetc/passwd", nil)

	rec := e.do("GET", "/metrics", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics status %d", rec.Code)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`weir_http_requests_total{method="GET",route="/vod/{id}/metadata",status="404"} 2`,
		`weir_http_requests_total{method="GET",route="/health",status="200"} 1`,
		`weir_http_requests_total{method="GET",route="/hls/{stream_id}/{path...}",status="404"} 1`,
		`weir_http_requests_total{method="GET",route="/hls/{stream_id}/{path...}",status="400"} 1`,
		`weir_http_request_duration_seconds_bucket{method="GET",route="/vod/{id}/metadata",le="+Inf"} 2`,
		"go_goroutines",
		"process_",
		"weir_bus_test_records_total 3",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "vod-000000000001") {
		t.Error("metrics contain a raw path; labels must be route patterns")
	}
}

func TestTwoServersShareOneRegistry(t *testing.T) {
	e := newEnv(t, "")
	second, err := New(Config{Meta: e.meta, Objects: e.objects, Bus: e.pub, Registry: e.reg})
	if err != nil {
		t.Fatalf("second server on the same registry: %v", err)
	}
	rec := httptest.NewRecorder()
	second.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if !strings.Contains(e.do("GET", "/metrics", nil).Body.String(), `route="/health"`) {
		t.Fatal("second server's requests are not counted on the shared registry")
	}
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	e := newEnv(t, "")
	rec := e.do("GET", "/openapi.json", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	want := map[string][]string{
		"/health":                 {"get"},
		"/ready":                  {"get"},
		"/metrics":                {"get"},
		"/bus":                    {"get"},
		"/vod/upload":             {"post"},
		"/vod/{id}/metadata":      {"get"},
		"/vod/{id}/manifest":      {"get"},
		"/vod/{id}/cancel":        {"post"},
		"/vod":                    {"get"},
		"/streams/start":          {"post"},
		"/streams/{id}/end":       {"post"},
		"/streams/{id}/live":      {"get"},
		"/streams/{id}/metadata":  {"get"},
		"/streams":                {"get"},
		"/hls/{stream_id}/{path}": {"get", "head", "options"},
	}
	for path, methods := range want {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("OpenAPI lacks %s %s", strings.ToUpper(m), path)
			}
		}
	}
	upload := doc.Paths["/vod/upload"]["post"].(map[string]any)
	content := upload["requestBody"].(map[string]any)["content"].(map[string]any)
	for _, ct := range []string{"multipart/form-data", "application/json"} {
		if _, ok := content[ct]; !ok {
			t.Errorf("upload request body lacks %s", ct)
		}
	}

	if rec := e.do("GET", "/openapi.yaml", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "/vod/upload") {
		t.Errorf("openapi.yaml: status %d", rec.Code)
	}
	if rec := e.do("GET", "/docs", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "openapi") {
		t.Errorf("/docs: status %d", rec.Code)
	}
}

func TestTokenGuardsMutationsOnly(t *testing.T) {
	const token = "s3cret-token"
	e := newEnv(t, "", func(c *Config) { c.APIToken = token })
	cases := []struct {
		name   string
		header []string
		want   int
		detail string
	}{
		{"no header", nil, 401, "missing Authorization"},
		{"wrong scheme", []string{"Authorization", "Basic " + token}, 401, "Bearer scheme"},
		{"wrong token", []string{"Authorization", "Bearer nope"}, 401, "invalid API token"},
		{"token prefix only", []string{"Authorization", "Bearer s3cret"}, 401, "invalid API token"},
		{"right token", []string{"Authorization", "Bearer " + token}, 201, ""},
		{"scheme is case-insensitive", []string{"Authorization", "bearer " + token}, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.doJSON("POST", "/streams/start", map[string]string{"title": "t"}, tc.header...)
			if tc.want == 401 {
				wantProblem(t, rec, 401, tc.detail)
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
	t.Run("reads stay open", func(t *testing.T) {
		for _, path := range []string{"/health", "/streams", "/vod", "/openapi.json", "/metrics"} {
			if rec := e.do("GET", path, nil); rec.Code != 200 {
				t.Errorf("GET %s without token: status %d", path, rec.Code)
			}
		}
	})
	t.Run("rejected uploads store nothing", func(t *testing.T) {
		body, ct := multipartBody(t, "clip.mp4", []byte("data"), "")
		wantProblem(t, e.do("POST", "/vod/upload", body, "Content-Type", ct), 401)
		if objs, _ := e.objects.List(context.Background(), ""); len(objs) != 0 {
			t.Fatalf("objects after a rejected upload: %v", objs)
		}
	})
}

func TestUnknownRouteIsProblem(t *testing.T) {
	e := newEnv(t, "")
	wantProblem(t, e.do("GET", "/nope", nil), 404, "no route for GET /nope")
}

func TestFallbackServesUnmatched(t *testing.T) {
	e := newEnv(t, "", func(c *Config) {
		c.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console") })
	})
	if rec := e.do("GET", "/", nil); rec.Body.String() != "console" {
		t.Fatalf("fallback not used: %d %q", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/health", nil); rec.Code != 200 || strings.Contains(rec.Body.String(), "console") {
		t.Fatalf("fallback shadowed /health: %q", rec.Body)
	}
}

func TestMain(m *testing.M) {
	// The stores log migrations through the default logger; keep test
	// output to what matters unless -v asks for everything.
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}

func TestWrongMethodIsProblem(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.Fallback = http.NotFoundHandler() })
	rec := e.do("DELETE", "/vod/upload", nil)
	wantProblem(t, rec, 405, "DELETE is not allowed on /vod/upload; use POST")
	if rec.Header().Get("Allow") != "POST" {
		t.Errorf("Allow %q", rec.Header().Get("Allow"))
	}
	rec = e.do("PUT", "/vod/vod-000000000000/metadata", nil)
	wantProblem(t, rec, 405, "use GET")
}

func TestHandlerPanicBecomesProblem(t *testing.T) {
	e := newEnv(t, "", func(c *Config) {
		c.Fallback = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("console exploded") })
	})
	wantProblem(t, e.do("GET", "/console", nil), 500, "internal error while serving GET /console")
	if !strings.Contains(e.do("GET", "/metrics", nil).Body.String(), `weir_http_requests_total{method="GET",route="/",status="500"} 1`) {
		t.Fatal("the panicking request was not counted as a 500")
	}
	if rec := e.do("GET", "/health", nil); rec.Code != 200 {
		t.Fatalf("server unusable after a panic: %d", rec.Code)
	}
}

// Without an API token the only thing between a web page and this API is
// the browser's word on where a request comes from: a state change sent by
// another site's page is refused, the console's own requests and
// non-browser clients pass.
func TestCrossOriginStateChangesAreRefused(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name    string
		headers []string
		want    int
	}{
		{"another site's page (Sec-Fetch-Site)", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403},
		{"a sibling subdomain", []string{"Sec-Fetch-Site", "same-site", "Origin", "http://other.example.com"}, 403},
		{"another origin (Origin only, older browser)", []string{"Origin", "https://evil.example"}, 403},
		{"the console (same-origin)", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"}, 201},
		{"the console (Origin only)", []string{"Origin", "http://example.com"}, 201},
		{"a typed-in or bookmarked request", []string{"Sec-Fetch-Site", "none"}, 201},
		{"the CLI or curl (no browser headers)", nil, 201},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.doJSON("POST", "/streams/start", map[string]string{"title": "t"}, tc.headers...)
			if tc.want == 403 {
				wantProblem(t, rec, 403, "cross-origin POST refused")
				return
			}
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
	t.Run("console multipart upload passes, a cross-site one stores nothing", func(t *testing.T) {
		body, ct := multipartBody(t, "clip.mp4", []byte("data"), "")
		wantProblem(t, e.do("POST", "/vod/upload", body, "Content-Type", ct, "Sec-Fetch-Site", "cross-site"), 403)
		if objs, _ := e.objects.List(context.Background(), ""); len(objs) != 0 {
			t.Fatalf("objects after a refused upload: %v", objs)
		}
		body, ct = multipartBody(t, "clip.mp4", []byte("data"), "")
		if rec := e.do("POST", "/vod/upload", body, "Content-Type", ct, "Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"); rec.Code != 202 {
			t.Fatalf("console upload: status %d: %s", rec.Code, rec.Body)
		}
	})
	t.Run("reads from anywhere stay open", func(t *testing.T) {
		if rec := e.do("GET", "/streams", nil, "Sec-Fetch-Site", "cross-site"); rec.Code != 200 {
			t.Fatalf("cross-site GET: status %d", rec.Code)
		}
	})
	t.Run("the configured base URL is a trusted origin", func(t *testing.T) {
		e := newEnv(t, "", func(c *Config) { c.BaseURL = "https://media.example.org" })
		rec := e.doJSON("POST", "/streams/start", map[string]string{}, "Origin", "https://media.example.org")
		if rec.Code != 201 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
