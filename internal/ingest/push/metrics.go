package push

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/prom"
)

// serverMetrics are one ingest server's Prometheus series, labelled with
// its protocol so the RTMP and SRT servers can share a registry:
//
//	weir_push_connections_total{protocol,result}  publish attempts: accepted, refused, failed
//	weir_push_publishers{protocol}                publishers connected now
//	weir_push_received_bytes_total{protocol}      MPEG-TS bytes sent to the bus
type serverMetrics struct {
	connections *prometheus.CounterVec
	publishers  prometheus.Gauge
	bytes       prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer, protocol string) (*serverMetrics, error) {
	labels := prometheus.Labels{"protocol": protocol}
	m := &serverMetrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "weir_push_connections_total",
			Help:        "Publish attempts on the live ingest servers, by result (accepted, refused, failed).",
			ConstLabels: labels,
		}, []string{"result"}),
		publishers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "weir_push_publishers",
			Help:        "Publishers connected to the live ingest servers.",
			ConstLabels: labels,
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "weir_push_received_bytes_total",
			Help:        "MPEG-TS bytes the live ingest servers sent to the bus.",
			ConstLabels: labels,
		}),
	}
	for _, r := range []string{"accepted", "refused", "failed"} {
		m.connections.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	// A second server of the same protocol on one registry shares the
	// series of the first.
	if m.connections, err = prom.Register(reg, m.connections); err != nil {
		return nil, err
	}
	if m.publishers, err = prom.Register(reg, m.publishers); err != nil {
		return nil, err
	}
	if m.bytes, err = prom.Register(reg, m.bytes); err != nil {
		return nil, err
	}
	return m, nil
}
