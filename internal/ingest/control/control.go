package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	// Holder names this process in pull leases (default
	// metastore.DefaultHolder()); it must differ between processes.
	Holder string
	// LeaseTTL is how long a pull lease lasts without renewal (default
	// DefaultLeaseTTL). It is also how often the controller looks for
	// pulled streams that nobody pulls: a pull whose process died is
	// taken over by another controller between one and two TTLs later.
	LeaseTTL time.Duration
	// StatusInterval is how often a pull checks its stream's status, to
	// stop once the stream has ended or failed (default
	// DefaultStatusInterval).
	StatusInterval time.Duration
}

// Defaults of Config.
const (
	DefaultLeaseTTL       = 10 * time.Second
	DefaultStatusInterval = 2 * time.Second
)

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
// has ended.
//
// Any number of controllers may run, in as many processes: a stream is
// pulled by the one holding its pull lease (metastore.PullLeaseName),
// renewed while it pulls and released when it stops, and every record of
// the pull carries the lease's fencing token (protocol.HeaderPublishToken).
// Each controller looks for pulled streams that have not ended when it
// starts and every LeaseTTL after, and pulls those whose lease is free, so
// a pull whose process died is taken over. A pull stops when its stream
// ends or fails, whichever controller handled the end request, and when its
// lease is lost (then it writes nothing more).
type Controller struct {
	cfg Config
	log *slog.Logger
	// ctx bounds every pull and its lease; cancel ends them (Run's end).
	ctx    context.Context
	cancel context.CancelFunc

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
	if cfg.Holder == "" {
		cfg.Holder = metastore.DefaultHolder()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("component", "live-control"), pulls: map[string]*pull{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Run handles protocol.TopicLiveControl (and the name it had before,
// protocol.LegacyTopicLiveControl) until ctx ends, and meanwhile takes up
// the pulls of unended streams nobody pulls, at once and every LeaseTTL.
// When ctx ends it stops the pulls it runs (their streams get a stream_eof
// but are not ended), releases their leases, and returns nil. A Controller
// runs once.
func (c *Controller) Run(ctx context.Context) error {
	defer c.stopAll()
	rctx, stopResume := context.WithCancel(ctx)
	defer stopResume()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.resumeEvery(rctx, c.cfg.LeaseTTL)
	}()
	for ctx.Err() == nil {
		err := c.cfg.Bus.Consume(ctx, bus.ConsumeOptions{
			Topics:        []string{protocol.TopicLiveControl, protocol.LegacyTopicLiveControl},
			Group:         c.cfg.Group,
			FromBeginning: true,
			// Control messages are small; anything larger is an attack or
			// a bug and is dead-lettered unread.
			MaxRecordBytes: protocol.MaxControlMessageBytes,
			Handler:        c.Handle,
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
		// No retry can mend it: the consumer dead-letters it.
		return bus.Permanent(err)
	}
	switch m.Action {
	case protocol.LiveStart:
		c.start(ctx, m)
	case protocol.LiveEnd:
		st, err := c.cfg.Meta.GetStream(ctx, m.StreamID)
		switch {
		case errors.Is(err, metastore.ErrNotFound):
			// A forged or stale request must not create the topic of a
			// stream that does not exist.
			c.log.Warn("live control: end of an unknown stream ignored", "stream", m.StreamID)
			return nil
		case err != nil:
			return err // the store is out of reach: deliver it again
		case st.Kind != metastore.KindLive:
			c.log.Warn("live control: end of a stream that is not live ignored", "stream", m.StreamID, "kind", st.Kind)
			return nil
		}
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
		c.startPull(st)
	}
}

// End stops this process's pull of stream id, if any, and puts the end
// marker on the stream's topic after the pull's last record. The stopped
// pull keeps its lease until the stream has ended, so that no controller
// takes the pull up again meanwhile. A pull running in another process
// stops once the stream's status is terminal (the packager moves it to vod
// when it reaches the marker).
func (c *Controller) End(ctx context.Context, id string) error {
	c.endPull(id)
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
