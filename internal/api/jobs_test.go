package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// jobsEnv is an env with an uploaded VOD and one imported from a URL.
func jobsEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireTool(t, "ffprobe") // the probe engine is available only with it
	e := newEnv(t, "")
	for _, st := range []metastore.Stream{
		{ID: "vod-upload", Kind: metastore.KindVOD, SourceKey: "vod-upload/source/match.mp4"},
		{ID: "vod-import", Kind: metastore.KindVOD, SourceURL: "https://example.com/a.mp4"},
	} {
		if _, err := e.meta.CreateStream(context.Background(), st); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) createJob(t *testing.T, body string) jobs.View {
	t.Helper()
	rec := e.doJSON("POST", "/jobs", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /jobs %s: %d %s", body, rec.Code, rec.Body)
	}
	return decode[jobs.View](t, rec)
}

func TestPostJobsCreatesAndAnnouncesAJob(t *testing.T) {
	e := jobsEnv(t)
	rec := e.doJSON("POST", "/jobs", `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe", "options": {"include": ["video"]}}]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	v := decode[jobs.View](t, rec)
	if rec.Header().Get("Location") != "/jobs/"+v.ID || v.Status != "pending" || len(v.Engines) != 1 {
		t.Fatalf("Location %q, view %+v", rec.Header().Get("Location"), v)
	}
	p := v.Engines[0]
	if p.Name != "probe" || p.TaskID != v.ID+"-probe" || p.Policy.MaxInFlight != 2 || fmt.Sprint(p.Options["include"]) != "[video]" {
		t.Fatalf("engine %+v", p)
	}
	msgs := e.pub.messages(protocol.TopicJobs)
	if len(msgs) != 1 || msgs[0].Key != v.ID {
		t.Fatalf("published %+v", msgs)
	}
	// The body is the same JSON GET /jobs/{id} answers.
	got := e.do("GET", "/jobs/"+v.ID, nil)
	if got.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", got.Code, got.Body)
	}
	if g := decode[jobs.View](t, got); g.ID != v.ID || g.Engines[0].Total != 0 || g.Engines[0].Instances == nil {
		t.Fatalf("GET view %+v", g)
	}
	if !strings.Contains(got.Body.String(), `"max_in_flight":2`) || !strings.Contains(got.Body.String(), `"instances":[]`) {
		t.Errorf("view JSON: %s", got.Body)
	}
}

func TestPostJobsRefusalsAreProblems(t *testing.T) {
	e := jobsEnv(t)
	probe := `"engines": [{"name": "probe"}]`
	cases := []struct {
		name, body string
		status     int
		detail     string
		locations  []string
	}{
		{"malformed", `{"source": `, 400, "malformed JSON", nil},
		{"not an object", `"vod-upload"`, 400, "the request must be a JSON object", nil},
		{"unknown member", `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe", "polcy": {}}]}`, 422,
			"engines[0].polcy: unknown member", []string{"body.engines[0].polcy"}},
		{"option out of enum", `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe", "options": {"include": ["colour"]}}]}`, 422,
			`engines[0].options.include: "colour" is not one of format, duration, video, audio`, []string{"body.engines[0].options.include"}},
		{"unknown engine", `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}, {"name": "nosuch"}]}`, 422,
			"engines[1].name: no engine is called nosuch", []string{"body.engines[1].name"}},
		{"two problems", `{"source": {"vod": "vod-upload", "live": "live-1"}, "engines": [{"name": "probe", "policy": {"retries": 11}}]}`, 422,
			"source: give exactly one of", []string{"body.source", "body.engines[0].policy.retries"}},
		{"unknown vod", `{"source": {"vod": "vod-nosuch"}, ` + probe + `}`, 422, "source.vod: no vod stream is called vod-nosuch", []string{"body.source.vod"}},
		{"private url", `{"source": {"url": "http://10.0.0.1/a.mp4"}, ` + probe + `}`, 422, "refusing a source at 10.0.0.1", []string{"body.source.url"}},
		{"imported vod", `{"source": {"vod": "vod-import"}, ` + probe + `}`, 409,
			"vod vod-import cannot be processed: it was imported from a URL", nil},
		{"too large", `{"title": "` + strings.Repeat("x", jobs.MaxRequestBytes) + `"}`, 413, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := wantProblem(t, e.doJSON("POST", "/jobs", c.body), c.status, c.detail)
			for i, loc := range c.locations {
				if i >= len(p.Errors) || p.Errors[i].Location != loc {
					t.Errorf("errors %+v, want location %d to be %s", p.Errors, i, loc)
				}
			}
		})
	}
	if n := len(e.pub.messages(protocol.TopicJobs)); n != 0 {
		t.Errorf("refused requests announced %d jobs", n)
	}
}

