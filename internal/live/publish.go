package live

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// latencySamples is how many recent publish latencies a stream keeps for
// the p50/p99 in its metadata.
const latencySamples = 1024

// Details is the JSON the packager keeps in a live stream's Details column
// (GET /streams/{id}/metadata shows it as "details").
type Details struct {
	// Window describes the segments live.m3u8 lists.
	Window WindowDetails `json:"window"`
	// TargetDurationSeconds is the playlist's EXT-X-TARGETDURATION.
	TargetDurationSeconds int `json:"target_duration_seconds"`
	// Latency summarises the publish latency of the stream's recent
	// segments (weir_live_segment_publish_latency_seconds).
	Latency LatencyDetails `json:"latency_ms"`
	// LastSegmentAt is when the newest segment was listed.
	LastSegmentAt time.Time `json:"last_segment_at,omitzero"`
	// LivePlaylist and VODPlaylist are object keys; VODPlaylist is set
	// once the stream ended.
	LivePlaylist string `json:"live_playlist"`
	VODPlaylist  string `json:"vod_playlist,omitempty"`
	// FirstRetained is the first segment still stored when retention
	// deletes old ones.
	FirstRetained int64 `json:"first_retained_sequence"`
	// LiveSettings says whether the stream is packaged as Low-Latency
	// HLS (fMP4 parts); POST /streams/start sets it. NextPart is the
	// number of the next part, so a packager taking the stream over goes
	// on from it, and PartTargetMS the part target the playlist declares.
	metastore.LiveSettings
	NextPart     int64 `json:"next_part,omitempty"`
	PartTargetMS int64 `json:"part_target_ms,omitempty"`
}

// WindowDetails describes the DVR window.
type WindowDetails struct {
	FirstSequence         int64   `json:"first_sequence"`
	LastSequence          int64   `json:"last_sequence"`
	Segments              int     `json:"segments"`
	DurationSeconds       float64 `json:"duration_seconds"`
	DiscontinuitySequence uint64  `json:"discontinuity_sequence"`
}

// LatencyDetails are publish latency percentiles in milliseconds.
type LatencyDetails struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
}

type playlistCalculator struct {
	env *streamEnv
	win *window

	gaps, checksumFailures int64
	latencies              []time.Duration // ring of the latest samples
	latencyNext            int
	lastSegmentAt          time.Time
	// retired are segments that left the window and still exist;
	// firstRetained is the first index still stored.
	retired       []metastore.Segment
	firstRetained int64
	// ll is set for a low-latency stream (ll_playlist.go).
	ll *llPlaylist
}

func (c *playlistCalculator) Open(cc *graph.CalculatorContext) error {
	c.env = cc.InputSidePacket("ENV").(*streamEnv)
	cfg := c.env.p.cfg
	c.win = newWindow(cfg.Window, cfg.WindowDuration, c.env.target)
	c.gaps, c.checksumFailures = c.env.stream.Gaps, c.env.stream.ChecksumFailures
	var d Details
	if c.env.rendition == "" && len(c.env.stream.Details) > 0 && json.Unmarshal(c.env.stream.Details, &d) == nil {
		c.firstRetained = d.FirstRetained
	}
	for _, s := range c.env.segments {
		if s.ChunkIndex < c.firstRetained {
			continue
		}
		c.retired = append(c.retired, c.win.push(s)...)
	}
	if c.env.ll {
		c.ll = newLLPlaylist(c.env)
		c.ll.findOrphans(cc.Context(), c.env)
	}
	return nil
}

func (c *playlistCalculator) Process(cc *graph.CalculatorContext) error {
	b, ok := graph.As[*storedBatch](cc.Input("STORED"))
	if !ok {
		return nil
	}
	ctx := cc.Context()
	if len(b.segs) == 0 {
		if err := c.publishParts(ctx, b.parts); err != nil {
			return err
		}
	} else if c.ll != nil {
		c.ll.addParts(b.parts)
	}
	for _, s := range b.segs {
		if err := c.publish(ctx, s); err != nil {
			return err
		}
	}
	if len(b.segs) > 0 && c.ll != nil {
		c.partsListed(b.parts)
	}
	if b.end {
		return c.finish(ctx)
	}
	return nil
}

