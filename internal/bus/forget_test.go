package bus

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// seriesOf lists the gathered series whose labels mention topic.
func seriesOf(t *testing.T, reg *prometheus.Registry, topic string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == topic {
					out = append(out, mf.GetName())
				}
			}
		}
	}
	return out
}

// A stream's topic leaves no series behind once its component is done with
// it, and DeleteTopic removes the topic itself.
func TestForgetAndDeleteTopicLeaveNoSeries(t *testing.T) {
	b := startTestBroker(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, b.Addr(), WithMetrics(m))
	ctx := testCtx(t)
	produceValues(t, c, "stream_gone", nil, "a", "b")
	if got := consumeUntilEOF(t, c, "stream_gone", "packagers"); len(got) != 2 {
		t.Fatalf("consumed %d", len(got))
	}
	if s := seriesOf(t, reg, "stream_gone"); len(s) < 4 {
		t.Fatalf("series of the topic before: %v, want produced, consumed and lag", s)
	}
	c.ForgetTopic("stream_gone")
	if s := seriesOf(t, reg, "stream_gone"); len(s) != 0 {
		t.Fatalf("series left after ForgetTopic: %v", s)
	}

	if err := c.DeleteTopic(ctx, "stream_gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAll(ctx, "stream_gone", 0); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("reading a deleted topic: %v", err)
	}
	// Deleting again, or a topic that never existed, is no error.
	if err := c.DeleteTopic(context.Background(), "stream_gone"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if err := c.DeleteTopic(ctx, "bad topic"); err == nil {
		t.Fatal("deleting an illegal topic name succeeded")
	}
}
