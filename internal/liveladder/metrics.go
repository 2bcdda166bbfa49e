package liveladder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/prom"
)

// metrics are the live transcoder's Prometheus series:
//
//	weir_liveladder_streams                    streams this process transcodes now
//	weir_liveladder_sessions_total             ffmpeg sessions started (one per publisher session)
//	weir_liveladder_ffmpeg_failures_total      sessions whose ffmpeg failed or ended badly
//	weir_liveladder_output_bytes_total{rung}   MPEG-TS bytes written to the rendition topics, by rung name
type metrics struct {
	streams  prometheus.Gauge
	sessions prometheus.Counter
	failures prometheus.Counter
	bytes    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_liveladder_streams",
			Help: "Live streams whose ABR ladder this process transcodes now.",
		}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_liveladder_sessions_total",
			Help: "ffmpeg sessions the live transcoder started, one per publisher session of a stream with a ladder.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_liveladder_ffmpeg_failures_total",
			Help: "Live transcoder sessions whose ffmpeg failed or ended badly.",
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_liveladder_output_bytes_total",
			Help: "MPEG-TS bytes the live transcoder wrote to rendition topics, by rung name.",
		}, []string{"rung"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.streams, err = prom.Register(reg, m.streams); err != nil {
		return nil, err
	}
	if m.sessions, err = prom.Register(reg, m.sessions); err != nil {
		return nil, err
	}
	if m.failures, err = prom.Register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.bytes, err = prom.Register(reg, m.bytes); err != nil {
		return nil, err
	}
	return m, nil
}
