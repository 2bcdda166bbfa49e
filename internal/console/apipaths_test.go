package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// apiCall is one request the console's scripts make: a method and the
// path as a template, "{}" standing for whatever an expression adds
// (/jobs/{}/results).
type apiCall struct{ method, path, file string }

// callStarts find where the scripts name an API path: api('METHOD', …)
// (also weir.api), fetch(…), xhr.open('METHOD', …), and href:, url: or
// src: values that start with a '/' literal.
var callStarts = []struct {
	re     *regexp.Regexp
	method string // "" when the pattern captures it
}{
	{regexp.MustCompile(`\bapi\(\s*'([A-Z]+)'\s*,\s*`), ""},
	{regexp.MustCompile(`\bfetch\(\s*`), http.MethodGet},
	{regexp.MustCompile(`\.open\(\s*'([A-Z]+)'\s*,\s*`), ""},
	{regexp.MustCompile(`\b(?:href|url|src):\s*(?:'/)`), http.MethodGet},
}

// pathTemplate reads the JavaScript expression at the start of src (up to
// a comma, parenthesis or brace that closes it) and makes it a template:
// string literals stay, anything else between + signs becomes {}. The
// query is cut off. ok is false when the expression does not start with
// a literal path.
func pathTemplate(src string) (string, bool) {
	var out strings.Builder
	depth := 0
	inOther := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\'' && depth == 0:
			end := strings.IndexByte(src[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			out.WriteString(src[i+1 : i+1+end])
			i += end + 1
			inOther = false
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ')' || c == ']' || c == '}') && depth > 0:
			depth--
		case depth == 0 && (c == ',' || c == ')' || c == '}' || c == ';' || c == '\n'):
			p := out.String()
			if cut := strings.IndexByte(p, '?'); cut >= 0 {
				p = p[:cut]
			}
			return p, strings.HasPrefix(p, "/")
		case depth == 0 && (c == ' ' || c == '+'):
			// between the terms of a concatenation
		default:
			if depth == 0 && !inOther {
				out.WriteString("{}")
				inOther = true
			}
			if depth == 0 && c == '\'' {
				inOther = false
			}
		}
		if depth == 0 && c == '+' {
			inOther = false
		}
	}
	return "", false
}

// consoleCalls lists the API requests in the console's scripts.
func consoleCalls(t *testing.T) []apiCall {
	t.Helper()
	files, err := filepath.Glob("static/*.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in static/: %v", err)
	}
	var calls []apiCall
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, cs := range callStarts {
			for _, m := range cs.re.FindAllSubmatchIndex(src, -1) {
				method := cs.method
				if method == "" {
					method = string(src[m[2]:m[3]])
				}
				start := m[1]
				if strings.HasSuffix(string(src[m[0]:m[1]]), "'/") {
					start -= 2 // the pattern ate the literal's opening: give it back
				}
				p, ok := pathTemplate(string(src[start:]))
				if !ok {
					continue
				}
				calls = append(calls, apiCall{method: method, path: p, file: filepath.Base(f)})
			}
		}
	}
	return calls
}

// matchTemplate reports whether a script's template fits an OpenAPI path
// (where {name} is one segment). A {} segment is one segment, except last,
// where it may be several ('/hls/' + a stored object path).
func matchTemplate(script, spec []string) bool {
	if len(script) == 0 || len(spec) == 0 {
		return len(script) == 0 && len(spec) == 0
	}
	s, o := script[0], spec[0]
	switch {
	case s == "{}" && len(script) == 1:
		for _, rest := range spec {
			if !strings.HasPrefix(rest, "{") {
				return false // a literal segment of the spec left unmatched
			}
		}
		return true
	case s == "{}":
		return strings.HasPrefix(o, "{") && matchTemplate(script[1:], spec[1:])
	case strings.HasPrefix(o, "{") && strings.HasSuffix(o, "}"):
		return !strings.Contains(s, "{}") && matchTemplate(script[1:], spec[1:]) ||
			strings.HasSuffix(s, "{}") && matchTemplate(script[1:], spec[1:])
	case strings.Contains(s, "{}"):
		// A literal prefix and an expression inside one segment.
		return strings.HasPrefix(o, strings.TrimSuffix(s, "{}")) && matchTemplate(script[1:], spec[1:])
	}
	return s == o && matchTemplate(script[1:], spec[1:])
}

