//go:build unix

package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/server"
)

// TestConsoleAlertsViewInChromium: a no_segments rule on a live stream
// nobody publishes to raises an alert whose webhook delivery fails until
// it is dead-lettered; the Alerts view lists the rule, the open alert and
// the dead letter; Redeliver (the receiver answering now) empties the
// dead letters, and Delete removes the rule and resolves its alert.
func TestConsoleAlertsViewInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var healthy atomic.Bool
	var got atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "receiver down for maintenance", http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	base, serverLog := startWeir(t, func(c *server.Config) {
		c.WebhookAllow = "127.0.0.1"
		c.AlertsRetryFor = 2 * time.Second
	})
	stream, _ := startStream(t, base, "nobody publishes")
	var rule struct {
		ID string `json:"id"`
	}
	apiDo(t, http.MethodPost, base+"/rules", "application/json", strings.NewReader(fmt.Sprintf(`{"name": "studio down",
		"condition": {"type": "no_segments", "min_duration": "1s"}, "scope": {"stream": %q}, "webhooks": [{"url": %q}]}`, stream, hook.URL)), &rule)

	b := startBrowser(t, ctx)
	tb := b.newTab(ctx)
	tb.navigate(ctx, base+"/#/alerts")
	if err := tb.eval(ctx, fmt.Sprintf(`localStorage.setItem('weir.apiToken', %q)`, testToken), nil); err != nil {
		t.Fatal(err)
	}
	var view struct {
		Rules   []string `json:"rules"`
		Cond    string   `json:"cond"`
		Alerts  []string `json:"alerts"`
		Summary string   `json:"summary"`
		Dead    []string `json:"dead"`
		Error   string   `json:"error"`
		Current string   `json:"current"`
	}
	const state = `(() => {
		const ids = (sel) => Array.from(document.querySelectorAll(sel)).map((tr) => tr.dataset.id + (tr.dataset.state ? ' ' + tr.dataset.state : ''));
		const dead = document.querySelector('#dead-body tr[data-id] .fail-reason');
		const alert = document.querySelector('#alerts-body tr[data-id] td:nth-child(2) div');
		const cond = document.querySelector('#rules-body tr[data-id] .condition');
		return {rules: ids('#rules-body tr[data-id]'), alerts: ids('#alerts-body tr[data-id]'), dead: ids('#dead-body tr[data-id]'),
			cond: cond ? cond.textContent : '', summary: alert ? alert.textContent : '', error: dead ? dead.textContent : '',
			current: (document.querySelector('[data-section="alerts"]') || {}).ariaCurrent || ''};
	})()`
	tb.waitFor(ctx, "the rule, its open alert and the dead letter", 60*time.Second, state, &view, func() bool {
		return len(view.Rules) == 1 && len(view.Alerts) == 1 && len(view.Dead) >= 1
	})
	if view.Rules[0] != rule.ID || view.Cond != "no_segments for 1s" || !strings.HasSuffix(view.Alerts[0], " open") ||
		!strings.Contains(view.Summary, "no segments from "+stream) || !strings.Contains(view.Error, "503") || view.Current != "page" {
		t.Fatalf("the Alerts view: %+v\nserver log:\n%s", view, serverLog)
	}
	checkScreenshot(t, "alerts-view.png", tb.screenshot(ctx, filepath.Join(screenshotDir(t), "alerts-view.png")))

	// Redeliver with the receiver up: the dead letters go.
	healthy.Store(true)
	if err := tb.eval(ctx, `document.querySelector('#dead-body tr[data-id] button').click()`, nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "no dead letters after Redeliver", 30*time.Second, state, &view, func() bool { return len(view.Dead) == 0 && got.Load() >= 1 })

	// Delete the rule: it goes, its alert is resolved.
	if err := tb.eval(ctx, `document.querySelector('#rules-body tr[data-id] button').click()`, nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "the rule gone, its alert resolved", 30*time.Second, state, &view, func() bool {
		return len(view.Rules) == 0 && len(view.Alerts) == 1 && strings.HasSuffix(view.Alerts[0], " resolved")
	})
}
