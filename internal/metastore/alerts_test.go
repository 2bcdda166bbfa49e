package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// runAlertsContract is the alert rules', alerts' and deliveries' part of
// the Store contract.
func runAlertsContract(t *testing.T, h harness) {
	ctx := context.Background()
	spec := json.RawMessage(`{"condition": {"type": "keyword", "phrase": "fire"}, "scope": {"all": true}}`)

	t.Run("AlertRulesCreateListGetDelete", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		if list, err := s.ListAlertRules(ctx); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("no rules: %v, %v (want an empty, non-nil list)", list, err)
		}
		a, err := s.CreateAlertRule(ctx, AlertRule{ID: "rule-a", Name: "fire", Spec: spec, Secret: "s3cret"})
		if err != nil || a.CreatedAt.IsZero() {
			t.Fatalf("CreateAlertRule = %+v, %v", a, err)
		}
		if _, err := s.CreateAlertRule(ctx, AlertRule{ID: "rule-b", Name: "b", Spec: spec, Secret: "x"}); err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateAlertRule(ctx, AlertRule{ID: "rule-a", Name: "again", Spec: spec, Secret: "x"})
		wantErr(t, err, ErrExists, "alert rule rule-a: already exists")
		for name, bad := range map[string]AlertRule{
			"no id": {Name: "x", Spec: spec, Secret: "x"}, "no secret": {ID: "r", Name: "x", Spec: spec},
			"spec not an object": {ID: "r", Name: "x", Spec: json.RawMessage(`[1]`), Secret: "x"},
			"spec not json":      {ID: "r", Name: "x", Spec: json.RawMessage(`{`), Secret: "x"},
		} {
			if _, err := s.CreateAlertRule(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		got, err := s.GetAlertRule(ctx, "rule-a")
		if err != nil || got.Name != "fire" || got.Secret != "s3cret" || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("GetAlertRule = %+v, %v", got, err)
		}
		var sp map[string]any
		if err := json.Unmarshal(got.Spec, &sp); err != nil || sp["condition"].(map[string]any)["phrase"] != "fire" {
			t.Fatalf("spec read back: %s, %v", got.Spec, err)
		}
		list, err := s.ListAlertRules(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "rule-a" || list[1].ID != "rule-b" {
			t.Fatalf("ListAlertRules = %+v, %v", list, err)
		}
		if err := s.DeleteAlertRule(ctx, "rule-a"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteAlertRule(ctx, "rule-a"), ErrNotFound, "alert rule rule-a: not found")
		_, err = s.GetAlertRule(ctx, "rule-a")
		wantErr(t, err, ErrNotFound, "alert rule rule-a: not found")
	})

	t.Run("AlertsAreRaisedAndResolvedOnceWithTheirDeliveries", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		raised := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
		start, end := int64(12000), int64(12500)
		a := Alert{ID: "al-1", RuleID: "rule-1", RuleName: "fire", Condition: "keyword", Scope: "job:job-1",
			JobID: "job-1", StreamID: "live-1", StartMs: &start, EndMs: &end, Summary: `"fire" said`,
			Details: json.RawMessage(`{"text": "fire in the hall"}`), RaisedAt: raised}
		ds := deliveriesOf("al-1", "rule-1", "raised", raised, raised.Add(time.Hour))
		created, err := s.RaiseAlert(ctx, a, ds)
		if err != nil || !created {
			t.Fatalf("RaiseAlert = %v, %v", created, err)
		}
		// Raised again (a restart evaluating the same results): nothing
		// changes, no second set of deliveries.
		again := a
		again.Summary = "other"
		if created, err := s.RaiseAlert(ctx, again, deliveriesOf("al-1", "rule-1", "raised", raised.Add(time.Minute), raised)); err != nil || created {
			t.Fatalf("RaiseAlert again = %v, %v; want false", created, err)
		}
		got, err := s.GetAlert(ctx, "al-1")
		if err != nil || got.State != AlertOpen || got.Summary != `"fire" said` || *got.StartMs != 12000 || *got.EndMs != 12500 ||
			!got.RaisedAt.Equal(raised) || !got.ResolvedAt.IsZero() || !got.StartedAt.IsZero() {
			t.Fatalf("GetAlert = %+v, %v", got, err)
		}
		due, err := s.DueAlertDeliveries(ctx, raised, 10)
		if err != nil || len(due) != 2 || due[0].State != DeliveryPending || due[0].Attempts != 0 ||
			!due[0].RetryUntil.Equal(raised.Add(time.Hour)) || string(due[0].Payload) == "" {
			t.Fatalf("DueAlertDeliveries = %+v, %v", due, err)
		}
		if due, _ := s.DueAlertDeliveries(ctx, raised.Add(-time.Millisecond), 10); len(due) != 0 {
			t.Fatalf("deliveries due before they were queued: %+v", due)
		}
		resolvedAt := raised.Add(5 * time.Second)
		end2 := int64(15000)
		changed, err := s.ResolveAlert(ctx, AlertResolution{ID: "al-1", EndMs: &end2, ResolvedAt: resolvedAt},
			deliveriesOf("al-1", "rule-1", "resolved", resolvedAt, resolvedAt.Add(time.Hour)))
		if err != nil || !changed {
			t.Fatalf("ResolveAlert = %v, %v", changed, err)
		}
		if changed, err := s.ResolveAlert(ctx, AlertResolution{ID: "al-1", EndMs: &end2, ResolvedAt: resolvedAt},
			deliveriesOf("al-1", "rule-1", "resolved", resolvedAt, resolvedAt)); err != nil || changed {
			t.Fatalf("ResolveAlert again = %v, %v; want false", changed, err)
		}
		_, err = s.ResolveAlert(ctx, AlertResolution{ID: "al-none", ResolvedAt: resolvedAt}, nil)
		wantErr(t, err, ErrNotFound, "alert al-none: not found")
		got, _ = s.GetAlert(ctx, "al-1")
		if got.State != AlertResolved || *got.EndMs != 15000 || !got.ResolvedAt.Equal(resolvedAt) {
			t.Fatalf("resolved alert: %+v", got)
		}
		all, next, err := s.ListAlertDeliveries(ctx, DeliveryQuery{AlertID: "al-1"})
		if err != nil || len(all) != 4 || next != "" {
			t.Fatalf("ListAlertDeliveries = %d, %q, %v; want 4", len(all), next, err)
		}

		// A wall-clock alert (no media times) resolves without them.
		started := raised.Add(-time.Minute)
		b := Alert{ID: "al-2", RuleID: "rule-2", Condition: "no_segments", Scope: "stream:live-1", StreamID: "live-1",
			StartedAt: started, RaisedAt: raised.Add(time.Second)}
		if _, err := s.RaiseAlert(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveAlert(ctx, AlertResolution{ID: "al-2", EndedAt: resolvedAt, ResolvedAt: resolvedAt}, nil); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetAlert(ctx, "al-2")
		if got.StartMs != nil || got.EndMs != nil || !got.StartedAt.Equal(started) || !got.EndedAt.Equal(resolvedAt) || got.State != AlertResolved {
			t.Fatalf("wall-clock alert: %+v", got)
		}
		bad := b
		bad.ID, bad.EndMs = "al-3", &end
		if _, err := s.RaiseAlert(ctx, bad, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("an alert with an end and no start: %v", err)
		}

		// Listing: newest first, filtered, paged.
		list, _, err := s.ListAlerts(ctx, AlertQuery{})
		if err != nil || len(list) != 2 || list[0].ID != "al-2" || list[1].ID != "al-1" {
			t.Fatalf("ListAlerts = %+v, %v", list, err)
		}
		page, next, err := s.ListAlerts(ctx, AlertQuery{Limit: 1})
		if err != nil || len(page) != 1 || next == "" {
			t.Fatalf("first page: %+v %q %v", page, next, err)
		}
		page, next, err = s.ListAlerts(ctx, AlertQuery{Limit: 1, After: next})
		if err != nil || len(page) != 1 || page[0].ID != "al-1" || next != "" {
			t.Fatalf("second page: %+v %q %v", page, next, err)
		}
		if l, _, _ := s.ListAlerts(ctx, AlertQuery{RuleID: "rule-2"}); len(l) != 1 || l[0].ID != "al-2" {
			t.Fatalf("by rule: %+v", l)
		}
		if l, _, _ := s.ListAlerts(ctx, AlertQuery{JobID: "job-1", State: AlertResolved}); len(l) != 1 || l[0].ID != "al-1" {
			t.Fatalf("by job and state: %+v", l)
		}
		if _, _, err := s.ListAlerts(ctx, AlertQuery{State: "closed"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown state: %v", err)
		}
		if _, _, err := s.ListAlerts(ctx, AlertQuery{After: "nonsense"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad cursor: %v", err)
		}
	})

	t.Run("DeliveriesAreAttemptedDeadLetteredAndRedelivered", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		at := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
		start := int64(0)
		for i, id := range []string{"al-a", "al-b"} {
			rule := "rule-" + id
			a := Alert{ID: id, RuleID: rule, Condition: "keyword", Scope: "job:j", StartMs: &start, EndMs: &start, RaisedAt: at}
			if _, err := s.RaiseAlert(ctx, a, deliveriesOf(id, rule, "raised", at.Add(time.Duration(i)*time.Second), at.Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		counts, err := s.CountAlertDeliveries(ctx, DeliveryPending)
		if err != nil || counts["rule-al-a"] != 2 || counts["rule-al-b"] != 2 {
			t.Fatalf("pending counts: %v, %v", counts, err)
		}
		due, err := s.DueAlertDeliveries(ctx, at.Add(time.Minute), 10)
		if err != nil || len(due) != 4 || due[0].AlertID != "al-a" || due[3].AlertID != "al-b" {
			t.Fatalf("due: %+v, %v", due, err)
		}
		// The first fails and is retried later; the second is delivered;
		// the third is given up.
		d := due[0]
		d.Attempts, d.NextAttemptAt, d.LastError, d.LastStatus = 1, at.Add(2*time.Minute), "503 Service Unavailable", 503
		if ok, err := s.UpdateAlertDelivery(ctx, d); err != nil || !ok {
			t.Fatalf("UpdateAlertDelivery: %v, %v", ok, err)
		}
		d2 := due[1]
		d2.Attempts, d2.State, d2.DeliveredAt = 1, DeliveryDelivered, at.Add(time.Second)
		if ok, err := s.UpdateAlertDelivery(ctx, d2); err != nil || !ok {
			t.Fatal(ok, err)
		}
		d3 := due[2]
		d3.Attempts, d3.State, d3.LastError = 9, DeliveryDead, "connection refused"
		if ok, err := s.UpdateAlertDelivery(ctx, d3); err != nil || !ok {
			t.Fatal(ok, err)
		}
		// A delivered one is not updated again by a stale deliverer.
		if ok, err := s.UpdateAlertDelivery(ctx, due[1]); err != nil || ok {
			t.Fatalf("update of a delivered delivery: %v, %v; want false", ok, err)
		}
		due2, _ := s.DueAlertDeliveries(ctx, at.Add(time.Minute), 10)
		if len(due2) != 1 || due2[0].ID != due[3].ID {
			t.Fatalf("due after the attempts: %+v", due2)
		}
		got, _ := s.GetAlertDelivery(ctx, d.ID)
		if got.Attempts != 1 || got.LastStatus != 503 || got.LastError != "503 Service Unavailable" || !got.NextAttemptAt.Equal(at.Add(2*time.Minute)) {
			t.Fatalf("failed attempt read back: %+v", got)
		}
		dead, next, err := s.ListAlertDeliveries(ctx, DeliveryQuery{State: DeliveryDead})
		if err != nil || len(dead) != 1 || dead[0].ID != d3.ID || next != "" {
			t.Fatalf("dead letters: %+v, %v", dead, err)
		}
		redone, err := s.RedeliverAlertDelivery(ctx, d3.ID, at.Add(3*time.Hour))
		if err != nil || redone.State != DeliveryPending || redone.Attempts != 0 || redone.LastError != "" || !redone.RetryUntil.Equal(at.Add(3*time.Hour)) {
			t.Fatalf("RedeliverAlertDelivery = %+v, %v", redone, err)
		}
		_, err = s.RedeliverAlertDelivery(ctx, d3.ID, at)
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("redelivering a pending delivery: %v", err)
		}
		_, err = s.RedeliverAlertDelivery(ctx, "none", at)
		wantErr(t, err, ErrNotFound, "delivery none: not found")
		if _, err := s.RedeliverAlertDelivery(ctx, d2.ID, at.Add(time.Hour)); err != nil {
			t.Fatalf("redelivering a delivered one: %v", err)
		}
		if _, _, err := s.ListAlertDeliveries(ctx, DeliveryQuery{State: "lost"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown state: %v", err)
		}
		page, next, err := s.ListAlertDeliveries(ctx, DeliveryQuery{Limit: 3})
		if err != nil || len(page) != 3 || next == "" {
			t.Fatalf("page: %d %q %v", len(page), next, err)
		}
		rest, next, err := s.ListAlertDeliveries(ctx, DeliveryQuery{Limit: 3, After: next})
		if err != nil || len(rest) != 1 || next != "" {
			t.Fatalf("second page: %d %q %v", len(rest), next, err)
		}

		// Deleting a rule drops its pending deliveries and resolves its
		// open alerts; what was delivered stays.
		if _, err := s.CreateAlertRule(ctx, AlertRule{ID: "rule-al-a", Name: "a", Spec: spec, Secret: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAlertRule(ctx, "rule-al-a"); err != nil {
			t.Fatal(err)
		}
		left, _, _ := s.ListAlertDeliveries(ctx, DeliveryQuery{RuleID: "rule-al-a"})
		for _, d := range left {
			if d.State == DeliveryPending {
				t.Fatalf("a pending delivery of a deleted rule: %+v", d)
			}
		}
		if a, _ := s.GetAlert(ctx, "al-a"); a.State != AlertResolved || a.ResolvedAt.IsZero() {
			t.Fatalf("the deleted rule's alert: %+v", a)
		}
		if a, _ := s.GetAlert(ctx, "al-b"); a.State != AlertOpen {
			t.Fatalf("another rule's alert: %+v", a)
		}
	})
}

// deliveriesOf makes an alert event's deliveries: the topic and a webhook.
func deliveriesOf(alertID, ruleID, event string, at, until time.Time) []AlertDelivery {
	payload := json.RawMessage(`{"alert_id": "` + alertID + `", "event": "` + event + `"}`)
	id := alertID + ":" + event
	return []AlertDelivery{
		{ID: id + ":kafka", AlertID: alertID, RuleID: ruleID, Event: event, Target: TargetKafka, Payload: payload, CreatedAt: at, RetryUntil: until},
		{ID: id + ":webhook-0", AlertID: alertID, RuleID: ruleID, Event: event, Target: TargetWebhook,
			URL: "https://hooks.example.com/weir", Payload: payload, CreatedAt: at, RetryUntil: until},
	}
}
