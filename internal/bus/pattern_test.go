package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// partitionLog records OnAssigned/OnRevoked calls of one member.
type partitionLog struct {
	mu       sync.Mutex
	assigned map[string]bool
	revoked  []string
}

func (l *partitionLog) onAssigned(topic string, _ []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.assigned == nil {
		l.assigned = map[string]bool{}
	}
	l.assigned[topic] = true
}

func (l *partitionLog) onRevoked(topic string, _ []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.assigned, topic)
	l.revoked = append(l.revoked, topic)
}

func (l *partitionLog) has(topic string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.assigned[topic]
}

func (l *partitionLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.assigned)
}

func TestTopicPatternReadsMatchingTopicsIncludingNewOnesAndNothingElse(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	produceValues(t, c, "stream_a", nil, "a-1")
	produceValues(t, c, "xstream_b", nil, "not me")
	produceValues(t, c, "stream_b.dlq", nil, "me too: the pattern allows dots")

	var got seen
	var parts partitionLog
	errc := make(chan error, 1)
	go func() {
		errc <- c.Consume(ctx, ConsumeOptions{
			TopicPattern: `stream_[a-z.]+`, Group: "pattern", FromBeginning: true,
			OnAssigned: parts.onAssigned, OnRevoked: parts.onRevoked,
			Handler: func(_ context.Context, r *Record) error { got.add(r); return nil },
		})
	}()
	waitFor(t, "records of the existing matching topics", func() bool { return got.len() >= 2 })
	// A topic created after Consume started is found too.
	produceValues(t, c, "stream_c", nil, "c-1")
	waitFor(t, "the record of a topic created later", func() bool { return got.len() >= 3 })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	for _, r := range got.snapshot() {
		if r.Topic == "xstream_b" {
			t.Fatalf("pattern matched %s: it must match the whole name", r.Topic)
		}
	}
	if got.len() != 3 {
		t.Fatalf("handled %v, want the 3 records of stream_a, stream_b.dlq, stream_c", values(got.snapshot()))
	}
	if parts.count() != 0 || len(parts.revoked) < 3 {
		t.Fatalf("after Consume returned: still assigned %v, revoked %v; every assigned topic must be revoked", parts.assigned, parts.revoked)
	}
}

func TestTopicPatternGroupGivesEachTopicToOneMember(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)
	topics := []string{"stream_1", "stream_2", "stream_3", "stream_4"}
	for _, tp := range topics {
		produceValues(t, c, tp, nil, tp+"-first")
	}
	type run struct {
		parts  partitionLog
		got    seen
		cancel context.CancelFunc
		errc   chan error
	}
	start := func() *run {
		mctx, cancel := context.WithCancel(ctx)
		r := &run{cancel: cancel, errc: make(chan error, 1)}
		go func() {
			r.errc <- c.Consume(mctx, ConsumeOptions{
				TopicPattern: `stream_[0-9]+`, Group: "packagers", FromBeginning: true,
				OnAssigned: r.parts.onAssigned, OnRevoked: r.parts.onRevoked,
				Handler: func(_ context.Context, rec *Record) error { r.got.add(rec); return nil },
			})
		}()
		return r
	}
	a := start()
	waitFor(t, "one member to get every topic", func() bool { return a.parts.count() == len(topics) })
	bm := start()
	waitFor(t, "the topics to be split between two members", func() bool {
		return a.parts.count() > 0 && bm.parts.count() > 0 && a.parts.count()+bm.parts.count() == len(topics)
	})
	for _, tp := range topics {
		if a.parts.has(tp) == bm.parts.has(tp) {
			t.Fatalf("topic %s: member a has it %v, member b has it %v; want exactly one", tp, a.parts.has(tp), bm.parts.has(tp))
		}
	}
	// The member that stays takes everything back when the other leaves,
	// and nothing handled is handled again.
	bm.cancel()
	if err := <-bm.errc; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the remaining member to get every topic", func() bool { return a.parts.count() == len(topics) })
	for _, tp := range topics {
		produceValues(t, c, tp, nil, tp+"-second")
	}
	waitFor(t, "every record", func() bool { return a.got.len()+bm.got.len() == 2*len(topics) })
	a.cancel()
	if err := <-a.errc; err != nil {
		t.Fatal(err)
	}
	if n := a.got.len() + bm.got.len(); n != 2*len(topics) {
		t.Fatalf("handled %d records, want %d: a rebalance must neither lose nor repeat", n, 2*len(topics))
	}
}

// TestTopicPatternGroupMissesNoTopicCreatedDuringItsFirstJoin: topics
// that appear while a pattern member is still joining its group (before
// anything is assigned to it), and records produced to them meanwhile, are
// all read, each once. A live packager or ladder transcoder starting while
// publishers start is this case.
func TestTopicPatternGroupMissesNoTopicCreatedDuringItsFirstJoin(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var got seen
	var parts partitionLog
	errc := make(chan error, 1)
	go func() {
		errc <- c.Consume(ctx, ConsumeOptions{
			TopicPattern: `stream_join_[0-9]+`, Group: "joiners", FromBeginning: true,
			OnAssigned: parts.onAssigned, OnRevoked: parts.onRevoked,
			Handler: func(_ context.Context, r *Record) error { got.add(r); return nil },
		})
	}()
	// New topics every 25 ms from the moment Consume starts, through the
	// first join and past it: some before the member's first metadata,
	// some between it and the assignment, some after.
	const topics = 40
	want := map[string]bool{}
	for i := range topics {
		tp := fmt.Sprintf("stream_join_%d", i)
		for _, v := range []string{"first", "second"} {
			produceValues(t, c, tp, nil, tp+"-"+v)
			want[tp+"-"+v] = true
		}
		time.Sleep(25 * time.Millisecond)
	}
	waitFor(t, "every record of every topic", func() bool { return got.len() >= len(want) })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	counts := map[string]int{}
	for _, v := range values(got.snapshot()) {
		counts[v]++
	}
	for v := range want {
		if counts[v] != 1 {
			t.Errorf("record %s handled %d times, want once", v, counts[v])
		}
	}
	if len(counts) != len(want) {
		t.Errorf("handled %d distinct records, want %d", len(counts), len(want))
	}
}