func TestPostJobsAnswers503WhenTheBusIsDown(t *testing.T) {
	e := jobsEnv(t)
	e.pub.setErr(fmt.Errorf("broker down"))
	p := wantProblem(t, e.doJSON("POST", "/jobs", `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`),
		http.StatusServiceUnavailable, "could not be queued on the bus", "retry later")
	id := strings.Fields(p.Detail)[1]
	if v := decode[jobs.View](t, e.do("GET", "/jobs/"+id, nil)); v.Status != "failed" {
		t.Errorf("job %s is %s, want failed", id, v.Status)
	}
}

func TestJobsListGetAndCancel(t *testing.T) {
	e := jobsEnv(t)
	a := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	b := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}], "title": "second"}`)

	rec := e.do("POST", "/jobs/"+a.ID+"/cancel", nil)
	if rec.Code != http.StatusOK || decode[jobs.View](t, rec).Status != "cancelled" {
		t.Fatalf("cancel: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, e.do("POST", "/jobs/"+a.ID+"/cancel", nil), http.StatusConflict, "job "+a.ID+" is already cancelled")
	wantProblem(t, e.do("POST", "/jobs/job-nosuch/cancel", nil), http.StatusNotFound, "job job-nosuch not found")
	wantProblem(t, e.do("GET", "/jobs/job-nosuch", nil), http.StatusNotFound, "job job-nosuch not found; GET /jobs lists them")

	list := decode[JobList](t, e.do("GET", "/jobs", nil))
	if len(list.Items) != 2 || list.Items[0].ID != b.ID || list.Items[0].Title != "second" || list.NextCursor != "" {
		t.Fatalf("all jobs: %+v", list)
	}
	page := decode[JobList](t, e.do("GET", "/jobs?status=pending&limit=1", nil))
	if len(page.Items) != 1 || page.Items[0].ID != b.ID {
		t.Fatalf("pending jobs: %+v", page)
	}
	page = decode[JobList](t, e.do("GET", "/jobs?limit=1", nil))
	next := decode[JobList](t, e.do("GET", "/jobs?limit=1&cursor="+page.NextCursor, nil))
	if page.NextCursor == "" || len(next.Items) != 1 || next.Items[0].ID != a.ID {
		t.Fatalf("second page: %+v after %+v", next, page)
	}
	wantProblem(t, e.do("GET", "/jobs?status=done", nil), http.StatusUnprocessableEntity, "status")
	p := wantProblem(t, e.do("GET", "/jobs?cursor=bogus", nil), http.StatusUnprocessableEntity, "cursor: is not a cursor this server issued")
	if len(p.Errors) != 1 || p.Errors[0].Location != "query.cursor" {
		t.Errorf("errors %+v", p.Errors)
	}
}

func TestJobsListFiltersByStream(t *testing.T) {
	e := jobsEnv(t)
	if _, err := e.meta.CreateStream(context.Background(), metastore.Stream{ID: "vod-other", Kind: metastore.KindVOD, SourceKey: "vod-other/source/a.mp4"}); err != nil {
		t.Fatal(err)
	}
	a := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	e.createJob(t, `{"source": {"vod": "vod-other"}, "engines": [{"name": "probe"}]}`)
	c := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	var ids []string
	cursor := ""
	for range 5 {
		page := decode[JobList](t, e.do("GET", "/jobs?stream=vod-upload&limit=1&cursor="+cursor, nil))
		for _, v := range page.Items {
			if v.Source.VOD != "vod-upload" {
				t.Fatalf("?stream=vod-upload listed %s of %+v", v.ID, v.Source)
			}
			ids = append(ids, v.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) != 2 || ids[0] != c.ID || ids[1] != a.ID {
		t.Fatalf("the jobs of vod-upload, a page at a time: %v, want [%s %s]", ids, c.ID, a.ID)
	}
	if page := decode[JobList](t, e.do("GET", "/jobs?stream=vod-nosuch", nil)); len(page.Items) != 0 {
		t.Fatalf("the jobs of a stream with none: %+v", page.Items)
	}
	if page := decode[JobList](t, e.do("GET", "/jobs?stream=vod-upload&status=cancelled", nil)); len(page.Items) != 0 {
		t.Fatalf("cancelled jobs of vod-upload: %+v", page.Items)
	}
	wantProblem(t, e.do("GET", "/jobs?stream="+strings.Repeat("v", 129), nil), http.StatusUnprocessableEntity, "stream")
}

func TestJobResultsAreTimeOrderedVTNDocuments(t *testing.T) {
	e := jobsEnv(t)
	v := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	ctx := context.Background()
	for i, start := range []int64{20000, 0, 10000} {
		doc := fmt.Sprintf(`{"series": [{"startTimeMs": %d, "stopTimeMs": %d, "object": {"label": "n%d"}}]}`, start, start+10000, i)
		if err := e.meta.PutResult(ctx, metastore.Result{JobID: v.ID, Engine: "probe", TaskID: v.ID + "-probe",
			ChunkUUID: fmt.Sprint("u-", i), ChunkIndex: start / 10000, StartMs: start, EndMs: start + 10000,
			OutputType: "tag", Content: json.RawMessage(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	rec := e.do("GET", "/jobs/"+v.ID+"/results", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var res struct {
		JobID string `json:"job_id"`
		Items []struct {
			StartMs int64 `json:"start_ms"`
			Content struct {
				Series []struct {
					StartTimeMs int64 `json:"startTimeMs"`
				} `json:"series"`
			} `json:"content"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.JobID != v.ID || len(res.Items) != 3 || res.NextCursor != "" {
		t.Fatalf("results %s", rec.Body)
	}
	for i, it := range res.Items {
		if it.StartMs != int64(i)*10000 || it.Content.Series[0].StartTimeMs != it.StartMs {
			t.Errorf("item %d starts at %d (series %+v), want time order", i, it.StartMs, it.Content.Series)
		}
	}
	if err := json.Unmarshal(e.do("GET", "/jobs/"+v.ID+"/results?from=15000&to=25000&engine=probe", nil).Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 2 || res.Items[0].StartMs != 10000 {
		t.Fatalf("15 s to 25 s: %+v", res.Items)
	}
	wantProblem(t, e.do("GET", "/jobs/"+v.ID+"/results?engine=faces", nil), http.StatusUnprocessableEntity, "engine: job "+v.ID+" runs no engine faces (it runs probe)")
	wantProblem(t, e.do("GET", "/jobs/"+v.ID+"/results?from=5000&to=100", nil), http.StatusUnprocessableEntity, "to: must be after from")
	wantProblem(t, e.do("GET", "/jobs/"+v.ID+"/results?from=-1", nil), http.StatusUnprocessableEntity)
	wantProblem(t, e.do("GET", "/jobs/job-nosuch/results", nil), http.StatusNotFound, "job job-nosuch not found")
}

