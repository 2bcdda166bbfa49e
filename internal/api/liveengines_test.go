package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// TestStartStreamWithEnginesStartsAJobOnIt: engines given with the start
// run as one job on the live stream, created with it and announced; a
// later POST /streams/{id}/engines adds another job on the same stream;
// GET /jobs?stream= finds both.
func TestStartStreamWithEnginesStartsAJobOnIt(t *testing.T) {
	testenv.RequireTool(t, "ffprobe")
	e := newEnv(t, "")
	got := startStream(t, e, map[string]any{"title": "Match day", "engines": []any{map[string]any{"name": "probe"}},
		"chunking": map[string]any{"duration": "2s"}, "aggregate": map[string]any{"window": "2s"}})
	if got.Job == nil || got.Job.Source.Live != got.StreamID || got.Job.Status != "pending" || got.Job.Title != "Match day" ||
		got.Job.Chunking.Duration != "2s" || got.Job.Aggregate.Window != "2s" || len(got.Job.Engines) != 1 || got.Job.Engines[0].Name != "probe" {
		t.Fatalf("the stream's job: %+v", got.Job)
	}
	if msgs := e.pub.messages(protocol.TopicJobs); len(msgs) != 1 || msgs[0].Key != got.Job.ID {
		t.Fatalf("job runs announced: %+v", msgs)
	}
	rec := e.doJSON("POST", "/streams/"+got.StreamID+"/engines", `{"engines": [{"name": "probe", "options": {"include": ["video"]}}], "title": "Second"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("attach: %d %s", rec.Code, rec.Body)
	}
	second := decode[jobs.View](t, rec)
	if second.Source.Live != got.StreamID || second.Title != "Second" || rec.Header().Get("Location") != "/jobs/"+second.ID || second.ID == got.Job.ID {
		t.Fatalf("the attached job: %+v", second)
	}
	list := decode[JobList](t, e.do("GET", "/jobs?stream="+got.StreamID, nil))
	if len(list.Items) != 2 {
		t.Fatalf("jobs of the stream: %+v", list.Items)
	}
	// A stream without engines has no job.
	if plain := startStream(t, e, map[string]any{"title": "plain"}); plain.Job != nil {
		t.Fatalf("a stream without engines has job %+v", plain.Job)
	}
}

// TestStreamEnginesRefusals: bad engines are refused before the stream
// is created, each problem naming its member; engines cannot be attached
// to a stream that ended, or that does not exist.
func TestStreamEnginesRefusals(t *testing.T) {
	testenv.RequireTool(t, "ffprobe")
	e := newEnv(t, "")
	for body, want := range map[string]string{
		`{"engines": [{"name": "nosuch"}]}`:                                 "field engines[0].name: no engine is called nosuch",
		`{"engines": [{"name": "probe", "options": {"include": ["x"]}}]}`:   "body.engines[0].options.include",
		`{"engines": [{"name": "probe"}], "chunking": {"duration": "1ms"}}`: "field chunking.duration: must be between 1s and 10m0s",
		`{"chunking": {"duration": "2s"}}`:                                  "field engines: is required",
	} {
		rec := e.doJSON("POST", "/streams/start", body)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %s, want 422 naming %s", body, rec.Code, rec.Body, want)
		}
	}
	if n := e.streamCount(metastore.KindLive); n != 0 {
		t.Fatalf("%d streams created by refused starts", n)
	}
	st := startStream(t, e, map[string]any{"title": "x"})
	for body, want := range map[string]string{
		`{}`:                                  "field engines: is required",
		`{"engines": [{"name": "keywords"}]}`: "engine keywords reads other engines' outputs",
	} {
		rec := e.doJSON("POST", "/streams/"+st.StreamID+"/engines", body)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("attach %s: %d %s, want 422 naming %s", body, rec.Code, rec.Body, want)
		}
	}
	if rec := e.doJSON("POST", "/streams/live-000000000001/engines", `{"engines": [{"name": "probe"}]}`); rec.Code != http.StatusNotFound {
		t.Errorf("attach to no stream: %d %s", rec.Code, rec.Body)
	}
	if rec := e.doJSON("POST", "/streams/"+st.StreamID+"/end", nil); rec.Code != http.StatusAccepted {
		t.Fatalf("end: %d %s", rec.Code, rec.Body)
	}
	rec := e.doJSON("POST", "/streams/"+st.StreamID+"/engines", `{"engines": [{"name": "probe"}]}`)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "already ended") {
		t.Errorf("attach to an ended stream: %d %s", rec.Code, rec.Body)
	}
}
