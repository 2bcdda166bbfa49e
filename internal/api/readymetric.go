package api

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// dependencyUpDesc is weir_dependency_up{dependency}: 1 when the readiness
// check of a dependency (bus, metadata, objects) passes, 0 when it fails.
var dependencyUpDesc = prometheus.NewDesc("weir_dependency_up",
	"Whether each dependency's readiness check (bus, metadata, objects; as GET /ready runs them) passes at scrape time: 1 or 0.",
	[]string{"dependency"}, nil)

// readinessCollector runs the readiness checks when Prometheus scrapes, so
// alerts see the same answer a load balancer gets from /ready, without
// anyone having to poll it.
type readinessCollector struct{ s *Server }

func (c readinessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dependencyUpDesc }

func (c readinessCollector) Collect(ch chan<- prometheus.Metric) {
	for name, res := range c.s.checkReady(context.Background()).Checks {
		up := 0.0
		if res.OK {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(dependencyUpDesc, prometheus.GaugeValue, up, name)
	}
}