func segments(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// TestConsoleCallsOnlyPathsOfTheOpenAPIDocument reads every API request in
// the console's scripts and checks the OpenAPI document of a real API
// server has that path with that method, so a renamed or removed route
// cannot leave the console calling into a 404.
func TestConsoleCallsOnlyPathsOfTheOpenAPIDocument(t *testing.T) {
	dir := t.TempDir()
	meta, err := metastore.Open(context.Background(), "sqlite:"+filepath.Join(dir, "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	objects, err := objstore.Open(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Meta: meta, Objects: objects, Bus: bustest.New(), Fallback: console.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Paths) == 0 {
		t.Fatalf("GET /openapi.json: %v: %.200s", err, raw)
	}

	calls := consoleCalls(t)
	found := map[string]bool{}
	for _, c := range calls {
		key := c.method + " " + c.path
		found[key] = true
		ok := false
		for p, ops := range doc.Paths {
			if _, has := ops[strings.ToLower(c.method)]; has && matchTemplate(segments(c.path), segments(p)) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("%s calls %s, which the OpenAPI document does not have", c.file, key)
		}
	}
	// The reader must see the calls the console is known to make; a
	// reader that found nothing would pass everything.
	for _, want := range []string{
		"GET /vod", "POST /vod/upload", "GET /vod/{}/metadata", "GET /streams", "POST /streams/start", "POST /streams/{}/end",
		"GET /streams/{}/metadata", "GET /hls/{}/master.m3u8", "GET /ready", "GET /engines",
		"GET /jobs", "POST /jobs", "GET /jobs/{}", "POST /jobs/{}/cancel", "GET /jobs/{}/results", "GET /search",
	} {
		if !found[want] {
			keys := make([]string, 0, len(found))
			for k := range found {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t.Errorf("the scripts' reader did not find %s; it found %v", want, keys)
		}
	}
}

func TestPathTemplateReadsConcatenations(t *testing.T) {
	for src, want := range map[string]string{
		`'/jobs/' + encodeURIComponent(id) + '/results?' + q.toString());`:   "/jobs/{}/results",
		`'/jobs?stream=' + encodeURIComponent(opts.stream) + '&limit=100');`: "/jobs",
		`'/hls/' + meta.details.thumbnail : null,`:                           "/hls/{}",
		`'/streams/' + encodeURIComponent(id) + '/end');`:                    "/streams/{}/end",
		`'/ready', { headers: {} })`:                                         "/ready",
		`basePath + '?' + q.toString());`:                                    "",
	} {
		got, ok := pathTemplate(src)
		if want == "" {
			if ok {
				t.Errorf("%s: read %q, want nothing (it does not start with a path)", src, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%s: %q %v, want %q", src, got, ok, want)
		}
	}
}

func TestMatchTemplate(t *testing.T) {
	for _, c := range []struct {
		script, spec string
		want         bool
	}{
		{"/jobs/{}/results", "/jobs/{id}/results", true},
		{"/jobs/{}/resultz", "/jobs/{id}/chunks/{kind}/{file}", false},
		{"/jobs/{}/resultz", "/jobs/{id}/results", false},
		{"/hls/{}", "/hls/{stream_id}/{path}", true},
		{"/hls/{}/master.m3u8", "/hls/{stream_id}/{path}", true},
		{"/jobs", "/jobs/{id}", false},
		{"/jobs/{}", "/jobs/{id}/cancel", false},
	} {
		if got := matchTemplate(segments(c.script), segments(c.spec)); got != c.want {
			t.Errorf("%s against %s: %v, want %v", c.script, c.spec, got, c.want)
		}
	}
}
