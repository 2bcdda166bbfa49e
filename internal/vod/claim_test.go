package vod

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// Two workers (two processes) that both get a title's job: one transcodes,
// the other waits on the title's lease and, once the title is ready, is done
// with the job without touching it.
func TestTwoWorkersOnOneJobTranscodeItOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, job := e.upload(t, smallClip(t, "4"))

	slow := e.config(t)
	slow.FFmpeg = slowFFmpeg(t)
	slow.Holder, slow.LeaseTTL = "proc-a", 3*time.Second
	other := e.config(t)
	other.Holder, other.LeaseTTL = "proc-b", 3*time.Second

	aErr := make(chan error, 1)
	go func() { aErr <- e.worker(t, slow).Handle(context.Background(), job) }()
	waitFor(t, "worker a to be transcoding", func() bool { return len(e.rows(t, id, "240p")) >= 1 })

	bErr := make(chan error, 1)
	go func() { bErr <- e.worker(t, other).Handle(context.Background(), job) }()
	if err := <-aErr; err != nil {
		t.Fatalf("worker a: %v", err)
	}
	if err := <-bErr; err != nil {
		t.Fatalf("worker b: %v", err)
	}
	st := e.stream(t, id)
	if st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s), want ready", st.Status, st.Error)
	}
	if n := detailInt(st.Details, "attempts"); n != 1 {
		t.Fatalf("the title was attempted %d times, want once: worker b must not start it again", n)
	}
	if l, err := e.meta.GetLease(context.Background(), metastore.VODLeaseName(id)); err != nil || l.Held {
		t.Fatalf("the title's lease after the job: %+v, %v; want released", l, err)
	}
}

// A worker whose lease is taken over (it could not renew in time) stops
// transcoding at once and reports the job unfinished, without failing the
// title or deleting what the new holder writes.
func TestWorkerThatLosesItsLeaseStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, job := e.upload(t, smallClip(t, "8"))
	slow := e.config(t)
	slow.FFmpeg = slowFFmpeg(t)
	slow.Holder, slow.LeaseTTL = "proc-a", 600*time.Millisecond

	errc := make(chan error, 1)
	go func() { errc <- e.worker(t, slow).Handle(context.Background(), job) }()
	waitFor(t, "the first segment", func() bool { return len(e.rows(t, id, "240p")) >= 1 })

	// Another process takes the lease over, as it would after proc-a's
	// renewals stopped reaching the store.
	taken := takeLease(t, e.meta, metastore.VODLeaseName(id), "proc-b")
	select {
	case err := <-errc:
		if err == nil || !errors.Is(err, metastore.ErrLeaseLost) {
			t.Fatalf("Handle returned %v, want an error wrapping ErrLeaseLost so the job is retried", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the worker kept transcoding after losing its lease")
	}
	st := e.stream(t, id)
	if st.Status.Terminal() {
		t.Fatalf("status %s (%s): losing the lease must leave the title to the new holder", st.Status, st.Error)
	}
	if cur, _ := e.meta.GetLease(context.Background(), metastore.VODLeaseName(id)); cur.Holder != "proc-b" || cur.Token != taken.Token {
		t.Fatalf("the old holder touched the new holder's lease: %+v", cur)
	}
}

// takeLease gives the lease to holder behind its current holder's back:
// it ends the current lease, as expiry would, and acquires it the regular
// way, so holder gets the fencing token a real takeover would.
func takeLease(t *testing.T, meta metastore.Store, name, holder string) metastore.Lease {
	t.Helper()
	ctx := context.Background()
	cur, err := meta.GetLease(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.ReleaseLease(ctx, cur); err != nil {
		t.Fatal(err)
	}
	l, err := meta.AcquireLease(ctx, name, holder, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
