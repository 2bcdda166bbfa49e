package bustest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/protocol"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func rec(topic, key, value string) *bus.Record {
	r := &bus.Record{Topic: topic, Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

// collect consumes opts.Topics until n records arrived, then stops.
func collect(t *testing.T, b bus.Bus, opts bus.ConsumeOptions, n int) []*bus.Record {
	t.Helper()
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var got []*bus.Record
	opts.Handler = func(_ context.Context, r *bus.Record) error {
		got = append(got, r)
		if len(got) == n {
			cancel()
		}
		return nil
	}
	if err := b.Consume(c, opts); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if len(got) != n {
		t.Fatalf("got %d records, want %d", len(got), n)
	}
	return got
}

func TestRecordsOfAKeyStayInOrderOnOnePartition(t *testing.T) {
	b := bustest.New()
	if err := b.CreateTopic(ctx(t), "jobs", 4); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := b.Produce(ctx(t), rec("jobs", fmt.Sprintf("stream-%d", i%5), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	partOf := map[string]int32{}
	last := map[string]int{}
	for _, r := range collect(t, b, bus.ConsumeOptions{Topics: []string{"jobs"}, FromBeginning: true}, 40) {
		if p, ok := partOf[string(r.Key)]; ok && p != r.Partition {
			t.Errorf("key %s on partitions %d and %d", r.Key, p, r.Partition)
		}
		partOf[string(r.Key)] = r.Partition
		var v int
		fmt.Sscan(string(r.Value), &v)
		if l, ok := last[string(r.Key)]; ok && v <= l {
			t.Errorf("key %s: %d after %d", r.Key, v, l)
		}
		last[string(r.Key)] = v
	}
	if b.Partitions("jobs") != 4 {
		t.Errorf("jobs has %d partitions", b.Partitions("jobs"))
	}
}

// TestKeysLandWhereTheClientPutsThem compares the fake's placement with the
// real client's on the embedded broker.
func TestKeysLandWhereTheClientPutsThem(t *testing.T) {
	quiet := bus.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	client, err := bus.NewClient([]string{broker.Addr()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fake := bustest.New()
	for _, b := range []bus.Bus{client, fake} {
		if err := b.CreateTopic(ctx(t), "placed", 8); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		key := fmt.Sprintf("live-%04x", i*7919)
		real, faked := rec("placed", key, "v"), rec("placed", key, "v")
		if err := client.Produce(ctx(t), real); err != nil {
			t.Fatal(err)
		}
		if err := fake.Produce(ctx(t), faked); err != nil {
			t.Fatal(err)
		}
		if real.Partition != faked.Partition {
			t.Errorf("key %s: client partition %d, fake %d", key, real.Partition, faked.Partition)
		}
	}
}

func TestAGroupSharesPartitionsAndResumesAfterCommits(t *testing.T) {
	b := bustest.New()
	if err := b.CreateTopic(ctx(t), "work", 4); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		b.Produce(ctx(t), rec("work", fmt.Sprint(i), "x"))
	}
	// Two members at once: every record goes to exactly one of them.
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Consume(c, bus.ConsumeOptions{Topics: []string{"work"}, Group: "g", FromBeginning: true,
				Handler: func(_ context.Context, r *bus.Record) error {
					mu.Lock()
					defer mu.Unlock()
					seen[string(r.Key)]++
					if len(seen) == 100 {
						cancel()
					}
					return nil
				}})
		}()
	}
	wg.Wait()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %s handled %d times", k, n)
		}
	}
	// A later member of the group starts after what was committed.
	b.Produce(ctx(t), rec("work", "late", "y"))
	got := collect(t, b, bus.ConsumeOptions{Topics: []string{"work"}, Group: "g", FromBeginning: true}, 1)
	if string(got[0].Key) != "late" {
		t.Errorf("resumed at %s, want the one new record", got[0].Key)
	}
}

