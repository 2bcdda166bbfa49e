package hlsresults

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// Where the renditions live below /hls/{stream}/.
const (
	subsDir = "subs/"
	metaDir = "meta/"
)

// renditionKind is the subtitles or the metadata rendition.
type renditionKind int

const (
	subsKind renditionKind = iota
	metaKind
)

func (k renditionKind) ext() string {
	if k == subsKind {
		return ".vtt"
	}
	return ".json"
}

func (k renditionKind) String() string {
	if k == subsKind {
		return "subtitles"
	}
	return "metadata"
}

// settled says up to where (ms on the job timeline) the results a
// rendition shows are in, whether they are all in, and whether the stream
// has a job for the rendition at all.
func (k renditionKind) settled(jobs []jobState) (ms int64, done, ok bool) {
	if k == subsKind {
		j, ok := captionJob(jobs)
		if !ok {
			return 0, false, false
		}
		ms := j.settled(CaptionEngine)
		return ms, ms == maxSettled, true
	}
	if len(jobs) == 0 {
		return 0, false, false
	}
	ms = metadataSettled(jobs)
	return ms, ms == maxSettled, true
}

// refRendition checks that ref names a media playlist of the stream that
// a rendition may mirror and returns the rendition of its segment rows:
// live.m3u8 or vod.m3u8 of a live stream (rendition ""), {rendition}/
// index.m3u8 of a title.
func refRendition(st metastore.Stream, ref string) (string, error) {
	if st.Kind == metastore.KindLive {
		if ref == "live.m3u8" || ref == "vod.m3u8" {
			return "", nil
		}
		return "", fmt.Errorf("live stream %s has no media playlist %s (live.m3u8 or vod.m3u8): %w", st.ID, ref, ErrNotFound)
	}
	r, file, ok := strings.Cut(ref, "/")
	if !ok || file != "index.m3u8" || !validName(r) {
		return "", fmt.Errorf("title %s has no media playlist %s ({rendition}/index.m3u8): %w", st.ID, ref, ErrNotFound)
	}
	return r, nil
}

