package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// ErrPublisherConnected: the stream has a publisher already, in this
// process or another.
var ErrPublisherConnected = errors.New("the stream already has a publisher")

// claims numbers this process's publish claims, so that two connections
// in one process are two lease holders.
var claims atomic.Int64

// claimStream makes the caller the stream's one publisher, across every
// ingest process sharing the metadata store: it takes the stream's publish
// lease (metastore.PublishLeaseName), which is renewed in the background
// until released. A stream whose lease another connection holds is refused
// with an error wrapping ErrPublisherConnected and naming the holder: the
// first publisher keeps the stream until it disconnects (a reconnecting
// encoder gets in once the server has dropped the old connection, after at
// most ReadTimeout) or its process dies (its lease lapses after LeaseTTL).
//
// The lease is not bound to the server's context, so a shutting-down
// server's sessions still end their streams under it; release it once the
// session is closed.
func (s *listener[C]) claimStream(streamID string) (*metastore.HeldLease, error) {
	holder := fmt.Sprintf("%s#%d", s.cfg.Holder, claims.Add(1))
	held, err := metastore.Hold(context.WithoutCancel(s.ctx), s.cfg.Streams, metastore.PublishLeaseName(streamID), holder, s.cfg.LeaseTTL, s.log)
	if errors.Is(err, metastore.ErrConflict) {
		return nil, fmt.Errorf("stream %s: %w (%v)", streamID, ErrPublisherConnected, err)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: taking the publish lease: %w", streamID, err)
	}
	return held, nil
}

// releaseStream gives a publish lease up so the next publisher gets the
// stream at once.
func (s *listener[C]) releaseStream(held *metastore.HeldLease, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := held.Release(ctx); err != nil {
		log.Warn("releasing the publish lease", "err", err)
	}
}

// watchLease calls lost once held is lost (taken over, or not renewed in
// time), unless ctx ends first.
func watchLease(ctx context.Context, held *metastore.HeldLease, lost func()) {
	select {
	case <-ctx.Done():
	case <-held.Context().Done():
		if errors.Is(context.Cause(held.Context()), metastore.ErrLeaseLost) {
			lost()
		}
	}
}

// watchStatus calls stop once the stream reaches a terminal status (it was
// ended or failed), checking every interval until ctx ends.
func watchStatus(ctx context.Context, streams StreamLookup, streamID string, interval time.Duration, stop func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := streams.GetStream(ctx, streamID)
		if err == nil && st.Status.Terminal() {
			stop()
			return
		}
	}
}

// holdFor is the hold of a session of st: hold, but at most lowLatency when
// st is packaged as Low-Latency HLS, whose parts wait for the bytes.
func holdFor(st metastore.Stream, hold, lowLatency time.Duration) time.Duration {
	if st.Live().LowLatency && hold > lowLatency {
		return lowLatency
	}
	return hold
}