func TestJobChunksAreServedFromTheObjectStore(t *testing.T) {
	e := jobsEnv(t)
	v := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	ctx := context.Background()
	frame := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 0xe0}, 1000)
	if _, err := e.objects.Put(ctx, JobChunkKey(v.ID, "frame", "000003.jpg"), bytes.NewReader(frame), int64(len(frame)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	wav := []byte("RIFF....WAVEfmt ")
	if _, err := e.objects.Put(ctx, JobChunkKey(v.ID, "audio", "000000.wav"), bytes.NewReader(wav), int64(len(wav)), ""); err != nil {
		t.Fatal(err)
	}
	rec := e.do("GET", "/jobs/"+v.ID+"/chunks/frame/000003.jpg", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/jpeg" || !bytes.Equal(rec.Body.Bytes(), frame) {
		t.Fatalf("frame: %d %s, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
	rec = e.do("GET", "/jobs/"+v.ID+"/chunks/frame/000003.jpg", nil, "Range", "bytes=4-7")
	if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), frame[4:8]) {
		t.Fatalf("range: %d %q", rec.Code, rec.Body.Bytes())
	}
	rec = e.do("GET", "/jobs/"+v.ID+"/chunks/audio/000000.wav", nil)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "audio/") || rec.Body.String() != string(wav) {
		t.Fatalf("wav: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	for target, detail := range map[string]string{
		"/jobs/" + v.ID + "/chunks/frame/000004.jpg":        "chunk frame/000004.jpg of job " + v.ID + " not found",
		"/jobs/" + v.ID + "/chunks/thumbs/000003.jpg":       "kinds are video, audio, frame and routed",
		"/jobs/" + v.ID + "/chunks/frame/3.jpg":             "chunk files are named like 000012.jpg",
		"/jobs/" + v.ID + "/chunks/frame/%2e%2e%2fetc.jpg":  "chunk files are named like 000012.jpg",
		"/jobs/job-nosuch/chunks/frame/000003.jpg":          "job job-nosuch not found",
		"/jobs/vod-upload%2Fsource/chunks/frame/000003.jpg": "not a job id",
	} {
		wantProblem(t, e.do("GET", target, nil), http.StatusNotFound, detail)
	}
}

func TestJobArtifactsAreServedFromTheObjectStore(t *testing.T) {
	e := jobsEnv(t)
	v := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`)
	ctx := context.Background()
	thumb := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 0xe0}, 500)
	if _, err := e.objects.Put(ctx, JobArtifactKey(v.ID, "scenes", "scene-000001.jpg"), bytes.NewReader(thumb), int64(len(thumb)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	notes := []byte(`{"a":1}`)
	if _, err := e.objects.Put(ctx, JobArtifactKey(v.ID, "scenes", "notes.json"), bytes.NewReader(notes), int64(len(notes)), "application/json"); err != nil {
		t.Fatal(err)
	}
	rec := e.do("GET", "/jobs/"+v.ID+"/artifacts/scenes/scene-000001.jpg", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/jpeg" || !bytes.Equal(rec.Body.Bytes(), thumb) {
		t.Fatalf("thumbnail: %d %s, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
	rec = e.do("GET", "/jobs/"+v.ID+"/artifacts/scenes/notes.json", nil, "Range", "bytes=1-3")
	if rec.Code != http.StatusPartialContent || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != `"a"` {
		t.Fatalf("range: %d %s %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	}
	for target, detail := range map[string]string{
		"/jobs/" + v.ID + "/artifacts/scenes/scene-000002.jpg":       "artifact scenes/scene-000002.jpg of job " + v.ID + " not found",
		"/jobs/" + v.ID + "/artifacts/black/scene-000001.jpg":        "artifact black/scene-000001.jpg of job " + v.ID + " not found",
		"/jobs/" + v.ID + "/artifacts/Scenes/scene-000001.jpg":       "not an engine name",
		"/jobs/" + v.ID + "/artifacts/scenes/%2e%2e%2fchunks.jpg":    "artifact names are letters",
		"/jobs/" + v.ID + "/artifacts/scenes/%2e%2e":                 "artifact names are letters",
		"/jobs/" + v.ID + "/artifacts/scenes/a%20b.jpg":              "artifact names are letters",
		"/jobs/job-nosuch/artifacts/scenes/scene-000001.jpg":         "job job-nosuch not found",
		"/jobs/vod-upload%2Fsource/artifacts/scenes/scene-00001.jpg": "not a job id",
	} {
		wantProblem(t, e.do("GET", target, nil), http.StatusNotFound, detail)
	}
}

func TestJobRoutesAreInTheOpenAPIDocumentAndNeedTheToken(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.APIToken = "s3cret" })
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(e.do("GET", "/openapi.json", nil).Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for path, methods := range map[string][]string{
		"/jobs": {"get", "post"}, "/jobs/{id}": {"get"}, "/jobs/{id}/cancel": {"post"},
		"/jobs/{id}/results": {"get"}, "/jobs/{id}/windows": {"get"}, "/jobs/{id}/chunks/{kind}/{file}": {"get"},
		"/jobs/{id}/artifacts/{engine}/{file}": {"get"},
	} {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("OpenAPI lacks %s %s", strings.ToUpper(m), path)
			}
		}
	}
	if !bytes.Contains(doc.Paths["/jobs"]["post"], []byte(`"max_in_flight"`)) && !strings.Contains(e.do("GET", "/openapi.json", nil).Body.String(), `"max_in_flight"`) {
		t.Error("the OpenAPI document does not describe the job request's policy")
	}
	wantProblem(t, e.doJSON("POST", "/jobs", `{}`), http.StatusUnauthorized)
	wantProblem(t, e.do("POST", "/jobs/job-1/cancel", nil), http.StatusUnauthorized)
	wantProblem(t, e.doJSON("POST", "/jobs", `{}`, "Authorization", "Bearer s3cret"), http.StatusUnprocessableEntity, "source: is required")
}

func TestJobProblemsNameEachMemberOnce(t *testing.T) {
	e := jobsEnv(t)
	p := wantProblem(t, e.doJSON("POST", "/jobs", `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe", "policy": {"retries": 11, "max_in_flight": 0}}]}`),
		http.StatusUnprocessableEntity)
	want := "invalid job request: field engines[0].policy.max_in_flight: must be between 1 and 64, got 0; field engines[0].policy.retries: must be between 0 and 10, got 11"
	if p.Detail != want || len(p.Errors) != 2 {
		t.Fatalf("detail %q (errors %+v), want %q", p.Detail, p.Errors, want)
	}
	p = wantProblem(t, e.do("GET", "/jobs?cursor=x", nil), http.StatusUnprocessableEntity)
	if p.Detail != "invalid query: query parameter cursor: is not a cursor this server issued; list again without it" {
		t.Fatalf("detail %q", p.Detail)
	}
}
