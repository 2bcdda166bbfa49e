// Package console is weir's web console: a small single-page application
// (HTML, CSS and JavaScript written for weir, no framework, no build step)
// that drives the REST API from a browser. It lists VOD titles and live
// streams, uploads files with a progress bar, starts and ends live streams
// and shows their publish settings, and plays both kinds with a player that
// uses hls.js where the browser has Media Source Extensions. Its Jobs view
// starts, follows and cancels jobs and draws each as a graph, and a
// timeline under every player shows the engines' results on the player's
// time axis (docs/console.md).
//
// Everything is embedded in the binary. hls.js itself is not part of the
// repository: scripts/fetch-vendor.sh downloads a pinned, integrity-checked
// copy into static/vendor/ before `make build`. A binary built without it
// still serves the console; the player then falls back to the browser's
// native HLS support, and says how to bundle hls.js where there is none.
//
// Handler is meant to be mounted as the API's fallback (api.Config.Fallback),
// so every API route wins over it and the console only sees what nothing
// else matched.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// AssetPrefix is the URL path under which the console's static assets
// (scripts, stylesheet, icons, the vendored hls.js) are served.
const AssetPrefix = "/console/"

// HLSJSAsset is the asset path of the vendored hls.js, relative to
// AssetPrefix. It exists only in binaries built after
// scripts/fetch-vendor.sh ran.
const HLSJSAsset = "vendor/hls.min.js"

//go:embed index.html
var indexTemplate string

// The whole static directory is embedded, so the vendored hls.js is picked
// up when it is there and the build still compiles when it is not.
//
//go:embed static
var staticFiles embed.FS

// Cache-Control values.
const (
	// The index names assets with a ?v=<content hash> query, so an asset
	// asked for under its current hash can be cached for good.
	cacheVersioned = "public, max-age=31536000, immutable"
	// Anything else (the index, an asset asked for without the current
	// hash) is revalidated on every use; the ETag makes that cheap.
	cacheRevalidate = "no-cache"
)

// contentSecurityPolicy keeps the console to its own scripts and styles.
// Media may come from anywhere over http(s) because playlists can redirect
// segments to presigned object-store URLs; hls.js runs its transmuxer in a
// worker made from a blob: URL and feeds the video element through a
// MediaSource blob: URL.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: http: https:; media-src 'self' blob: http: https:; " +
	"connect-src 'self' http: https:; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"

// asset is one embedded file, ready to serve.
type asset struct {
	name        string // path relative to static/, e.g. "app.js"
	body        []byte
	contentType string
	hash        string // first 16 hex digits of the SHA-256 of body
}

func (a *asset) etag() string { return `"` + a.hash + `"` }

// contentTypes maps the extensions the console ships to their media types.
// They are listed here rather than taken from the system's MIME tables,
// whose answers differ between machines (text/javascript versus
// application/javascript, missing .svg).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".json": "application/json",
	".map":  "application/json",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
}

// site is the console built from the embedded files.
type site struct {
	assets    map[string]*asset
	index     []byte
	indexETag string
}

// Handler returns the console's http.Handler. It answers:
//
//   - GET and HEAD / (and /index.html): the console page, text/html,
//     revalidated on every load;
//   - GET and HEAD /console/{asset}: an embedded asset with its content
//     type; immutable caching when asked for with the index's ?v= hash,
//     revalidation otherwise; ETag, If-None-Match and Range are honoured;
//     /console and /console/ redirect to /;
//   - other methods on those paths: 405 with an Allow header;
//   - any other path: 404, as a small HTML page for browsers (Accept:
//     text/html) and as an RFC 9457 problem document for everyone else,
//     matching the API's errors.
//
// The console's own navigation lives in the URL fragment (/#/vod/{id}), so
// no page of it needs a path of its own.
func Handler() http.Handler {
	s, err := build()
	if err != nil {
		// The embedded files are fixed at compile time and the package's
		// tests build them, so this only fires on a broken source tree.
		panic(fmt.Sprintf("console: %v", err))
	}
	return s
}

// HLSJSBundled reports whether this binary embeds hls.js.
func HLSJSBundled() bool {
	_, err := fs.Stat(staticFiles, "static/"+HLSJSAsset)
	return err == nil
}

