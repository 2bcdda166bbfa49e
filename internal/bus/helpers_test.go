package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// testLogger discards logs unless WEIR_TEST_LOG is set: kgo goroutines may
// still log after a test returns, which t.Log does not allow.
func testLogger() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: levelTrace}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startTestBroker starts an in-memory broker on a free loopback port and
// closes it when the test ends.
func startTestBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	opts = append([]BrokerOption{WithListenAddr("127.0.0.1:0"), WithLogger(testLogger())}, opts...)
	b, err := StartBroker(opts...)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Broker.Close: %v", err)
		}
	})
	return b
}

// newTestClient returns a client for addr with group timings short enough
// that rebalances take a fraction of a second, closed when the test ends.
func newTestClient(t testing.TB, addr string, opts ...ClientOption) *Client {
	t.Helper()
	opts = append([]ClientOption{
		WithLogger(testLogger()),
		WithKgoOptions(kgo.HeartbeatInterval(100 * time.Millisecond)),
	}, opts...)
	c, err := NewClient([]string{addr}, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testCtx returns a context that ends with the test or after a generous
// deadline, whichever is first, so a hung test fails instead of timing
// out the whole package.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produceValues produces one record per value, keyed by key (nil for
// none), and returns them with their offsets filled in.
func produceValues(t testing.TB, c *Client, topic string, key []byte, values ...string) []*Record {
	t.Helper()
	recs := make([]*Record, len(values))
	for i, v := range values {
		recs[i] = &Record{Topic: topic, Key: key, Value: []byte(v)}
	}
	if err := c.Produce(testCtx(t), recs...); err != nil {
		t.Fatalf("Produce to %s: %v", topic, err)
	}
	return recs
}

func numberedValues(prefix string, n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return vs
}

// seen collects handled records safely across goroutines.
type seen struct {
	mu   sync.Mutex
	recs []*Record
}

func (s *seen) add(r *Record) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *seen) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func (s *seen) snapshot() []*Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Record(nil), s.recs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func values(recs []*Record) []string {
	vs := make([]string, len(recs))
	for i, r := range recs {
		vs[i] = string(r.Value)
	}
	return vs
}

func offsets(recs []*Record) []int64 {
	os := make([]int64, len(recs))
	for i, r := range recs {
		os[i] = r.Offset
	}
	return os
}
