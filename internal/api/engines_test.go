package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

const asrManifest = `{"name": "asr", "title": "Speech", "engineMode": "chunk", "summary": "Transcribes speech",
 "inputs": ["audio/wav"], "outputs": ["transcript"],
 "options": [{"name": "language", "type": "string", "default": "en", "enum": ["en", "de"], "doc": "Spoken language"}],
 "kafka": {}}`

const silenceYAML = `name: quiet
engineMode: stream
summary: Finds silent stretches
inputs: [audio/*]
outputs: [tag]
options:
  - {name: min_duration, type: duration, default: 2s, min: 100ms, doc: Shortest silence reported}
http:
  url: %s
`

func engineByName(t *testing.T, list EngineList, name string) EngineInfo {
	t.Helper()
	for _, e := range list.Items {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("engine %s not in %+v", name, list)
	return EngineInfo{}
}

func TestGetEnginesListsTheBuiltinProbeEngine(t *testing.T) {
	testenv.RequireTool(t, "ffprobe")
	e := newEnv(t, "")
	rec := e.do("GET", "/engines", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	probe := engineByName(t, decode[EngineList](t, rec), "probe")
	if probe.Kind != "builtin" || probe.EngineMode != "chunk" || probe.Status != "available" || probe.Title != "Media probe" {
		t.Errorf("probe = %+v", probe)
	}
	if len(probe.Spec.Options) != 1 || probe.Spec.Options[0].Name != "include" || len(probe.Spec.Requires) != 1 {
		t.Errorf("probe spec = %+v", probe.Spec)
	}
	if !strings.Contains(rec.Body.String(), `"engineMode":"chunk"`) {
		t.Errorf("body does not use Veritone's engineMode: %s", rec.Body)
	}
}

func TestAnEngineWhoseToolIsMissingIsUnavailableWithTheInstallCommand(t *testing.T) {
	e := newEnv(t, "")
	t.Setenv("PATH", t.TempDir())
	rec := e.do("GET", "/engines/probe", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	probe := decode[EngineInfo](t, rec)
	if probe.Status != "unavailable" || probe.Install != "apt-get install -y ffmpeg" || !strings.Contains(probe.Reason, "ffprobe is not on PATH") {
		t.Fatalf("probe = %+v", probe)
	}
}

func TestPostEnginesRegistersAndReplacesAnExternalEngine(t *testing.T) {
	e := newEnv(t, "")
	rec := e.do("POST", "/engines", strings.NewReader(asrManifest), "Content-Type", "application/json")
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	asr := decode[EngineInfo](t, rec)
	if asr.Kind != "external" || asr.Status != "unknown" || asr.Kafka == nil || asr.Kafka.Topic != "chunk_asr" || asr.Source != "api" || asr.RegisteredAt == nil {
		t.Fatalf("asr = %+v", asr)
	}
	replaced := strings.Replace(asrManifest, `"Speech"`, `"Speech v2"`, 1)
	rec = e.do("POST", "/engines", strings.NewReader(replaced), "Content-Type", "application/json")
	if rec.Code != http.StatusOK {
		t.Fatalf("replace: status %d: %s", rec.Code, rec.Body)
	}
	if got := decode[EngineInfo](t, e.do("GET", "/engines/asr", nil)); got.Title != "Speech v2" || got.Spec.Options[0].Default != "en" {
		t.Fatalf("GET /engines/asr = %+v", got)
	}
	// Kept in the metadata store: another API process on it sees the engine.
	other := newEnv(t, e.dir)
	if got := engineByName(t, decode[EngineList](t, other.do("GET", "/engines", nil)), "asr"); got.Title != "Speech v2" {
		t.Fatalf("the other process sees %+v", got)
	}
}

func TestPostEnginesTakesYAMLAndChecksHTTPEnginesReadiness(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
		}
	}))
	defer ready.Close()
	e := newEnv(t, "")
	rec := e.do("POST", "/engines", strings.NewReader(strings.Replace(silenceYAML, "%s", ready.URL, 1)), "Content-Type", "application/yaml")
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[EngineInfo](t, e.do("GET", "/engines/quiet", nil))
	if got.Status != "available" || got.HTTP == nil || got.HTTP.URL != ready.URL || got.EngineMode != "stream" {
		t.Fatalf("silence = %+v", got)
	}
	if !strings.Contains(e.do("GET", "/engines/quiet", nil).Body.String(), `"default":"2s"`) {
		t.Error("durations are not written as duration strings")
	}
	ready.Close()
	got = decode[EngineInfo](t, e.do("GET", "/engines/quiet", nil))
	if got.Status != "unavailable" || !strings.Contains(got.Reason, "/ready") {
		t.Fatalf("silence with its server gone = %+v", got)
	}
}

