//go:build unix

package console_test

import (
	"context"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv/chromium"
)

// The browser tests drive a headless Chromium with internal/testenv/chromium
// (shared with the end-to-end test); these are its names here.

type browser struct{ *chromium.Browser }

type tab struct{ *chromium.Tab }

// startBrowser starts Chromium with a throwaway profile, adding flags to
// its command line; it is torn down when the test ends.
func startBrowser(t *testing.T, ctx context.Context, flags ...string) *browser {
	t.Helper()
	return &browser{chromium.Start(t, ctx, flags...)}
}

func (b *browser) newTab(ctx context.Context) *tab {
	b.T().Helper()
	return &tab{b.NewTab(ctx)}
}

func (b *browser) pageLog() string     { return b.PageLog() }
func (b *browser) requested() []string { return b.Requested() }

func (tb *tab) resize(ctx context.Context, width, height int) {
	tb.T().Helper()
	tb.Resize(ctx, width, height)
}

func (tb *tab) navigate(ctx context.Context, url string) {
	tb.T().Helper()
	tb.Navigate(ctx, url)
}

func (tb *tab) eval(ctx context.Context, expr string, out any) error { return tb.Eval(ctx, expr, out) }

func (tb *tab) waitFor(ctx context.Context, what string, timeout time.Duration, expr string, out any, done func() bool) {
	tb.T().Helper()
	tb.WaitFor(ctx, what, timeout, expr, out, done)
}

func (tb *tab) recordRequests(ctx context.Context) {
	tb.T().Helper()
	tb.RecordRequests(ctx)
}

func (tb *tab) setFiles(ctx context.Context, selector string, files ...string) {
	tb.T().Helper()
	tb.SetFiles(ctx, selector, files...)
}

func (tb *tab) screenshot(ctx context.Context, path string) []byte {
	tb.T().Helper()
	return tb.Screenshot(ctx, path)
}
