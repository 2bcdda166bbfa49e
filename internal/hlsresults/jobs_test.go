package hlsresults

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// countingStore records how the job table is read.
type countingStore struct {
	metastore.Store
	mu       sync.Mutex
	all      int      // ListJobs calls (every job)
	filtered []string // ListJobsWhere calls, by stream
	rows     int      // jobs read
}

func (c *countingStore) ListJobs(ctx context.Context, status metastore.JobStatus, limit int, after string) ([]metastore.Job, string, error) {
	c.mu.Lock()
	c.all++
	c.mu.Unlock()
	jobs, next, err := c.Store.ListJobs(ctx, status, limit, after)
	c.mu.Lock()
	c.rows += len(jobs)
	c.mu.Unlock()
	return jobs, next, err
}

func (c *countingStore) ListJobsWhere(ctx context.Context, f metastore.JobFilter, limit int, after string) ([]metastore.Job, string, error) {
	c.mu.Lock()
	c.filtered = append(c.filtered, f.StreamID)
	c.mu.Unlock()
	jobs, next, err := c.Store.ListJobsWhere(ctx, f, limit, after)
	c.mu.Lock()
	c.rows += len(jobs)
	c.mu.Unlock()
	return jobs, next, err
}

// TestStreamJobsReadsOnlyTheStreamsJobs: a stream's subtitles find its
// jobs with the store's stream filter, reading its own jobs and none of
// the many newer jobs of other streams, and find them all (newest first)
// however many pages they take.
func TestStreamJobsReadsOnlyTheStreamsJobs(t *testing.T) {
	f := newFixture(t)
	m := encode(t, "mpegts", 4, 2, 0)
	const id = "vod-own"
	f.addTitle(id, m)
	f.addJob("job-own", id, metastore.JobComplete, "stt")
	f.utter("job-own", 500, 1500, "mine")
	for i := range 50 {
		f.addJob(fmt.Sprintf("job-other-%02d", i), "vod-other", metastore.JobComplete, "stt")
	}
	counted := &countingStore{Store: f.meta}
	f.svc.Meta = counted

	checkMaster(t, f.get(id, "master.m3u8").Body, "subs/360p/index.m3u8")
	_, cues := parseVTT(t, f.get(id, "subs/360p/0.vtt").Body)
	if len(cues) != 1 || cues[0].text != "mine" {
		t.Fatalf("cues %v, want the stream's own job's", cues)
	}
	if counted.all != 0 || counted.rows != 1 || len(counted.filtered) != 1 || counted.filtered[0] != id {
		t.Fatalf("job lookups: %d unfiltered, filtered by %v, %d jobs read; want one lookup of %s reading its one job",
			counted.all, counted.filtered, counted.rows, id)
	}

	// More jobs than a page: all found, newest first.
	const many = jobPage + 5
	for i := range many {
		f.addJob(fmt.Sprintf("job-many-%04d", i), "vod-many", metastore.JobRunning)
	}
	jobs, err := f.svc.streamJobs(f.ctx, "vod-many")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != many || jobs[0].ID != fmt.Sprintf("job-many-%04d", many-1) || jobs[many-1].ID != "job-many-0000" {
		t.Fatalf("%d jobs of vod-many (first %s), want %d newest first", len(jobs), jobs[0].ID, many)
	}
}
