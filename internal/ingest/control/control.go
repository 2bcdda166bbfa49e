package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// Config configures a Controller.
type Config struct {
	// Meta is the metadata store; required.
	Meta metastore.Store
	// Bus carries the control topic, the end markers and pulled streams;
	// required.
	Bus bus.Bus
	// Group is the controllers' consumer group (default
	// protocol.GroupLiveControl).
	Group string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// HTTPClient fetches pulled sources (default: a client without an
	// overall timeout, since a live stream never ends by itself).
	HTTPClient *http.Client
	// ChunkSize is the most bytes per raw_stream record of a pulled
	// stream (default protocol.DefaultChunkSize).
	ChunkSize int
	// PullRetryMax caps the wait between attempts to reach a pulled source
	// that failed (default 10 s; the first retry comes after 500 ms).
	PullRetryMax time.Duration
	// Permanent tells the failures of a pulled source that no retry can
	// mend (default ingest.IsPermanent). It is asked only until the
	// source has delivered media to the stream; a failure it calls
	// permanent fails the stream, with the error as the stream's error
	// text, instead of retrying.
	Permanent func(error) bool
}

// Controller carries out the live control messages of the REST API:
//
//   - start with a source_url: pull the source (HTTP(S) MPEG-TS, or an
//     Icecast-style AAC or MP3 station) into the stream's topic as MPEG-TS,
//     reconnecting when it drops, until the stream ends; a source that
//     fails for good before delivering any media (see
//     Config.Permanent) fails the stream instead;
//   - end: stop a pull of the stream running here and put an end marker on
//     the stream topic, which makes the stream's packager finish it
//     wherever it runs, after every record before the marker.
//
// Controllers share a consumer group, so each message is handled by one of
// them; messages about one stream are keyed by its id and arrive in order.
// Old messages (a new group starts from the beginning of the topic) are
// checked against the stream's status: nothing is pulled for a stream that
// has ended. On start, a controller resumes the pulls of every stream that
// has a source URL and has not ended; with several controllers each would
// resume them all, so run one controller where streams are pulled.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	pulls map[string]*pull
	wg    sync.WaitGroup
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.Meta == nil:
		return nil, errors.New("live controller: Config.Meta is required")
	case cfg.Bus == nil:
		return nil, errors.New("live controller: Config.Bus is required")
	}
	if cfg.Group == "" {
		cfg.Group = protocol.GroupLiveControl
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.PullRetryMax <= 0 {
		cfg.PullRetryMax = 10 * time.Second
	}
	if cfg.Permanent == nil {
		cfg.Permanent = ingest.IsPermanent
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "live-control"), pulls: map[string]*pull{}}, nil
}

