package hlsresults

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// Bounds of the job lookup.
const (
	// jobPage is the page size jobs and results are read with.
	jobPage = 1000
	// maxJobPages bounds one stream's job lookup: a stream's jobs past
	// its newest maxJobPages × jobPage are not looked at.
	maxJobPages = 100
)

// streamJobs returns the jobs whose source is the stream, newest first,
// with the metadata store's stream filter (an index on the jobs' stream,
// creation time and id, so the lookup reads only the stream's own jobs).
// progress caches the answer for CacheTTL.
func (s *Service) streamJobs(ctx context.Context, streamID string) ([]metastore.Job, error) {
	var out []metastore.Job
	after := ""
	for range maxJobPages {
		jobs, next, err := s.Meta.ListJobsWhere(ctx, metastore.JobFilter{StreamID: streamID}, jobPage, after)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			j.Spec, j.Result = nil, nil // not needed; keep the cache small
			out = append(out, j)
		}
		if next == "" {
			return out, nil
		}
		after = next
	}
	s.Log.Warn("hls results: not every job of the stream was looked at for subtitles and metadata", "stream", streamID, "jobs_read", len(out))
	return out, nil
}

// maxSettled is the settled time of results that are all in.
const maxSettled = math.MaxInt64

// jobState is one job of a stream with its engines' progress.
type jobState struct {
	job metastore.Job
	// tasks maps each engine of the job to its task's status.
	tasks map[string]metastore.JobStatus
	// reached maps each engine to the largest EndMs of its results so
	// far (-1 before the first): the results are taken as complete up
	// to there. An engine emits in time order, so nothing earlier is
	// still to come; a silent stretch after it is only known once a
	// later result (or the end of the task) arrives.
	reached map[string]int64
}

// done reports whether the engine's task (or the whole job) is over.
func (j jobState) done(engine string) bool {
	return j.job.Status.Terminal() || j.tasks[engine].Terminal()
}

// settled is the time on the job's timeline up to which the engine's
// results are in: +Inf (math.MaxInt64) once it is done.
func (j jobState) settled(engine string) int64 {
	if j.done(engine) {
		return maxSettled
	}
	return j.reached[engine]
}

// progressState is the cached progress of one stream's jobs.
type progressState struct {
	mu      sync.Mutex
	checked time.Time
	jobs    []jobState
}

// progress returns the stream's jobs (newest first) with their engines
// and how far their results go, refreshed at most once per CacheTTL.
// Only results newer than the last refresh's frontier are read again.
func (s *Service) progress(ctx context.Context, streamID string) ([]jobState, error) {
	ps, ok := s.streams.get(streamID)
	if !ok {
		ps = &progressState{}
		s.streams.put(streamID, ps)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.checked.IsZero() && s.Now().Sub(ps.checked) < s.CacheTTL {
		return ps.jobs, nil
	}
	jobs, err := s.streamJobs(ctx, streamID)
	if err != nil {
		return nil, err
	}
	prev := map[string]jobState{}
	for _, j := range ps.jobs {
		prev[j.job.ID] = j
	}
	out := make([]jobState, 0, len(jobs))
	for _, j := range jobs {
		js, err := s.jobProgress(ctx, j, prev[j.ID])
		if err != nil {
			return nil, err
		}
		out = append(out, js)
	}
	ps.jobs, ps.checked = out, s.Now()
	return out, nil
}

// jobProgress reads a job's tasks and, for every engine still running,
// the results that end past what was reached before.
func (s *Service) jobProgress(ctx context.Context, j metastore.Job, prev jobState) (jobState, error) {
	tasks, err := s.Meta.ListTasks(ctx, j.ID)
	if err != nil {
		return jobState{}, err
	}
	js := jobState{job: j, tasks: map[string]metastore.JobStatus{}, reached: map[string]int64{}}
	for _, t := range tasks {
		js.tasks[t.Engine] = t.Status
	}
	for engine := range js.tasks {
		from := int64(-1)
		if r, ok := prev.reached[engine]; ok {
			from = r
		}
		js.reached[engine] = from
		if js.done(engine) {
			continue
		}
		end, err := s.lastEnd(ctx, j.ID, engine, max(from, 0))
		if err != nil {
			return jobState{}, err
		}
		js.reached[engine] = max(from, end)
	}
	return js, nil
}

// lastEnd is the largest EndMs of the engine's results that end after
// fromMs (or start at it), -1 when there is none.
func (s *Service) lastEnd(ctx context.Context, jobID, engine string, fromMs int64) (int64, error) {
	end := int64(-1)
	err := s.eachResult(ctx, metastore.ResultQuery{JobID: jobID, Engine: engine, FromMs: fromMs}, func(r metastore.Result) bool {
		end = max(end, r.EndMs)
		return true
	})
	return end, err
}

// eachResult pages through the results q selects, calling fn until it
// returns false.
func (s *Service) eachResult(ctx context.Context, q metastore.ResultQuery, fn func(metastore.Result) bool) error {
	q.Limit = jobPage
	for {
		rs, next, err := s.Meta.ListResults(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if !fn(r) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		q.After = next
	}
}

// captionJob picks the job whose stt transcript a stream's subtitles
// show: the newest one whose stt task completed, else the newest one
// still running it, else the newest that ran it at all (failed or
// cancelled part-way; what it found is still shown).
func captionJob(jobs []jobState) (jobState, bool) {
	rank := func(j jobState) int {
		st, ok := j.tasks[CaptionEngine]
		switch {
		case !ok:
			return 0
		case st == metastore.JobComplete:
			return 3
		case !j.done(CaptionEngine):
			return 2
		}
		return 1
	}
	best, bestRank := jobState{}, 0
	for _, j := range jobs { // newest first: ties keep the newest
		if r := rank(j); r > bestRank {
			best, bestRank = j, r
		}
	}
	return best, bestRank > 0
}

// metadataSettled is the time up to which every engine of every job has
// its results in (+Inf when all are done).
func metadataSettled(jobs []jobState) int64 {
	settled := int64(maxSettled)
	for _, j := range jobs {
		for engine := range j.tasks {
			settled = min(settled, j.settled(engine))
		}
	}
	return settled
}

// engines lists the engines of the jobs, sorted.
func engines(jobs []jobState) []string {
	var out []string
	for _, j := range jobs {
		for e := range j.tasks {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
