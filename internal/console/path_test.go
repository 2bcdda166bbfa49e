package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAcceptsHTMLOnlyWhenTextHTMLHasAWeight(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"text/html", true},
		{"TEXT/HTML", true},
		{"application/json, text/html;q=0.5", true},
		{"text/html;q=0", false},
		{"text/html; q=0.0", false},
		{"text/html;q=nonsense", false},
		{"application/json", false},
		{"*/*", false},
		{"text/*", false},
		{"", false},
		{";;,,", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", tt.accept)
		if got := acceptsHTML(r); got != tt.want {
			t.Errorf("acceptsHTML(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// FuzzConsolePath sends arbitrary paths, methods and Accept headers to the
// console and checks it only ever answers with the index, a known asset, a
// redirect to the index or an error, always with a content type.
func FuzzConsolePath(f *testing.F) {
	for _, seed := range []struct{ method, path, accept string }{
		{"GET", "/", "text/html"},
		{"GET", "/console/app.js", "*/*"},
		{"HEAD", "/console/app.css", ""},
		{"GET", "/console/../index.html", "text/html"},
		{"GET", "/console/vendor/hls.min.js", "*/*"},
		{"POST", "/", "text/html"},
		{"GET", "/x/y/z", "text/html;q=0"},
		{"GET", "/console", ""},
	} {
		f.Add(seed.method, seed.path, seed.accept)
	}
	s, err := build()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, accept string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		switch method {
		case "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS":
		default:
			method = "GET"
		}
		req := httptest.NewRequest(method, "/", nil)
		req.URL.Path = path
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Header().Get("Content-Type") == "" && rec.Code != http.StatusMovedPermanently {
			t.Fatalf("%s %q: %d without a Content-Type", method, path, rec.Code)
		}
		switch rec.Code {
		case http.StatusOK:
			name := strings.TrimPrefix(path, AssetPrefix)
			_, isAsset := s.assets[name]
			isIndex := path == "/" || path == "/index.html"
			if !isIndex && !(strings.HasPrefix(path, AssetPrefix) && isAsset) {
				t.Fatalf("%s %q: 200 for something that is neither the index nor an asset", method, path)
			}
			if method != "GET" && method != "HEAD" {
				t.Fatalf("%s %q: 200 for a method that writes", method, path)
			}
		case http.StatusMovedPermanently:
			if loc := rec.Header().Get("Location"); loc != "/" {
				t.Fatalf("%s %q: redirect to %q, want /", method, path, loc)
			}
		case http.StatusNotFound, http.StatusMethodNotAllowed:
		default:
			t.Fatalf("%s %q: unexpected status %d", method, path, rec.Code)
		}
	})
}
