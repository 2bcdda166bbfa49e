package live

import (
	"fmt"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
)

// window is the DVR window of a live playlist: the latest segments, by
// count or by total duration, with the sequence numbers RFC 8216 derives
// from what left it.
type window struct {
	maxCount    int
	maxDuration time.Duration // when > 0, the window is by duration

	segs []metastore.Segment
	// discSeq counts the discontinuities that have left the window
	// (EXT-X-DISCONTINUITY-SEQUENCE).
	discSeq uint64
	// target is EXT-X-TARGETDURATION, fixed for the playlist's life (RFC
	// 8216 section 4.3.3.1 forbids changing it): the longest segment
	// allowed, rounded up to whole seconds. The segmenter keeps every
	// segment within it.
	target int
}

// newWindow makes a window of count segments, or of duration d when d is
// positive, whose playlist declares target seconds.
func newWindow(count int, d time.Duration, target int) *window {
	return &window{maxCount: count, maxDuration: d, target: max(target, 1)}
}

// ceilSeconds rounds d to the milliseconds EXTINF shows, then up to whole
// seconds (at least 1).
func ceilSeconds(d time.Duration) int {
	ms := d.Round(time.Millisecond).Milliseconds()
	return max(int((ms+999)/1000), 1)
}

// push appends a segment and returns those that left the window.
func (w *window) push(s metastore.Segment) []metastore.Segment {
	w.segs = append(w.segs, s)
	var gone []metastore.Segment
	for len(w.segs) > 1 && w.over() {
		out := w.segs[0]
		if out.Discontinuity {
			w.discSeq++
		}
		gone = append(gone, out)
		w.segs = w.segs[1:]
	}
	return gone
}

func (w *window) over() bool {
	if w.maxDuration > 0 {
		var total time.Duration
		for _, s := range w.segs {
			total += time.Duration(s.DurationUS) * time.Microsecond
		}
		return total > w.maxDuration
	}
	return len(w.segs) > w.maxCount
}

// first and last return the sequence numbers of the listed segments
// (-1 when empty).
func (w *window) first() int64 {
	if len(w.segs) == 0 {
		return -1
	}
	return w.segs[0].Sequence
}

func (w *window) last() int64 {
	if len(w.segs) == 0 {
		return -1
	}
	return w.segs[len(w.segs)-1].Sequence
}

// playlist is the live media playlist of the window. It does not declare
// EXT-X-INDEPENDENT-SEGMENTS: a publisher whose key frames are further
// apart than the longest segment gets segments that continue a group of
// pictures, and a playlist may not take a tag back once it declared it.
func (w *window) playlist() *hls.MediaPlaylist {
	p := &hls.MediaPlaylist{
		Type:                  hls.Live,
		TargetDuration:        w.target,
		DiscontinuitySequence: w.discSeq,
		Segments:              hlsSegments(w.segs),
	}
	if len(w.segs) > 0 {
		p.MediaSequence = uint64(w.segs[0].Sequence)
	}
	return p
}

// finalPlaylist lists every segment of a finished stream with
// EXT-X-ENDLIST and the live playlist's target duration. typ is hls.VOD
// for vod.m3u8 and hls.Live for the live playlist, which must not gain a
// playlist type it did not have.
func finalPlaylist(segs []metastore.Segment, typ hls.PlaylistType, target int) *hls.MediaPlaylist {
	p := &hls.MediaPlaylist{
		Type:           typ,
		TargetDuration: target,
		Segments:       hlsSegments(segs),
		Ended:          true,
	}
	if len(segs) > 0 {
		p.MediaSequence = uint64(segs[0].Sequence)
		// The first listed segment starts the timeline; a discontinuity
		// there has nothing to separate.
		p.Segments[0].Discontinuity = false
	}
	return p
}

func hlsSegments(segs []metastore.Segment) []hls.Segment {
	out := make([]hls.Segment, len(segs))
	for i, s := range segs {
		out[i] = hls.Segment{
			URI:             segmentURI(s.ChunkIndex),
			Duration:        time.Duration(s.DurationUS) * time.Microsecond,
			Discontinuity:   s.Discontinuity,
			ProgramDateTime: s.ProgramDateTime,
		}
	}
	return out
}

// segmentURI is a segment's URI relative to the stream's playlists.
func segmentURI(index int64) string { return fmt.Sprintf("seg_%d.ts", index) }

// segmentKey is a segment's object key.
func segmentKey(streamID string, index int64) string { return streamID + "/" + segmentURI(index) }

// Object keys of a live stream's playlists.
func livePlaylistKey(streamID string) string { return streamID + "/live.m3u8" }
func vodPlaylistKey(streamID string) string  { return streamID + "/vod.m3u8" }
