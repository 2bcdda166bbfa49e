//go:build linux

package server

import (
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The data directory's filesystem is reported as df(1) sees it.
func TestDataFilesystemMetricsAgreeWithDf(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	reg.MustRegister(dataDiskCollector{dir: dir})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	out, err := exec.Command("df", "--block-size=1", "--output=size,avail", dir).Output()
	if err != nil {
		t.Fatalf("df: %v", err)
	}
	fields := strings.Fields(strings.Split(strings.TrimSpace(string(out)), "\n")[1])
	size, _ := strconv.ParseFloat(fields[0], 64)
	avail, _ := strconv.ParseFloat(fields[1], 64)
	if got["weir_data_filesystem_size_bytes"] != size {
		t.Errorf("size %v, df says %v", got["weir_data_filesystem_size_bytes"], size)
	}
	// Others write to the disk meanwhile: a percent of its size is slack
	// enough.
	if a := got["weir_data_filesystem_avail_bytes"]; a <= 0 || a > size || math.Abs(a-avail) > size/100 {
		t.Errorf("avail %v, df says %v of %v", a, avail, size)
	}
}
