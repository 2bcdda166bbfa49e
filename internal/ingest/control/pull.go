package control

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/metastore"
)

// pull is one pull this controller runs, from its claim on the stream to
// the release of the stream's pull lease.
type pull struct {
	// stop ends the pulling (the lease is kept while ended is set).
	stop context.CancelFunc
	// ended is set by End: once the pulling stops, the lease is held
	// until the stream's status is terminal.
	ended atomic.Bool
	// pulled is closed once the pull writes nothing more.
	pulled chan struct{}
}

// claims numbers this process's pull claims, so that two controllers in
// one process are two lease holders.
var claims atomic.Int64

// resumeEvery takes up the pulls of unended streams now and every period
// until ctx ends.
func (c *Controller) resumeEvery(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		c.resume(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resume starts a claim on every stream that has a source and has not
// ended; the claims whose lease another controller holds come to nothing.
func (c *Controller) resume(ctx context.Context) {
	for _, status := range []metastore.Status{metastore.StatusCreated, metastore.StatusLive} {
		after := ""
		for {
			streams, next, err := c.cfg.Meta.ListStreams(ctx, metastore.StreamFilter{
				Kind: metastore.KindLive, Status: status, Limit: 500, After: after,
			})
			if err != nil {
				if ctx.Err() == nil {
					c.log.Warn("live control: listing streams to resume", "err", err)
				}
				return
			}
			for _, st := range streams {
				if st.SourceURL != "" {
					c.startPull(st)
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
}

// startPull claims stream st's pull in the background, unless this
// controller runs it already.
func (c *Controller) startPull(st metastore.Stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pulls[st.ID] != nil || c.ctx.Err() != nil {
		return
	}
	pctx, stop := context.WithCancel(c.ctx)
	p := &pull{stop: stop, pulled: make(chan struct{})}
	c.pulls[st.ID] = p
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer stop()
		c.claim(pctx, p, st)
		c.mu.Lock()
		if c.pulls[st.ID] == p {
			delete(c.pulls, st.ID)
		}
		c.mu.Unlock()
	}()
}

// claim takes the stream's pull lease and, if it got it and the stream has
// not ended meanwhile, pulls until ctx ends, the stream ends or the lease
// is lost, then releases the lease (after the stream ended, when End
// stopped the pull).
func (c *Controller) claim(ctx context.Context, p *pull, st metastore.Stream) {
	log := c.log.With("stream", st.ID)
	pulling := false
	defer func() {
		if !pulling {
			close(p.pulled)
		}
	}()
	holder := fmt.Sprintf("%s#%d", c.cfg.Holder, claims.Add(1))
	held, err := metastore.Hold(c.ctx, c.cfg.Meta, metastore.PullLeaseName(st.ID), holder, c.cfg.LeaseTTL, log)
	switch {
	case errors.Is(err, metastore.ErrConflict):
		log.Debug("live pull runs elsewhere", "err", err)
		return
	case err != nil:
		if c.ctx.Err() == nil {
			log.Warn("live control: taking the pull lease; trying again later", "err", err)
		}
		return
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := held.Release(rctx); err != nil {
			log.Warn("live control: releasing the pull lease", "err", err)
		}
	}()
	cur, err := c.cfg.Meta.GetStream(held.Context(), st.ID)
	if err != nil || cur.Status.Terminal() || cur.SourceURL == "" {
		return // ended while the lease was taken, or unreadable: the next round will tell
	}
	u, err := url.Parse(cur.SourceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		c.refuseSource(held.Context(), cur.ID, u)
		return
	}
	// A pull writes the stream as its publisher: it holds the publish
	// lease too, so a push with the stream's key is refused meanwhile and
	// the packager fences pulled and pushed records on one token.
	pub, err := metastore.Hold(held.Context(), c.cfg.Meta, metastore.PublishLeaseName(cur.ID), holder, c.cfg.LeaseTTL, log)
	if err != nil {
		log.Info("live control: the stream has another publisher; the pull waits", "err", err)
		return
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Release(rctx); err != nil {
			log.Warn("live control: releasing the publish lease", "err", err)
		}
	}()
	// Pull while the claim and both leases last.
	runCtx, cancel := context.WithCancel(pub.Context())
	defer cancel()
	stopAfter := context.AfterFunc(ctx, cancel)
	defer stopAfter()
	pulling = true
	c.runPull(runCtx, pub, cur.ID, cur.SourceURL)
	close(p.pulled)
	if p.ended.Load() {
		c.waitTerminal(held.Context(), cur.ID)
	}
}

// refuseSource fails a stream whose source weir cannot pull.
func (c *Controller) refuseSource(ctx context.Context, id string, u *url.URL) {
	scheme := "?"
	if u != nil {
		scheme = u.Scheme
	}
	c.log.Error("live control: cannot pull this source", "stream", id, "scheme", scheme)
	if _, err := c.cfg.Meta.TransitionStatus(ctx, id, metastore.StatusFailed, func(s *metastore.Stream) {
		s.Error = fmt.Sprintf("pulling %s:// sources is not supported; weir pulls http(s) MPEG-TS and Icecast AAC/MP3 streams", scheme)
	}); err != nil {
		c.log.Warn("live control: recording the failure", "stream", id, "err", err)
	}
}

// waitTerminal waits until stream id's status is terminal or ctx ends.
func (c *Controller) waitTerminal(ctx context.Context, id string) {
	t := time.NewTicker(c.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := c.cfg.Meta.GetStream(ctx, id); err == nil && st.Status.Terminal() {
			return
		}
	}
}

// endPull stops this controller's pull of stream id, if it runs one, and
// waits until the pull writes nothing more; the claim keeps the lease
// until the stream has ended.
func (c *Controller) endPull(id string) {
	c.mu.Lock()
	p := c.pulls[id]
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.ended.Store(true)
	p.stop()
	<-p.pulled
}

// stopAll stops every pull and claim, releases their leases, and waits.
func (c *Controller) stopAll() {
	c.cancel()
	c.wg.Wait()
}

// runPull pulls url into stream id until ctx ends or the stream ends,
// reconnecting with a growing delay when the source fails. Each connection
// is a publisher session of its own, so a reconnect shows up in the
// playlist as a discontinuity. Every record carries the token of held, the
// stream's publish lease, and nothing is written once held is lost.
//
// Until the source has delivered media to the stream (the stream is still
// created and no attempt got media), a failure that Config.Permanent calls
// permanent fails the stream instead, with the error as its error text. A
// source that has worked is retried whatever the error: live sources come
// and go (an Icecast mount answers 404 while its encoder is away).
func (c *Controller) runPull(ctx context.Context, held *metastore.HeldLease, id, src string) {
	log := c.log.With("stream", id)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Stop pulling once the stream has ended or failed, however and
	// wherever that happened.
	go func() {
		c.waitTerminal(ctx, id)
		if ctx.Err() == nil {
			log.Info("live pull: the stream has ended; hanging up")
			cancel()
		}
	}()
	log.Info("live pull started", "lease_token", held.Token())
	wait := 500 * time.Millisecond
	worked := false // the source has delivered media to the stream
	for ctx.Err() == nil {
		st, err := c.cfg.Meta.GetStream(ctx, id)
		if err == nil && st.Status.Terminal() {
			return
		}
		if err == nil && st.Status != metastore.StatusCreated {
			worked = true
		}
		started := time.Now()
		connected, err := ingest.PullLive(ctx, c.cfg.Bus, ingest.LiveOptions{
			StreamID:   id,
			Source:     src,
			HTTPClient: c.cfg.HTTPClient,
			ChunkSize:  c.cfg.ChunkSize,
			Lease:      held,
			Logger:     c.log,
		})
		if ctx.Err() != nil {
			if errors.Is(context.Cause(held.Context()), metastore.ErrLeaseLost) {
				log.Warn("live pull: the pull lease was lost; stopping")
			}
			return
		}
		worked = worked || connected
		if !worked && c.cfg.Permanent(err) {
			c.failPull(ctx, id, err)
			return
		}
		if time.Since(started) > 30*time.Second {
			wait = 500 * time.Millisecond // it worked for a while
		}
		log.Warn("live pull: source stopped; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, c.cfg.PullRetryMax)
	}
}

// failPull fails stream id for a source that cannot be pulled.
func (c *Controller) failPull(ctx context.Context, id string, cause error) {
	c.log.Error("live pull: the source cannot be pulled; the stream failed", "stream", id, "err", cause)
	if _, err := c.cfg.Meta.TransitionStatus(ctx, id, metastore.StatusFailed, func(s *metastore.Stream) {
		s.Error = fmt.Sprintf("pulling the source failed: %v", cause)
	}); err != nil {
		c.log.Warn("live control: recording the failure", "stream", id, "err", err)
	}
}
