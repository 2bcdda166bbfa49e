package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// TestJobWindowsArePagedByStartWithLateResults: GET /jobs/{id}/windows
// answers the stored windows by start, with their results and late
// results, filtered by time and paged.
func TestJobWindowsArePagedByStartWithLateResults(t *testing.T) {
	e := jobsEnv(t)
	v := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	ctx := context.Background()
	for i := range int64(3) {
		w := metastore.Window{JobID: v.ID, StartMs: 5000 * i, EndMs: 5000 * (i + 1), Seq: i, Status: metastore.WindowComplete,
			Results: []metastore.Result{{JobID: v.ID, Engine: "probe", TaskID: v.ID + "-probe", ChunkUUID: fmt.Sprint("u-", i),
				StartMs: 5000 * i, EndMs: 5000*i + 100, OutputType: "text", Content: json.RawMessage(`{"series":[]}`)}}}
		if i == 1 {
			w.Status, w.Missing = metastore.WindowPartial, []string{"probe"}
		}
		if _, err := e.meta.PutWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	late := metastore.LateResult{WindowStartMs: 5000, Result: metastore.Result{JobID: v.ID, Engine: "probe", ChunkUUID: "u-late",
		StartMs: 6000, EndMs: 6100, Content: json.RawMessage(`{"series":[]}`)}}
	if _, err := e.meta.PutLateResult(ctx, late); err != nil {
		t.Fatal(err)
	}
	type page struct {
		JobID string `json:"job_id"`
		Items []struct {
			StartMs int64    `json:"start_ms"`
			Seq     int64    `json:"seq"`
			Status  string   `json:"status"`
			Missing []string `json:"missing"`
			Results []struct {
				Engine  string          `json:"engine"`
				StartMs int64           `json:"start_ms"`
				Content json.RawMessage `json:"content"`
			} `json:"results"`
			Late []struct {
				ChunkUUID string `json:"chunk_uuid"`
				ArrivedAt string `json:"arrived_at"`
			} `json:"late"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	get := func(query string) page {
		t.Helper()
		rec := e.do("GET", "/jobs/"+v.ID+"/windows"+query, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET windows%s: %d %s", query, rec.Code, rec.Body)
		}
		var p page
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := get("?limit=2")
	if first.JobID != v.ID || len(first.Items) != 2 || first.NextCursor == "" || first.Items[0].Status != "complete" ||
		len(first.Items[0].Missing) != 0 || len(first.Items[0].Results) != 1 || string(first.Items[0].Results[0].Content) != `{"series":[]}` {
		t.Fatalf("first page %+v", first)
	}
	if w := first.Items[1]; w.Status != "partial" || len(w.Missing) != 1 || len(w.Late) != 1 || w.Late[0].ChunkUUID != "u-late" || w.Late[0].ArrivedAt == "" {
		t.Fatalf("partial window %+v", w)
	}
	if rest := get("?limit=2&cursor=" + first.NextCursor); len(rest.Items) != 1 || rest.Items[0].Seq != 2 || rest.NextCursor != "" {
		t.Fatalf("second page %+v", rest)
	}
	if some := get("?from=9000&to=10001"); len(some.Items) != 2 || some.Items[0].StartMs != 5000 {
		t.Fatalf("windows over [9000, 10001): %+v", some)
	}
	wantProblem(t, e.do("GET", "/jobs/"+v.ID+"/windows?from=5000&to=100", nil), http.StatusUnprocessableEntity, "to: must be after from")
	wantProblem(t, e.do("GET", "/jobs/"+v.ID+"/windows?cursor=soon", nil), http.StatusUnprocessableEntity, "cursor: is not a cursor")
	wantProblem(t, e.do("GET", "/jobs/job-nosuch/windows", nil), http.StatusNotFound, "job job-nosuch not found")
}
