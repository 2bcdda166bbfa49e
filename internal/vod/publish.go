package vod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// Content types of the objects the pipeline writes.
const (
	typePlaylist = "application/vnd.apple.mpegurl"
	typeFMP4     = "video/iso.segment"
	typeInit     = "video/mp4"
	typeTS       = "video/mp2t"
)

// publisher uploads a title's segments as ffmpeg finishes them and keeps
// its playlists up to date: nothing until every rendition has a first
// segment, then EVENT playlists and the master playlist, growing with each
// segment, and finally EXT-X-ENDLIST appended to the EVENT playlists
// (RFC 8216 section 6.2.1: an EVENT playlist may only be appended to, so it
// never becomes PLAYLIST-TYPE:VOD), I-frame playlists and a master with
// measured bit rates.
type publisher struct {
	w       *Worker
	id      string
	format  string
	rs      []*published
	target  int // EXT-X-TARGETDURATION floor, stable while the playlist grows
	fps     float64
	started time.Time

	playable      bool
	firstPlayable time.Duration
}

// published is the upload state of one rendition.
type published struct {
	*rendition
	tracks        []hls.Track // fMP4: from init.mp4
	codecs        []string
	width, height int
	segs          []publishedSegment
	changed       bool
	// peak and average are the final BANDWIDTH and AVERAGE-BANDWIDTH.
	peak, average int64
}

type publishedSegment struct {
	name        string
	start, dur  time.Duration
	size        int64
	keyFrameEnd int64
}

func newPublisher(w *Worker, id string, rs []*rendition, info *media.Info, started time.Time) *publisher {
	p := &publisher{w: w, id: id, format: w.cfg.Format, started: started,
		target: predictTargetDuration(info, w.cfg.SegmentDuration)}
	if v, ok := info.Video(); ok {
		p.fps = v.FrameRate
	}
	for _, r := range rs {
		p.rs = append(p.rs, &published{rendition: r})
	}
	return p
}

// predictTargetDuration is the longest segment ffmpeg will cut for this
// source, rounded up to whole seconds: keyframes are forced at the first
// frame at or after each multiple of the segment duration, so a segment
// lasts at most ceil(seg × fps) frames (for audio-only titles, AAC frames
// of 1024 samples). Knowing it up front keeps TARGETDURATION constant
// while the EVENT playlist grows.
func predictTargetDuration(info *media.Info, seg time.Duration) int {
	longest := seg
	if v, ok := info.Video(); ok && v.FrameRate > 0 {
		frames := math.Ceil(seg.Seconds()*v.FrameRate - 1e-6)
		longest = time.Duration(frames / v.FrameRate * float64(time.Second))
	} else if a, ok := info.Audio(); ok && a.SampleRate > 0 {
		frames := math.Ceil(seg.Seconds()*float64(a.SampleRate)/1024 - 1e-6)
		longest = time.Duration(frames * 1024 / float64(a.SampleRate) * float64(time.Second))
	}
	ms := longest.Round(time.Millisecond).Milliseconds()
	return int((ms + 999) / 1000)
}

// poll publishes every segment ffmpeg has finished since the last call.
// With final set, ffmpeg has exited: every list must be complete.
func (p *publisher) poll(ctx context.Context, final bool) error {
	for _, r := range p.rs {
		data, err := os.ReadFile(filepath.Join(r.Dir, ffmpegList))
		if errors.Is(err, os.ErrNotExist) && !final {
			continue
		}
		if err != nil {
			return failf("ffmpeg wrote no segments for %s", r.Name)
		}
		list, ended, err := parseSegmentList(data)
		if err != nil {
			return fmt.Errorf("reading ffmpeg's segment list for %s: %w", r.Name, err)
		}
		if final && !ended {
			return failf("ffmpeg exited without finishing the segment list of %s", r.Name)
		}
		for i := len(r.segs); i < len(list); i++ {
			if err := p.publishSegment(ctx, r, i, list[i]); err != nil {
				return err
			}
		}
	}
	if !p.playable {
		for _, r := range p.rs {
			if len(r.segs) == 0 {
				return nil
			}
		}
		if err := p.writeMediaPlaylists(ctx, true, false); err != nil {
			return err
		}
		if err := p.writeMaster(ctx, false); err != nil {
			return err
		}
		p.playable = true
		p.firstPlayable = time.Since(p.started)
		p.w.m.firstPlayable.Observe(p.firstPlayable.Seconds())
		p.w.log.Info("vod playable", "stream", p.id, "after", p.firstPlayable.Round(time.Millisecond))
		return nil
	}
	return p.writeMediaPlaylists(ctx, false, false)
}

