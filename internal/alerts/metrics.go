package alerts

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/prom"
)

// Metrics are the alerts' Prometheus series. Their only label values are
// rule ids (and a delivery's outcome), so there are as many series as
// rules.
type Metrics struct {
	raised     *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	pending    *prometheus.GaugeVec
}

// Delivery outcomes counted by weir_alert_deliveries_total.
const (
	// OutcomeDelivered: the target took the alert event.
	OutcomeDelivered = "delivered"
	// OutcomeFailed: an attempt failed (it is tried again until the
	// rule's retry time is up).
	OutcomeFailed = "failed"
	// OutcomeDead: the last attempt failed and the delivery was
	// dead-lettered.
	OutcomeDead = "dead"
)

// NewMetrics makes the series and registers them with reg (nil: not
// exported).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_alerts_raised_total",
			Help: "Alerts raised, by rule id.",
		}, []string{"rule"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_alert_deliveries_total",
			Help: "Attempts to deliver alert events to the weir.alerts topic and to webhooks, by rule id and outcome: delivered, failed (will be tried again) or dead (given up, dead-lettered).",
		}, []string{"rule", "state"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_alert_deliveries_pending",
			Help: "Alert deliveries not delivered yet, by rule id (exported by the process delivering them).",
		}, []string{"rule"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.raised, err = prom.Register(reg, m.raised); err != nil {
		return nil, err
	}
	if m.deliveries, err = prom.Register(reg, m.deliveries); err != nil {
		return nil, err
	}
	if m.pending, err = prom.Register(reg, m.pending); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) raise(rule string) {
	if m != nil {
		m.raised.WithLabelValues(rule).Inc()
	}
}

func (m *Metrics) delivery(rule, outcome string) {
	if m != nil {
		m.deliveries.WithLabelValues(rule, outcome).Inc()
	}
}

// setPending replaces the pending gauges with counts (nil: none).
func (m *Metrics) setPending(counts map[string]int64) {
	if m == nil {
		return
	}
	m.pending.Reset()
	for rule, n := range counts {
		m.pending.WithLabelValues(rule).Set(float64(n))
	}
}

// forget drops a deleted rule's series.
func (m *Metrics) forget(rule string) {
	if m == nil {
		return
	}
	m.raised.DeleteLabelValues(rule)
	m.pending.DeleteLabelValues(rule)
	for _, o := range []string{OutcomeDelivered, OutcomeFailed, OutcomeDead} {
		m.deliveries.DeleteLabelValues(rule, o)
	}
}
