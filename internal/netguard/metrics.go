package netguard

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/prom"
)

// Metrics are the listeners' Prometheus series, labelled by listener name:
//
//	weir_listener_connections{listener}           connections open now
//	weir_listener_refused_total{listener}         connections closed at once, over the cap
//	weir_listener_evicted_total{listener}         silent connections closed to make room at the cap
//	weir_listener_accept_errors_total{listener}   failed accepts (each retried)
//
// A nil *Metrics records nothing.
type Metrics struct {
	open    *prometheus.GaugeVec
	refused *prometheus.CounterVec
	evicted *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

// NewMetrics registers the listener series on reg (shared with an equal
// set already there).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_listener_connections",
			Help: "Connections open on each listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_listener_refused_total",
			Help: "Connections a listener closed at once because it held its maximum.",
		}, []string{"listener"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_listener_evicted_total",
			Help: "Connections that had sent nothing, closed to make room for a new one at a listener's maximum.",
		}, []string{"listener"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_listener_accept_errors_total",
			Help: "Failed accepts (out of file descriptors, say); each is retried after a pause.",
		}, []string{"listener"}),
	}
	var err error
	if m.open, err = prom.Register(reg, m.open); err != nil {
		return nil, fmt.Errorf("listener metrics: %w", err)
	}
	if m.refused, err = prom.Register(reg, m.refused); err != nil {
		return nil, fmt.Errorf("listener metrics: %w", err)
	}
	if m.evicted, err = prom.Register(reg, m.evicted); err != nil {
		return nil, fmt.Errorf("listener metrics: %w", err)
	}
	if m.errors, err = prom.Register(reg, m.errors); err != nil {
		return nil, fmt.Errorf("listener metrics: %w", err)
	}
	return m, nil
}

// init makes name's series exist at zero, so dashboards see them before
// anything happens.
func (m *Metrics) init(name string) {
	if m == nil {
		return
	}
	m.open.WithLabelValues(name)
	m.refused.WithLabelValues(name)
	m.evicted.WithLabelValues(name)
	m.errors.WithLabelValues(name)
}

func (m *Metrics) opened(name string) {
	if m != nil {
		m.open.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) closed(name string) {
	if m != nil {
		m.open.WithLabelValues(name).Dec()
	}
}

func (m *Metrics) refusedOne(name string) {
	if m != nil {
		m.refused.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) acceptError(name string) {
	if m != nil {
		m.errors.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) evictedOne(name string) {
	if m != nil {
		m.evicted.WithLabelValues(name).Inc()
	}
}
