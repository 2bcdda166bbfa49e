package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

func mustCreate(t *testing.T, s *Service, body string) RuleView {
	t.Helper()
	v, err := s.CreateRule(context.Background(), []byte(body))
	if err != nil {
		t.Fatalf("CreateRule(%s): %v", body, err)
	}
	return v
}

// topicAlerts reads every alert on the weir.alerts topic.
func topicAlerts(t *testing.T, b bus.Bus) []*protocol.Alert {
	t.Helper()
	var out []*protocol.Alert
	err := b.Consume(context.Background(), bus.ConsumeOptions{Topics: []string{protocol.TopicAlerts}, FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			m, err := protocol.DecodeAlert(rec.Key, rec.Value)
			if err != nil {
				t.Errorf("a record of %s: %v", protocol.TopicAlerts, err)
				return nil
			}
			if string(rec.Key) != m.RuleID {
				t.Errorf("alert %s keyed %q, want its rule %s", m.EventID, rec.Key, m.RuleID)
			}
			out = append(out, m)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAWebhookFailingThreeTimesGetsEachAlertOnce runs a keyword rule over
// a job's results topic with a receiver that fails the first three
// attempts of every event and loses the answer to the fourth (it takes
// the event, then answers after weir gave up waiting): after dedupe by
// event id it has each event once, every request correctly signed, and
// the weir.alerts topic has them too.
func TestAWebhookFailingThreeTimesGetsEachAlertOnce(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	reg := prometheus.NewRegistry()
	svc := newService(t, store, b, reg, func(c *Config) { c.WebhookTimeout = 500 * time.Millisecond })
	var secret atomic.Value
	secret.Store("")
	rcv := newReceiver(t, func() string { return secret.Load().(string) })
	rcv.answer = func(_ string, n int) (int, bool, time.Duration) {
		switch {
		case n <= 3:
			return http.StatusServiceUnavailable, false, 0
		case n == 4:
			return http.StatusOK, true, time.Second // taken, but the answer comes too late
		}
		return http.StatusOK, true, 0
	}
	testJob(t, store, b, "job-1", "", "stt", "probe")
	rule := mustCreate(t, svc, fmt.Sprintf(`{"name": "fire", "condition": {"type": "keyword", "phrase": "fire exit"},
		"scope": {"job": "job-1"}, "cooldown": "2s", "webhooks": [{"url": %q}]}`, rcv.srv.URL+"/hook"))
	if !strings.HasPrefix(rule.Secret, "whsec_") {
		t.Fatalf("created rule shows no secret: %+v", rule)
	}
	secret.Store(rule.Secret)
	run(t, svc)

	utter := func(start, end int64, text string) *protocol.EngineOutput {
		return outputOf(t, "job-1", "stt", start, end, &protocol.Document{Series: []protocol.Series{utterance(start, end, text)}})
	}
	put(t, b, "job-1", boundOf("job-1", "stt", 0, false), boundOf("job-1", "probe", 0, false),
		utter(1000, 2000, "where is the fire exit"), utter(2500, 3000, "the fire exit is left"),
		boundOf("job-1", "stt", 4000, false), utter(9000, 9500, "fire exit again"),
		boundOf("job-1", "stt", 20000, true), boundOf("job-1", "probe", 20000, true))

	first, second := AlertID(rule.ID, "job:job-1", 1000), AlertID(rule.ID, "job:job-1", 9000)
	events := []string{first + ":raised", first + ":resolved", second + ":raised", second + ":resolved"}
	waitFor(t, 60*time.Second, "four events delivered", func() bool {
		for _, e := range events {
			if _, taken := rcv.count(e); taken < 2 {
				return false
			}
		}
		ds, _, _ := store.ListAlertDeliveries(context.Background(), metastore.DeliveryQuery{State: metastore.DeliveryPending})
		return len(ds) == 0
	})
	got := rcv.deduped()
	if len(got) != 4 {
		t.Fatalf("the receiver has %d events after dedupe, want 4: %v", len(got), got)
	}
	for _, e := range events {
		m := got[e]
		if m == nil {
			t.Fatalf("event %s never arrived; got %v", e, got)
		}
		requests, taken := rcv.count(e)
		if requests != 5 || taken != 2 {
			t.Errorf("event %s: %d requests, %d taken; want 5 and 2 (three failures, a lost answer, a retry)", e, requests, taken)
		}
	}
	r1, s1 := got[first+":raised"], got[first+":resolved"]
	if *r1.StartMs != 1000 || *r1.EndMs != 2000 || r1.RuleID != rule.ID || r1.JobID != "job-1" || r1.Condition != CondKeyword ||
		!strings.Contains(r1.Summary, "fire exit") || !r1.ResolvedAt.IsZero() {
		t.Errorf("first raised: %+v", r1)
	}
	if *s1.StartMs != 1000 || *s1.EndMs != 3000 || s1.ResolvedAt.IsZero() || !s1.RaisedAt.Equal(r1.RaisedAt) || s1.AlertID != r1.AlertID {
		t.Errorf("first resolved: %d-%d %+v (raised %+v)", *s1.StartMs, *s1.EndMs, s1, r1)
	}
	var details map[string]any
	json.Unmarshal(r1.Details, &details)
	if details["text"] != "where is the fire exit" || details["condition_true_ms"] != float64(1000) {
		t.Errorf("details %s", r1.Details)
	}
	if rcv.badSigs != 0 {
		t.Errorf("%d requests with bad signatures", rcv.badSigs)
	}

	// The topic has each event (at least once; here once).
	onTopic := map[string]int{}
	for _, m := range topicAlerts(t, b) {
		onTopic[m.EventID]++
	}
	for _, e := range events {
		if onTopic[e] != 1 {
			t.Errorf("weir.alerts has %s %d times", e, onTopic[e])
		}
	}
	// The store: two resolved alerts, every delivery delivered.
	alerts, _, err := svc.ListAlerts(context.Background(), metastore.AlertQuery{RuleID: rule.ID})
	if err != nil || len(alerts) != 2 || alerts[0].State != metastore.AlertResolved || alerts[1].State != metastore.AlertResolved {
		t.Fatalf("stored alerts: %+v, %v", alerts, err)
	}
	ds, _, _ := svc.ListDeliveries(context.Background(), metastore.DeliveryQuery{RuleID: rule.ID})
	for _, d := range ds {
		want := 1
		if d.Target == metastore.TargetWebhook {
			want = 5
		}
		if d.State != metastore.DeliveryDelivered || d.Attempts != want {
			t.Errorf("delivery %s: %s after %d attempts, want delivered after %d", d.ID, d.State, d.Attempts, want)
		}
	}
	if n := counter(svc.m.raised.WithLabelValues(rule.ID)); n != 2 {
		t.Errorf("weir_alerts_raised_total = %v, want 2", n)
	}
	if n := counter(svc.m.deliveries.WithLabelValues(rule.ID, OutcomeFailed)); n != 16 {
		t.Errorf("failed attempts = %v, want 16 (4 per webhook event)", n)
	}
	if n := counter(svc.m.deliveries.WithLabelValues(rule.ID, OutcomeDelivered)); n != 8 {
		t.Errorf("delivered = %v, want 8 (4 events to the topic and the webhook)", n)
	}
	if n := series(t, reg, "weir_alerts_raised_total", "weir_alert_deliveries_total"); n != 3 {
		t.Errorf("series: %d; want 3 (raised, delivered, failed of one rule)", n)
	}
}

// TestDeadLetteredDeliveriesCanBeRedelivered: a receiver that keeps
// failing past the retry time gets its delivery dead-lettered; once it
// works, a redelivery arrives.
func TestDeadLetteredDeliveriesCanBeRedelivered(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	svc := newService(t, store, b, nil, func(c *Config) { c.RetryFor = 600 * time.Millisecond })
	var secret atomic.Value
	secret.Store("")
	var healthy atomic.Bool
	rcv := newReceiver(t, func() string { return secret.Load().(string) })
	rcv.answer = func(string, int) (int, bool, time.Duration) {
		if healthy.Load() {
			return http.StatusAccepted, true, 0
		}
		return http.StatusInternalServerError, false, 0
	}
	testJob(t, store, b, "job-2", "", "ocr")
	rule := mustCreate(t, svc, fmt.Sprintf(`{"name": "news", "condition": {"type": "ocr", "pattern": "(?i)breaking"}, "webhooks": [{"url": %q}]}`, rcv.srv.URL))
	secret.Store(rule.Secret)
	run(t, svc)
	put(t, b, "job-2", boundOf("job-2", "ocr", 0, false), outputOf(t, "job-2", "ocr", 4000, 4500, &protocol.Document{Series: []protocol.Series{
		{StartTimeMs: 4000, StopTimeMs: 4500, Object: &protocol.Object{Type: "text", Text: "BREAKING: rates up"}}}}))
	var dead []metastore.AlertDelivery
	waitFor(t, 30*time.Second, "a dead webhook delivery", func() bool {
		dead, _, _ = svc.ListDeliveries(context.Background(), metastore.DeliveryQuery{State: metastore.DeliveryDead})
		return len(dead) == 1
	})
	d := dead[0]
	if d.Target != metastore.TargetWebhook || d.Attempts < 2 || !strings.Contains(d.LastError, "500") || d.LastStatus != 500 {
		t.Fatalf("dead delivery: %+v", d)
	}
	if _, err := svc.Redeliver(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("redelivering an unknown delivery: %v", err)
	}
	healthy.Store(true)
	if _, err := svc.Redeliver(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the redelivery", func() bool { _, taken := rcv.count(protocol.AlertEventID(d.AlertID, d.Event)); return taken == 1 })
	got, _ := store.GetAlertDelivery(context.Background(), d.ID)
	if got.State != metastore.DeliveryDelivered || got.Attempts != 1 {
		t.Fatalf("after redelivery: %+v", got)
	}
}

// TestPendingDeliveriesSurviveARestart stops the service while a
// webhook is down, with deliveries pending, and starts another on the
// same store: it delivers them.
func TestPendingDeliveriesSurviveARestart(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	var up atomic.Bool
	var secret atomic.Value
	secret.Store("")
	rcv := newReceiver(t, func() string { return secret.Load().(string) })
	rcv.answer = func(string, int) (int, bool, time.Duration) {
		if up.Load() {
			return http.StatusOK, true, 0
		}
		return http.StatusBadGateway, false, 0
	}
	first := newService(t, store, b, nil, nil)
	testJob(t, store, b, "job-3", "", "silence")
	rule := mustCreate(t, first, fmt.Sprintf(`{"name": "quiet", "condition": {"type": "silence", "min_duration": "1s"}, "webhooks": [{"url": %q}]}`, rcv.srv.URL))
	secret.Store(rule.Secret)
	stop := run(t, first)
	silence := outputOf(t, "job-3", "silence", 1000, 4000, &protocol.Document{Series: []protocol.Series{
		{StartTimeMs: 1000, StopTimeMs: 4000, Tags: []protocol.Tag{{Key: "silence"}}}}})
	put(t, b, "job-3", boundOf("job-3", "silence", 0, false), silence)
	waitFor(t, 30*time.Second, "a failed attempt", func() bool { n, _ := rcv.count(AlertID(rule.ID, "job:job-3", 1000) + ":raised"); return n >= 1 })
	stop()
	pending, _, _ := store.ListAlertDeliveries(context.Background(), metastore.DeliveryQuery{State: metastore.DeliveryPending})
	if len(pending) == 0 {
		t.Fatal("no delivery pending after the stop")
	}
	up.Store(true)
	// The old deliverer's lease is released on a clean stop; the test of
	// a killed process is the cluster test.
	second := newService(t, store, b, nil, nil)
	run(t, second)
	waitFor(t, 30*time.Second, "the pending delivery delivered by the second service", func() bool {
		_, taken := rcv.count(AlertID(rule.ID, "job:job-3", 1000) + ":raised")
		return taken == 1
	})
	// The second evaluator read the job again and raised nothing twice.
	put(t, b, "job-3", boundOf("job-3", "silence", 20000, true))
	waitFor(t, 30*time.Second, "the resolution", func() bool {
		_, taken := rcv.count(AlertID(rule.ID, "job:job-3", 1000) + ":resolved")
		return taken == 1
	})
	if alerts, _, _ := store.ListAlerts(context.Background(), metastore.AlertQuery{}); len(alerts) != 1 {
		t.Fatalf("alerts after the restart: %+v", alerts)
	}
}

// TestARuleOnAStreamNobodyPublishesToRaisesNoSegments: a live stream is
// created and nothing is published; the no_segments rule raises its
// alert after its duration, and the first segment resolves it.
func TestARuleOnAStreamNobodyPublishesToRaisesNoSegments(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	ctx := context.Background()
	st, err := store.CreateStream(ctx, metastore.Stream{ID: "live-quiet", Kind: metastore.KindLive, Title: "nobody", Status: metastore.StatusCreated})
	if err != nil {
		t.Fatal(err)
	}
	var secret atomic.Value
	secret.Store("")
	rcv := newReceiver(t, func() string { return secret.Load().(string) })
	svc := newService(t, store, b, nil, nil)
	if _, err := svc.CreateRule(ctx, []byte(`{"name": "x", "condition": {"type": "no_segments", "min_duration": "1s"}, "scope": {"stream": "live-none"}}`)); err == nil ||
		!strings.Contains(err.Error(), "scope.stream: there is no stream live-none") {
		t.Fatalf("a rule on an unknown stream: %v", err)
	}
	rule := mustCreate(t, svc, fmt.Sprintf(`{"name": "studio A down", "condition": {"type": "no_segments", "min_duration": "1s"},
		"scope": {"stream": "live-quiet"}, "webhooks": [{"url": %q}]}`, rcv.srv.URL))
	secret.Store(rule.Secret)
	began := time.Now()
	run(t, svc)
	var raised *protocol.Alert
	waitFor(t, 30*time.Second, "the no_segments alert", func() bool {
		for _, m := range rcv.deduped() {
			if m.Event == protocol.AlertRaised {
				raised = m
			}
		}
		return raised != nil
	})
	since := maxTime(st.CreatedAt, rule.CreatedAt)
	if raised.Condition != CondNoSegments || raised.StreamID != "live-quiet" || raised.Scope != "stream:live-quiet" || raised.StartMs != nil ||
		raised.StartedAt.UnixMilli() != since.UnixMilli() || raised.RaisedAt.Sub(since) < time.Second || !strings.Contains(raised.Summary, "nothing published yet") {
		t.Fatalf("raised %+v (stream created %v, rule %v)", raised, st.CreatedAt, rule.CreatedAt)
	}
	if time.Since(began) > 15*time.Second {
		t.Errorf("raised after %v, want about a second", time.Since(began))
	}
	// A segment arrives: the alert is resolved.
	at := time.Now().UTC()
	if err := store.UpsertSegment(ctx, metastore.Segment{StreamID: "live-quiet", Key: "k", DurationUS: 2e6, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TransitionStatus(ctx, "live-quiet", metastore.StatusLive, func(s *metastore.Stream) {
		s.Details = metastore.MergeDetails(s.Details, map[string]any{"last_segment_at": at})
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the resolution", func() bool {
		m := rcv.deduped()[raised.AlertID+":resolved"]
		return m != nil && m.EndedAt.UnixMilli() == at.UnixMilli()
	})
	if n := len(rcv.deduped()); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

// counter reads a counter's value.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// series counts the series of the named metrics in reg.
func series(t *testing.T, reg *prometheus.Registry, names ...string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		for _, name := range names {
			if f.GetName() == name {
				n += len(f.GetMetric())
			}
		}
	}
	return n
}
