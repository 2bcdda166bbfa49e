package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/protocol"
)

// TestClusterAlertDeliveriesSurviveKill9: a process with the alerts role
// raises a no_segments alert on a live stream nobody publishes to; its
// webhook is down, so the delivery stays pending; the process is killed
// with SIGKILL, the receiver comes back, and a new alerts process (once
// the dead one's lease has lapsed) delivers the event, once, signed with
// the rule's secret. The alert is not raised twice.
func TestClusterAlertDeliveriesSurviveKill9(t *testing.T) {
	c := newCluster(t)
	var up atomic.Bool
	var mu sync.Mutex
	var secret string
	taken := map[string]int{}
	var failed atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !up.Load() {
			failed.Add(1)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err := alerts.Verify(secret, r.Header.Get(alerts.HeaderTimestamp), r.Header.Get(alerts.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		m, err := protocol.DecodeAlert(nil, body)
		if err != nil {
			t.Errorf("webhook body: %v", err)
			return
		}
		taken[m.EventID]++
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()

	api := c.start("api", "--roles", "api", "--webhook-allow", "127.0.0.1")
	first := c.start("alerts1", "--roles", "alerts", "--webhook-allow", "127.0.0.1")
	c.waitReady(api)
	c.waitReady(first)

	var stream struct {
		ID string `json:"stream_id"`
	}
	if code := api.api(t, http.MethodPost, "/streams/start", map[string]string{"title": "nobody"}, &stream); code/100 != 2 {
		t.Fatalf("start stream: %d", code)
	}
	var rule struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if code := api.api(t, http.MethodPost, "/rules", map[string]any{"name": "gone quiet",
		"condition": map[string]string{"type": "no_segments", "min_duration": "1s"},
		"scope":     map[string]string{"stream": stream.ID}, "webhooks": []map[string]string{{"url": hook.URL}}}, &rule); code != http.StatusCreated {
		t.Fatalf("POST /rules: %d", code)
	}
	mu.Lock()
	secret = rule.Secret
	mu.Unlock()
	waitUntil(t, 60*time.Second, "a failed webhook attempt", func() bool { return failed.Load() >= 1 })
	first.kill9()
	var pending struct {
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	api.api(t, http.MethodGet, "/alerts/deliveries?state=pending", nil, &pending)
	if len(pending.Items) == 0 {
		t.Fatal("no delivery pending after the kill")
	}
	up.Store(true)
	second := c.start("alerts2", "--roles", "alerts", "--webhook-allow", "127.0.0.1")
	c.waitReady(second)
	waitUntil(t, 90*time.Second, "the pending delivery delivered by the new process", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(taken) > 0
	})
	var list struct {
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	api.api(t, http.MethodGet, "/alerts?rule="+rule.ID, nil, &list)
	if len(list.Items) != 1 || list.Items[0].State != "open" {
		t.Fatalf("alerts of the rule: %+v", list.Items)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := taken[list.Items[0].ID+":raised"]; n != 1 {
		t.Fatalf("the raised event arrived %d times (%v), want once", n, taken)
	}
}
