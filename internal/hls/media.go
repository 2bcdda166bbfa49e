package hls

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PlaylistType is the EXT-X-PLAYLIST-TYPE of a media playlist.
type PlaylistType string

const (
	// Live playlists carry no EXT-X-PLAYLIST-TYPE: segments may be added
	// at the end and removed from the start (a sliding DVR window).
	Live PlaylistType = ""
	// Event playlists only grow: segments are appended, never removed. A
	// VOD title that is still transcoding is an event.
	Event PlaylistType = "EVENT"
	// VOD playlists never change; they always end with EXT-X-ENDLIST.
	VOD PlaylistType = "VOD"
)

// ByteRange is a sub-range of a resource: Length bytes starting at Offset.
type ByteRange struct {
	Length int64
	Offset int64
}

func (b ByteRange) String() string {
	return strconv.FormatInt(b.Length, 10) + "@" + strconv.FormatInt(b.Offset, 10)
}

// Map is the media initialization section (EXT-X-MAP) of fragmented MP4
// segments.
type Map struct {
	URI       string
	ByteRange *ByteRange
}

// Segment is one entry of a media playlist.
type Segment struct {
	// URI of the segment, usually relative to the playlist.
	URI string
	// Duration is written as EXTINF with millisecond precision.
	Duration time.Duration
	// Title is EXTINF's optional human-readable title.
	Title string
	// ByteRange, when set, limits the segment to part of URI
	// (EXT-X-BYTERANGE). I-frame playlists use it to point at the key
	// frame at the start of a segment.
	ByteRange *ByteRange
	// Discontinuity marks a change of encoding parameters or timeline
	// before this segment (EXT-X-DISCONTINUITY).
	Discontinuity bool
	// ProgramDateTime, when not zero, is the wall-clock time of the
	// segment's first sample (EXT-X-PROGRAM-DATE-TIME).
	ProgramDateTime time.Time
	// Map, when set, is a new EXT-X-MAP that applies from this segment on
	// (fMP4 after an encoder change).
	Map *Map
	// Parts are the segment's partial segments (EXT-X-PART, low-latency
	// HLS), listed before its URI.
	Parts []Part
}

// MediaPlaylist is a playlist of the segments of one rendition.
type MediaPlaylist struct {
	// Version is the EXT-X-VERSION to write. Zero, or a value lower than
	// the features used require, writes the minimal version (see
	// MinVersion).
	Version int
	// Type is EVENT, VOD or Live (no tag). A VOD playlist is always
	// written with EXT-X-ENDLIST.
	Type PlaylistType
	// TargetDuration is the EXT-X-TARGETDURATION in whole seconds. The
	// value written is the larger of this and the ceiling of the longest
	// segment's duration (as rounded for EXTINF), so a playlist is never
	// invalid because a segment ran long; live packagers set it up front
	// so it does not change while the playlist grows.
	TargetDuration int
	// MediaSequence is the sequence number of the first listed segment.
	MediaSequence uint64
	// DiscontinuitySequence counts the discontinuities that have slid out
	// of a live window before the first listed segment. It is written only
	// when not zero or when a segment has Discontinuity set.
	DiscontinuitySequence uint64
	// IndependentSegments writes EXT-X-INDEPENDENT-SEGMENTS: every segment
	// starts with a key frame and decodes without the ones before it.
	IndependentSegments bool
	// IFramesOnly writes EXT-X-I-FRAMES-ONLY: every segment is a single
	// intra-coded frame, usually a byte range of a media segment, and its
	// duration lasts until the next I-frame.
	IFramesOnly bool
	// Map is the EXT-X-MAP of fragmented MP4 segments.
	Map      *Map
	Segments []Segment
	// Ended writes EXT-X-ENDLIST: no segment will be added.
	Ended bool

	// Low-latency HLS (RFC 8216bis); see llhls.go.

	// PartTarget, when positive, writes EXT-X-PART-INF:PART-TARGET.
	PartTarget time.Duration
	// ServerControl writes EXT-X-SERVER-CONTROL.
	ServerControl *ServerControl
	// SkippedSegments, when positive, writes EXT-X-SKIP: this is a delta
	// update that leaves out that many segments after MediaSequence.
	SkippedSegments uint64
	// TrailingParts are the parts of the segment in progress, listed after
	// the last complete segment.
	TrailingParts []Part
	// PreloadHint writes EXT-X-PRELOAD-HINT after the trailing parts.
	PreloadHint *PreloadHint
	// RenditionReports are written last (EXT-X-RENDITION-REPORT).
	RenditionReports []RenditionReport
}

// MinVersion is the lowest EXT-X-VERSION that supports the features p
// uses (RFC 8216 section 7): 3 for decimal EXTINF durations, 4 for byte
// ranges and I-frame playlists, 5 for EXT-X-MAP in an I-frame playlist and
// 6 for EXT-X-MAP in any other playlist.
func (p *MediaPlaylist) MinVersion() int {
	v := 3
	if p.IFramesOnly || p.Map != nil && p.Map.ByteRange != nil {
		v = 4
	}
	for _, s := range p.Segments {
		if s.ByteRange != nil {
			v = max(v, 4)
			break
		}
	}
	if p.Map != nil {
		if p.IFramesOnly {
			v = max(v, 5)
		} else {
			v = max(v, 6)
		}
	}
	for _, s := range p.Segments {
		if s.Map != nil {
			v = max(v, 6)
		}
	}
	if p.SkippedSegments > 0 {
		v = max(v, 9) // EXT-X-SKIP (RFC 8216bis)
	}
	return v
}

