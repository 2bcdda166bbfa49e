package metastore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// runJobFilterContract checks ListJobsWhere on one backend; it runs inside
// runContract, so for SQLite and PostgreSQL alike.
func runJobFilterContract(t *testing.T, h harness) {
	ctx := context.Background()
	base := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

	t.Run("ListJobsWhereFiltersByStreamAndStatus", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		// Jobs 0..8: on vod-a, vod-b and no stream in turn, complete
		// when the index is even.
		streams := []string{"vod-a", "vod-b", ""}
		for i := range 9 {
			status := JobRunning
			if i%2 == 0 {
				status = JobComplete
			}
			j := Job{ID: fmt.Sprintf("job-%d", i), StreamID: streams[i%3], Status: status, CreatedAt: base.Add(time.Duration(i) * time.Second)}
			if _, err := s.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		list := func(f JobFilter, limit int) []string {
			t.Helper()
			var ids []string
			after := ""
			for pages := 0; ; pages++ {
				page, next, err := s.ListJobsWhere(ctx, f, limit, after)
				if err != nil {
					t.Fatalf("%+v: %v", f, err)
				}
				if pages > 20 {
					t.Fatalf("%+v: more than 20 pages", f)
				}
				for _, j := range page {
					if f.StreamID != "" && j.StreamID != f.StreamID {
						t.Fatalf("%+v listed %s of stream %q", f, j.ID, j.StreamID)
					}
					ids = append(ids, j.ID)
				}
				if next == "" {
					return ids
				}
				after = next
			}
		}
		for _, tc := range []struct {
			f    JobFilter
			want []string
		}{
			{JobFilter{StreamID: "vod-a"}, []string{"job-6", "job-3", "job-0"}},
			{JobFilter{StreamID: "vod-b"}, []string{"job-7", "job-4", "job-1"}},
			{JobFilter{StreamID: "vod-a", Status: JobComplete}, []string{"job-6", "job-0"}},
			{JobFilter{StreamID: "vod-b", Status: JobRunning}, []string{"job-7", "job-1"}},
			{JobFilter{StreamID: "vod-nosuch"}, nil},
			{JobFilter{Status: JobRunning}, []string{"job-7", "job-5", "job-3", "job-1"}},
		} {
			for _, limit := range []int{1, 2, 0} {
				if got := list(tc.f, limit); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%+v, %d a page: %v, want %v", tc.f, limit, got, tc.want)
				}
			}
		}
		all, _, err := s.ListJobsWhere(ctx, JobFilter{}, 0, "")
		if err != nil || len(all) != 9 {
			t.Fatalf("no filter: %d jobs, %v; want all 9", len(all), err)
		}
		if _, _, err := s.ListJobsWhere(ctx, JobFilter{Status: "bogus", StreamID: "vod-a"}, 0, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("an unknown status: %v, want ErrInvalid", err)
		}
	})
}
