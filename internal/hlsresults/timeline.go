package hlsresults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// Timestamp jumps between two consecutive live segments beyond these end
// the mapping to the job's timeline (the packager's own rule for a
// discontinuity within a session).
const (
	jumpBack    = time.Second
	jumpForward = 10 * time.Second
)

// maxSegmentBytes bounds how much of a segment is read to find its first
// timestamps.
const maxSegmentBytes = 64 << 20

// Timeline ties the segments of one rendition of a stream to the timeline
// of the stream's jobs, on which results are written (milliseconds from
// the first timestamp of the job's source, see chunker.Chunk).
//
// A VOD title's job reads the uploaded original; the transcoder's
// segments start at zero on the playlist and their timestamps run on from
// the first video frame's presentation time P0. The first video frame is
// at time 0 of the original, so a segment starting at S on the playlist
// (its row's StartUS) is at S on the job's timeline and its first frame is
// presented at P0 + S.
//
// A live stream's job reads the stream's topic from its first record; its
// timeline starts at the earliest timestamp E of the first segment (the
// packager passes the publisher's timestamps through), so a segment whose
// first key frame has PTS P (its row's StartUS) is at P − E on the job's
// timeline. That holds however late the job was started, and still after
// the stream became VOD. It holds until the publisher's timeline breaks
// (a reconnect, a timestamp jump): a job reads only the first publisher
// session, so segments from the first break on get no results.
type Timeline struct {
	live   bool
	origin time.Duration // P0 (VOD) or E (live)

	mu        sync.Mutex
	checkedTo int64         // live: rows below this index are checked for breaks
	lastEnd   time.Duration // live: StartUS + DurationUS of the last checked row
	breakAt   int64         // live: first index after a break, -1 for none
}

// Span is where one segment lies on both clocks.
type Span struct {
	// PTS is the presentation time of the segment's first frame on the
	// segment's own clock (X-TIMESTAMP-MAP's MPEGTS).
	PTS time.Duration
	// StartMs and EndMs are the segment on the job's timeline.
	StartMs, EndMs int64
	// Mapped is false when the segment cannot be placed on the job's
	// timeline (after a live timeline break): it gets no results.
	Mapped bool
}

// MPEGTS is PTS in 90 kHz ticks, modulo 2^33 as MPEG-TS timestamps wrap.
func (s Span) MPEGTS() int64 {
	ticks := (s.PTS.Nanoseconds()*9 + 50_000) / 100_000
	return ((ticks % (1 << 33)) + (1 << 33)) % (1 << 33)
}

// span places a segment row.
func (tl *Timeline) span(row metastore.Segment) Span {
	start := time.Duration(row.StartUS) * time.Microsecond
	dur := time.Duration(row.DurationUS) * time.Microsecond
	if !tl.live {
		ms := roundMs(start)
		return Span{PTS: tl.origin + start, StartMs: ms, EndMs: ms + roundMs(dur), Mapped: true}
	}
	ms := roundMs(start - tl.origin)
	tl.mu.Lock()
	mapped := tl.breakAt < 0 || row.ChunkIndex < tl.breakAt
	tl.mu.Unlock()
	return Span{PTS: start, StartMs: ms, EndMs: ms + roundMs(dur), Mapped: mapped}
}

// checkBreaks reads the live rows up to index (inclusive) not checked yet
// and records the first timeline break among them.
func (tl *Timeline) checkBreaks(ctx context.Context, meta metastore.Store, streamID string, index int64) error {
	if !tl.live {
		return nil
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.breakAt >= 0 || index < tl.checkedTo {
		return nil
	}
	rows, err := meta.ListSegments(ctx, streamID, "", tl.checkedTo, int(index-tl.checkedTo+1))
	if err != nil {
		return err
	}
	for _, r := range rows {
		start := time.Duration(r.StartUS) * time.Microsecond
		if tl.checkedTo > 0 && (start < tl.lastEnd-jumpBack || start > tl.lastEnd+jumpForward) {
			tl.breakAt = r.ChunkIndex
			return nil
		}
		tl.lastEnd = start + time.Duration(r.DurationUS)*time.Microsecond
		tl.checkedTo = r.ChunkIndex + 1
	}
	return nil
}

func roundMs(d time.Duration) int64 { return d.Round(time.Millisecond).Milliseconds() }

// timeline returns the Timeline of a rendition ("" for a live stream's
// single one), reading its first segment once.
func (s *Service) timeline(ctx context.Context, st metastore.Stream, rendition string) (*Timeline, error) {
	key := st.ID + "/" + rendition
	if tl, ok := s.lines.get(key); ok {
		return tl, nil
	}
	rows, err := s.Meta.ListSegments(ctx, st.ID, rendition, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("stream %s has no segments yet: %w", st.ID, ErrNotFound)
	}
	first := rows[0]
	tl := &Timeline{live: st.Kind == metastore.KindLive, breakAt: -1}
	starts, err := s.segmentStarts(ctx, first.Key, path.Join(st.ID, rendition, "init.mp4"))
	switch {
	case err == nil && tl.live:
		tl.origin = starts.Earliest()
	case err == nil:
		tl.origin = starts.First() - time.Duration(first.StartUS)*time.Microsecond
	case tl.live && errors.Is(err, objstore.ErrNotFound):
		// Deleted by retention: the row's key frame time is the best
		// estimate left (audio before it is usually a frame or two).
		tl.origin = time.Duration(first.StartUS) * time.Microsecond
	default:
		return nil, fmt.Errorf("reading the first timestamps of %s: %w", first.Key, err)
	}
	s.lines.put(key, tl)
	return tl, nil
}

// segmentStarts reads a stored segment's first timestamps; an fMP4
// segment is read with the init section at initKey.
func (s *Service) segmentStarts(ctx context.Context, key, initKey string) (hls.Starts, error) {
	data, err := s.readObject(ctx, key)
	if err != nil {
		return hls.Starts{}, err
	}
	if !strings.HasSuffix(key, ".m4s") && !strings.HasSuffix(key, ".mp4") {
		return hls.TSStarts(data)
	}
	init, err := s.readObject(ctx, initKey)
	if err != nil {
		return hls.Starts{}, err
	}
	tracks, err := hls.ParseInit(init)
	if err != nil {
		return hls.Starts{}, err
	}
	return hls.FMP4Starts(data, tracks)
}

// readObject reads an object of at most maxSegmentBytes.
func (s *Service) readObject(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := s.Objects.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSegmentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSegmentBytes {
		return nil, fmt.Errorf("object %s is larger than %d bytes", key, maxSegmentBytes)
	}
	return data, nil
}
