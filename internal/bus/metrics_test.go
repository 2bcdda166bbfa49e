package bus

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue returns the value of the series name{labels}, and whether it
// exists.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return seriesValue(m), true
		}
	}
	return 0, false
}

func seriesValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestMetricsCountProducedAndConsumedRecordsAndBytes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr(), WithMetrics(m))
	ctx := testCtx(t)

	// 3 records: key 1 byte, values 10 bytes, one header of 2+3 bytes.
	var recs []*Record
	for i := 0; i < 3; i++ {
		recs = append(recs, &Record{Topic: "counted", Key: []byte("k"), Value: []byte("0123456789"),
			Headers: []Header{{Key: "hk", Value: []byte("hvv")}}})
	}
	if err := c.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	topic := map[string]string{"topic": "counted"}
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"weir_bus_produced_messages_total", 3},
		{"weir_bus_produced_bytes_total", 3 * 16},
	} {
		if got, _ := metricValue(t, reg, tc.name, topic); got != tc.want {
			t.Errorf("%s{topic=counted} = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got, ok := metricValue(t, reg, "weir_bus_consumed_messages_total", topic); ok && got != 0 {
		t.Errorf("consumed counter is %v before anything was consumed", got)
	}

	// While the group's handler sits on the second record, lag shows the
	// record it is on and the one after it.
	onSecond := make(chan struct{})
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		n := 0
		errc <- c.Consume(ctx, ConsumeOptions{Topics: []string{"counted"}, Group: "meter", FromBeginning: true, UntilEOF: true,
			Handler: func(context.Context, *Record) error {
				n++
				if n == 2 {
					close(onSecond)
					<-release
				}
				return nil
			}})
	}()
	<-onSecond
	lag, ok := metricValue(t, reg, "weir_bus_consumer_lag", map[string]string{"group": "meter", "topic": "counted"})
	if !ok || lag != 2 {
		t.Errorf("consumer lag while handling the 2nd of 3 records = %v (present %v), want 2", lag, ok)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"weir_bus_consumed_messages_total", 3},
		{"weir_bus_consumed_bytes_total", 3 * 16},
	} {
		if got, _ := metricValue(t, reg, tc.name, topic); got != tc.want {
			t.Errorf("%s{topic=counted} = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, ok := metricValue(t, reg, "weir_bus_consumer_lag", map[string]string{"group": "meter"}); ok {
		t.Errorf("lag series still exported after the consumer stopped")
	}
}

func TestNewMetricsTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("second NewMetrics on the same registry succeeded")
	}
}

func TestLagSumsPartitionsAndForgetsDroppedOnes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"group": "g", "topic": "t"}
	m.setLag("g", topicPartition{"t", 0}, 5)
	m.setLag("g", topicPartition{"t", 1}, 7)
	m.setLag("g", topicPartition{"t", 0}, 2)
	if got, _ := metricValue(t, reg, "weir_bus_consumer_lag", labels); got != 9 {
		t.Errorf("lag = %v, want 2+7", got)
	}
	m.dropLag("g", topicPartition{"t", 1})
	if got, _ := metricValue(t, reg, "weir_bus_consumer_lag", labels); got != 2 {
		t.Errorf("lag after dropping partition 1 = %v, want 2", got)
	}
	m.dropLag("g", topicPartition{"t", 1}) // already gone: no change
	m.dropLag("g", topicPartition{"t", 0})
	if _, ok := metricValue(t, reg, "weir_bus_consumer_lag", labels); ok {
		t.Error("lag series exported with no partitions left")
	}
	var nilMetrics *Metrics
	nilMetrics.setLag("g", topicPartition{"t", 0}, 1) // must not panic
	nilMetrics.dropLag("g", topicPartition{"t", 0})
}
