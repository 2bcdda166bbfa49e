package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// startEnginesServer runs the real REST API with one external engine
// registered through it.
func startEnginesServer(t *testing.T) string {
	t.Helper()
	hs, _, _ := startStreamsServer(t)
	manifest := `name: asr
title: Speech
engineMode: chunk
summary: Transcribes speech
inputs: [audio/wav]
outputs: [transcript]
options:
  - {name: beam, type: int, default: 5, min: 1, max: 16, doc: Beam width}
  - {name: pause, type: duration, default: 2s, doc: Longest pause in an utterance}
  - {name: library, type: string, required: true, doc: Vocabulary library id}
examples:
  - {title: Wide beam, options: {beam: 12, library: news}}
http: {url: 'http://127.0.0.1:1/asr'}
`
	resp, err := http.Post(hs.URL+"/engines", "application/yaml", strings.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /engines: %s", resp.Status)
	}
	return hs.URL
}

func TestEnginesListPrintsATableAndWhyEnginesAreUnavailable(t *testing.T) {
	testenv.RequireTool(t, "ffprobe")
	url := startEnginesServer(t)
	res := runWeir(testContext(t), "engines", "list", "--server", url)
	if res.err != nil {
		t.Fatalf("engines list: %v\n%s", res.err, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) < 5 {
		t.Fatalf("output:\n%s", res.stdout)
	}
	// The header, then the engines by name: asr first here; probe is one
	// of the built-in ones.
	for i, want := range [][]string{
		{"NAME", "MODE", "KIND", "STATUS", "SUMMARY"},
		{"asr", "chunk", "external", "unavailable", "Transcribes", "speech"},
	} {
		if got := strings.Fields(lines[i]); len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("line %d = %q, want it to start with %v", i, lines[i], want)
		}
	}
	probe := strings.Join([]string{"probe", "chunk", "builtin", "available", "Reports", "each", "chunk's"}, " ")
	found := false
	for _, l := range lines {
		found = found || strings.HasPrefix(strings.Join(strings.Fields(l), " "), probe)
	}
	if !found {
		t.Errorf("no line starts with %q:\n%s", probe, res.stdout)
	}
	if !strings.Contains(res.stdout, "\nasr: GET http://127.0.0.1:1/asr/ready: ") {
		t.Errorf("no reason for asr:\n%s", res.stdout)
	}
}

func TestEnginesListShowsTheInstallCommandOfAMissingTool(t *testing.T) {
	url := startEnginesServer(t)
	t.Setenv("PATH", t.TempDir()) // the server runs in this process
	res := runWeir(testContext(t), "engines", "list", "--server", url)
	if res.err != nil {
		t.Fatalf("engines list: %v\n%s", res.err, res.stderr)
	}
	if !strings.Contains(res.stdout, `probe: engine "probe" is unavailable: ffprobe is not on PATH (to read the chunk's duration and codecs); install with: apt-get install -y ffmpeg`) {
		t.Errorf("output:\n%s", res.stdout)
	}
}

func TestEnginesListJSONIsTheServersAnswer(t *testing.T) {
	url := startEnginesServer(t)
	res := runWeir(testContext(t), "engines", "list", "--json", "--server", url)
	if res.err != nil {
		t.Fatalf("engines list --json: %v\n%s", res.err, res.stderr)
	}
	var list struct {
		Items []struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, res.stdout)
	}
	if len(list.Items) < 2 || list.Items[0].Name != "asr" || list.Items[0].Kind != "external" {
		t.Errorf("items = %+v", list.Items)
	}
	for _, item := range list.Items[1:] {
		if item.Kind != "builtin" {
			t.Errorf("item %+v, want only built-in engines after asr", item)
		}
	}
}

func TestEnginesShowPrintsTheSpec(t *testing.T) {
	url := startEnginesServer(t)
	res := runWeir(testContext(t), "engines", "show", "asr", "--server", url)
	if res.err != nil {
		t.Fatalf("engines show: %v\n%s", res.err, res.stderr)
	}
	for _, want := range []string{
		"Engine      asr (Speech)",
		"Mode        chunk",
		"Kind        external",
		"Reached by  HTTP: http://127.0.0.1:1/asr/ready and http://127.0.0.1:1/asr/process",
		"Registered  from api",
		"beam     int       5          Beam width (1 to 16)",
		"pause    duration  2s         Longest pause in an utterance",
		"library  string    (required) Vocabulary library id",
		`Wide beam: {"beam":12,"library":"news"}`,
	} {
		if !strings.Contains(squeeze(res.stdout), squeeze(want)) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runWeir(testContext(t), "engines", "show", "probe", "--server", url)
	if res.err != nil || !strings.Contains(squeeze(res.stdout), "Requires ffprobe (Debian package ffmpeg): to read the chunk's duration and codecs") ||
		!strings.Contains(squeeze(res.stdout), `include list ["format","duration","video","audio"] Which tags to report`) {
		t.Errorf("engines show probe: %v\n%s", res.err, res.stdout)
	}
}

func TestEnginesShowOfAnUnknownEngineSaysSo(t *testing.T) {
	url := startEnginesServer(t)
	res := runWeir(testContext(t), "engines", "show", "nope", "--server", url)
	if res.err == nil || !strings.Contains(res.err.Error(), "engine nope not found") {
		t.Fatalf("engines show nope = %v", res.err)
	}
}

// squeeze collapses runs of spaces, so checks do not depend on how wide
// tabwriter made a column.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