func (c *playlistCalculator) Close(*graph.CalculatorContext) error { return nil }

// publish lists one verified segment: the live playlist first (that is
// what viewers wait for), then the segment row and the stream row.
func (c *playlistCalculator) publish(ctx context.Context, s *storedSegment) error {
	env, m := c.env, c.env.p.metrics
	c.checksumFailures += int64(s.checksumFailures)
	if s.cutSegment == nil {
		// Given up after checksum failures: only the count changes.
		return c.updateStream(ctx, metastore.StatusLive, nil)
	}
	now := time.Now()
	row := metastore.Segment{
		StreamID:        env.id,
		Rendition:       env.rendition,
		ChunkIndex:      s.index,
		Sequence:        s.index,
		Key:             s.key,
		StartUS:         s.Start.Microseconds(),
		DurationUS:      s.Duration.Microseconds(),
		Size:            s.size,
		SHA256:          s.sha256,
		Discontinuity:   s.Discontinuity,
		ProgramDateTime: s.ProgramDateTime,
		CreatedAt:       now,
	}
	gone := c.win.push(row)
	if c.ll != nil {
		c.ll.listed(s.index, s.Discontinuity)
	}
	data, err := c.livePlaylist(false).Encode()
	if err != nil {
		return err
	}
	if err := putPlaylist(ctx, env.p.cfg.Objects, env.log, livePlaylistKey(env.prefix), data); err != nil {
		return err
	}
	listed := time.Now()
	c.lastSegmentAt = listed
	var lat time.Duration
	if !s.ClosedAt.IsZero() {
		lat = max(listed.Sub(s.ClosedAt), 0)
		m.latency.Observe(lat.Seconds())
		c.addLatency(lat)
	}
	env.log.Debug("live segment listed", "sequence", s.index, "duration", s.Duration,
		"bytes", s.size, "discontinuity", s.Discontinuity, "latency", lat)
	m.segments.Inc()
	m.bytes.Add(float64(s.size))
	m.lastSegment.WithLabelValues(env.prefix).Set(float64(listed.UnixNano()) / 1e9)
	if s.Discontinuity {
		c.gaps++
		m.gaps.Inc()
	}
	if err := retry(ctx, env.log, "recording a segment", func() error {
		return env.p.cfg.Meta.UpsertSegment(ctx, row)
	}); err != nil {
		return err
	}
	c.retire(ctx, gone)
	c.dropParts(ctx, gone)
	c.dropOrphans(ctx, false)
	return c.updateStream(ctx, metastore.StatusLive, nil)
}

func (c *playlistCalculator) addLatency(d time.Duration) {
	if len(c.latencies) < latencySamples {
		c.latencies = append(c.latencies, d)
		return
	}
	c.latencies[c.latencyNext] = d
	c.latencyNext = (c.latencyNext + 1) % latencySamples
}

// retire applies the retention setting to segments that left the window.
func (c *playlistCalculator) retire(ctx context.Context, gone []metastore.Segment) {
	ret := c.env.p.cfg.Retention
	if ret <= 0 {
		return
	}
	c.retired = append(c.retired, gone...)
	cutoff := time.Now().Add(-ret)
	for len(c.retired) > 0 {
		s := c.retired[0]
		// CreatedAt is when the segment was listed: wall-clock time,
		// whatever the publisher's media clock says.
		if s.CreatedAt.After(cutoff) {
			break
		}
		err := c.env.p.cfg.Objects.Delete(ctx, s.Key)
		if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			c.env.log.Warn("live stream: deleting an expired segment", "key", s.Key, "err", err)
			break
		}
		c.retired = c.retired[1:]
		c.firstRetained = s.ChunkIndex + 1
	}
}

