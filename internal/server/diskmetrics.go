package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// dataDiskCollector reports the filesystem that holds --data, so that an
// alert can fire before the embedded broker's log, the SQLite file or the
// objects fill it:
//
//	weir_data_filesystem_size_bytes   the filesystem's size
//	weir_data_filesystem_avail_bytes  what is left to weir (not to root)
//
// Both are read at scrape time. On a system where weir cannot ask
// (diskUsage reports ok false) neither is exported.
type dataDiskCollector struct{ dir string }

var (
	dataDiskSizeDesc = prometheus.NewDesc("weir_data_filesystem_size_bytes",
		"Size of the filesystem holding the data directory (--data).", nil, nil)
	dataDiskAvailDesc = prometheus.NewDesc("weir_data_filesystem_avail_bytes",
		"Bytes available to weir on the filesystem holding the data directory (--data).", nil, nil)
)

func (c dataDiskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dataDiskSizeDesc
	ch <- dataDiskAvailDesc
}

func (c dataDiskCollector) Collect(ch chan<- prometheus.Metric) {
	size, avail, ok := diskUsage(c.dir)
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(dataDiskSizeDesc, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(dataDiskAvailDesc, prometheus.GaugeValue, float64(avail))
}
