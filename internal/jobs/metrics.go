package jobs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/prom"
)

// metrics are the job runner's Prometheus series.
type metrics struct {
	// chunks counts chunk state changes by engine and state: queued,
	// sent (each attempt), done, ignored, dropped (flow control) and
	// failed.
	chunks *prometheus.CounterVec
	// jobs counts the jobs this runner ended, by status.
	jobs *prometheus.CounterVec
	// running is the jobs this runner runs now.
	running prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_job_chunks_total",
			Help: "Chunk state changes in jobs, by engine and state: queued, sent (each attempt), done, ignored, dropped (an engine behind a live source), failed (after its retries).",
		}, []string{"engine", "state"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_jobs_total",
			Help: "Jobs this runner ended, by status: complete, failed, cancelled.",
		}, []string{"status"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_jobs_running",
			Help: "Jobs this runner is running.",
		}),
	}
	for _, s := range []metastore.JobStatus{metastore.JobComplete, metastore.JobFailed, metastore.JobCancelled} {
		m.jobs.WithLabelValues(string(s))
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.chunks, err = prom.Register(reg, m.chunks); err != nil {
		return nil, err
	}
	if m.jobs, err = prom.Register(reg, m.jobs); err != nil {
		return nil, err
	}
	if m.running, err = prom.Register(reg, m.running); err != nil {
		return nil, err
	}
	return m, nil
}
