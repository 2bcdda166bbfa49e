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
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// get sends one request to h and returns the recorded response.
func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// assetURLs returns the /console/ URLs the index links to, by asset name.
func assetURLs(t *testing.T, index string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?:src|href)="(/console/([^"?]+)\?v=[0-9a-f]+)"`).FindAllStringSubmatch(index, -1) {
		out[m[2]] = m[1]
	}
	return out
}

func TestIndexIsServedAsHTMLAndRevalidated(t *testing.T) {
	h := console.Handler()
	for _, target := range []string{"/", "/index.html"} {
		rec := get(t, h, http.MethodGet, target, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d, want 200", target, rec.Code)
		}
		for k, want := range map[string]string{
			"Content-Type":           "text/html; charset=utf-8",
			"Cache-Control":          "no-cache",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", target, k, got, want)
			}
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "worker-src 'self' blob:") {
			t.Errorf("GET %s: Content-Security-Policy %q does not keep scripts to the console's own and allow hls.js's blob worker", target, csp)
		}
		body := rec.Body.String()
		for _, want := range []string{`<main id="app"`, `href="/docs"`, `href="/metrics"`, `id="readiness"`, `id="token-form"`} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: index lacks %s", target, want)
			}
		}
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", target)
		}
		if rec := get(t, h, http.MethodGet, target, map[string]string{"If-None-Match": etag}); rec.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", target, rec.Code)
		}
	}
	head := get(t, h, http.MethodHead, "/", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD /: %d, %d body bytes, %q; want 200, no body, text/html", head.Code, head.Body.Len(), head.Header().Get("Content-Type"))
	}
}

func TestAssetsAreServedWithTheirContentTypesAndBytes(t *testing.T) {
	h := console.Handler()
	urls := assetURLs(t, get(t, h, http.MethodGet, "/", nil).Body.String())
	tests := []struct {
		asset, contentType string
	}{
		{"app.js", "text/javascript; charset=utf-8"},
		{"app.css", "text/css; charset=utf-8"},
		{"favicon.svg", "image/svg+xml"},
	}
	if console.HLSJSBundled() {
		tests = append(tests, struct{ asset, contentType string }{console.HLSJSAsset, "text/javascript; charset=utf-8"})
	}
	for _, tt := range tests {
		t.Run(tt.asset, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("static", filepath.FromSlash(tt.asset)))
			if err != nil {
				t.Fatal(err)
			}
			versioned, ok := urls[tt.asset]
			if !ok {
				t.Fatalf("the index does not link %s (links %v)", tt.asset, urls)
			}
			for _, c := range []struct {
				target, cache string
			}{
				{versioned, "public, max-age=31536000, immutable"},
				{"/console/" + tt.asset, "no-cache"},
				{"/console/" + tt.asset + "?v=0000000000000000", "no-cache"},
			} {
				rec := get(t, h, http.MethodGet, c.target, nil)
				if rec.Code != http.StatusOK {
					t.Fatalf("GET %s: %d, want 200", c.target, rec.Code)
				}
				if got := rec.Header().Get("Content-Type"); got != tt.contentType {
					t.Errorf("GET %s: Content-Type %q, want %q", c.target, got, tt.contentType)
				}
				if got := rec.Header().Get("Cache-Control"); got != c.cache {
					t.Errorf("GET %s: Cache-Control %q, want %q", c.target, got, c.cache)
				}
				if rec.Body.String() != string(want) {
					t.Errorf("GET %s: body (%d bytes) differs from static/%s (%d bytes)", c.target, rec.Body.Len(), tt.asset, len(want))
				}
			}
			rng := get(t, h, http.MethodGet, versioned, map[string]string{"Range": "bytes=0-9"})
			if rng.Code != http.StatusPartialContent || rng.Body.String() != string(want[:10]) {
				t.Errorf("GET %s bytes=0-9: %d %q, want 206 %q", versioned, rng.Code, rng.Body.String(), want[:10])
			}
		})
	}
}

// TestIndexLoadsHLSJSOnlyWhenBundled checks the index never points the
// browser at a player script the binary does not have, and says which case
// it is so the page can explain.
func TestIndexLoadsHLSJSOnlyWhenBundled(t *testing.T) {
	_, err := os.Stat(filepath.Join("static", "vendor", "hls.min.js"))
	onDisk := err == nil
	if console.HLSJSBundled() != onDisk {
		t.Fatalf("HLSJSBundled() = %v but static/vendor/hls.min.js exists = %v", console.HLSJSBundled(), onDisk)
	}
	index := get(t, console.Handler(), http.MethodGet, "/", nil).Body.String()
	_, linked := assetURLs(t, index)[console.HLSJSAsset]
	if linked != onDisk {
		t.Errorf("index links hls.js = %v, want %v", linked, onDisk)
	}
	marker := `data-hlsjs="missing"`
	if onDisk {
		marker = `data-hlsjs="bundled"`
	}
	if !strings.Contains(index, marker) {
		t.Errorf("index lacks %s", marker)
	}
}

