package metastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Lease is a named claim one holder has on a piece of work that must be
// done by one process at a time: publishing a stream, packaging it, pulling
// its source, transcoding a title. Leases live in the metadata store because
// that is what every weir process shares; process memory would only stop a
// second claimant in the same process.
//
// A lease expires unless its holder renews it. Token grows every time the
// lease passes to a holder (or back to one after it expired), and never goes
// back, so it fences: anything a holder writes can carry the token, and a
// reader that has seen a larger token knows the writer lost the lease and
// ignores it.
type Lease struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
	Token  int64  `json:"token"`
	// Expires is when the lease lapses unless renewed, on the store's clock.
	Expires time.Time `json:"expires"`
	// Acquired is when the current holder took the lease.
	Acquired time.Time `json:"acquired"`
	// Held reports whether the lease had not expired when it was read.
	Held bool `json:"held"`
}

// Leaser is the part of a Store that grants leases. Expiry is judged on the
// store's own clock (the database server's), so processes with skewed
// clocks agree on who holds what.
type Leaser interface {
	// AcquireLease gives name to holder for ttl when it is free, expired or
	// already held by holder (then it is renewed and keeps its token). When
	// another holder has it, the error wraps ErrConflict and names the
	// holder.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// RenewLease extends l by ttl if l.Holder still has it with l.Token;
	// otherwise (taken over, released) it fails with ErrConflict. A lease
	// that expired but was not taken by anyone is renewed: nobody can have
	// written under a newer token.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// ReleaseLease ends l now, so another holder may take it at once.
	// Releasing a lease that was already lost does nothing.
	ReleaseLease(ctx context.Context, l Lease) error
	// GetLease reads the lease called name; ErrNotFound if it was never
	// acquired.
	GetLease(ctx context.Context, name string) (Lease, error)
}

// The names of the leases weir takes; every process must agree on them. A
// lease name is "{kind}/{stream id}"; each kind guards one piece of work on
// a stream.

// PublishLeaseName is the lease an RTMP or SRT publish session holds on a
// stream for its whole life, so a stream has one publisher across every
// ingest process; its records carry the lease's token.
func PublishLeaseName(streamID string) string { return "publish/" + streamID }

// PullLeaseName is the lease the ingest process pulling a stream's source
// holds while it pulls, so a pulled stream has one puller; the pulled
// records carry this lease's token.
func PullLeaseName(streamID string) string { return "pull/" + streamID }

// LiveLadderLeaseName is the lease the live transcoder making a stream's
// ABR ladder holds while it transcodes, so a stream has one transcoder
// across processes; the rendition records carry this lease's token.
func LiveLadderLeaseName(streamID string) string { return "liveladder/" + streamID }

// VODLeaseName is the lease a VOD worker holds while it works on a title.
func VODLeaseName(streamID string) string { return "vod/" + streamID }

// DefaultHolder names this process in leases: host name and process id.
// Components append a claim number of their own ("host/123#7"), so that two
// claims in one process are two holders.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// leaseColumns is the column list every lease query returns, read by
// scanLease.
const leaseColumns = `name, holder, token, expires_at, acquired_at`

func validLease(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return fmt.Errorf("lease: empty name: %w", ErrInvalid)
	case holder == "":
		return fmt.Errorf("lease %s: empty holder: %w", name, ErrInvalid)
	case ttl <= 0:
		return fmt.Errorf("lease %s: ttl %v is not positive: %w", name, ttl, ErrInvalid)
	}
	return nil
}

func (st *sqlStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	if err := validLease(name, holder, ttl); err != nil {
		return Lease{}, err
	}
	now, until := st.b.clockNow(), st.b.clockPlus(3)
	// The same holder renewing an unexpired lease keeps its token; anyone
	// taking a free or lapsed lease gets the next one.
	same := `leases.holder = excluded.holder AND leases.expires_at > ` + now
	q := `INSERT INTO leases (name, holder, token, expires_at, acquired_at)
		VALUES ($1, $2, 1, ` + until + `, ` + now + `)
		ON CONFLICT (name) DO UPDATE SET
			token = CASE WHEN ` + same + ` THEN leases.token ELSE leases.token + 1 END,
			acquired_at = CASE WHEN ` + same + ` THEN leases.acquired_at ELSE excluded.acquired_at END,
			holder = excluded.holder,
			expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ` + now + `
		RETURNING ` + leaseColumns + `, 1`
	l, ok, err := st.queryLease(ctx, st.b.writer(), q, name, holder, ttl.Microseconds())
	if err != nil {
		return Lease{}, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	if ok {
		return l, nil
	}
	cur, err := st.GetLease(ctx, name)
	if err != nil {
		return Lease{}, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	return Lease{}, fmt.Errorf("lease %s is held by %s (token %d) until %s: %w",
		name, cur.Holder, cur.Token, cur.Expires.Format(time.RFC3339Nano), ErrConflict)
}

func (st *sqlStore) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := validLease(l.Name, l.Holder, ttl); err != nil {
		return Lease{}, err
	}
	q := `UPDATE leases SET expires_at = ` + st.b.clockPlus(4) + `
		WHERE name = $1 AND holder = $2 AND token = $3
		RETURNING ` + leaseColumns + `, 1`
	out, ok, err := st.queryLease(ctx, st.b.writer(), q, l.Name, l.Holder, l.Token, ttl.Microseconds())
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease %s (token %d) for %s: %w", l.Name, l.Token, l.Holder, err)
	}
	if !ok {
		return Lease{}, fmt.Errorf("renew lease %s (token %d) for %s: lost to another holder: %w", l.Name, l.Token, l.Holder, ErrConflict)
	}
	return out, nil
}

