package hlsresults

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/results"
)

// webVTT writes the subtitles segment of one media segment: an
// X-TIMESTAMP-MAP tying LOCAL 00:00:00.000 to the segment's first
// presentation timestamp, then the cues of the job's transcript that
// overlap the segment, clipped to it and timed from its start. A caption
// that spans a segment boundary is split there: each segment shows its
// part, so players that keep every cue they load (and those that drop
// repeats) show it once, without a gap.
func (s *Service) webVTT(ctx context.Context, jobID string, sp Span) ([]byte, error) {
	var cues []results.Cue
	if sp.Mapped {
		var err error
		if cues, err = s.segmentCues(ctx, jobID, sp); err != nil {
			return nil, err
		}
	}
	header := fmt.Sprintf("X-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:00:00:00.000", sp.MPEGTS())
	var b bytes.Buffer
	if err := results.WriteWebVTT(&b, cues, header, sp.StartMs); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// segmentCues reads the transcript around the segment and returns its
// cues clipped to [sp.StartMs, sp.EndMs). Results are read from MinCueMs
// before the segment (a zero-length utterance is shown that long), and a
// cue's end is cut at the next cue's start as results.Cues does over the
// whole transcript: a next cue that starts after the segment cannot
// change what the segment shows.
func (s *Service) segmentCues(ctx context.Context, jobID string, sp Span) ([]results.Cue, error) {
	var texts []results.Text
	q := metastore.ResultQuery{JobID: jobID, Engine: CaptionEngine, FromMs: max(sp.StartMs-results.MinCueMs, 0), ToMs: sp.EndMs}
	err := s.eachResult(ctx, q, func(r metastore.Result) bool {
		texts = append(texts, results.TextsOf(r.Content)...)
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(texts, func(a, b results.Text) int { return cmp.Compare(a.StartMs, b.StartMs) })
	texts = slices.CompactFunc(texts, func(a, b results.Text) bool { return a == b })
	return clipCues(results.Cues(texts, results.KindSpeech), sp.StartMs, sp.EndMs), nil
}

// clipCues keeps the parts of cues within [from, to).
func clipCues(cues []results.Cue, from, to int64) []results.Cue {
	var out []results.Cue
	for _, c := range cues {
		c.StartMs, c.EndMs = max(c.StartMs, from), min(c.EndMs, to)
		if c.EndMs > c.StartMs {
			out = append(out, c)
		}
	}
	return out
}
