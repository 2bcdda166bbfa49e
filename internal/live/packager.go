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
	// DefaultMaxSegmentFactor times the segment duration is the default
	// longest segment (Config.MaxSegmentDuration).
	DefaultMaxSegmentFactor = 2
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
	// MaxSegmentDuration is the longest a segment may last (default 2 ×
	// SegmentDuration). Rounded up to whole seconds, it is the
	// EXT-X-TARGETDURATION the stream's playlists declare from the first
	// one on, and never change. A group of pictures that runs past it
	// (the publisher's key frames are further apart) is cut at the last
	// frame within it and continues in the next segment, which then
	// starts without a key frame; nothing is dropped. Such cuts are
	// counted in weir_live_long_segment_cuts_total. A larger value keeps
	// longer groups of pictures whole, at the price of latency: players
	// such as hls.js stay three target durations behind the live edge.
	MaxSegmentDuration time.Duration
	// TopicRetention, when positive, deletes a live stream's topic (its
	// raw media on the bus) this long after the stream ended; the VOD it
	// became lives in the object store. Zero keeps topics.
	TopicRetention time.Duration
	// Retention, when positive, deletes a segment's object once it has
	// left the live window and was listed longer ago than this; the VOD
	// playlist then lists the segments still stored (their metadata rows
	// stay). Zero keeps every segment, so the whole stream becomes VOD.
	Retention time.Duration
	// PartTarget is the longest part of a Low-Latency HLS stream (default
	// DefaultPartTarget, at least MinPartTarget, at most SegmentDuration);
	// streams whose details say "ll_hls": true (POST
	// /streams/start) are packaged as LL-HLS.
	PartTarget time.Duration
}

// Packager turns live streams into HLS. It reads every stream topic
// (protocol.StreamTopicPattern) as one member of the packagers' consumer
// group, so the group spreads the streams over the packager processes,
// one process per stream, and when a process dies its streams move to the
// others. Each live stream it owns runs through a calculator graph:
//
//	LiveTSDemux → LiveSegmenter → LiveSegmentWriter → LivePlaylistWriter
//
// Segments ({id}/seg_{n}.ts) are cut on key frames, written to the object
// store, read back and checked against their SHA-256 (rewritten on a
// mismatch), recorded in the metadata store and then listed in the rolling
// live playlist ({id}/live.m3u8). The stream moves to status live with its
// first segment.
//
// A stream ends when an end marker reaches its topic (POST
// /streams/{id}/end) or when its publisher has been gone for
// PublisherTimeout: the last partial segment is flushed, vod.m3u8 lists
// every segment with EXT-X-ENDLIST, live.m3u8 gets EXT-X-ENDLIST too, and
// the stream moves to status vod.
//
// Topics of streams that are not live streams in the metadata store
// (`weir ingest` topics, external adapters) and of streams that already
// ended are read and skipped. A packager that takes a stream over mid-way
// rebuilds its window from the segment rows and marks its first segment as
// a discontinuity: the segment that was being cut when the other one
// stopped is lost. Records written by a publisher that has lost the
// stream's publish lease (protocol.HeaderPublishToken) are dropped.
type Packager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu sync.Mutex
	// ctx is Run's context, which stream tasks run under.
	ctx context.Context
	// tasks are the live streams this packager owns and packages now.
	tasks map[string]*streamTask
	// skipped are topics this packager owns whose records need no
	// packaging (not a live stream, or ended), by stream id.
	skipped map[string]bool
}

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
	if cfg.MaxSegmentDuration <= 0 {
		cfg.MaxSegmentDuration = DefaultMaxSegmentFactor * cfg.SegmentDuration
	}
	if cfg.PartTarget == 0 {
		cfg.PartTarget = DefaultPartTarget
	}
	if cfg.PartTarget < MinPartTarget {
		return nil, fmt.Errorf("live packager: part target %v: want at least %v", cfg.PartTarget, MinPartTarget)
	}
	// A part never outlasts a segment.
	cfg.PartTarget = min(cfg.PartTarget, cfg.SegmentDuration)
	if cfg.MaxSegmentDuration < cfg.SegmentDuration {
		return nil, fmt.Errorf("live packager: max segment duration %v is below the segment duration %v", cfg.MaxSegmentDuration, cfg.SegmentDuration)
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("live packager metrics: %w", err)
	}
	return &Packager{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "live-packager"),
		metrics: m,
		tasks:   map[string]*streamTask{},
		skipped: map[string]bool{},
	}, nil
}

// packagerCommitInterval is how often the packager commits the offsets of
// the stream records it handled.
const packagerCommitInterval = 250 * time.Millisecond

