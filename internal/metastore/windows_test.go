package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// runWindowsContract checks the aggregator's windows and late results on
// one backend; it runs inside runContract, so for SQLite and PostgreSQL.
func runWindowsContract(t *testing.T, h harness) {
	ctx := context.Background()
	withJob := func(t *testing.T) Store {
		s := h.store(t)
		if _, err := s.CreateJob(ctx, Job{ID: "job-1"}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	result := func(engine string, start, end int64) Result {
		return Result{JobID: "job-1", Engine: engine, TaskID: "job-1-" + engine, ChunkUUID: fmt.Sprintf("%s-%d", engine, start),
			StartMs: start, EndMs: end, OutputType: "tag", Content: json.RawMessage(`{"series":[]}`)}
	}
	window := func(i int64, status WindowStatus, missing ...string) Window {
		return Window{JobID: "job-1", StartMs: 5000 * i, EndMs: 5000 * (i + 1), Seq: i, Status: status, Missing: missing,
			Results: []Result{result("loudness", 5000*i, 5000*i+1000), result("black", 5000*i+200, 5000*i+9000)}, ThroughOffset: 10 * i}
	}

	t.Run("WindowsAreStoredOnceAndPagedByStart", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		var wg sync.WaitGroup
		created := make([]bool, 6)
		for k := range created { // two writers race for each of three windows
			wg.Go(func() {
				var err error
				if created[k], err = s.PutWindow(ctx, window(int64(k/2), WindowComplete)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i := 0; i < 6; i += 2 {
			if created[i] == created[i+1] {
				t.Fatalf("window %d: created %v and %v, want exactly one", i/2, created[i], created[i+1])
			}
		}
		again := window(1, WindowPartial, "ocr")
		if ok, err := s.PutWindow(ctx, again); ok || err != nil {
			t.Fatalf("a second window at 5000 ms: created %v, %v", ok, err)
		}
		page, next, err := s.ListWindows(ctx, WindowQuery{JobID: "job-1", Limit: 2})
		if err != nil || len(page) != 2 || next == "" {
			t.Fatalf("first page: %d windows, next %q, %v", len(page), next, err)
		}
		want := window(1, WindowComplete)
		got := page[1]
		if got.EmittedAt.IsZero() || got.Status != WindowComplete || len(got.Missing) != 0 || got.ThroughOffset != 10 ||
			len(got.Results) != 2 || got.Results[1].EndMs != 14000 || !jsonEqual(t, got.Results[0].Content, want.Results[0].Content) {
			t.Fatalf("stored window %+v", got)
		}
		rest, next, err := s.ListWindows(ctx, WindowQuery{JobID: "job-1", After: next})
		if err != nil || len(rest) != 1 || next != "" || rest[0].StartMs != 10000 {
			t.Fatalf("second page %+v, next %q, %v", rest, next, err)
		}
		// [4000, 5001) overlaps the first two windows.
		some, _, err := s.ListWindows(ctx, WindowQuery{JobID: "job-1", FromMs: 4000, ToMs: 5001})
		if err != nil || len(some) != 2 || some[0].StartMs != 0 || some[1].StartMs != 5000 {
			t.Fatalf("windows over [4000, 5001): %+v, %v", some, err)
		}
		none, _, err := s.ListWindows(ctx, WindowQuery{JobID: "job-nosuch"})
		if err != nil || none == nil || len(none) != 0 {
			t.Fatalf("unknown job: %v, %v", none, err)
		}
	})

	t.Run("MarksAndLateResults", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		for _, w := range []Window{window(0, WindowComplete), window(1, WindowPartial, "ocr", "stt")} {
			if _, err := s.PutWindow(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		marks, err := s.WindowMarks(ctx, "job-1")
		if err != nil || len(marks) != 2 {
			t.Fatalf("marks %+v, %v", marks, err)
		}
		if m := marks[1]; m.Status != WindowPartial || !reflect.DeepEqual(m.Missing, []string{"ocr", "stt"}) ||
			m.ThroughOffset != 10 || len(m.Results) != 0 {
			t.Fatalf("mark of the partial window %+v", m)
		}
		late := LateResult{WindowStartMs: 5000, Result: result("ocr", 6000, 6040)}
		for range 2 { // replayed after a takeover: recorded once
			if _, err := s.PutLateResult(ctx, late); err != nil {
				t.Fatal(err)
			}
		}
		late.Rev = 1 // a new revision is another late arrival
		if ok, err := s.PutLateResult(ctx, late); !ok || err != nil {
			t.Fatalf("rev 1: created %v, %v", ok, err)
		}
		ws, _, err := s.ListWindows(ctx, WindowQuery{JobID: "job-1"})
		if err != nil || len(ws) != 2 || len(ws[0].Late) != 0 || len(ws[1].Late) != 2 {
			t.Fatalf("windows with late results: %+v, %v", ws, err)
		}
		if l := ws[1].Late[0]; l.Engine != "ocr" || l.StartMs != 6000 || l.Rev != 0 || l.CreatedAt.IsZero() || l.TaskID != "job-1-ocr" {
			t.Fatalf("late result %+v", l)
		}
	})

	t.Run("BadWindowsAreRefused", func(t *testing.T) {
		t.Parallel()
		s := withJob(t)
		for _, w := range []Window{
			{StartMs: 0, EndMs: 5000, Status: WindowComplete},
			{JobID: "job-1", StartMs: 5000, EndMs: 5000, Status: WindowComplete},
			{JobID: "job-1", StartMs: 0, EndMs: 5000, Status: "done"},
			{JobID: "job-1", StartMs: 0, EndMs: 5000, Status: WindowPartial},
			{JobID: "job-1", StartMs: 0, EndMs: 5000, Status: WindowComplete, Missing: []string{"ocr"}},
		} {
			_, err := s.PutWindow(ctx, w)
			wantErr(t, err, ErrInvalid, "")
		}
		_, err := s.PutWindow(ctx, Window{JobID: "job-nosuch", StartMs: 0, EndMs: 5000, Status: WindowComplete})
		wantErr(t, err, ErrNotFound, "")
		_, err = s.PutLateResult(ctx, LateResult{Result: Result{JobID: "job-1", Engine: "ocr", ChunkUUID: "c", Content: json.RawMessage(`{`)}})
		wantErr(t, err, ErrInvalid, "")
		_, _, err = s.ListWindows(ctx, WindowQuery{JobID: "job-1", After: "soon"})
		wantErr(t, err, ErrInvalid, "")
		_, _, err = s.ListWindows(ctx, WindowQuery{JobID: "job-1", FromMs: 10, ToMs: 5})
		wantErr(t, err, ErrInvalid, "")
	})
}
