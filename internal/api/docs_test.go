package api

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// externalRef finds a src or href that leaves the server.
var externalRef = regexp.MustCompile(`(?i)(src|href)="(https?:)?//`)

func TestDocsPageLoadsNothingFromOtherHosts(t *testing.T) {
	e := newEnv(t, "")
	rec := e.do("GET", "/docs", nil)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	page := rec.Body.String()
	if m := externalRef.FindString(page); m != "" {
		t.Errorf("/docs refers to another host (%s):\n%s", m, page)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q should allow only this server's scripts", csp)
	}
	if len(docsAssets) == 0 {
		t.Fatal("the docs renderer is not bundled: run scripts/fetch-vendor.sh (make test does)")
	}
	// Each file the page names is served, byte for byte, with its type.
	refs := regexp.MustCompile(`(?:src|href)="(/docs/assets/([^"?]+)\?v=([0-9a-f]+))"`).FindAllStringSubmatch(page, -1)
	if len(refs) != 2 {
		t.Fatalf("the page names %d renderer files, want the script and the stylesheet:\n%s", len(refs), page)
	}
	for _, ref := range refs {
		a := docsAssets[ref[2]]
		rec := e.do("GET", ref[1], nil)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), a.body) || ref[3] != a.hash {
			t.Errorf("GET %s: %d, %d bytes (want %d, hash %s)", ref[1], rec.Code, rec.Body.Len(), len(a.body), a.hash)
		}
		if want := map[string]string{"web-components.min.js": "text/javascript", "styles.min.css": "text/css"}[ref[2]]; !strings.HasPrefix(rec.Header().Get("Content-Type"), want) {
			t.Errorf("GET %s: Content-Type %q, want %s", ref[1], rec.Header().Get("Content-Type"), want)
		}
		if !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: Cache-Control %q", ref[1], rec.Header().Get("Cache-Control"))
		}
	}
	if rec := e.do("GET", "/docs/assets/nothing.js", nil); rec.Code != 404 {
		t.Errorf("an unknown asset: %d", rec.Code)
	}
}

func TestDocsPageWithoutTheRendererListsTheOperations(t *testing.T) {
	saved := docsAssets
	docsAssets = nil
	t.Cleanup(func() { docsAssets = saved })
	e := newEnv(t, "")
	rec := e.do("GET", "/docs", nil)
	page := rec.Body.String()
	if rec.Code != 200 || strings.Contains(page, "<script") || externalRef.MatchString(page) {
		t.Fatalf("/docs without the renderer: %d\n%s", rec.Code, page)
	}
	for _, want := range []string{
		`<td class="method">post</td><td><code>/vod/upload</code></td><td>Upload or import a VOD</td>`,
		`<code>/streams/{id}/end</code>`,
		`href="/openapi.json"`,
		"scripts/fetch-vendor.sh",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/docs lacks %s:\n%s", want, page)
		}
	}
}