// publishSegment uploads segment i of r (and, before the first, fMP4's
// init.mp4), inspects it and records its row.
func (p *publisher) publishSegment(ctx context.Context, r *published, i int, l listedSegment) error {
	if want := segmentName(p.format, i); l.Name != want {
		return fmt.Errorf("ffmpeg listed %s as segment %d of %s, want %s", l.Name, i, r.Name, want)
	}
	if i == 0 && p.format == FormatFMP4 {
		if err := p.publishInit(ctx, r); err != nil {
			return err
		}
	}
	path := filepath.Join(r.Dir, l.Name)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("segment %d of %s: %w", i, r.Name, err)
	}
	var info hls.SegmentInfo
	if p.format == FormatFMP4 {
		info, err = hls.InspectFMP4(data, r.tracks)
	} else {
		info, err = hls.InspectTS(data)
		if err == nil && i == 0 {
			r.codecs, r.width, r.height = info.Codecs, info.Width, info.Height
		}
	}
	if err != nil {
		return fmt.Errorf("segment %d of %s: %w", i, r.Name, err)
	}
	if r.Video && !info.StartsWithKeyFrame {
		p.w.log.Warn("vod segment does not start with a key frame", "stream", p.id, "rendition", r.Name, "segment", i)
	}
	key := fmt.Sprintf("%s/%s/%s", p.id, r.Name, l.Name)
	ctype := typeTS
	if p.format == FormatFMP4 {
		ctype = typeFMP4
	}
	stored, err := objstore.PutBytes(ctx, p.w.cfg.Objects, key, data, ctype)
	if err != nil {
		return fmt.Errorf("uploading segment %d of %s/%s: %w", i, p.id, r.Name, err)
	}
	var start time.Duration
	if n := len(r.segs); n > 0 {
		start = r.segs[n-1].start + r.segs[n-1].dur
	}
	seg := metastore.Segment{
		StreamID:   p.id,
		Rendition:  r.Name,
		ChunkIndex: int64(i),
		Sequence:   int64(i),
		Key:        key,
		StartUS:    start.Microseconds(),
		DurationUS: l.Duration.Microseconds(),
		Size:       int64(len(data)),
		SHA256:     stored.SHA256,
		CreatedAt:  time.Now().UTC(),
	}
	if err := p.w.cfg.Meta.UpsertSegment(ctx, seg); err != nil {
		return fmt.Errorf("recording segment %d of %s/%s: %w", i, p.id, r.Name, err)
	}
	r.segs = append(r.segs, publishedSegment{name: l.Name, start: start, dur: l.Duration, size: int64(len(data)), keyFrameEnd: info.KeyFrameEnd})
	r.changed = true
	p.w.m.segments.Inc()
	p.w.m.segmentBytes.Add(float64(len(data)))
	_ = os.Remove(path) // uploaded; ffmpeg never reads it again
	return nil
}

func (p *publisher) publishInit(ctx context.Context, r *published) error {
	data, err := os.ReadFile(filepath.Join(r.Dir, "init.mp4"))
	if err != nil {
		return fmt.Errorf("init segment of %s: %w", r.Name, err)
	}
	if r.tracks, err = hls.ParseInit(data); err != nil {
		return fmt.Errorf("init segment of %s: %w", r.Name, err)
	}
	r.codecs = nil
	for _, kind := range []string{"video", "audio"} {
		for _, t := range r.tracks {
			if t.Kind == kind && t.Codec != "" {
				r.codecs = append(r.codecs, t.Codec)
				if kind == "video" {
					r.width, r.height = t.Width, t.Height
				}
			}
		}
	}
	key := fmt.Sprintf("%s/%s/init.mp4", p.id, r.Name)
	if _, err := p.w.cfg.Objects.Put(ctx, key, bytes.NewReader(data), int64(len(data)), typeInit); err != nil {
		return fmt.Errorf("uploading %s: %w", key, err)
	}
	return nil
}

// mediaPlaylist is r's EVENT playlist, with EXT-X-ENDLIST when ended.
// Every version of it starts with the same header (the target duration is
// predicted up front), so each is a prefix of the next.
func (p *publisher) mediaPlaylist(r *published, ended bool) hls.MediaPlaylist {
	pl := hls.MediaPlaylist{Type: hls.Event, TargetDuration: p.target, IndependentSegments: true, Ended: ended}
	if p.format == FormatFMP4 {
		pl.Map = &hls.Map{URI: "init.mp4"}
	}
	for _, s := range r.segs {
		pl.Segments = append(pl.Segments, hls.Segment{URI: s.name, Duration: s.dur})
	}
	return pl
}

// writeMediaPlaylists writes the index.m3u8 of every rendition that got
// new segments (all of them with force), with EXT-X-ENDLIST when ended.
// They keep the predicted target duration, so it does not change as they
// grow or end.
func (p *publisher) writeMediaPlaylists(ctx context.Context, force, ended bool) error {
	for _, r := range p.rs {
		if !r.changed && !force {
			continue
		}
		pl := p.mediaPlaylist(r, ended)
		if err := p.putPlaylist(ctx, r.Name+"/index.m3u8", &pl); err != nil {
			return err
		}
		r.changed = false
	}
	return nil
}

type encoder interface{ Encode() ([]byte, error) }

