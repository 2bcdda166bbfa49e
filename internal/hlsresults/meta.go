package hlsresults

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// MaxMetadataEntries caps the entries of one metadata segment; past it
// the segment says "truncated" and GET /jobs/{id}/results has the rest.
const MaxMetadataEntries = 5000

// MetadataSegment is the JSON document of one metadata segment: every
// result of the stream's jobs that overlaps one media segment.
type MetadataSegment struct {
	StreamID string `json:"stream_id"`
	// Sequence is the media segment's sequence number (EXT-X-MEDIA-SEQUENCE
	// numbering), the same in the video, subtitles and metadata playlists.
	Sequence int64 `json:"sequence"`
	// Duration is the segment's duration in seconds.
	Duration float64 `json:"duration"`
	// ProgramDateTime is the wall-clock time of the segment's first frame
	// (live streams).
	ProgramDateTime *time.Time `json:"program_date_time,omitempty"`
	// Mapped is false when the segment lies after a break in a live
	// stream's timeline and so has no results.
	Mapped bool `json:"mapped"`
	// StartMs and EndMs are the segment on the jobs' timeline.
	StartMs int64 `json:"start_ms"`
	EndMs   int64 `json:"end_ms"`
	// Results are ordered by start, then engine.
	Results   []MetadataEntry `json:"results"`
	Truncated bool            `json:"truncated,omitempty"`
}

// MetadataEntry is one series of a result document (or the document's
// own tags, for a result without series, such as loudness's summary).
type MetadataEntry struct {
	JobID  string `json:"job_id"`
	Engine string `json:"engine"`
	// Start and End are seconds from the segment's first frame: where to
	// show the entry relative to the segment the player is playing.
	// Start is negative for an entry that began in an earlier segment.
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// StartMs and EndMs are on the jobs' timeline, as GET /jobs/{id}/
	// results reports them.
	StartMs int64 `json:"start_ms"`
	EndMs   int64 `json:"end_ms"`
	// Series is the vtn-standard series as the engine wrote it.
	Series json.RawMessage `json:"series,omitempty"`
	// Tags are the document's tags, for a result without series.
	Tags json.RawMessage `json:"tags,omitempty"`
}

// resultDoc is the part of a vtn-standard document metadata segments read;
// series stay raw and are passed on as written.
type resultDoc struct {
	Series []json.RawMessage `json:"series"`
	Tags   json.RawMessage   `json:"tags"`
}

type seriesTimes struct {
	Start *int64 `json:"startTimeMs"`
	Stop  *int64 `json:"stopTimeMs"`
}

// metadataSegment builds the JSON document of one metadata segment.
func (s *Service) metadataSegment(ctx context.Context, st metastore.Stream, jobs []jobState, row metastore.Segment, sp Span) ([]byte, error) {
	seg := MetadataSegment{StreamID: st.ID, Sequence: row.Sequence, Duration: float64(row.DurationUS) / 1e6,
		Mapped: sp.Mapped, StartMs: sp.StartMs, EndMs: sp.EndMs, Results: []MetadataEntry{}}
	if !row.ProgramDateTime.IsZero() {
		t := row.ProgramDateTime.UTC()
		seg.ProgramDateTime = &t
	}
	if sp.Mapped {
		for _, j := range jobs {
			if err := s.addEntries(ctx, &seg, j.job.ID, sp); err != nil {
				return nil, err
			}
		}
	}
	slices.SortStableFunc(seg.Results, func(a, b MetadataEntry) int {
		return cmp.Or(cmp.Compare(a.StartMs, b.StartMs), cmp.Compare(a.Engine, b.Engine))
	})
	return json.Marshal(seg)
}