// details summarises the stream for its Details column.
func (c *playlistCalculator) details(vod string) json.RawMessage {
	var dur time.Duration
	for _, s := range c.win.segs {
		dur += time.Duration(s.DurationUS) * time.Microsecond
	}
	d := Details{
		Window: WindowDetails{
			FirstSequence:         c.win.first(),
			LastSequence:          c.win.last(),
			Segments:              len(c.win.segs),
			DurationSeconds:       dur.Seconds(),
			DiscontinuitySequence: c.win.discSeq,
		},
		TargetDurationSeconds: c.win.target,
		LastSegmentAt:         c.lastSegmentAt.UTC(),
		LivePlaylist:          livePlaylistKey(c.env.id),
		VODPlaylist:           vod,
		FirstRetained:         c.firstRetained,
	}
	if c.ll != nil {
		d.LowLatency, d.NextPart, d.PartTargetMS = true, c.ll.nextPart, c.ll.partTarget.Milliseconds()
	}
	if n := len(c.latencies); n > 0 {
		sorted := slices.Clone(c.latencies)
		slices.Sort(sorted)
		ms := func(q float64) float64 {
			i := min(int(q*float64(n)), n-1)
			return float64(sorted[i].Microseconds()) / 1000
		}
		d.Latency = LatencyDetails{P50: ms(0.50), P99: ms(0.99), Max: ms(1), Samples: n}
	}
	raw, _ := json.Marshal(d)
	return raw
}

// updateStream writes the stream row: status, counters and details.
func (c *playlistCalculator) updateStream(ctx context.Context, to metastore.Status, extra func(*metastore.Stream)) error {
	if c.env.rendition != "" {
		// The stream's row is the stream's packager's; a rendition's
		// state is its segment rows.
		return nil
	}
	vod := ""
	if to == metastore.StatusVOD {
		vod = vodPlaylistKey(c.env.id)
	}
	details := c.details(vod)
	err := retry(ctx, c.env.log, "updating the stream", func() error {
		_, err := c.env.p.cfg.Meta.TransitionStatus(ctx, c.env.id, to, func(s *metastore.Stream) {
			s.Gaps = c.gaps
			s.ChecksumFailures = c.checksumFailures
			s.Details = details
			if extra != nil {
				extra(s)
			}
		})
		if errors.Is(err, metastore.ErrConflict) {
			// The stream was ended or failed elsewhere (an end request
			// for a stream that never went live); nothing to move.
			c.env.log.Info("live stream: status not updated", "to", to, "err", err)
			return nil
		}
		return err
	})
	return err
}

// finish writes the final playlists and moves the stream to vod. A stream
// that failed meanwhile is left as it is.
func (c *playlistCalculator) finish(ctx context.Context) error {
	env := c.env
	if st, err := env.p.cfg.Meta.GetStream(ctx, env.id); err == nil && st.Status == metastore.StatusFailed {
		env.log.Info("live stream failed; not writing VOD playlists")
		return nil
	}
	var segs []metastore.Segment
	if err := retry(ctx, env.log, "listing the segments", func() (err error) {
		segs, err = env.p.cfg.Meta.ListSegments(ctx, env.id, env.rendition, c.firstRetained, 0)
		return err
	}); err != nil {
		return err
	}
	vod, err := c.vodPlaylist(segs).Encode()
	if err != nil {
		return err
	}
	if err := putPlaylist(ctx, env.p.cfg.Objects, env.log, vodPlaylistKey(env.prefix), vod); err != nil {
		return err
	}
	// The live playlist keeps its window and gains EXT-X-ENDLIST: a
	// client reloading it must never see EXT-X-MEDIA-SEQUENCE or
	// EXT-X-DISCONTINUITY-SEQUENCE go back (RFC 8216 6.2.1). The whole
	// stream is in vod.m3u8.
	live, err := c.livePlaylist(true).Encode()
	if err != nil {
		return err
	}
	if err := putPlaylist(ctx, env.p.cfg.Objects, env.log, livePlaylistKey(env.prefix), live); err != nil {
		return err
	}
	// The window is now every segment.
	c.win.segs = segs
	c.win.discSeq = 0
	c.dropOrphans(ctx, true)
	return c.updateStream(ctx, metastore.StatusVOD, func(s *metastore.Stream) {
		s.ManifestPath = vodPlaylistKey(env.id)
	})
}
