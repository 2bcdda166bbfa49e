//go:build unix

package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// The API reference at /docs must work on a machine without internet
// access: the renderer comes from the binary, and the page asks nothing of
// any other host.
func TestDocsPageListsTheEndpointsWithTheNetworkBlocked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, serverLog := startWeir(t)

	// The operations the page must list, from the OpenAPI document.
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Summary string   `json:"summary"`
			Tags    []string `json:"tags"`
		} `json:"paths"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var summaries []string
	tags := map[string]bool{}
	for _, ops := range doc.Paths {
		for _, op := range ops {
			if op.Summary != "" {
				summaries = append(summaries, op.Summary)
			}
			for _, tag := range op.Tags {
				tags[tag] = true
			}
		}
	}
	sort.Strings(summaries)
	if len(summaries) < 10 {
		t.Fatalf("the OpenAPI document has only %d operation summaries: %v", len(summaries), summaries)
	}

	// Every host but the server resolves to nothing: no CDN, no font service.
	b := startBrowser(t, ctx, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
	tb := b.newTab(ctx)
	tb.recordRequests(ctx)
	tb.navigate(ctx, base+"/docs")

	// The sidebar groups operations by tag, collapsed: open each group
	// the way a reader would.
	var groups []string
	tb.waitFor(ctx, "the docs page's tag groups", 60*time.Second, `(() => {
		const tags = `+mustJSON(t, tags)+`;
		return [...document.querySelectorAll('body *')]
			.filter(el => el.children.length === 0 && tags[el.textContent.trim()])
			.map(el => el.textContent.trim());
	})()`, &groups, func() bool { return len(groups) >= len(tags) })
	if err := tb.eval(ctx, `(() => {
		const tags = `+mustJSON(t, tags)+`;
		for (const el of document.querySelectorAll('body *')) {
			if (el.children.length === 0 && tags[el.textContent.trim()]) {
				el.click();
				delete tags[el.textContent.trim()];
			}
		}
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	var missing []string
	tb.waitFor(ctx, "every operation in the docs page's endpoint list", 60*time.Second, `(() => {
		const text = document.body ? document.body.innerText : '';
		return `+mustJSON(t, summaries)+`.filter(s => !text.includes(s));
	})()`, &missing, func() bool { return len(missing) == 0 })

	for _, u := range b.requested() {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
			t.Errorf("the docs page requested %s, outside %s", u, base)
		}
	}
	if t.Failed() {
		t.Logf("page log:\n%s\nserver log:\n%s", b.pageLog(), serverLog.String())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
