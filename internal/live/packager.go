package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// Defaults of Config.
const (
	DefaultSegmentDuration  = 2 * time.Second
	DefaultWindow           = 10
	DefaultPublisherTimeout = 30 * time.Second
	DefaultDiscoverInterval = time.Second
)

// Config configures a Packager.
type Config struct {
	// Meta is where streams and segments are recorded; required.
	Meta metastore.Store
	// Objects receives segments and playlists; required.
	Objects objstore.Store
	// Bus is where the stream topics are read from; required.
	Bus bus.Bus
	// Group is the consumer group packagers share (default
	// protocol.GroupPackager).
	Group string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the weir_live_* metrics; nil registers nothing.
	Registry prometheus.Registerer

	// SegmentDuration is the target segment duration (default 2 s).
	// Segments are cut on the first key frame at or after it (less 50 ms
	// of tolerance), so the actual duration depends on the publisher's
	// key frame interval; audio-only streams are cut on audio frames.
	SegmentDuration time.Duration
	// Window is how many segments the live playlist lists (default 10).
	Window int
	// WindowDuration, when positive, bounds the live playlist by total
	// duration instead of by count.
	WindowDuration time.Duration
	// PublisherTimeout ends a stream whose publisher has been gone
	// (no record on its topic) this long (default 30 s). A publisher
	// that reconnects sooner continues the stream after a
	// discontinuity.
	PublisherTimeout time.Duration
	// Retention, when positive, deletes a segment's object once it has
	// left the live window and was listed longer ago than this; the VOD
	// playlist then lists the segments still stored (their metadata rows
	// stay). Zero keeps every segment, so the whole stream becomes VOD.
	Retention time.Duration
	// DiscoverInterval is how often the metadata store is asked for live
	// streams to package (default 1 s). Watch skips the wait.
	DiscoverInterval time.Duration
}

// Packager turns live streams into HLS: for every live stream in status
// created or live it reads the stream's topic (protocol.StreamTopic(id)) as a
// member of the packagers' consumer group, so each stream is packaged by
// exactly one process, and runs the stream through a calculator graph:
//
//	LiveTSDemux → LiveSegmenter → LiveSegmentWriter → LivePlaylistWriter
//
// Segments ({id}/seg_{n}.ts) are cut on key frames, written to the object
// store, read back and checked against their SHA-256 (rewritten on a
// mismatch), recorded in the metadata store and then listed in the rolling
// live playlist ({id}/live.m3u8). The stream moves to status live with its
// first segment.
//
// A stream ends when the live controller puts an end marker on its topic
// (POST /streams/{id}/end) or when its publisher has been gone for
// PublisherTimeout: the last partial segment is flushed, vod.m3u8 lists
// every segment with EXT-X-ENDLIST, live.m3u8 is rewritten the same way
// (without a playlist type), and the stream moves to status vod.
//
// Streams are found by asking the metadata store every DiscoverInterval
// (and at once through Watch), so a packager started late, or taking over
// from a failed one, picks up every stream that is still going. A packager
// that takes over a stream mid-way rebuilds its window from the segment
// rows and marks its first segment as a discontinuity: the segment that
// was being cut when the other one stopped is lost.
type Packager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	hint chan string

	mu    sync.Mutex
	tasks map[string]*streamTask
	// quiet holds streams whose task stopped without finishing them (a
	// failure): they are not restarted before the time given.
	quiet map[string]time.Time
	wg    sync.WaitGroup
}

// restartDelay spaces out restarts of a stream task that keeps failing.
const restartDelay = 5 * time.Second

// NewPackager checks cfg, fills in defaults and registers the metrics.
func NewPackager(cfg Config) (*Packager, error) {
	switch {
	case cfg.Meta == nil:
		return nil, errors.New("live packager: Config.Meta is required")
	case cfg.Objects == nil:
		return nil, errors.New("live packager: Config.Objects is required")
	case cfg.Bus == nil:
		return nil, errors.New("live packager: Config.Bus is required")
	}
	if cfg.Group == "" {
		cfg.Group = protocol.GroupPackager
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = DefaultSegmentDuration
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.WindowDuration < 0 {
		return nil, fmt.Errorf("live packager: negative window duration %v", cfg.WindowDuration)
	}
	if cfg.PublisherTimeout <= 0 {
		cfg.PublisherTimeout = DefaultPublisherTimeout
	}
	if cfg.DiscoverInterval <= 0 {
		cfg.DiscoverInterval = DefaultDiscoverInterval
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("live packager metrics: %w", err)
	}
	return &Packager{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "live-packager"),
		metrics: m,
		hint:    make(chan string, 64),
		tasks:   map[string]*streamTask{},
		quiet:   map[string]time.Time{},
	}, nil
}

// Watch asks a running packager to start on stream id now rather than at
// its next look at the metadata store. It never blocks; an unknown or
// finished stream is ignored.
func (p *Packager) Watch(id string) {
	select {
	case p.hint <- id:
	default:
	}
}

// Run packages streams until ctx ends, then stops every stream task
// without finishing the streams (another packager, or this one restarted,
// carries on) and returns nil.
func (p *Packager) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.DiscoverInterval)
	defer t.Stop()
	defer p.wg.Wait()
	p.discover(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.discover(ctx)
		case id := <-p.hint:
			st, err := p.cfg.Meta.GetStream(ctx, id)
			if err == nil && st.Kind == metastore.KindLive && !st.Status.Terminal() {
				p.ensure(ctx, st)
			}
		}
	}
}

// discover starts a task for every live stream in status created or live
// that has none.
func (p *Packager) discover(ctx context.Context) {
	for _, status := range []metastore.Status{metastore.StatusLive, metastore.StatusCreated} {
		after := ""
		for {
			streams, next, err := p.cfg.Meta.ListStreams(ctx, metastore.StreamFilter{
				Kind: metastore.KindLive, Status: status, Limit: 500, After: after,
			})
			if err != nil {
				if ctx.Err() == nil {
					p.log.Warn("list live streams", "err", err)
				}
				return
			}
			for _, st := range streams {
				p.ensure(ctx, st)
			}
			if next == "" {
				break
			}
			after = next
		}
	}
}

func (p *Packager) ensure(ctx context.Context, st metastore.Stream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil || p.tasks[st.ID] != nil {
		return
	}
	if until, ok := p.quiet[st.ID]; ok {
		if time.Now().Before(until) {
			return
		}
		delete(p.quiet, st.ID)
	}
	t := newStreamTask(p, st)
	p.tasks[st.ID] = t
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		finished := t.run(ctx)
		p.mu.Lock()
		delete(p.tasks, st.ID)
		if !finished && ctx.Err() == nil {
			p.quiet[st.ID] = time.Now().Add(restartDelay)
		}
		p.mu.Unlock()
	}()
}