// Run resumes interrupted pulls, then handles protocol.TopicLiveControl
// (and the name it had before, protocol.LegacyTopicLiveControl) until ctx
// ends;
// it stops the pulls it runs (their streams get a stream_eof but are not
// ended) and returns nil.
func (c *Controller) Run(ctx context.Context) error {
	defer c.stopAll()
	c.resume(ctx)
	for ctx.Err() == nil {
		err := c.cfg.Bus.Consume(ctx, bus.ConsumeOptions{
			Topics:        []string{protocol.TopicLiveControl, protocol.LegacyTopicLiveControl},
			Group:         c.cfg.Group,
			FromBeginning: true,
			Handler:       c.Handle,
		})
		if ctx.Err() != nil || err == nil {
			break
		}
		c.log.Warn("live control: consuming the control topic failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// Handle carries out one control record. A malformed record is logged and
// skipped (nil), so it never blocks the messages behind it.
func (c *Controller) Handle(ctx context.Context, rec *bus.Record) error {
	m, err := protocol.DecodeLiveControl(rec.Key, rec.Value)
	if err != nil {
		c.log.Warn("live control: skipping a malformed message", "offset", rec.Offset, "err", err)
		return nil
	}
	switch m.Action {
	case protocol.LiveStart:
		c.start(ctx, m)
	case protocol.LiveEnd:
		if err := c.End(ctx, m.StreamID); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The marker must get through, or the stream never ends:
			// fail the record so it is delivered again.
			return err
		}
	}
	return nil
}

func (c *Controller) start(ctx context.Context, m *protocol.LiveControl) {
	st, err := c.cfg.Meta.GetStream(ctx, m.StreamID)
	if err != nil {
		c.log.Warn("live control: start of an unknown stream", "stream", m.StreamID, "err", err)
		return
	}
	if st.Kind != metastore.KindLive || st.Status.Terminal() {
		return
	}
	if st.SourceURL != "" {
		c.startPull(ctx, st)
	}
}

// End stops this process's pull of stream id, if any, and puts the end
// marker on the stream's topic.
func (c *Controller) End(ctx context.Context, id string) error {
	c.stopPull(id)
	rec, err := endMarker(id)
	if err != nil {
		return err
	}
	if err := c.cfg.Bus.Produce(ctx, rec); err != nil {
		return fmt.Errorf("end marker of stream %s: %w", id, err)
	}
	c.log.Info("live stream end requested", "stream", id)
	return nil
}

// resume restarts the pulls of streams that have a source and have not
// ended.
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
					c.startPull(ctx, st)
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
}

// pull is one running pull.
type pull struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *Controller) startPull(ctx context.Context, st metastore.Stream) {
	u, err := url.Parse(st.SourceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		c.log.Error("live control: cannot pull this source", "stream", st.ID, "scheme", schemeOf(u))
		if _, terr := c.cfg.Meta.TransitionStatus(ctx, st.ID, metastore.StatusFailed, func(s *metastore.Stream) {
			s.Error = fmt.Sprintf("pulling %s:// sources is not supported; weir pulls http(s) MPEG-TS and Icecast AAC/MP3 streams", schemeOf(u))
		}); terr != nil {
			c.log.Warn("live control: recording the failure", "stream", st.ID, "err", terr)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pulls[st.ID] != nil {
		return
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &pull{cancel: cancel, done: make(chan struct{})}
	c.pulls[st.ID] = p
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.done)
		c.runPull(pctx, st.ID, st.SourceURL)
		c.mu.Lock()
		if c.pulls[st.ID] == p {
			delete(c.pulls, st.ID)
		}
		c.mu.Unlock()
	}()
}

func schemeOf(u *url.URL) string {
	if u == nil {
		return "?"
	}
	return u.Scheme
}

func (c *Controller) stopPull(id string) {
	c.mu.Lock()
	p := c.pulls[id]
	delete(c.pulls, id)
	c.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

func (c *Controller) stopAll() {
	c.mu.Lock()
	for id, p := range c.pulls {
		p.cancel()
		delete(c.pulls, id)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// runPull pulls url into stream id until ctx ends or the stream ends,
// reconnecting with a growing delay when the source fails. Each connection
// is a publisher session of its own, so a reconnect shows up in the
// playlist as a discontinuity.
//
// Until the source has delivered media to the stream (the stream is still
// created and no attempt got media), a failure that Config.Permanent calls
// permanent fails the stream instead, with the error as its error text. A
// source that has worked is retried whatever the error: live sources come
// and go (an Icecast mount answers 404 while its encoder is away).
func (c *Controller) runPull(ctx context.Context, id, src string) {
	log := c.log.With("stream", id)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Stop pulling once the stream has ended or failed, however that
	// happened.
	go func() {
		t := time.NewTicker(statusCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if st, err := c.cfg.Meta.GetStream(ctx, id); err == nil && st.Status.Terminal() {
				log.Info("live pull: the stream has ended; hanging up")
				cancel()
				return
			}
		}
	}()
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
			Logger:     c.log,
		})
		if ctx.Err() != nil {
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

// statusCheckInterval is how often a pull looks at its stream's status.
const statusCheckInterval = 2 * time.Second

// failPull fails stream id for a source that cannot be pulled.
func (c *Controller) failPull(ctx context.Context, id string, cause error) {
	c.log.Error("live pull: the source cannot be pulled; the stream failed", "stream", id, "err", cause)
	if _, err := c.cfg.Meta.TransitionStatus(ctx, id, metastore.StatusFailed, func(s *metastore.Stream) {
		s.Error = fmt.Sprintf("pulling the source failed: %v", cause)
	}); err != nil {
		c.log.Warn("live control: recording the failure", "stream", id, "err", err)
	}
}

// endMarker builds the record that ends stream id when it reaches the
// stream's packager: a DONE engine_heartbeat from the live controller,
// carrying protocol.HeaderLiveEnd. A heartbeat may appear anywhere on a
// stream topic, so other readers of the topic are not disturbed.
func endMarker(id string) (*bus.Record, error) {
	hb := &protocol.EngineHeartbeat{
		Header:           protocol.Header{TaskID: id, TDOID: id},
		EngineID:         "weir-live-control",
		EngineInstanceID: "weir-live-control_" + id,
		Count:            1,
		Status:           protocol.HeartbeatDone,
	}
	key, value, err := protocol.Encode(hb)
	if err != nil {
		return nil, fmt.Errorf("end marker of stream %s: %w", id, err)
	}
	return &bus.Record{
		Topic:   protocol.StreamTopic(id),
		Key:     key,
		Value:   value,
		Headers: []bus.Header{{Key: protocol.HeaderLiveEnd, Value: protocol.FormatLiveEnd("ended on request")}},
	}, nil
}