// TargetDurationSeconds is the EXT-X-TARGETDURATION Encode writes: the
// larger of p.TargetDuration and the ceiling of the longest segment, with
// durations rounded to the milliseconds EXTINF shows (so a 4.0004 s segment,
// written as 4.000, needs 4, not 5). An empty playlist gets at least 1.
func (p *MediaPlaylist) TargetDurationSeconds() int {
	t := max(p.TargetDuration, 1)
	for _, s := range p.Segments {
		ms := s.Duration.Round(time.Millisecond).Milliseconds()
		if c := int((ms + 999) / 1000); c > t {
			t = c
		}
	}
	return t
}

// Encode writes the playlist. It fails, writing nothing, when a field
// cannot be represented legally: an empty or multi-line URI, a negative
// duration, a title or URI that would break the line structure.
func (p *MediaPlaylist) Encode() ([]byte, error) {
	if p.Type != Live && p.Type != Event && p.Type != VOD {
		return nil, fmt.Errorf("playlist type %q: want EVENT, VOD or empty", string(p.Type))
	}
	if p.Map != nil {
		if err := checkQuoted("EXT-X-MAP URI", p.Map.URI); err != nil {
			return nil, err
		}
		if err := checkRange("EXT-X-MAP", p.Map.ByteRange); err != nil {
			return nil, err
		}
	}
	for i, s := range p.Segments {
		if err := checkURI(s.URI); err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		if s.Duration < 0 {
			return nil, fmt.Errorf("segment %d (%s): negative duration %v", i, s.URI, s.Duration)
		}
		if strings.ContainsAny(s.Title, "\r\n") {
			return nil, fmt.Errorf("segment %d (%s): title contains a line break", i, s.URI)
		}
		if err := checkRange(fmt.Sprintf("segment %d (%s)", i, s.URI), s.ByteRange); err != nil {
			return nil, err
		}
	}

	if err := p.checkLowLatency(); err != nil {
		return nil, err
	}

	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", max(p.Version, p.MinVersion()))
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", p.TargetDurationSeconds())
	p.writeLowLatencyHeader(&b)
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", p.MediaSequence)
	if p.DiscontinuitySequence > 0 || p.hasDiscontinuity() {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", p.DiscontinuitySequence)
	}
	if p.Type != Live {
		fmt.Fprintf(&b, "#EXT-X-PLAYLIST-TYPE:%s\n", p.Type)
	}
	if p.IFramesOnly {
		b.WriteString("#EXT-X-I-FRAMES-ONLY\n")
	}
	if p.IndependentSegments {
		b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	}
	if p.Map != nil {
		writeMap(&b, p.Map)
	}
	if p.SkippedSegments > 0 {
		fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", p.SkippedSegments)
	}
	for _, s := range p.Segments {
		if s.Discontinuity {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.Map != nil {
			writeMap(&b, s.Map)
		}
		if !s.ProgramDateTime.IsZero() {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", FormatDateTime(s.ProgramDateTime))
		}
		writeParts(&b, s.Parts)
		fmt.Fprintf(&b, "#EXTINF:%s,%s\n", FormatDuration(s.Duration), s.Title)
		if s.ByteRange != nil {
			fmt.Fprintf(&b, "#EXT-X-BYTERANGE:%s\n", s.ByteRange)
		}
		b.WriteString(s.URI)
		b.WriteByte('\n')
	}
	p.writeLowLatencyTrailer(&b)
	if p.Ended || p.Type == VOD {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.Bytes(), nil
}

func writeMap(b *bytes.Buffer, m *Map) {
	fmt.Fprintf(b, "#EXT-X-MAP:URI=\"%s\"", m.URI)
	if m.ByteRange != nil {
		fmt.Fprintf(b, ",BYTERANGE=\"%s\"", m.ByteRange)
	}
	b.WriteByte('\n')
}

func (p *MediaPlaylist) hasDiscontinuity() bool {
	for _, s := range p.Segments {
		if s.Discontinuity {
			return true
		}
	}
	return false
}

// FormatDuration writes d in seconds with exactly three decimals, the
// EXTINF precision weir uses everywhere ("4.000", "0.033").
func FormatDuration(d time.Duration) string {
	ms := d.Round(time.Millisecond).Milliseconds()
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// FormatDateTime writes t as EXT-X-PROGRAM-DATE-TIME wants it: ISO 8601
// with milliseconds and the time zone, in UTC ("2025-01-02T03:04:05.678Z").
func FormatDateTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func checkURI(uri string) error {
	if uri == "" {
		return fmt.Errorf("empty URI")
	}
	if strings.ContainsAny(uri, "\r\n") || strings.HasPrefix(uri, "#") {
		return fmt.Errorf("URI %q cannot be written on one playlist line", uri)
	}
	return nil
}

// checkQuoted validates a value written as an attribute quoted-string,
// which may not hold a double quote or a line break.
func checkQuoted(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.ContainsAny(v, "\"\r\n") {
		return fmt.Errorf("%s %q contains a double quote or line break", what, v)
	}
	return nil
}

func checkRange(what string, r *ByteRange) error {
	if r != nil && (r.Length <= 0 || r.Offset < 0) {
		return fmt.Errorf("%s: byte range %d@%d must have a positive length and a non-negative offset", what, r.Length, r.Offset)
	}
	return nil
}