func TestPathsOutsideTheConsoleFallBackSensibly(t *testing.T) {
	h := console.Handler()
	tests := []struct {
		name, method, target, accept string
		status                       int
		contentType                  string
		bodyHas                      string
		header                       map[string]string
	}{
		{name: "browser navigation to an unknown page gets an HTML 404 pointing at the console",
			method: "GET", target: "/nothing/here", accept: "text/html,application/xhtml+xml,*/*;q=0.8",
			status: 404, contentType: "text/html; charset=utf-8", bodyHas: `<a href="/">console</a>`},
		{name: "an API client gets a problem document",
			method: "GET", target: "/nothing/here", accept: "application/json",
			status: 404, contentType: "application/problem+json", bodyHas: `"detail":"no route for GET /nothing/here`},
		{name: "text/html refused with q=0 is not a browser",
			method: "GET", target: "/nothing", accept: "text/html;q=0, application/json",
			status: 404, contentType: "application/problem+json"},
		{name: "a missing asset loaded by a script tag gets a problem document",
			method: "GET", target: "/console/nope.js", accept: "*/*",
			status: 404, contentType: "application/problem+json", bodyHas: "no console asset /console/nope.js"},
		{name: "the index template is not an asset",
			method: "GET", target: "/console/index.html",
			status: 404, contentType: "application/problem+json"},
		{name: "a directory is not an asset",
			method: "GET", target: "/console/vendor",
			status: 404, contentType: "application/problem+json"},
		{name: "traversal out of the assets finds nothing",
			method: "GET", target: "/console/../console.go",
			status: 404, contentType: "application/problem+json"},
		{name: "the console's asset root redirects to the index",
			method: "GET", target: "/console/",
			status: 301, header: map[string]string{"Location": "/"}},
		{name: "so does /console",
			method: "GET", target: "/console",
			status: 301, header: map[string]string{"Location": "/"}},
		{name: "writing to the index is not allowed",
			method: "POST", target: "/",
			status: 405, contentType: "application/problem+json", header: map[string]string{"Allow": "GET, HEAD"}},
		{name: "writing to an asset is not allowed",
			method: "DELETE", target: "/console/app.js",
			status: 405, contentType: "application/problem+json", header: map[string]string{"Allow": "GET, HEAD"}},
		{name: "a POST to an unknown path is a 404 problem",
			method: "POST", target: "/nothing", accept: "text/html",
			status: 404, contentType: "application/problem+json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, h, tt.method, tt.target, map[string]string{"Accept": tt.accept})
			if rec.Code != tt.status {
				t.Fatalf("%s %s: %d, want %d (body %s)", tt.method, tt.target, rec.Code, tt.status, rec.Body)
			}
			if tt.contentType != "" && rec.Header().Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tt.contentType)
			}
			if !strings.Contains(rec.Body.String(), tt.bodyHas) {
				t.Errorf("body %q lacks %q", rec.Body.String(), tt.bodyHas)
			}
			for k, v := range tt.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.contentType == "application/problem+json" {
				var p struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tt.status || p.Detail == "" {
					t.Errorf("problem document %q: %v, status %d, detail %q", rec.Body.String(), err, p.Status, p.Detail)
				}
			}
		})
	}
}

// TestAPIRoutesWinOverTheConsole mounts the console as the API's fallback,
// the way weir serve does, and checks every API route still answers for
// itself while unmatched paths reach the console.
func TestAPIRoutesWinOverTheConsole(t *testing.T) {
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

	browser := "text/html,application/xhtml+xml,*/*;q=0.8"
	tests := []struct {
		name, method, path, accept string
		status                     int
		contentType                string // prefix
		console                    bool   // whether the body is the console's index
	}{
		{"the index", "GET", "/", browser, 200, "text/html", true},
		{"a console asset", "GET", "/console/app.js", "*/*", 200, "text/javascript", false},
		{"the VOD listing", "GET", "/vod", browser, 200, "application/json", false},
		{"the live listing", "GET", "/streams?limit=5", browser, 200, "application/json", false},
		{"health", "GET", "/health", browser, 200, "application/json", false},
		{"the OpenAPI document", "GET", "/openapi.json", browser, 200, "application/", false},
		{"the API docs page", "GET", "/docs", browser, 200, "text/html", false},
		{"metrics", "GET", "/metrics", "", 200, "text/plain", false},
		{"an unknown VOD", "GET", "/vod/vod-000000000000/metadata", browser, 404, "application/problem+json", false},
		{"a missing HLS object, even for a browser", "GET", "/hls/vod-000000000000/master.m3u8", browser, 404, "application/problem+json", false},
		{"a wrong method on an API path", "POST", "/vod", browser, 405, "application/problem+json", false},
		{"an unknown page in a browser", "GET", "/no/such/page", browser, 404, "text/html", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: %d, want %d (%s)", tt.method, tt.path, resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %s...", ct, tt.contentType)
			}
			if isConsole := strings.Contains(string(body), `<main id="app"`); isConsole != tt.console {
				t.Errorf("body is the console index = %v, want %v", isConsole, tt.console)
			}
		})
	}
}
