package metastore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// runLeaseContract is the lease behaviour every Store must show; it runs as
// part of each backend's contract suite.
func runLeaseContract(t *testing.T, h harness) {
	ctx := context.Background()

	t.Run("LeaseIsExclusiveUntilItExpires", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		a, err := s.AcquireLease(ctx, "publish/s1", "proc-a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if a.Token != 1 || a.Holder != "proc-a" || !a.Held || !a.Expires.After(a.Acquired) {
			t.Fatalf("first acquisition: %+v", a)
		}
		_, err = s.AcquireLease(ctx, "publish/s1", "proc-b", time.Hour)
		wantErr(t, err, ErrConflict, "")
		if err == nil || !containsAll(err.Error(), "publish/s1", "proc-a") {
			t.Fatalf("conflict error %q should name the lease and its holder", err)
		}
		// The holder acquiring again renews and keeps its token.
		again, err := s.AcquireLease(ctx, "publish/s1", "proc-a", time.Hour)
		if err != nil || again.Token != a.Token || !again.Acquired.Equal(a.Acquired) {
			t.Fatalf("re-acquire by holder: %+v, %v (first %+v)", again, err, a)
		}
		// Other names are independent.
		if _, err := s.AcquireLease(ctx, "publish/s2", "proc-b", time.Hour); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ExpiredLeasePassesWithANewerToken", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		a, err := s.AcquireLease(ctx, "vod/t1", "proc-a", 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		b := acquireEventually(t, s, "vod/t1", "proc-b", time.Hour)
		if b.Token <= a.Token || b.Holder != "proc-b" {
			t.Fatalf("takeover %+v after %+v: token must grow", b, a)
		}
		// The stale holder can neither renew nor release the new lease.
		_, err = s.RenewLease(ctx, a, time.Hour)
		wantErr(t, err, ErrConflict, "")
		if err := s.ReleaseLease(ctx, a); err != nil {
			t.Fatal(err)
		}
		cur, err := s.GetLease(ctx, "vod/t1")
		if err != nil || cur.Holder != "proc-b" || cur.Token != b.Token || !cur.Held {
			t.Fatalf("after stale release: %+v, %v", cur, err)
		}
		// The old holder coming back after expiry gets a token above both.
		if err := s.ReleaseLease(ctx, b); err != nil {
			t.Fatal(err)
		}
		back, err := s.AcquireLease(ctx, "vod/t1", "proc-a", time.Hour)
		if err != nil || back.Token <= b.Token {
			t.Fatalf("re-acquire after release: %+v, %v", back, err)
		}
	})

	t.Run("RenewExtendsAndReleaseFreesAtOnce", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		a, err := s.AcquireLease(ctx, "pull/s1", "proc-a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.RenewLease(ctx, a, time.Hour)
		if err != nil || r.Token != a.Token || !r.Expires.After(a.Expires) {
			t.Fatalf("renew: %+v, %v (was %+v)", r, err, a)
		}
		if err := s.ReleaseLease(ctx, r); err != nil {
			t.Fatal(err)
		}
		if cur, err := s.GetLease(ctx, "pull/s1"); err != nil || cur.Held {
			t.Fatalf("released lease still held: %+v, %v", cur, err)
		}
		b, err := s.AcquireLease(ctx, "pull/s1", "proc-b", time.Minute)
		if err != nil || b.Token != a.Token+1 {
			t.Fatalf("acquire after release: %+v, %v", b, err)
		}
		// Renewing a released lease fails: the releaser gave it up.
		_, err = s.RenewLease(ctx, r, time.Minute)
		wantErr(t, err, ErrConflict, "")
	})

	t.Run("LeaseArgumentsAreChecked", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		for _, c := range []struct{ name, holder string }{{"", "h"}, {"n", ""}} {
			_, err := s.AcquireLease(ctx, c.name, c.holder, time.Second)
			wantErr(t, err, ErrInvalid, "")
		}
		_, err := s.AcquireLease(ctx, "n", "h", 0)
		wantErr(t, err, ErrInvalid, "")
		_, err = s.GetLease(ctx, "never")
		wantErr(t, err, ErrNotFound, "lease never: not found")
	})

	t.Run("ConcurrentClaimantsGetOneWinner", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		const claimants = 8
		var wg sync.WaitGroup
		wins := make(chan string, claimants)
		for i := range claimants {
			wg.Go(func() {
				holder := string(rune('a' + i))
				if _, err := s.AcquireLease(ctx, "publish/race", holder, time.Hour); err == nil {
					wins <- holder
				} else if !errors.Is(err, ErrConflict) {
					t.Errorf("claimant %s: %v", holder, err)
				}
			})
		}
		wg.Wait()
		close(wins)
		var got []string
		for w := range wins {
			got = append(got, w)
		}
		if len(got) != 1 {
			t.Fatalf("winners %v, want exactly one", got)
		}
	})

	t.Run("HeldLeaseStopsWorkWhenTakenOver", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		held, err := Hold(ctx, s, "package/s1", "proc-a", 300*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		// While renewed it outlives its ttl.
		time.Sleep(time.Second)
		if held.Context().Err() != nil {
			t.Fatalf("held lease lost while renewing: %v", context.Cause(held.Context()))
		}
		if _, err := s.AcquireLease(ctx, "package/s1", "proc-b", time.Hour); !errors.Is(err, ErrConflict) {
			t.Fatalf("a renewed lease was taken: %v", err)
		}
		// Simulate a takeover behind the holder's back (its renewals were
		// late): force the row to another holder with a newer token.
		st := backendOf(t, s)
		if _, err := st.b.writer().exec(ctx, `UPDATE leases SET holder = 'proc-b', token = token + 1 WHERE name = 'package/s1'`); err != nil {
			t.Fatal(err)
		}
		select {
		case <-held.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatal("holder kept working after its lease was taken over")
		}
		if cause := context.Cause(held.Context()); !errors.Is(cause, ErrLeaseLost) {
			t.Fatalf("cause = %v, want ErrLeaseLost", cause)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if cur, _ := s.GetLease(ctx, "package/s1"); cur.Holder != "proc-b" || !cur.Held {
			t.Fatalf("the lost holder's release touched the new holder's lease: %+v", cur)
		}
	})

	t.Run("HeldLeaseReleaseFreesIt", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		held, err := Hold(ctx, s, "vod/t9", "proc-a", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatalf("second release: %v", err)
		}
		if _, err := s.AcquireLease(ctx, "vod/t9", "proc-b", time.Hour); err != nil {
			t.Fatalf("after release: %v", err)
		}
	})
}

// acquireEventually retries AcquireLease until an earlier short lease has
// lapsed (the store's clock decides, so no fixed sleep).
func acquireEventually(t *testing.T, s Store, name, holder string, ttl time.Duration) Lease {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := s.AcquireLease(context.Background(), name, holder, ttl)
		if err == nil {
			return l
		}
		if !errors.Is(err, ErrConflict) || time.Now().After(deadline) {
			t.Fatalf("acquire %s for %s: %v", name, holder, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
