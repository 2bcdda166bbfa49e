package vod

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/metastore"
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
	stageSeconds  *prometheus.HistogramVec
}

// vodStages are the stages weir_vod_stage_seconds{stage} measures: from
// the status that starts each to the one that ends it.
var vodStages = []struct {
	name     string
	from, to metastore.Status
}{
	{"queued", metastore.StatusUploaded, metastore.StatusProcessing},
	{"processing", metastore.StatusProcessing, metastore.StatusTranscoding},
	{"transcoding", metastore.StatusTranscoding, metastore.StatusReady},
}

// Job outcomes counted by weir_vod_jobs_total.
const (
	outcomeReady     = "ready"
	outcomeFailed    = "failed"
	outcomeCancelled = "cancelled"
	outcomeRetry     = "retry"    // handler returned an error: the job is redelivered
	outcomeSkipped   = "skipped"  // already finished, unknown stream, or malformed
	outcomeStopped   = "stopped"  // the worker stopped mid-job; the job is redelivered
	outcomeNoSpace   = "no_space" // a disk was full: the job waits and is tried again
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600}
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_vod_jobs_total",
			Help: "VOD jobs handled, by outcome (ready, failed, cancelled, retry, skipped, stopped, no_space).",
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
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_vod_stage_seconds",
			Help:    "Time a title that became ready spent in each stage: queued (uploaded until a worker took it), processing (fetch and probe), transcoding (until ready), from the stage times of its row.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600},
		}, []string{"stage"}),
	}
	// Every outcome and stage is exported from the start, at zero, so that
	// increase() sees the first failure (a series that appears with its
	// first increment shows none).
	for _, o := range []string{outcomeReady, outcomeFailed, outcomeCancelled, outcomeRetry, outcomeSkipped, outcomeStopped} {
		m.jobs.WithLabelValues(o)
	}
	for _, st := range vodStages {
		m.stageSeconds.WithLabelValues(st.name)
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
	if m.stageSeconds, err = prom.Register(reg, m.stageSeconds); err != nil {
		return nil, err
	}
	return m, nil
}

// observeStages records the stage durations of a title that became ready,
// from the times its row recorded for each status. A stage whose ends were
// not both recorded (a retried job skips processing) is left out.
func (m *metrics) observeStages(at map[metastore.Status]time.Time) {
	for _, st := range vodStages {
		from, ok1 := at[st.from]
		to, ok2 := at[st.to]
		if ok1 && ok2 && !to.Before(from) {
			m.stageSeconds.WithLabelValues(st.name).Observe(to.Sub(from).Seconds())
		}
	}
}
