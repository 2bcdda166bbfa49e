package vod

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/prom"
)

// metrics are the worker's Prometheus collectors.
type metrics struct {
	jobs          *prometheus.CounterVec
	running       prometheus.Gauge
	jobSeconds    prometheus.Histogram
	firstPlayable prometheus.Histogram
	segments      prometheus.Counter
	segmentBytes  prometheus.Counter
}

// Job outcomes counted by weir_vod_jobs_total.
const (
	outcomeReady     = "ready"
	outcomeFailed    = "failed"
	outcomeCancelled = "cancelled"
	outcomeRetry     = "retry"   // handler returned an error: the job is redelivered
	outcomeSkipped   = "skipped" // already finished, unknown stream, or malformed
	outcomeStopped   = "stopped" // the worker stopped mid-job; the job is redelivered
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600}
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_vod_jobs_total",
			Help: "VOD jobs handled, by outcome (ready, failed, cancelled, retry, skipped, stopped).",
		}, []string{"outcome"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_vod_jobs_running",
			Help: "VOD jobs being processed by this worker.",
		}),
		jobSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weir_vod_job_seconds",
			Help:    "Time from job start to ready, in seconds.",
			Buckets: buckets,
		}),
		firstPlayable: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weir_vod_first_playable_seconds",
			Help:    "Time from job start until every rendition had its first segment and the master playlist was written.",
			Buckets: buckets,
		}),
		segments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_vod_segments_total",
			Help: "Media segments uploaded to the object store by the VOD pipeline.",
		}),
		segmentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_vod_segment_bytes_total",
			Help: "Bytes of media segments uploaded by the VOD pipeline.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.jobs, err = prom.Register(reg, m.jobs); err != nil {
		return nil, err
	}
	if m.running, err = prom.Register(reg, m.running); err != nil {
		return nil, err
	}
	if m.jobSeconds, err = prom.Register(reg, m.jobSeconds); err != nil {
		return nil, err
	}
	if m.firstPlayable, err = prom.Register(reg, m.firstPlayable); err != nil {
		return nil, err
	}
	if m.segments, err = prom.Register(reg, m.segments); err != nil {
		return nil, err
	}
	if m.segmentBytes, err = prom.Register(reg, m.segmentBytes); err != nil {
		return nil, err
	}
	return m, nil
}