func (p *publisher) putPlaylist(ctx context.Context, rel string, pl encoder) error {
	data, err := pl.Encode()
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", p.id, rel, err)
	}
	key := p.id + "/" + rel
	if _, err := p.w.cfg.Objects.Put(ctx, key, bytes.NewReader(data), int64(len(data)), typePlaylist); err != nil {
		return fmt.Errorf("uploading %s: %w", key, err)
	}
	return nil
}

// writeMaster writes master.m3u8. While the title is still transcoding the
// BANDWIDTH of each variant is the larger of what its segments so far
// measure and the rung's nominal peak (a player must not under-estimate
// it); once final, BANDWIDTH and AVERAGE-BANDWIDTH are measured from every
// segment and the I-frame playlists are listed.
func (p *publisher) writeMaster(ctx context.Context, final bool) error {
	m := hls.MasterPlaylist{IndependentSegments: true}
	for _, r := range p.rs {
		// The peak is measured over runs of segments relative to the
		// target duration the rendition's playlist states.
		target := time.Duration(p.target) * time.Second
		if final {
			pl := p.mediaPlaylist(r, true)
			target = time.Duration(pl.TargetDurationSeconds()) * time.Second
		}
		sizes := r.sizes()
		v := hls.Variant{
			URI:       r.Name + "/index.m3u8",
			Bandwidth: hls.PeakBitrate(sizes, target),
			Codecs:    r.codecs,
			Width:     r.width,
			Height:    r.height,
			Name:      r.Name,
		}
		if r.Video {
			v.FrameRate = round3(p.fps)
		}
		if final {
			v.AverageBandwidth = hls.AverageBitrate(sizes)
			r.peak, r.average = v.Bandwidth, v.AverageBandwidth
		} else {
			nominal := r.Rung.AudioBitrate
			if r.Video {
				nominal += max(r.Rung.MaxBitrate, r.Rung.VideoBitrate)
			}
			v.Bandwidth = max(v.Bandwidth, nominal)
		}
		m.Variants = append(m.Variants, v)
		if final && r.Video && len(r.codecs) > 0 {
			iv := hls.IFrameVariant{
				URI:       r.Name + "/iframes.m3u8",
				Bandwidth: hls.PeakBitrate(r.keyFrameSizes(), target),
				Codecs:    r.codecs[:1],
				Width:     r.width,
				Height:    r.height,
			}
			iv.AverageBandwidth = hls.AverageBitrate(r.keyFrameSizes())
			m.IFrameVariants = append(m.IFrameVariants, iv)
		}
	}
	pl := p.mediaPlaylist(p.rs[0], true)
	m.Version = pl.MinVersion()
	return p.putPlaylist(ctx, "master.m3u8", &m)
}

// finish ends the title: EXT-X-ENDLIST appended to the media playlists,
// I-frame playlists (PLAYLIST-TYPE:VOD, written once) for video renditions,
// then the final master.
func (p *publisher) finish(ctx context.Context) error {
	if err := p.writeMediaPlaylists(ctx, true, true); err != nil {
		return err
	}
	for _, r := range p.rs {
		if !r.Video {
			continue
		}
		pl := hls.MediaPlaylist{Type: hls.VOD, IndependentSegments: true, IFramesOnly: true}
		if p.format == FormatFMP4 {
			pl.Map = &hls.Map{URI: "init.mp4"}
		}
		for _, s := range r.segs {
			if s.keyFrameEnd <= 0 {
				continue
			}
			// One IDR per segment: the I-frame lasts until the next
			// segment's.
			pl.Segments = append(pl.Segments, hls.Segment{URI: s.name, Duration: s.dur, ByteRange: &hls.ByteRange{Length: s.keyFrameEnd}})
		}
		if err := p.putPlaylist(ctx, r.Name+"/iframes.m3u8", &pl); err != nil {
			return err
		}
	}
	return p.writeMaster(ctx, true)
}

func (r *published) sizes() []hls.SegmentSize {
	out := make([]hls.SegmentSize, len(r.segs))
	for i, s := range r.segs {
		out[i] = hls.SegmentSize{Bytes: s.size, Duration: s.dur}
	}
	return out
}

func (r *published) keyFrameSizes() []hls.SegmentSize {
	out := make([]hls.SegmentSize, len(r.segs))
	for i, s := range r.segs {
		out[i] = hls.SegmentSize{Bytes: s.keyFrameEnd, Duration: s.dur}
	}
	return out
}

func (r *published) total() time.Duration {
	if n := len(r.segs); n > 0 {
		return r.segs[n-1].start + r.segs[n-1].dur
	}
	return 0
}

// summary is what the stream's details record about a rendition.
func (r *published) summary() map[string]any {
	out := map[string]any{
		"segments":          len(r.segs),
		"duration_s":        round3(r.total().Seconds()),
		"codecs":            r.codecs,
		"bandwidth":         r.peak,
		"average_bandwidth": r.average,
	}
	if r.Video {
		out["width"], out["height"] = r.width, r.height
	}
	return out
}