func TestPostEnginesRefusesABadManifestNamingTheMember(t *testing.T) {
	e := newEnv(t, "")
	tests := []struct {
		name, body, location string
		says                 []string
	}{
		{"bad option type", strings.Replace(asrManifest, `"type": "string"`, `"type": "text"`, 1), "body.options[0].type",
			[]string{`invalid manifest of engine "asr": field options[0].type: "text" is not one of string, int`}},
		{"unknown member", strings.Replace(asrManifest, `"kafka"`, `"kafak"`, 1), "body.kafak",
			[]string{"field kafak: unknown member"}},
		{"legacy engine", strings.Replace(asrManifest, `"chunk"`, `"legacy"`, 1), "body.engineMode",
			[]string{"field engineMode:", "not real-time"}},
		{"not YAML or JSON", "name: [", "body", []string{"invalid manifest: request body: manifest is not valid YAML"}},
		{"empty", "", "", []string{"request body is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do("POST", "/engines", strings.NewReader(tt.body), "Content-Type", "application/json")
			p := wantProblem(t, rec, http.StatusBadRequest, tt.says...)
			if tt.location != "" && (len(p.Errors) != 1 || p.Errors[0].Location != tt.location) {
				t.Errorf("errors = %+v, want location %s", p.Errors, tt.location)
			}
			if strings.Count(p.Detail, "field ") > 1 {
				t.Errorf("detail repeats itself: %s", p.Detail)
			}
		})
	}
	for _, item := range decode[EngineList](t, e.do("GET", "/engines", nil)).Items {
		if item.Kind != "builtin" {
			t.Errorf("a refused manifest was registered: %+v", item)
		}
	}
}

func TestPostEnginesRefusesABuiltinName(t *testing.T) {
	e := newEnv(t, "")
	rec := e.do("POST", "/engines", strings.NewReader(strings.Replace(asrManifest, `"asr"`, `"probe"`, 1)), "Content-Type", "application/json")
	wantProblem(t, rec, http.StatusConflict, "engine probe is built in")
}

func TestDeleteEngineRemovesExternalEnginesOnly(t *testing.T) {
	e := newEnv(t, "")
	if rec := e.do("POST", "/engines", strings.NewReader(asrManifest), "Content-Type", "application/json"); rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec := e.do("DELETE", "/engines/asr", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE status %d: %s", rec.Code, rec.Body)
	}
	wantProblem(t, e.do("GET", "/engines/asr", nil), http.StatusNotFound, "engine asr not found")
	wantProblem(t, e.do("DELETE", "/engines/asr", nil), http.StatusNotFound, "engine asr not found")
	wantProblem(t, e.do("DELETE", "/engines/probe", nil), http.StatusConflict, "cannot be removed")
}

func TestEngineChangesNeedTheAPIToken(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.APIToken = "s3cret" })
	wantProblem(t, e.do("POST", "/engines", strings.NewReader(asrManifest), "Content-Type", "application/json"), http.StatusUnauthorized)
	wantProblem(t, e.do("DELETE", "/engines/asr", nil), http.StatusUnauthorized)
	rec := e.do("POST", "/engines", strings.NewReader(asrManifest), "Content-Type", "application/json", "Authorization", "Bearer s3cret")
	if rec.Code != http.StatusCreated {
		t.Fatalf("with the token: status %d: %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/engines", nil); rec.Code != http.StatusOK {
		t.Fatalf("reads need no token: %d", rec.Code)
	}
}

func TestOpenAPIDescribesTheEngineRoutes(t *testing.T) {
	e := newEnv(t, "")
	doc := e.srv.OpenAPI()
	for _, path := range []string{"/engines", "/engines/{name}"} {
		if doc.Paths[path] == nil {
			t.Fatalf("OpenAPI has no %s", path)
		}
	}
	body := doc.Paths["/engines"].Post.RequestBody
	if body == nil || body.Content["application/json"] == nil || body.Content["application/yaml"] == nil {
		t.Fatalf("POST /engines body = %+v", body)
	}
	schema := doc.Components.Schemas.SchemaFromRef(body.Content["application/json"].Schema.Ref)
	for _, member := range []string{"name", "engineMode", "inputs", "options", "http", "kafka"} {
		if schema == nil || schema.Properties[member] == nil {
			t.Errorf("manifest schema has no %s member", member)
		}
	}
}
