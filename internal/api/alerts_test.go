package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

func TestRulesCreateListGetDelete(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if _, err := e.meta.CreateStream(ctx, metastore.Stream{ID: "live-a", Kind: metastore.KindLive, Status: metastore.StatusCreated}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.meta.CreateStream(ctx, metastore.Stream{ID: "vod-a", Kind: metastore.KindVOD, Status: metastore.StatusReady}); err != nil {
		t.Fatal(err)
	}
	rec := e.doJSON("POST", "/rules", `{"name": "dead air", "condition": {"type": "silence", "min_duration": "5s"},
		"scope": {"stream": "live-a"}, "cooldown": "30s", "webhooks": [{"url": "https://hooks.example.com/weir"}]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /rules: %d %s", rec.Code, rec.Body)
	}
	created := decode[RuleInfo](t, rec)
	if !strings.HasPrefix(created.ID, "rule-") || !strings.HasPrefix(created.Secret, "whsec_") || created.Scope.Stream != "live-a" ||
		created.Cooldown != "30s" || created.Condition.MinDuration != "5s" || created.RetryFor != "24h0m0s" ||
		rec.Header().Get("Location") != "/rules/"+created.ID || len(created.Webhooks) != 1 {
		t.Fatalf("created: %+v (Location %q)", created, rec.Header().Get("Location"))
	}
	got := decode[RuleInfo](t, e.do("GET", "/rules/"+created.ID, nil))
	if got.Secret != "" || got.ID != created.ID || got.Name != "dead air" || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("GET /rules/{id}: %+v", got)
	}
	rec = e.doJSON("POST", "/rules", `{"name": "all", "condition": {"type": "keyword", "phrase": "fire"}}`)
	if rec.Code != http.StatusCreated || !decode[RuleInfo](t, rec).Scope.All {
		t.Fatalf("a rule on every job: %d %s", rec.Code, rec.Body)
	}
	list := decode[RuleList](t, e.do("GET", "/rules", nil))
	if len(list.Items) != 2 || list.Items[0].ID != created.ID || list.Items[0].Secret != "" {
		t.Fatalf("GET /rules: %+v", list)
	}
	if rec := e.do("DELETE", "/rules/"+created.ID, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, e.do("GET", "/rules/"+created.ID, nil), http.StatusNotFound, created.ID)
	wantProblem(t, e.do("DELETE", "/rules/"+created.ID, nil), http.StatusNotFound)

	// Refusals name the member at fault.
	for _, tc := range []struct {
		body   string
		status int
		loc    string
		detail string
	}{
		{`nonsense`, 400, "", "malformed JSON"},
		{`{"name": "x", "condition": {"type": "silence", "min_duration": "soon"}}`, 422, "body.condition.min_duration", "want Go syntax"},
		{`{"name": "x", "condition": {"type": "silence"}, "scope": {"stream": "vod-a"}}`, 422, "body.scope.stream", "vod-a is a VOD title: use scope.title"},
		{`{"name": "x", "condition": {"type": "silence"}, "scope": {"title": "vod-gone"}}`, 422, "body.scope.title", "there is no stream vod-gone"},
		{`{"name": "x", "condition": {"type": "silence"}, "scope": {"job": "job-gone"}}`, 422, "body.scope.job", "there is no job job-gone"},
		{`{"name": "x", "condition": {"type": "keyword", "phrase": "a"}, "webhooks": [{"url": "http://127.0.0.1:8080/"}]}`, 422, "body.webhooks[0].url", "loopback, private or reserved"},
		{`{"name": "x", "condition": {"type": "keyword", "phrase": "a"}, "webhooks": [{"url": "http://169.254.169.254/latest"}]}`, 422, "body.webhooks[0].url", "refusing to connect to 169.254.169.254"},
	} {
		rec := e.doJSON("POST", "/rules", tc.body)
		p := wantProblem(t, rec, tc.status, tc.detail)
		if tc.loc != "" && (len(p.Errors) == 0 || p.Errors[0].Location != tc.loc) {
			t.Errorf("%s: errors %+v, want location %s", tc.body, p.Errors, tc.loc)
		}
	}
}

func TestAlertsAndDeliveriesAreListedAndRedelivered(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	at := time.Now().UTC()
	start, end := int64(1000), int64(2000)
	payload := json.RawMessage(`{"event_id": "al-1:raised"}`)
	ds := []metastore.AlertDelivery{{ID: "al-1:raised:webhook-0", AlertID: "al-1", RuleID: "rule-1", Event: "raised",
		Target: metastore.TargetWebhook, URL: "https://h.example/x", Payload: payload, CreatedAt: at, RetryUntil: at}}
	if _, err := e.meta.RaiseAlert(ctx, metastore.Alert{ID: "al-1", RuleID: "rule-1", Condition: "keyword", Scope: "job:j",
		JobID: "j", StartMs: &start, EndMs: &end, Summary: "fire: said", RaisedAt: at}, ds); err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	d.State, d.Attempts, d.LastError = metastore.DeliveryDead, 7, "503 Service Unavailable"
	if _, err := e.meta.UpdateAlertDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}
	alerts := decode[AlertList](t, e.do("GET", "/alerts?state=open", nil))
	if len(alerts.Items) != 1 || alerts.Items[0].ID != "al-1" || *alerts.Items[0].StartMs != 1000 {
		t.Fatalf("GET /alerts: %+v", alerts)
	}
	if got := decode[AlertList](t, e.do("GET", "/alerts?state=resolved", nil)); len(got.Items) != 0 {
		t.Fatalf("resolved alerts: %+v", got)
	}
	if a := decode[metastore.Alert](t, e.do("GET", "/alerts/al-1", nil)); a.Summary != "fire: said" {
		t.Fatalf("GET /alerts/al-1: %+v", a)
	}
	wantProblem(t, e.do("GET", "/alerts/al-none", nil), http.StatusNotFound)
	wantProblem(t, e.do("GET", "/alerts?cursor=zzz", nil), http.StatusUnprocessableEntity, "cursor")
	dead := decode[DeliveryList](t, e.do("GET", "/alerts/deliveries?state=dead", nil))
	if len(dead.Items) != 1 || dead.Items[0].ID != d.ID || dead.Items[0].Attempts != 7 || string(dead.Items[0].Payload) != `{"event_id":"al-1:raised"}` {
		t.Fatalf("dead letters: %+v", dead)
	}
	rec := e.do("POST", "/alerts/deliveries/"+d.ID+"/redeliver", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("redeliver: %d %s", rec.Code, rec.Body)
	}
	if got := decode[DeliveryInfo](t, rec); got.State != "pending" || got.Attempts != 0 {
		t.Fatalf("redelivered: %+v", got)
	}
	wantProblem(t, e.do("POST", "/alerts/deliveries/"+d.ID+"/redeliver", nil), http.StatusConflict, "pending already")
	wantProblem(t, e.do("POST", "/alerts/deliveries/none/redeliver", nil), http.StatusNotFound)
	if got := decode[DeliveryList](t, e.do("GET", "/alerts/deliveries?state=dead", nil)); len(got.Items) != 0 {
		t.Fatalf("dead letters after the redelivery: %+v", got)
	}
}

func TestAlertRoutesAreInTheOpenAPIDocument(t *testing.T) {
	e := newEnv(t, "")
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(e.do("GET", "/openapi.json", nil).Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for path, methods := range map[string][]string{"/rules": {"get", "post"}, "/rules/{id}": {"get", "delete"},
		"/alerts": {"get"}, "/alerts/{id}": {"get"}, "/alerts/deliveries": {"get"}, "/alerts/deliveries/{id}/redeliver": {"post"}} {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("OpenAPI lacks %s %s", strings.ToUpper(m), path)
			}
		}
	}
	if !strings.Contains(string(doc.Paths["/rules"]["post"]), "RuleRequest") {
		t.Errorf("POST /rules does not describe its body: %s", doc.Paths["/rules"]["post"])
	}
}