func TestAFailedRecordIsRedeliveredToTheGroup(t *testing.T) {
	b := bustest.New()
	b.Produce(ctx(t), rec("t", "a", "1"), rec("t", "a", "2"), rec("t", "a", "3"))
	boom := errors.New("boom")
	err := b.Consume(ctx(t), bus.ConsumeOptions{Topics: []string{"t"}, Group: "g", FromBeginning: true,
		Handler: func(_ context.Context, r *bus.Record) error {
			if string(r.Value) == "2" {
				return boom
			}
			return nil
		}})
	var re *bus.RecordError
	if !errors.As(err, &re) || !errors.Is(err, boom) || re.Offset != 1 {
		t.Fatalf("Consume = %v, want a RecordError at offset 1 wrapping boom", err)
	}
	if o, _ := b.Committed("g", "t", 0); o != 1 {
		t.Errorf("committed %d, want 1", o)
	}
	got := collect(t, b, bus.ConsumeOptions{Topics: []string{"t"}, Group: "g"}, 2)
	if string(got[0].Value) != "2" || string(got[1].Value) != "3" {
		t.Errorf("redelivered %q, %q; want 2, 3", got[0].Value, got[1].Value)
	}
	// A panic, a bus.Permanent error and an oversized record are poison,
	// as on Kafka: dead-lettered, and the partition moves on.
	b.Produce(ctx(t), rec("t", "a", "4"), rec("t", "a", "5"), rec("t", "a", strings.Repeat("6", 100)), rec("t", "a", "7"))
	var handled []string
	err = b.Consume(ctx(t), bus.ConsumeOptions{Topics: []string{"t"}, Group: "g", UntilEOF: true, MaxRecordBytes: 50,
		Handler: func(_ context.Context, r *bus.Record) error {
			switch string(r.Value) {
			case "4":
				panic("bad record")
			case "5":
				return bus.Permanent(errors.New("malformed"))
			}
			handled = append(handled, string(r.Value))
			return nil
		}})
	if err != nil || len(handled) != 1 || handled[0] != "7" {
		t.Fatalf("Consume over poison records = %v, handled %q; want nil and only 7", err, handled)
	}
	if dead := b.Records(protocol.DeadLetterTopic("t")); len(dead) != 3 {
		t.Errorf("%d dead letters, want 3", len(dead))
	}
}

func TestStartPositions(t *testing.T) {
	b := bustest.New()
	b.Produce(ctx(t), rec("old", "", "before"))
	// Without FromBeginning only records produced after Consume started
	// arrive; a topic created later is read from its beginning.
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var mu sync.Mutex
	var got []string
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(c, bus.ConsumeOptions{Topics: []string{"old", "new"}, Handler: func(_ context.Context, r *bus.Record) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(r.Value))
			return nil
		}})
	}()
	// Consume starts at some point: keep producing until a record arrives.
	for count() == 0 {
		b.Produce(ctx(t), rec("old", "", "after"))
		time.Sleep(5 * time.Millisecond)
	}
	b.Produce(ctx(t), rec("new", "", "new topic"))
	for !slices.Contains(snapshot(&mu, &got), "new topic") {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, "before") {
		t.Errorf("got %q, want only records produced after Consume started", got)
	}
}

func snapshot(mu *sync.Mutex, s *[]string) []string {
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(*s)
}

func TestUntilEOFAndIdleTimeout(t *testing.T) {
	b := bustest.New()
	b.Produce(ctx(t), rec("s", "", "1"), rec("s", "", "2"))
	n := 0
	err := b.Consume(ctx(t), bus.ConsumeOptions{Topics: []string{"s"}, FromBeginning: true, UntilEOF: true,
		Handler: func(context.Context, *bus.Record) error { n++; return nil }})
	if err != nil || n != 2 {
		t.Errorf("UntilEOF read %d records, %v; want 2", n, err)
	}
	if err := b.Consume(ctx(t), bus.ConsumeOptions{Topics: []string{"missing"}, UntilEOF: true,
		Handler: func(context.Context, *bus.Record) error { return nil }}); err == nil {
		t.Error("UntilEOF on a missing topic succeeded")
	}
	if err := b.Consume(ctx(t), bus.ConsumeOptions{Topics: []string{"s"}, IdleTimeout: 20 * time.Millisecond,
		Handler: func(context.Context, *bus.Record) error { return nil }}); err != nil {
		t.Errorf("idle Consume = %v", err)
	}
}