// addEntries adds the series of a job's results that overlap the span.
func (s *Service) addEntries(ctx context.Context, seg *MetadataSegment, jobID string, sp Span) error {
	entry := func(r metastore.Result, start, end int64) MetadataEntry {
		return MetadataEntry{JobID: jobID, Engine: r.Engine, StartMs: start, EndMs: end,
			Start: float64(start-sp.StartMs) / 1000, End: float64(end-sp.StartMs) / 1000}
	}
	q := metastore.ResultQuery{JobID: jobID, FromMs: sp.StartMs, ToMs: sp.EndMs}
	return s.eachResult(ctx, q, func(r metastore.Result) bool {
		var doc resultDoc
		if json.Unmarshal(r.Content, &doc) != nil {
			return true // not a document: nothing to place
		}
		if len(doc.Series) == 0 && len(doc.Tags) > 0 && string(doc.Tags) != "null" {
			e := entry(r, r.StartMs, r.EndMs)
			e.Tags = doc.Tags
			return seg.add(e)
		}
		for _, raw := range doc.Series {
			var t seriesTimes
			if json.Unmarshal(raw, &t) != nil || t.Start == nil {
				continue
			}
			stop := *t.Start
			if t.Stop != nil {
				stop = max(*t.Stop, *t.Start)
			}
			if !overlaps(*t.Start, stop, sp) {
				continue
			}
			e := entry(r, *t.Start, stop)
			e.Series = raw
			if !seg.add(e) {
				return false
			}
		}
		return true
	})
}

// overlaps reports whether [start, stop] meets the span [StartMs, EndMs):
// an instant belongs to the segment it falls in.
func overlaps(start, stop int64, sp Span) bool {
	return start < sp.EndMs && (stop > sp.StartMs || start >= sp.StartMs)
}

func (seg *MetadataSegment) add(e MetadataEntry) bool {
	if len(seg.Results) >= MaxMetadataEntries {
		seg.Truncated = true
		return false
	}
	seg.Results = append(seg.Results, e)
	return true
}

// MetadataIndex is meta/index.json, what the master's EXT-X-SESSION-DATA
// (DATA-ID io.weir.metadata) points at.
type MetadataIndex struct {
	StreamID string `json:"stream_id"`
	// Playlist is the metadata playlist, relative to this document.
	Playlist string `json:"playlist"`
	// Jobs are the stream's jobs whose results the playlist carries,
	// newest first.
	Jobs []MetadataJob `json:"jobs"`
	// Engines lists every engine of those jobs.
	Engines []string `json:"engines"`
}

// MetadataJob is one job in the metadata index.
type MetadataJob struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"`
	// Engines maps each engine to its task's status.
	Engines map[string]string `json:"engines"`
}

func (s *Service) metaIndex(ctx context.Context, streamID string) (*Response, error) {
	st, err := s.stream(ctx, streamID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	jobs, err := s.progress(ctx, streamID)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, nil // no job: whatever the store has
	}
	ref, err := s.mirrored(ctx, st)
	if err != nil {
		return nil, err
	}
	idx := MetadataIndex{StreamID: streamID, Playlist: ref, Engines: engines(jobs)}
	for _, j := range jobs {
		mj := MetadataJob{JobID: j.job.ID, Status: string(j.job.Status), Engines: map[string]string{}}
		for e, status := range j.tasks {
			mj.Engines[e] = string(status)
		}
		idx.Jobs = append(idx.Jobs, mj)
	}
	body, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	cc := cacheGrowing
	if metadataSettled(jobs) == maxSettled {
		cc = cacheSettled
	}
	return &Response{Body: body, ContentType: TypeJSON, CacheControl: cc}, nil
}

// mirrored is the media playlist the renditions of a stream follow: the
// first variant of a title's stored master, or a live stream's live.m3u8
// (vod.m3u8 once it has ended).
func (s *Service) mirrored(ctx context.Context, st metastore.Stream) (string, error) {
	if st.Kind == metastore.KindLive {
		if st.Status == metastore.StatusVOD {
			return "vod.m3u8", nil
		}
		return "live.m3u8", nil
	}
	data, err := s.readObject(ctx, st.ID+"/master.m3u8")
	if errors.Is(err, objstore.ErrNotFound) {
		return "", fmt.Errorf("title %s has no master playlist yet: %w", st.ID, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	info, err := hls.ParseMasterPlaylist(data)
	if err != nil {
		return "", fmt.Errorf("master playlist of %s: %w", st.ID, err)
	}
	ref := info.Variants[0]
	if _, err := refRendition(st, ref); err != nil {
		return "", fmt.Errorf("master playlist of %s: first variant %s is not a rendition's index.m3u8", st.ID, ref)
	}
	return ref, nil
}
