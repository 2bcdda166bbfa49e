package live

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// llPlaylist is the low-latency side of a stream's playlist writer: the
// parts of the last few segments and of the segment in progress, and which
// init segment each segment uses.
type llPlaylist struct {
	partTarget time.Duration
	// parts are those still listed, in order.
	parts []llPart
	// nextPart is the part the preload hint names.
	nextPart int64
	// inits are the segments that start an init segment (init_{n}.mp4),
	// ascending: the first segment of the stream and every discontinuity.
	inits []int64
	// partRange is the first and last part of each segment in the window
	// written by this packager, so its parts can go when it leaves.
	partRange map[int64][2]int64
	// orphans are the parts an earlier packager of the stream wrote
	// (numbered below the first this one writes), found when this one
	// started; own counts the segments this one listed since. They are
	// deleted once none can be listed any more (dropOrphans).
	orphans []string
	own     int
}

func newLLPlaylist(env *streamEnv) *llPlaylist {
	l := &llPlaylist{partTarget: env.partTarget, nextPart: env.nextPart, partRange: map[int64][2]int64{}}
	for i, s := range env.segments {
		if i == 0 || s.Discontinuity {
			l.inits = append(l.inits, s.ChunkIndex)
		}
	}
	return l
}

// initOf is the init segment of segment n.
func (l *llPlaylist) initOf(n int64) int64 {
	i, found := slices.BinarySearch(l.inits, n)
	if found {
		return n
	}
	if i == 0 {
		return n
	}
	return l.inits[i-1]
}

func (l *llPlaylist) addParts(parts []llPart) {
	l.parts = append(l.parts, parts...)
	for _, pt := range parts {
		r, ok := l.partRange[pt.segment]
		if !ok {
			r[0] = pt.index
		}
		r[1] = pt.index
		l.partRange[pt.segment] = r
	}
	if n := len(parts); n > 0 {
		l.nextPart = parts[n-1].index + 1
	}
}

// listed notes segment n, published; parts of segments more than
// llPartSegments back are no longer listed.
func (l *llPlaylist) listed(n int64, disc bool) {
	if len(l.inits) == 0 || disc && l.inits[len(l.inits)-1] < n {
		l.inits = append(l.inits, n)
	}
	i := 0
	for i < len(l.parts) && l.parts[i].segment <= n-llPartSegments {
		i++
	}
	l.parts = l.parts[i:]
}

// decorate turns a window or final playlist of segment rows into an fMP4
// playlist: .m4s URIs, EXT-X-MAP where the init segment changes.
func (l *llPlaylist) decorate(p *hls.MediaPlaylist, segs []metastore.Segment) {
	for i := range p.Segments {
		n := segs[i].ChunkIndex
		p.Segments[i].URI = llSegmentURI(n)
		if i == 0 {
			p.Map = &hls.Map{URI: initURI(l.initOf(n))}
		} else if in := l.initOf(n); in != l.initOf(segs[i-1].ChunkIndex) {
			p.Segments[i].Map = &hls.Map{URI: initURI(in)}
		}
	}
	p.IndependentSegments = false
}

// live is the low-latency live playlist of window w.
func (l *llPlaylist) live(w *window, ended bool) *hls.MediaPlaylist {
	p := w.playlist()
	l.decorate(p, w.segs)
	p.PartTarget = l.partTarget
	p.ServerControl = &hls.ServerControl{
		CanBlockReload: true,
		PartHoldBack:   3 * l.partTarget.Round(time.Millisecond),
		CanSkipUntil:   time.Duration(6*w.target) * time.Second,
	}
	last := w.last()
	for i := range p.Segments {
		n := w.segs[i].ChunkIndex
		if n <= last-llPartSegments {
			continue
		}
		for _, pt := range l.parts {
			if pt.segment == n {
				p.Segments[i].Parts = append(p.Segments[i].Parts, hlsPart(pt))
			}
		}
	}
	if ended {
		return p
	}
	// The segment in progress: listed when it uses the last listed
	// segment's init segment (a new one needs EXT-X-MAP before it, which
	// comes with the segment).
	var trailing []hls.Part
	for _, pt := range l.parts {
		if pt.segment > last && (last < 0 || pt.init == l.initOf(last)) {
			trailing = append(trailing, hlsPart(pt))
		}
	}
	if last < 0 && len(trailing) > 0 {
		p.Map = &hls.Map{URI: initURI(l.parts[0].init)}
	}
	p.TrailingParts = trailing
	if last >= 0 || len(trailing) > 0 {
		p.PreloadHint = &hls.PreloadHint{Type: "PART", URI: partURI(l.nextPart)}
	}
	return p
}

func hlsPart(pt llPart) hls.Part {
	return hls.Part{URI: partURI(pt.index), Duration: pt.duration, Independent: pt.independent}
}

