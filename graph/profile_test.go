package graph

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestProfileCountsCallsAndQueues(t *testing.T) {
	g := build(t, passYAML, WithName("ingest"))
	start(t, g, nil)
	for i := 0; i < 20; i++ {
		add(t, g, "in", i, Timestamp(i))
	}
	finish(t, g)
	p := g.Profile()
	if p.Graph != "ingest" || len(p.Nodes) != 1 {
		t.Fatalf("profile %+v", p)
	}
	n := p.Nodes[0]
	if n.Name != "PassThrough" || n.ProcessCalls != 20 || n.InputLatencyCount != 20 {
		t.Errorf("node profile %+v", n)
	}
	if n.ProcessMean <= 0 || n.ProcessP99 < n.ProcessP50 || n.ProcessTotal < n.ProcessP99 {
		t.Errorf("durations inconsistent: %+v", n)
	}
	q := n.Inputs[0]
	if q.Stream != "in" || q.Port != ":0" || q.Received != 20 || q.Depth != 0 || q.MaxQueueSize != DefaultMaxQueueSize || q.MaxDepth < 1 {
		t.Errorf("queue profile %+v", q)
	}
}

func TestCollectorExportsPrometheusMetrics(t *testing.T) {
	g := build(t, passYAML, WithName("ingest"))
	start(t, g, nil)
	for i := 0; i < 3; i++ {
		add(t, g, "in", i, Timestamp(i))
	}
	finish(t, g)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(g.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather() // the pedantic registry checks descriptions and labels
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				got[key] = fmt.Sprint(m.GetCounter().GetValue())
			case m.GetGauge() != nil:
				got[key] = fmt.Sprint(m.GetGauge().GetValue())
			case m.GetSummary() != nil:
				got[key] = fmt.Sprint("count=", m.GetSummary().GetSampleCount())
			}
		}
	}
	want := map[string]string{
		`weir_graph_packets_received_total{graph=ingest,node=PassThrough,stream=in}`:             "3",
		`weir_graph_packets_dropped_total{graph=ingest,node=PassThrough,stream=in}`:              "0",
		`weir_graph_queue_depth{graph=ingest,node=PassThrough,stream=in}`:                        "0",
		`weir_graph_queue_max_depth{graph=ingest,node=PassThrough,stream=in}`:                    got[`weir_graph_queue_max_depth{graph=ingest,node=PassThrough,stream=in}`],
		`weir_graph_process_seconds{calculator=PassThrough,graph=ingest,node=PassThrough}`:       "count=3",
		`weir_graph_input_latency_seconds{calculator=PassThrough,graph=ingest,node=PassThrough}`: "count=3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("metrics\n%v\nwant\n%v", got, want)
	}
	if d := got[`weir_graph_queue_max_depth{graph=ingest,node=PassThrough,stream=in}`]; d == "0" || d == "" {
		t.Errorf("max depth %q, want at least 1", d)
	}
}