func build() (*site, error) {
	s := &site{assets: map[string]*asset{}}
	err := fs.WalkDir(staticFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("asset %s: no content type for extension %q", name, path.Ext(name))
		}
		sum := sha256.Sum256(body)
		s.assets[name] = &asset{name: name, body: body, contentType: ct, hash: hex.EncodeToString(sum[:8])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading embedded assets: %w", err)
	}

	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			if _, ok := s.assets[name]; !ok {
				return "", fmt.Errorf("index.html names asset %q, which is not embedded", name)
			}
			return s.assetURL(name), nil
		},
	}).Parse(indexTemplate)
	if err != nil {
		return nil, fmt.Errorf("parsing index.html: %w", err)
	}
	var buf bytes.Buffer
	_, bundled := s.assets[HLSJSAsset]
	if err := tmpl.Execute(&buf, struct{ HLSJS bool }{HLSJS: bundled}); err != nil {
		return nil, fmt.Errorf("rendering index.html: %w", err)
	}
	s.index = buf.Bytes()
	sum := sha256.Sum256(s.index)
	s.indexETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return s, nil
}

// assetURL is the versioned URL of an embedded asset.
func (s *site) assetURL(name string) string {
	a, ok := s.assets[name]
	if !ok {
		return AssetPrefix + name
	}
	return AssetPrefix + a.name + "?v=" + a.hash
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/" || p == "/index.html":
		if !allowRead(w, r) {
			return
		}
		s.serveIndex(w, r)
	case p == "/console" || p == AssetPrefix:
		if !allowRead(w, r) {
			return
		}
		http.Redirect(w, r, "/", http.StatusMovedPermanently)
	case strings.HasPrefix(p, AssetPrefix):
		a, ok := s.assets[strings.TrimPrefix(p, AssetPrefix)]
		if !ok {
			s.notFound(w, r, "no console asset "+p)
			return
		}
		if !allowRead(w, r) {
			return
		}
		s.serveAsset(w, r, a)
	default:
		s.notFound(w, r, fmt.Sprintf("no route for %s %s; the console is at / and the API is described at /openapi.json", r.Method, p))
	}
}

func (s *site) serveIndex(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", cacheRevalidate)
	h.Set("ETag", s.indexETag)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(s.index))
}

func (s *site) serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", a.contentType)
	if r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", cacheVersioned)
	} else {
		h.Set("Cache-Control", cacheRevalidate)
	}
	h.Set("ETag", a.etag())
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// allowRead answers 405 to anything but GET and HEAD and reports whether
// the request may go on.
func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeProblem(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use GET or HEAD", r.Method, r.URL.Path))
	return false
}

func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "same-origin")
}

// notFound answers 404: a page pointing back at the console for a browser
// navigating somewhere that does not exist, a problem document otherwise.
func (s *site) notFound(w http.ResponseWriter, r *http.Request, detail string) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && acceptsHTML(r) {
		h := w.Header()
		securityHeaders(h)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", cacheRevalidate)
		w.WriteHeader(http.StatusNotFound)
		if r.Method == http.MethodGet {
			notFoundPage.Execute(w, struct{ Path, Stylesheet string }{r.URL.Path, s.assetURL("app.css")})
		}
		return
	}
	writeProblem(w, http.StatusNotFound, detail)
}

// acceptsHTML reports whether the request's Accept header takes text/html
// (with a non-zero quality), which browsers send on navigation and API
// clients do not.
func acceptsHTML(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "text/html" {
			continue
		}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err != nil || v <= 0 {
				continue
			}
		}
		return true
	}
	return false
}

var notFoundPage = template.Must(template.New("404").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · weir</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{{.Stylesheet}}"></head>
<body><main class="page narrow"><section class="card">
<h1>Nothing at <code>{{.Path}}</code></h1>
<p>This weir server has no page there. The <a href="/">console</a> is at <code>/</code>,
and the API is described at <a href="/docs">/docs</a>.</p>
</section></main></body></html>
`))

// problem is an RFC 9457 problem document, shaped like the API's own.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{Title: http.StatusText(status), Status: status, Detail: detail})
}