// livePlaylist is the stream's live playlist: standard or low-latency.
func (c *playlistCalculator) livePlaylist(ended bool) *hls.MediaPlaylist {
	if c.ll != nil {
		p := c.ll.live(c.win, ended)
		p.Ended = ended
		return p
	}
	p := c.win.playlist()
	p.Ended = ended
	return p
}

// vodPlaylist lists every segment of a finished stream.
func (c *playlistCalculator) vodPlaylist(segs []metastore.Segment) *hls.MediaPlaylist {
	p := finalPlaylist(segs, hls.VOD, c.win.target)
	if c.ll != nil {
		c.ll.decorate(p, segs)
	}
	return p
}

// publishParts lists new parts of the segment in progress.
func (c *playlistCalculator) publishParts(ctx context.Context, parts []llPart) error {
	if c.ll == nil || len(parts) == 0 {
		return nil
	}
	c.ll.addParts(parts)
	data, err := c.livePlaylist(false).Encode()
	if err != nil {
		return err
	}
	if err := putPlaylist(ctx, c.env.p.cfg.Objects, c.env.log, livePlaylistKey(c.env.prefix), data); err != nil {
		return err
	}
	c.partsListed(parts)
	return nil
}

// partsListed counts parts now readable in the live playlist and their
// publish latency.
func (c *playlistCalculator) partsListed(parts []llPart) {
	m, now := c.env.p.metrics, time.Now()
	for _, pt := range parts {
		m.parts.Inc()
		if !pt.closedAt.IsZero() {
			m.partLatency.Observe(max(now.Sub(pt.closedAt), 0).Seconds())
		}
	}
}

// dropParts deletes the parts of segments that left the live window: no
// playlist lists them any more (vod.m3u8 lists segments), and the segment
// holds the same bytes.
func (c *playlistCalculator) dropParts(ctx context.Context, gone []metastore.Segment) {
	if c.ll == nil {
		return
	}
	for _, s := range gone {
		r, ok := c.ll.partRange[s.ChunkIndex]
		if !ok {
			continue
		}
		delete(c.ll.partRange, s.ChunkIndex)
		for k := r[0]; k <= r[1]; k++ {
			key := partKey(c.env.prefix, k)
			if err := c.env.p.cfg.Objects.Delete(ctx, key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
				c.env.log.Warn("live stream: deleting a part that left the window", "key", key, "err", err)
			}
		}
	}
}

// findOrphans lists the parts an earlier packager left under the stream's
// prefix. Those numbered below nextPart belong to segments this packager
// does not know: they are kept in orphans for dropOrphans. Those from
// nextPart on are of the segment the earlier packager was cutting when it
// stopped; this packager writes its own parts under the same numbers, so
// the old bytes go at once, before a player or a cache can take them for
// the new ones. A store that cannot be listed leaves them (logged).
func (l *llPlaylist) findOrphans(ctx context.Context, env *streamEnv) {
	prefix := env.prefix + "/part_"
	infos, err := env.p.cfg.Objects.List(ctx, prefix)
	if err != nil {
		env.log.Warn("live stream: listing the parts an earlier packager left; they stay", "err", err)
		return
	}
	for _, inf := range infos {
		k, ok := partNumber(strings.TrimPrefix(inf.Key, env.prefix+"/"))
		switch {
		case !ok:
		case k < l.nextPart:
			l.orphans = append(l.orphans, inf.Key)
		default:
			if err := env.p.cfg.Objects.Delete(ctx, inf.Key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
				env.log.Warn("live stream: deleting a part of the segment an earlier packager did not finish", "key", inf.Key, "err", err)
			}
		}
	}
}

// partNumber is k of part_{k}.m4s.
func partNumber(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(strings.TrimPrefix(name, "part_"), ".m4s")
	if !ok || digits == "" {
		return 0, false
	}
	k, err := strconv.ParseInt(digits, 10, 64)
	return k, err == nil && k >= 0 && partURI(k) == name
}

// dropOrphans deletes the earlier packager's parts once this packager has
// listed more than llPartSegments segments of its own (its playlists never
// list them, and the earlier packager's last playlist is that old by
// then), or at once when the stream is finished.
func (c *playlistCalculator) dropOrphans(ctx context.Context, finished bool) {
	l := c.ll
	if l == nil || len(l.orphans) == 0 {
		return
	}
	if !finished {
		if l.own++; l.own <= llPartSegments {
			return
		}
	}
	left := l.orphans[:0]
	for _, key := range l.orphans {
		if err := c.env.p.cfg.Objects.Delete(ctx, key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			c.env.log.Warn("live stream: deleting a part an earlier packager left", "key", key, "err", err)
			left = append(left, key)
		}
	}
	l.orphans = left
}