// validName reports whether s can be a rendition name: 1-32 characters of
// A-Z, a-z, 0-9, '-' and '_'.
func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// playlist mirrors the media playlist ref as the subtitles or metadata
// playlist: same type, target duration, media sequence, discontinuity
// sequence, durations, discontinuities and dates, one segment per media
// segment named after its sequence number. Segments are listed in order
// while their results are in (see listed); the playlist ends when the
// media playlist has ended and so have the jobs.
func (s *Service) playlist(ctx context.Context, st metastore.Stream, kind renditionKind, ref string) (*Response, error) {
	rendition, err := refRendition(st, ref)
	if err != nil {
		return nil, err
	}
	jobs, err := s.progress(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	settledMs, done, ok := kind.settled(jobs)
	if !ok {
		return nil, nil // no job for this rendition: whatever the store has
	}
	media, err := s.mediaPlaylist(ctx, st.ID+"/"+ref)
	if err != nil {
		return nil, err
	}
	tl, err := s.timeline(ctx, st, rendition)
	if err != nil {
		return nil, err
	}
	rows, err := s.rows(ctx, st.ID, rendition, media)
	if err != nil {
		return nil, err
	}
	if n := len(media.Segments); n > 0 {
		if err := tl.checkBreaks(ctx, s.Meta, st.ID, int64(media.MediaSequence)+int64(n)-1); err != nil {
			return nil, err
		}
	}
	out := hls.MediaPlaylist{Type: media.Type, TargetDuration: media.TargetDurationSeconds(),
		MediaSequence: media.MediaSequence, DiscontinuitySequence: media.DiscontinuitySequence}
	now := s.Now()
	for i, seg := range media.Segments {
		seq := int64(media.MediaSequence) + int64(i)
		row, ok := rows[seq]
		if !ok {
			break // listed before its row was written: next time
		}
		sp := tl.span(row)
		ready := done || !sp.Mapped || sp.EndMs <= settledMs ||
			st.Kind == metastore.KindLive && !row.CreatedAt.IsZero() && now.Sub(row.CreatedAt) >= s.LiveDelay
		if !ready {
			break
		}
		out.Segments = append(out.Segments, hls.Segment{URI: strconv.FormatInt(seq, 10) + kind.ext(),
			Duration: seg.Duration, Discontinuity: seg.Discontinuity, ProgramDateTime: seg.ProgramDateTime})
	}
	out.Ended = media.Ended && done && len(out.Segments) == len(media.Segments)
	if out.Type == hls.VOD && !out.Ended {
		out.Type = hls.Event // a VOD playlist is final; this one still grows
	}
	body, err := out.Encode()
	if err != nil {
		return nil, fmt.Errorf("%s playlist of %s/%s: %w", kind, st.ID, ref, err)
	}
	cc := cacheGrowing
	if out.Ended {
		cc = cacheSettled
	}
	return &Response{Body: body, ContentType: TypePlaylist, CacheControl: cc}, nil
}

// mediaPlaylist reads and parses a stored media playlist.
func (s *Service) mediaPlaylist(ctx context.Context, key string) (*hls.MediaPlaylist, error) {
	data, err := s.readObject(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("media playlist %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	pl, err := hls.ParseMediaPlaylist(data)
	if err != nil {
		return nil, fmt.Errorf("media playlist %s: %w", key, err)
	}
	return pl, nil
}

// rows reads the segment rows of the playlist's segments, by sequence
// number.
func (s *Service) rows(ctx context.Context, streamID, rendition string, pl *hls.MediaPlaylist) (map[int64]metastore.Segment, error) {
	out := map[int64]metastore.Segment{}
	if len(pl.Segments) == 0 {
		return out, nil
	}
	rows, err := s.Meta.ListSegments(ctx, streamID, rendition, int64(pl.MediaSequence), len(pl.Segments))
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.Sequence] = r
	}
	return out, nil
}

// segmentRow parses "[{rendition}/]{sequence}{ext}" and reads the row of
// that media segment.
func (s *Service) segmentRow(ctx context.Context, st metastore.Stream, kind renditionKind, rest string) (metastore.Segment, error) {
	dir, file := "", rest
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		dir, file = rest[:i], rest[i+1:]
	}
	num, ok := strings.CutSuffix(file, kind.ext())
	seq, err := strconv.ParseInt(num, 10, 64)
	live := st.Kind == metastore.KindLive
	if !ok || err != nil || seq < 0 || num != strconv.FormatInt(seq, 10) || live != (dir == "") || dir != "" && !validName(dir) {
		return metastore.Segment{}, fmt.Errorf("%s has no %s segment %s: %w", st.ID, kind, rest, ErrNotFound)
	}
	rows, err := s.Meta.ListSegments(ctx, st.ID, dir, seq, 1)
	if err != nil {
		return metastore.Segment{}, err
	}
	if len(rows) == 0 || rows[0].Sequence != seq {
		return metastore.Segment{}, fmt.Errorf("%s has no media segment %d to match %s: %w", st.ID, seq, rest, ErrNotFound)
	}
	return rows[0], nil
}

// segment answers one subtitles or metadata segment.
func (s *Service) segment(ctx context.Context, st metastore.Stream, kind renditionKind, rest string) (*Response, error) {
	row, err := s.segmentRow(ctx, st, kind, rest)
	if err != nil {
		return nil, err
	}
	tl, err := s.timeline(ctx, st, row.Rendition)
	if err != nil {
		return nil, err
	}
	if err := tl.checkBreaks(ctx, s.Meta, st.ID, row.ChunkIndex); err != nil {
		return nil, err
	}
	sp := tl.span(row)
	jobs, err := s.progress(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	_, done, ok := kind.settled(jobs)
	if !ok {
		return nil, nil // no job for this rendition: whatever the store has
	}
	cc := "public, max-age=2"
	if done {
		cc = cacheSettled
	}
	if kind == subsKind {
		j, _ := captionJob(jobs)
		body, err := s.webVTT(ctx, j.job.ID, sp)
		if err != nil {
			return nil, err
		}
		return &Response{Body: body, ContentType: TypeWebVTT, CacheControl: cc}, nil
	}
	body, err := s.metadataSegment(ctx, st, jobs, row, sp)
	if err != nil {
		return nil, err
	}
	return &Response{Body: body, ContentType: TypeJSON, CacheControl: cc}, nil
}
