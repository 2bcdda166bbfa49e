package prom

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesAnEqualCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "weir_test_total", Help: "test"}
	first, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatalf("second registration of an equal collector: %v", err)
	}
	second.Inc()
	first.Inc()
	mfs, _ := reg.Gather()
	if got := mfs[0].GetMetric()[0].GetCounter().GetValue(); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
}

func TestRegisterRejectsAConflictingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_x", Help: "a"})); err != nil {
		t.Fatal(err)
	}
	if _, err := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "weir_x", Help: "different help"})); err == nil {
		t.Fatal("want an error for a different collector under the same name")
	}
}