func (st *sqlStore) ReleaseLease(ctx context.Context, l Lease) error {
	if l.Name == "" {
		return nil
	}
	q := `UPDATE leases SET expires_at = ` + st.b.clockNow() + `
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > ` + st.b.clockNow()
	if _, err := st.b.writer().exec(ctx, q, l.Name, l.Holder, l.Token); err != nil {
		return fmt.Errorf("release lease %s (token %d) for %s: %w", l.Name, l.Token, l.Holder, err)
	}
	return nil
}

func (st *sqlStore) GetLease(ctx context.Context, name string) (Lease, error) {
	q := `SELECT ` + leaseColumns + `, CASE WHEN expires_at > ` + st.b.clockNow() + ` THEN 1 ELSE 0 END
		FROM leases WHERE name = $1`
	l, ok, err := st.queryLease(ctx, st.b.reader(), q, name)
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	if !ok {
		return Lease{}, fmt.Errorf("lease %s: %w", name, ErrNotFound)
	}
	return l, nil
}

// queryLease runs a statement returning at most one lease row (the lease
// columns and a held flag); ok is false when it returned none.
func (st *sqlStore) queryLease(ctx context.Context, q querier, query string, args ...any) (l Lease, ok bool, err error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return Lease{}, false, err
	}
	defer rows.Close()
	if rows.Next() {
		var held int
		if err := rows.Scan(&l.Name, &l.Holder, &l.Token, timeCol{&l.Expires}, timeCol{&l.Acquired}, &held); err != nil {
			return Lease{}, false, err
		}
		l.Held, ok = held == 1, true
	}
	return l, ok, rows.Err()
}

// HeldLease is a lease kept alive in the background: it renews every third
// of its ttl and, when a renewal finds the lease taken over (or cannot
// reach the store before the lease would lapse), cancels Context so the
// work done under it stops.
type HeldLease struct {
	store  Leaser
	ttl    time.Duration
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu    sync.Mutex
	lease Lease
}

// ErrLeaseLost is the cause of a HeldLease's context when the lease was
// taken over or could not be renewed in time.
var ErrLeaseLost = errors.New("lease lost")

// Hold acquires name for holder and keeps renewing it until Release or
// until parent ends. It fails as AcquireLease does when another holder has
// the lease.
func Hold(parent context.Context, store Leaser, name, holder string, ttl time.Duration, log *slog.Logger) (*HeldLease, error) {
	l, err := store.AcquireLease(parent, name, holder, ttl)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancelCause(parent)
	h := &HeldLease{store: store, ttl: ttl, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{}), lease: l}
	go h.renew()
	return h, nil
}

// Context ends when the lease is lost, released, or the parent ends;
// context.Cause says which (ErrLeaseLost for a lost lease).
func (h *HeldLease) Context() context.Context { return h.ctx }

// Lease is the lease as last acquired or renewed.
func (h *HeldLease) Lease() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// Token is the lease's fencing token.
func (h *HeldLease) Token() int64 { return h.Lease().Token }

// Release stops renewing and gives the lease up, so another holder can take
// it at once. It is safe to call more than once.
func (h *HeldLease) Release(ctx context.Context) error {
	h.cancel(context.Canceled)
	<-h.done
	return h.store.ReleaseLease(ctx, h.Lease())
}

func (h *HeldLease) renew() {
	defer close(h.done)
	every := h.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(h.ctx, every)
		l, err := h.store.RenewLease(rctx, h.Lease(), h.ttl)
		cancel()
		switch {
		case err == nil:
			h.mu.Lock()
			h.lease = l
			h.mu.Unlock()
			lastOK = time.Now()
		case errors.Is(err, ErrConflict):
			h.log.Warn("lease lost", "lease", h.Lease().Name, "err", err)
			h.cancel(fmt.Errorf("%w: %v", ErrLeaseLost, err))
			return
		case h.ctx.Err() != nil:
			return
		case time.Since(lastOK) >= h.ttl-every:
			// The store is unreachable and the lease is about to lapse:
			// another process may take it, so stop before it can.
			h.log.Warn("lease could not be renewed in time", "lease", h.Lease().Name, "err", err)
			h.cancel(fmt.Errorf("%w: not renewed within %v: %v", ErrLeaseLost, h.ttl, err))
			return
		default:
			h.log.Debug("lease renewal failed; retrying", "lease", h.Lease().Name, "err", err)
		}
	}
}