// Run packages streams until ctx ends, then stops every stream task
// without finishing the streams (another packager, or this one restarted,
// carries on) and returns nil.
func (p *Packager) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	defer p.stopAll()
	swept := make(chan struct{})
	go func() { defer close(swept); p.sweepTopics(ctx) }()
	defer func() { <-swept }()
	pause := time.Second
	for ctx.Err() == nil {
		err := p.cfg.Bus.Consume(ctx, bus.ConsumeOptions{
			TopicPattern:  protocol.StreamTopicPattern + "|" + protocol.RenditionTopicPattern,
			Group:         p.cfg.Group,
			FromBeginning: true,
			// A stream's records trickle in a few per poll: commit four
			// times a second rather than after each poll. Redelivery
			// after a crash grows by at most that; segments and
			// playlists are written idempotently, so it changes nothing
			// a viewer sees (see docs/live.md).
			CommitInterval: packagerCommitInterval,
			OnAssigned:     p.assigned,
			OnRevoked:      p.revoked,
			Handler:        p.handle,
		})
		if ctx.Err() != nil || err == nil {
			return nil
		}
		p.log.Warn("live packager: consuming the stream topics failed; retrying", "err", err, "after", pause)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
	return nil
}

// assigned starts packaging the streams of topics given to this packager,
// so an idle publisher's timeout runs even before a record comes. A stream
// whose state cannot be read now is tried again at its next record.
func (p *Packager) assigned(topic string, _ []int32) {
	if s, ok := topicSource(topic); ok {
		if _, err := p.task(s); err != nil {
			p.log.Warn("live packager: cannot start a stream yet", "stream", s.key(), "err", err)
		}
	}
}

// source is what a topic the packager reads carries: a live stream, or
// one rendition of its ABR ladder (internal/liveladder writes those).
type source struct {
	id        string
	rendition string // "" for the stream itself
}

// key names the source in the packager's maps, logs and object keys:
// the stream id, or "{id}/{rendition}".
func (s source) key() string {
	if s.rendition == "" {
		return s.id
	}
	return s.id + "/" + s.rendition
}

// topic is the source's topic.
func (s source) topic() string {
	if s.rendition == "" {
		return protocol.StreamTopic(s.id)
	}
	return protocol.RenditionTopic(s.id, s.rendition)
}

// topicSource reads a stream or rendition topic's name.
func topicSource(topic string) (source, bool) {
	if id, ok := protocol.StreamIDOf(topic); ok {
		return source{id: id}, true
	}
	if id, name, ok := protocol.RenditionOf(topic); ok {
		return source{id: id, rendition: name}, true
	}
	return source{}, false
}

// revoked stops packaging the streams of topics taken away, and waits until
// their graphs stopped writing, before the new owner starts.
func (p *Packager) revoked(topic string, _ []int32) {
	s, ok := topicSource(topic)
	if !ok {
		return
	}
	p.mu.Lock()
	t := p.tasks[s.key()]
	delete(p.tasks, s.key())
	delete(p.skipped, s.key())
	p.mu.Unlock()
	if t != nil {
		t.stop()
		t.log.Info("live stream handed over to another packager")
	}
	// Its series move with the stream to the new owner.
	p.cfg.Bus.ForgetTopic(topic)
}

// handle routes a record of a stream topic to its stream's task. An error
// (the metadata store could not be read) stops the consumer, which
// redelivers the record after a pause.
func (p *Packager) handle(ctx context.Context, rec *bus.Record) error {
	s, ok := topicSource(rec.Topic)
	if !ok {
		return nil
	}
	t, err := p.task(s)
	if err != nil || t == nil {
		return err
	}
	return t.handle(ctx, rec)
}

// task returns the running task of stream id, starting one if the stream is
// a live stream that has not ended; nil when the stream needs none.
func (p *Packager) task(s source) (*streamTask, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.tasks[s.key()]; t != nil {
		return t, nil
	}
	if p.skipped[s.key()] || p.ctx == nil || p.ctx.Err() != nil {
		return nil, nil
	}
	t, err := startStreamTask(p.ctx, p, s)
	if err != nil {
		return nil, err
	}
	if t == nil {
		p.skipped[s.key()] = true
		return nil, nil
	}
	p.tasks[s.key()] = t
	return t, nil
}

// ended forgets a task whose run is over; a finished stream's later
// records are skipped.
func (p *Packager) ended(t *streamTask) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tasks[t.src.key()] != t {
		return
	}
	delete(p.tasks, t.src.key())
	if t.finished {
		p.skipped[t.src.key()] = true
		p.cfg.Bus.ForgetTopic(t.src.topic())
	}
}

// stopAll stops every task without finishing its stream.
func (p *Packager) stopAll() {
	p.mu.Lock()
	tasks := p.tasks
	p.tasks, p.skipped = map[string]*streamTask{}, map[string]bool{}
	p.mu.Unlock()
	for _, t := range tasks {
		t.stop()
	}
}
