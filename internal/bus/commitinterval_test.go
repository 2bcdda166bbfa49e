package bus

import (
	"context"
	"testing"
	"time"
)

// With a CommitInterval, records handled after the first commit wait for
// the interval (here longer than the test) and are committed when Consume
// stops; with a short one they are committed without new records coming.
func TestCommitIntervalDefersCommitsUntilDueOrStop(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	consume := func(ctx context.Context, interval time.Duration, got *seen) chan error {
		errc := make(chan error, 1)
		go func() {
			errc <- c.Consume(ctx, ConsumeOptions{
				Topics: []string{"jobs"}, Group: "workers", FromBeginning: true, CommitInterval: interval,
				Handler: func(_ context.Context, r *Record) error { got.add(r); return nil },
			})
		}()
		return errc
	}

	produceValues(t, c, "jobs", nil, "j-0")
	ctx, cancel := context.WithCancel(testCtx(t))
	var got seen
	errc := consume(ctx, time.Hour, &got)
	// The first poll commits (nothing was committed yet).
	waitFor(t, "the first commit", func() bool {
		at, err := committedOffset(ctx, c, "workers", "jobs")
		return err == nil && at == 1
	})
	produceValues(t, c, "jobs", nil, "j-1", "j-2")
	waitFor(t, "every record to be handled", func() bool { return got.len() == 3 })
	if at, err := committedOffset(ctx, c, "workers", "jobs"); err != nil || at != 1 {
		t.Fatalf("committed offset %d (%v) an hour before the next commit is due, want 1", at, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if at, err := committedOffset(testCtx(t), c, "workers", "jobs"); err != nil || at != 3 {
		t.Fatalf("committed offset %d (%v) after Consume stopped, want 3", at, err)
	}

	// A short interval commits handled records with no new record coming.
	produceValues(t, c, "jobs", nil, "j-3")
	ctx, cancel = context.WithCancel(testCtx(t))
	defer cancel()
	var more seen
	errc = consume(ctx, 50*time.Millisecond, &more)
	waitFor(t, "j-3 to be handled", func() bool { return more.len() == 1 })
	produceValues(t, c, "jobs", nil, "j-4")
	waitFor(t, "the commit of j-4 without new records", func() bool {
		at, err := committedOffset(ctx, c, "workers", "jobs")
		return err == nil && at == 5
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
