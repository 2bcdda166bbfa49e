package bus

import (
	"context"
	"slices"
	"testing"
	"time"
)

// deferAll runs a group consumer over topic that defers every record
// whose value is in slow and handles the rest at once; it returns the acks
// of the deferred records as they come.
func deferAll(ctx context.Context, c *Client, topic, group string, slow []string, maxDeferred int, got *seen) (acks chan func(), errc chan error) {
	acks, errc = make(chan func(), 64), make(chan error, 1)
	go func() {
		errc <- c.Consume(ctx, ConsumeOptions{
			Topics: []string{topic}, Group: group, FromBeginning: true, MaxDeferred: maxDeferred,
			Handler: func(_ context.Context, r *Record) error {
				got.add(r)
				if slices.Contains(slow, string(r.Value)) {
					acks <- r.Defer()
				}
				return nil
			},
		})
	}()
	return acks, errc
}

func TestDeferredRecordHoldsItsCommitUntilAcknowledged(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "jobs", nil, numberedValues("j", 5)...)

	// First run: j-1 is deferred and never acknowledged; the others are
	// handled, and Consume goes past j-1 without waiting for it.
	ctx, cancel := context.WithCancel(testCtx(t))
	var first seen
	acks, errc := deferAll(ctx, c, "jobs", "workers", []string{"j-1"}, 0, &first)
	waitFor(t, "every record to be handled", func() bool { return first.len() == 5 })
	<-acks
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Everything from the unacknowledged record on is delivered again.
	second := consumeUntilEOF(t, c, "jobs", "workers")
	if !slices.Equal(values(second), []string{"j-1", "j-2", "j-3", "j-4"}) {
		t.Fatalf("redelivered %v, want j-1..j-4 (the deferred record and what follows it)", values(second))
	}
}

func TestAcknowledgedDeferredRecordIsCommittedWithoutNewRecords(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "jobs", nil, numberedValues("j", 3)...)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var got seen
	acks, errc := deferAll(ctx, c, "jobs", "workers", []string{"j-0", "j-2"}, 0, &got)
	ack0, ack2 := <-acks, <-acks
	// Acknowledged out of order: nothing is committed past j-0 until j-0
	// is done, then everything.
	ack2()
	ack2() // twice is harmless
	ack0()
	waitFor(t, "the commit of everything", func() bool {
		lag, err := committedOffset(ctx, c, "workers", "jobs")
		return err == nil && lag == 3
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if again := consumeUntilEOF(t, c, "jobs", "workers"); len(again) != 0 {
		t.Fatalf("redelivered %v after every record was acknowledged", values(again))
	}
}

func TestMaxDeferredStopsFetchingUntilAnAcknowledgement(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "jobs", nil, numberedValues("j", 6)...)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var got seen
	acks, errc := deferAll(ctx, c, "jobs", "workers", numberedValues("j", 6), 2, &got)
	a0, a1 := <-acks, <-acks
	// Two are deferred: no third record may be handled. Give the consumer
	// time to misbehave (it polls every 500 ms at most).
	time.Sleep(1500 * time.Millisecond)
	if n := got.len(); n != 2 {
		t.Fatalf("handled %d records while 2 were deferred with MaxDeferred 2", n)
	}
	a0()
	<-acks
	if n := got.len(); n != 3 {
		t.Fatalf("handled %d records after one acknowledgement, want 3", n)
	}
	a1()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestDeferredWorkDoesNotHoldUpARebalance(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)
	if err := c.CreateTopic(ctx, "jobs", 2); err != nil {
		t.Fatal(err)
	}
	var recs []*Record
	for i := range 8 {
		recs = append(recs, &Record{Topic: "jobs", Key: []byte{byte(i)}, Value: []byte{'v', byte('0' + i)}})
	}
	if err := c.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	var slow []string
	for _, r := range recs {
		slow = append(slow, string(r.Value))
	}
	actx, acancel := context.WithCancel(ctx)
	var aGot seen
	aAcks, aErrc := deferAll(actx, c, "jobs", "workers", slow, 0, &aGot)
	waitFor(t, "member a to defer everything", func() bool { return aGot.len() == 8 })

	// A second member joins while every record's work is still running on
	// the first: the group rebalances at once and b gets the records of
	// the partition it takes, uncommitted as they are.
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	var bGot seen
	berrc := make(chan error, 1)
	go func() {
		berrc <- c.Consume(bctx, ConsumeOptions{Topics: []string{"jobs"}, Group: "workers", FromBeginning: true,
			Handler: func(_ context.Context, r *Record) error { bGot.add(r); return nil }})
	}()
	waitFor(t, "member b to get a partition and its records", func() bool { return bGot.len() > 0 })
	// a's late acknowledgements of the moved partition change nothing.
	for len(aAcks) > 0 {
		(<-aAcks)()
	}
	acancel()
	if err := <-aErrc; err != nil {
		t.Fatal(err)
	}
	bcancel()
	if err := <-berrc; err != nil {
		t.Fatal(err)
	}
}

// committedOffset reads the group's committed offset of partition 0.
func committedOffset(ctx context.Context, c *Client, group, topic string) (int64, error) {
	offs, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok {
		return -1, nil
	}
	return o.At, o.Err
}
