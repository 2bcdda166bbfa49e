package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// runResultsContract checks results and job chunks on one backend; it runs
// inside runContract, so for SQLite and PostgreSQL alike.
func runResultsContract(t *testing.T, h harness) {
	ctx := context.Background()
	withJob := func(t *testing.T) Store {
		s := h.store(t)
		if _, err := s.CreateJob(ctx, Job{ID: "job-1"}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	doc := func(label string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"object": [{"label": %q}]}`, label))
	}

	t.Run("ResultsAreIdempotentAndKeepTheHighestRev", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		r := Result{JobID: "job-1", Engine: "people", TaskID: "job-1-people", ChunkUUID: "u-0", ChunkIndex: 0,
			StartMs: 0, EndMs: 1000, OutputType: "object", Content: doc("person")}
		for range 3 { // a runner that restarts writes the same output again
			if err := s.PutResult(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got, next, err := s.ListResults(ctx, ResultQuery{JobID: "job-1"})
		if err != nil || next != "" || len(got) != 1 {
			t.Fatalf("the same result three times: %d rows, next %q, %v", len(got), next, err)
		}
		first := got[0]
		if first.CreatedAt.IsZero() || first.TaskID != "job-1-people" || first.OutputType != "object" || !jsonEqual(t, first.Content, r.Content) {
			t.Fatalf("stored result %+v", first)
		}

		r2 := r
		r2.Rev, r2.Content = 2, doc("cyclist")
		if err := s.PutResult(ctx, r2); err != nil {
			t.Fatal(err)
		}
		r1 := r
		r1.Rev, r1.Content = 1, doc("stale")
		if err := s.PutResult(ctx, r1); err != nil { // lower rev: not an error, not applied
			t.Fatal(err)
		}
		got, _, _ = s.ListResults(ctx, ResultQuery{JobID: "job-1"})
		if len(got) != 1 || got[0].Rev != 2 || !jsonEqual(t, got[0].Content, r2.Content) {
			t.Fatalf("after rev 2 then rev 1: %+v", got)
		}
		if !got[0].CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("a rewrite moved created_at from %v to %v", first.CreatedAt, got[0].CreatedAt)
		}

		// Another start in the same chunk is another result.
		r3 := r
		r3.StartMs, r3.EndMs = 500, 700
		if err := s.PutResult(ctx, r3); err != nil {
			t.Fatal(err)
		}
		if got, _, _ = s.ListResults(ctx, ResultQuery{JobID: "job-1"}); len(got) != 2 {
			t.Fatalf("two starts in one chunk: %d rows", len(got))
		}

		// Concurrent writers of one result leave one row.
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				w := r
				w.ChunkUUID = "u-race"
				w.Rev = int64(i % 3)
				errs[i] = s.PutResult(ctx, w)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, _, _ = s.ListResults(ctx, ResultQuery{JobID: "job-1"})
		n := 0
		for _, g := range got {
			if g.ChunkUUID == "u-race" {
				n++
				if g.Rev != 2 {
					t.Errorf("racing writers left rev %d, want the highest, 2", g.Rev)
				}
			}
		}
		if n != 1 {
			t.Fatalf("racing writers left %d rows", n)
		}
	})

	t.Run("ResultsRejectBadInput", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		ok := Result{JobID: "job-1", Engine: "e", ChunkUUID: "u", StartMs: 5, EndMs: 10, Content: doc("x")}
		for name, mutate := range map[string]func(*Result){
			"no job":       func(r *Result) { r.JobID = "" },
			"no engine":    func(r *Result) { r.Engine = "" },
			"no chunk":     func(r *Result) { r.ChunkUUID = "" },
			"backwards":    func(r *Result) { r.EndMs = 4 },
			"negative rev": func(r *Result) { r.Rev = -1 },
			"no content":   func(r *Result) { r.Content = nil },
			"bad content":  func(r *Result) { r.Content = json.RawMessage(`{"a":`) },
		} {
			r := ok
			mutate(&r)
			if err := s.PutResult(ctx, r); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: got %v, want ErrInvalid", name, err)
			}
		}
		r := ok
		r.JobID = "job-x"
		wantErr(t, s.PutResult(ctx, r), ErrNotFound, "result of job job-x engine e chunk u at 5 ms: job job-x: not found")
		for _, q := range []ResultQuery{
			{JobID: "job-1", FromMs: -1},
			{JobID: "job-1", FromMs: 10, ToMs: 10},
			{JobID: "job-1", After: "not-a-cursor"},
			{JobID: "job-1", After: "e30"}, // base64 of {}
		} {
			_, _, err := s.ListResults(ctx, q)
			wantErr(t, err, ErrInvalid, "")
		}
		if none, next, err := s.ListResults(ctx, ResultQuery{JobID: "job-x"}); err != nil || none == nil || len(none) != 0 || next != "" {
			t.Fatalf("results of an unknown job: %v %q %v", none, next, err)
		}
	})

	t.Run("ResultsPageInTimeOrderWithFilters", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		type span struct {
			engine     string
			start, end int64
		}
		// Engine names that PostgreSQL's default collation would order
		// differently from bytes ("a-c" before "ab" bytewise).
		spans := []span{
			{"ab", 0, 1000}, {"a-c", 0, 1000}, {"ab", 1000, 2000}, {"a-c", 1500, 1500},
			{"ab", 2000, 3000}, {"a-c", 2000, 2500}, {"ab", 3000, 4000}, {"a-c", 3500, 3500},
		}
		for i, sp := range spans {
			if err := s.PutResult(ctx, Result{JobID: "job-1", Engine: sp.engine, ChunkUUID: fmt.Sprintf("u-%d", i),
				ChunkIndex: int64(i), StartMs: sp.start, EndMs: sp.end, Content: doc(sp.engine)}); err != nil {
				t.Fatal(err)
			}
		}
		list := func(q ResultQuery) []string {
			t.Helper()
			q.JobID = "job-1"
			var out []string
			for {
				page, next, err := s.ListResults(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > max(q.Limit, 0) && q.Limit > 0 {
					t.Fatalf("page of %d rows, limit %d", len(page), q.Limit)
				}
				for _, r := range page {
					out = append(out, fmt.Sprintf("%s@%d-%d", r.Engine, r.StartMs, r.EndMs))
				}
				if next == "" {
					return out
				}
				q.After = next
			}
		}
		all := []string{"a-c@0-1000", "ab@0-1000", "ab@1000-2000", "a-c@1500-1500", "a-c@2000-2500",
			"ab@2000-3000", "ab@3000-4000", "a-c@3500-3500"}
		if got := list(ResultQuery{Limit: 3}); !reflect.DeepEqual(got, all) {
			t.Fatalf("pages of 3:\n got %v\nwant %v", got, all)
		}
		if got := list(ResultQuery{Limit: 1, Engine: "a-c"}); !reflect.DeepEqual(got,
			[]string{"a-c@0-1000", "a-c@1500-1500", "a-c@2000-2500", "a-c@3500-3500"}) {
			t.Fatalf("engine a-c: %v", got)
		}
		// [1500, 3000): spans overlapping it, and the point at 1500.
		if got := list(ResultQuery{FromMs: 1500, ToMs: 3000}); !reflect.DeepEqual(got,
			[]string{"ab@1000-2000", "a-c@1500-1500", "a-c@2000-2500", "ab@2000-3000"}) {
			t.Fatalf("1500..3000: %v", got)
		}
		if got := list(ResultQuery{FromMs: 3500}); !reflect.DeepEqual(got, []string{"ab@3000-4000", "a-c@3500-3500"}) {
			t.Fatalf("from 3500: %v", got)
		}
	})

	t.Run("JobChunksKeepTerminalStates", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		put := func(engine, uuid string, idx int64, state ChunkState, info string) {
			t.Helper()
			if err := s.PutJobChunk(ctx, JobChunk{JobID: "job-1", Engine: engine, ChunkUUID: uuid, ChunkIndex: idx,
				StartMs: idx * 1000, EndMs: idx*1000 + 1000, Kind: "frame", State: state, Attempts: 1, Info: info}); err != nil {
				t.Fatal(err)
			}
		}
		put("people", "u-1", 1, ChunkQueued, "")
		put("people", "u-0", 0, ChunkQueued, "")
		put("people", "u-0", 0, ChunkSent, "")
		put("people", "u-0", 0, ChunkDone, "")
		put("people", "u-0", 0, ChunkSent, "")   // a restart sends it again: stays done
		put("people", "u-0", 0, ChunkQueued, "") // and queues it again: stays done
		put("faces", "u-0", 0, ChunkFailed, "timeout")
		put("faces", "u-0", 0, ChunkDone, "") // a late answer: terminal replaces terminal
		put("faces", "u-1", 1, ChunkDropped, "dropped: engine 12.4 s behind live")
		put("faces", "u-1", 1, ChunkQueued, "")
		put("faces", "u-2", 2, ChunkSent, "")

		got, err := s.ListJobChunks(ctx, "job-1", "people")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ChunkUUID != "u-0" || got[0].State != ChunkDone || got[1].State != ChunkQueued ||
			got[0].Kind != "frame" || got[0].UpdatedAt.IsZero() || got[1].StartMs != 1000 {
			t.Fatalf("people chunks: %+v", got)
		}
		all, err := s.ListJobChunks(ctx, "job-1", "")
		if err != nil || len(all) != 5 {
			t.Fatalf("all chunks: %d, %v", len(all), err)
		}
		if all[0].Engine != "faces" || all[1].Engine != "people" || all[4].ChunkIndex != 2 {
			t.Fatalf("all chunks not by index then engine: %+v", all)
		}
		if all[2].Info != "dropped: engine 12.4 s behind live" || all[2].State != ChunkDropped {
			t.Fatalf("dropped chunk: %+v", all[2])
		}
		counts, err := s.CountJobChunks(ctx, "job-1")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[ChunkState]int64{
			"people": {ChunkDone: 1, ChunkQueued: 1},
			"faces":  {ChunkDone: 1, ChunkDropped: 1, ChunkSent: 1},
		}
		if !reflect.DeepEqual(counts, want) {
			t.Fatalf("counts %v, want %v", counts, want)
		}
		if none, err := s.CountJobChunks(ctx, "job-x"); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("counts of an unknown job: %v, %v", none, err)
		}
		if none, err := s.ListJobChunks(ctx, "job-x", ""); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("chunks of an unknown job: %v, %v", none, err)
		}

		bad := JobChunk{JobID: "job-1", Engine: "e", ChunkUUID: "u", State: "lost"}
		wantErr(t, s.PutJobChunk(ctx, bad), ErrInvalid, "")
		bad.State, bad.ChunkIndex = ChunkQueued, -1
		wantErr(t, s.PutJobChunk(ctx, bad), ErrInvalid, "")
		bad.ChunkIndex, bad.StartMs = 0, 10
		wantErr(t, s.PutJobChunk(ctx, bad), ErrInvalid, "")
		bad.StartMs, bad.Engine = 0, ""
		wantErr(t, s.PutJobChunk(ctx, bad), ErrInvalid, "")
		bad.Engine, bad.JobID = "e", "job-x"
		wantErr(t, s.PutJobChunk(ctx, bad), ErrNotFound, "chunk u of job job-x engine e: job job-x: not found")
	})

	t.Run("TaskUpdatesAndDeletingAJobDropsItsRows", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		task := Task{ID: "job-1-people", JobID: "job-1", Name: "people", Engine: "people"}
		if err := s.UpsertTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		task.Status = JobRunning
		task.Output = json.RawMessage(`{"last_heartbeat": "2025-03-14T15:09:26Z", "instances": ["i-1"], "error": ""}`)
		if err := s.UpsertTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		tasks, err := s.ListTasks(ctx, "job-1")
		if err != nil || len(tasks) != 1 || tasks[0].Status != JobRunning || !jsonEqual(t, tasks[0].Output, task.Output) {
			t.Fatalf("updated task: %+v, %v", tasks, err)
		}
		if err := s.PutResult(ctx, Result{JobID: "job-1", Engine: "people", ChunkUUID: "u", Content: doc("a")}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutJobChunk(ctx, JobChunk{JobID: "job-1", Engine: "people", ChunkUUID: "u", State: ChunkDone}); err != nil {
			t.Fatal(err)
		}
		st := backendOf(t, s)
		if _, err := st.b.writer().exec(ctx, `DELETE FROM jobs WHERE id = $1`, "job-1"); err != nil {
			t.Fatal(err)
		}
		if r, _, _ := s.ListResults(ctx, ResultQuery{JobID: "job-1"}); len(r) != 0 {
			t.Fatalf("results outlived their job: %v", r)
		}
		if c, _ := s.ListJobChunks(ctx, "job-1", ""); len(c) != 0 {
			t.Fatalf("chunks outlived their job: %v", c)
		}
	})

	t.Run("JobStatusesAreTheAPIs", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		for _, st := range JobStatuses {
			if _, err := s.CreateJob(ctx, Job{ID: "job-" + string(st), Status: st, CreatedAt: time.Now()}); err != nil {
				t.Fatalf("status %s: %v", st, err)
			}
			if st.Terminal() != (st == JobComplete || st == JobFailed || st == JobCancelled) {
				t.Errorf("%s.Terminal() = %v", st, st.Terminal())
			}
		}
		for _, old := range []JobStatus{"queued", "succeeded"} {
			_, err := s.CreateJob(ctx, Job{ID: "job-old", Status: old})
			wantErr(t, err, ErrInvalid, "")
		}
		page, _, err := s.ListJobs(ctx, JobCancelled, 0, "")
		if err != nil || len(page) != 1 || page[0].ID != "job-cancelled" {
			t.Fatalf("cancelled jobs: %+v, %v", page, err)
		}
	})
}

// Migration 5 renames the job statuses of earlier builds: a database with
// queued and succeeded jobs and tasks reads back pending and complete.
func TestMigrationRenamesJobStatuses(t *testing.T) {
	for name, h := range map[string]harness{"sqlite": sqliteHarness(), "postgres": {fresh: func(t *testing.T) string { return testenv.Postgres(t) }}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			loc := h.fresh(t)
			s := h.open(t, loc)
			for _, id := range []string{"job-q", "job-s"} {
				if _, err := s.CreateJob(ctx, Job{ID: id}); err != nil {
					t.Fatal(err)
				}
				if err := s.UpsertTask(ctx, Task{ID: id + "-t", JobID: id}); err != nil {
					t.Fatal(err)
				}
			}
			st := rawSQL(t, s)
			// Make it a database as the previous schema left it.
			for _, stmt := range []string{
				`UPDATE jobs SET status = 'queued' WHERE id = 'job-q'`,
				`UPDATE jobs SET status = 'succeeded' WHERE id = 'job-s'`,
				`UPDATE tasks SET status = 'queued' WHERE job_id = 'job-q'`,
				`UPDATE tasks SET status = 'succeeded' WHERE job_id = 'job-s'`,
				// Migration 8's search index hangs off results.
				`DROP TABLE IF EXISTS result_texts_fts`,
				`DROP TABLE result_texts`,
				`DROP TABLE results`,
				`DROP TABLE job_chunks`,
				`DELETE FROM schema_migrations WHERE version IN (5, 8)`,
			} {
				if _, err := st.b.writer().exec(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			s.Close()

			s = h.open(t, loc)
			for id, want := range map[string]JobStatus{"job-q": JobPending, "job-s": JobComplete} {
				j, err := s.GetJob(ctx, id)
				if err != nil || j.Status != want {
					t.Errorf("job %s after the migration: %q, %v; want %q", id, j.Status, err, want)
				}
				tasks, err := s.ListTasks(ctx, id)
				if err != nil || len(tasks) != 1 || tasks[0].Status != want {
					t.Errorf("task of %s after the migration: %+v, %v; want %q", id, tasks, err, want)
				}
			}
			if err := s.PutJobChunk(ctx, JobChunk{JobID: "job-q", Engine: "e", ChunkUUID: "u", State: ChunkQueued}); err != nil {
				t.Fatalf("job_chunks after the migration: %v", err)
			}
		})
	}
}