func TestCreateTopicAndFailures(t *testing.T) {
	b := bustest.New()
	if err := b.CreateTopic(ctx(t), "a", 3); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic(ctx(t), "a", 1); err != nil || b.Partitions("a") != 3 {
		t.Errorf("re-creating: %v, %d partitions; want nil and 3 kept", err, b.Partitions("a"))
	}
	for _, bad := range []struct {
		name string
		n    int32
	}{{"a b", 1}, {"ok", 0}, {"", 1}} {
		if err := b.CreateTopic(ctx(t), bad.name, bad.n); err == nil {
			t.Errorf("CreateTopic(%q, %d) succeeded", bad.name, bad.n)
		}
	}
	gone := errors.New("broker gone")
	b.FailProduce(gone)
	if err := b.Produce(ctx(t), rec("a", "k", "v")); !errors.Is(err, gone) {
		t.Errorf("Produce while failing = %v", err)
	}
	var asyncErr error
	b.ProduceAsync(rec("a", "k", "v"), func(_ *bus.Record, err error) { asyncErr = err })
	if !errors.Is(asyncErr, gone) || len(b.Records("a")) != 0 {
		t.Errorf("ProduceAsync while failing: %v, %d records stored", asyncErr, len(b.Records("a")))
	}
	b.FailProduce(nil)
	r := rec("a", "k", "v")
	b.ProduceAsync(r, func(_ *bus.Record, err error) { asyncErr = err })
	if asyncErr != nil || len(b.Records("a")) != 1 || r.Offset != 0 || r.Timestamp.IsZero() {
		t.Errorf("ProduceAsync: %v, record %+v", asyncErr, r)
	}
}

func TestCloseStopsConsumers(t *testing.T) {
	b := bustest.New()
	b.Produce(ctx(t), rec("t", "", "first"))
	done := make(chan error, 1)
	handled := make(chan struct{}, 1)
	go func() {
		done <- b.Consume(context.Background(), bus.ConsumeOptions{Topics: []string{"t"}, Group: "g", FromBeginning: true,
			Handler: func(context.Context, *bus.Record) error { handled <- struct{}{}; return nil }})
	}()
	<-handled
	b.Close()
	if err := <-done; err != nil {
		t.Errorf("Consume after Close = %v, want nil", err)
	}
	if err := b.Produce(ctx(t), rec("t", "", "x")); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Produce after Close = %v", err)
	}
	if err := b.Consume(ctx(t), bus.ConsumeOptions{Topics: []string{"t"}, Handler: func(context.Context, *bus.Record) error { return nil }}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Consume after Close = %v", err)
	}
}

func TestADeferredRecordHoldsItsPartitionsCommitUntilAcknowledged(t *testing.T) {
	b := bustest.New()
	b.Produce(ctx(t), rec("jobs", "a", "1"), rec("jobs", "a", "2"), rec("jobs", "a", "3"))
	c, cancel := context.WithCancel(ctx(t))
	acks := make(chan func(), 3)
	handled := make(chan string, 3)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(c, bus.ConsumeOptions{Topics: []string{"jobs"}, Group: "g", FromBeginning: true, MaxDeferred: 2,
			Handler: func(_ context.Context, r *bus.Record) error {
				acks <- r.Defer()
				handled <- string(r.Value)
				return nil
			}})
	}()
	first, second := <-acks, <-acks
	<-handled
	<-handled
	// MaxDeferred is 2: the third record waits for an acknowledgement.
	select {
	case v := <-handled:
		t.Fatalf("record %s handed out with 2 deferred records outstanding", v)
	case <-time.After(50 * time.Millisecond):
	}
	if o, _ := b.Committed("g", "jobs", 0); o != 0 {
		t.Errorf("committed %d with record 0 deferred, want 0", o)
	}
	second()
	if o, _ := b.Committed("g", "jobs", 0); o != 0 {
		t.Errorf("committed %d with record 0 still deferred, want 0", o)
	}
	<-handled // room for the third
	first()
	first() // a second call does nothing
	if o, _ := b.Committed("g", "jobs", 0); o != 2 {
		t.Errorf("committed %d once records 0 and 1 are acknowledged, want 2 (record 2 is deferred)", o)
	}
	third := <-acks
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	third() // after the member left: nothing
	if o, _ := b.Committed("g", "jobs", 0); o != 2 {
		t.Errorf("committed %d after an acknowledgement that came too late, want 2", o)
	}
	got := collect(t, b, bus.ConsumeOptions{Topics: []string{"jobs"}, Group: "g"}, 1)
	if string(got[0].Value) != "3" {
		t.Errorf("redelivered %s, want the unacknowledged 3", got[0].Value)
	}
}

func TestConsumeRefusesWhatTheFakeCannotDo(t *testing.T) {
	err := bustest.New().Consume(ctx(t), bus.ConsumeOptions{TopicPattern: "stream_.*", Handler: func(context.Context, *bus.Record) error { return nil }})
	if err == nil {
		t.Fatal("Consume with a TopicPattern succeeded")
	}
}
