package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// The docs page renders the OpenAPI document in the browser with Stoplight
// Elements, served from the binary so that /docs works without internet
// access. Elements is not part of this repository: scripts/fetch-vendor.sh
// puts a pinned, integrity-checked copy in docsui/vendor/ before
// `make build`. A binary built without it serves a plain list of the
// operations instead, still with no request leaving the server.
//
//go:embed docsui
var docsFiles embed.FS

var docsTemplate = template.Must(template.ParseFS(docsFiles, "docsui/index.html"))

// docsCSP keeps the page to its own script and stylesheet; Elements sets
// inline styles, and its request console calls this same origin.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsAsset is one bundled renderer file.
type docsAsset struct {
	body        []byte
	contentType string
	hash        string
}

// docsAssets are the vendored renderer's files by name; empty when the
// binary was built without them.
var docsAssets = loadDocsAssets()

func loadDocsAssets() map[string]docsAsset {
	types := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
		"":     "text/plain; charset=utf-8", // LICENSE
	}
	assets := map[string]docsAsset{}
	entries, _ := fs.ReadDir(docsFiles, "docsui/vendor")
	for _, e := range entries {
		body, err := docsFiles.ReadFile("docsui/vendor/" + e.Name())
		if err != nil || len(body) == 0 {
			continue
		}
		sum := sha256.Sum256(body)
		assets[e.Name()] = docsAsset{body: body, contentType: types[path.Ext(e.Name())], hash: hex.EncodeToString(sum[:8])}
	}
	return assets
}

// docsOperation is one row of the page without the renderer.
type docsOperation struct{ Method, Path, Summary string }

// registerDocs serves GET /docs and the renderer's files under
// /docs/assets/.
func (s *Server) registerDocs() {
	s.mux.HandleFunc("GET /docs", s.serveDocs)
	s.mux.HandleFunc("GET /docs/assets/{name}", serveDocsAsset)
}

func (s *Server) serveDocs(w http.ResponseWriter, r *http.Request) {
	js, css := docsAssets["web-components.min.js"], docsAssets["styles.min.css"]
	data := struct {
		Bundled         bool
		JSHash, CSSHash string
		Operations      []docsOperation
	}{Bundled: js.body != nil && css.body != nil, JSHash: js.hash, CSSHash: css.hash}
	if !data.Bundled {
		data.Operations = s.operations()
	}
	var buf bytes.Buffer
	if err := docsTemplate.Execute(&buf, data); err != nil {
		writeProblem(w, http.StatusInternalServerError, "rendering the API docs page: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("Cache-Control", "no-cache")
	w.Write(buf.Bytes())
}

// operations lists the OpenAPI document's operations by path and method.
func (s *Server) operations() []docsOperation {
	var ops []docsOperation
	for p, item := range s.api.OpenAPI().Paths {
		for _, m := range []struct {
			method string
			op     *huma.Operation
		}{{"get", item.Get}, {"post", item.Post}, {"put", item.Put}, {"patch", item.Patch}, {"delete", item.Delete}} {
			if m.op != nil {
				ops = append(ops, docsOperation{Method: m.method, Path: p, Summary: m.op.Summary})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	return ops
}

// serveDocsAsset serves a renderer file; its URL carries the content hash,
// so it may be cached for good.
func serveDocsAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := docsAssets[r.PathValue("name")]
	if !ok {
		writeProblem(w, http.StatusNotFound, "no API docs asset "+r.PathValue("name")+" in this binary")
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", `"`+a.hash+`"`)
	if strings.TrimSpace(r.URL.Query().Get("v")) == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
