package vod

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weir-media/weir/internal/metastore"
)

func TestStageSecondsComeFromTheRowsStageTimes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Every stage is exported from the start, so dashboards have series
	// before the first title is ready.
	if n := len(stageSeries(t, reg)); n != 3 {
		t.Fatalf("%d stage series before any title, want 3", n)
	}
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	m.observeStages(map[metastore.Status]time.Time{
		metastore.StatusUploaded:    t0,
		metastore.StatusProcessing:  t0.Add(500 * time.Millisecond),
		metastore.StatusTranscoding: t0.Add(2 * time.Second),
		metastore.StatusReady:       t0.Add(32 * time.Second),
	})
	// A retried title with no processing time counts only what it has.
	m.observeStages(map[metastore.Status]time.Time{
		metastore.StatusUploaded:    t0,
		metastore.StatusTranscoding: t0.Add(time.Second),
		metastore.StatusReady:       t0.Add(11 * time.Second),
	})
	want := map[string]struct {
		count uint64
		sum   float64
	}{"queued": {1, 0.5}, "processing": {1, 1.5}, "transcoding": {2, 40}}
	for stage, h := range stageSeries(t, reg) {
		if w := want[stage]; h.GetSampleCount() != w.count || h.GetSampleSum() != w.sum {
			t.Errorf("stage %s: count %d sum %v, want %d and %v", stage, h.GetSampleCount(), h.GetSampleSum(), w.count, w.sum)
		}
	}
}

// stageSeries gathers weir_vod_stage_seconds by stage.
func stageSeries(t *testing.T, reg *prometheus.Registry) map[string]*dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Histogram{}
	for _, mf := range mfs {
		if mf.GetName() == "weir_vod_stage_seconds" {
			for _, metric := range mf.GetMetric() {
				out[metric.GetLabel()[0].GetValue()] = metric.GetHistogram()
			}
		}
	}
	return out
}
