package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// newService is a Service over a fresh SQLite store and the in-memory bus,
// with a VOD that has an uploaded original, one imported from a URL, and a
// live stream.
func newService(t *testing.T) (*Service, metastore.Store, *bustest.Bus) {
	t.Helper()
	ctx := context.Background()
	meta := openMeta(t)
	for _, st := range []metastore.Stream{
		{ID: "vod-upload", Kind: metastore.KindVOD, Title: "Upload", SourceKey: "vod-upload/source/match.mp4"},
		{ID: "vod-import", Kind: metastore.KindVOD, Title: "Import", SourceURL: "https://example.com/a.mp4"},
		{ID: "live-1", Kind: metastore.KindLive, Title: "Live"},
	} {
		if _, err := meta.CreateStream(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	b := bustest.New()
	t.Cleanup(b.Close)
	svc := &Service{Meta: meta, Bus: b, Catalog: newTestCatalog(t, meta), Log: slog.New(slog.DiscardHandler),
		LookupHost: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "media.example.com":
				return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
			case "intranet.example.com":
				return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.7")}, nil
			}
			return nil, fmt.Errorf("no such host %s", host)
		}}
	return svc, meta, b
}

func parse(t *testing.T, body string) *Request {
	t.Helper()
	req, err := ParseRequest(strings.NewReader(body))
	if err != nil {
		t.Fatalf("ParseRequest(%s): %v", body, err)
	}
	return req
}

func TestCreateStoresTheJobAndAnnouncesIt(t *testing.T) {
	ctx := context.Background()
	svc, meta, b := newService(t)
	v, err := svc.Create(ctx, parse(t, `{"source": {"vod": "vod-upload"}, "title": "People in the match",
		"engines": [{"name": "people", "options": {"threshold": 0.8}}, {"name": "probe", "policy": {"max_in_flight": 4}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.ID, "job-") || len(v.ID) != len("job-")+12 || v.Status != "pending" || v.Title != "People in the match" ||
		v.Source.VOD != "vod-upload" || v.Chunking.Duration != "10s" || len(v.Engines) != 2 {
		t.Fatalf("view %+v", v)
	}
	people := v.Engines[0]
	if people.Name != "people" || people.TaskID != v.ID+"-people" || people.Status != "pending" || people.Total != 0 ||
		people.Options["threshold"] != 0.8 || people.Options["max_people"] != 20.0 || v.Engines[1].Policy.MaxInFlight != 4 {
		t.Fatalf("engines %+v", v.Engines)
	}

	job, err := meta.GetJob(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != metastore.JobPending || job.Kind != "vod" || job.StreamID != "vod-upload" {
		t.Fatalf("stored job %+v", job)
	}
	spec, err := DecodeSpec(job.Spec)
	if err != nil || spec.Engines[0].Options["window"] != "2s" || spec.Engines[1].Policy.Retries != DefaultRetries {
		t.Fatalf("stored spec %s: %v", job.Spec, err)
	}
	tasks, err := meta.ListTasks(ctx, v.ID)
	if err != nil || len(tasks) != 2 {
		t.Fatalf("tasks %+v, %v", tasks, err)
	}
	var payload map[string]any
	if err := json.Unmarshal(tasks[0].Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if tasks[0].ID != v.ID+"-people" || tasks[0].Engine != "people" || tasks[0].Status != metastore.JobPending ||
		!reflect.DeepEqual(payload, map[string]any{"threshold": 0.8, "max_people": 20.0, "window": "2s"}) {
		t.Fatalf("people task %+v payload %s", tasks[0], tasks[0].Payload)
	}

	recs := b.Records(protocol.TopicJobs)
	if len(recs) != 1 {
		t.Fatalf("%d records on %s, want 1", len(recs), protocol.TopicJobs)
	}
	run, err := protocol.DecodeJobRun(recs[0].Key, recs[0].Value)
	if err != nil || run.JobID != v.ID || string(recs[0].Key) != v.ID || run.SubmittedAt.IsZero() {
		t.Fatalf("JobRun %+v key %q: %v", run, recs[0].Key, err)
	}
}

func TestCreateChecksTheSource(t *testing.T) {
	ctx := context.Background()
	svc, meta, b := newService(t)
	probe := `"engines": [{"name": "probe"}]`
	svc.TopicExists = func(_ context.Context, topic string) (bool, error) { return topic == "stream_00000012", nil }
	for _, ok := range []string{
		`{"source": {"live": "live-1"}, ` + probe + `}`,
		`{"source": {"topic": "stream_00000012"}, ` + probe + `}`,
		`{"source": {"url": "https://media.example.com/a.mp4"}, ` + probe + `}`,
		`{"source": {"url": "http://93.184.216.34:8080/a.ts"}, ` + probe + `}`,
	} {
		if _, err := svc.Create(ctx, parse(t, ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for body, want := range map[string]string{
		`{"source": {"vod": "vod-nosuch"}, ` + probe + `}`:                   "source.vod: no vod stream is called vod-nosuch; GET /vod lists them",
		`{"source": {"vod": "live-1"}, ` + probe + `}`:                       "source.vod: stream live-1 is a live stream, not a vod one; give it as source.live",
		`{"source": {"live": "vod-upload"}, ` + probe + `}`:                  "source.live: stream vod-upload is a vod stream, not a live one; give it as source.vod",
		`{"source": {"live": "live-nosuch"}, ` + probe + `}`:                 "source.live: no live stream is called live-nosuch; GET /streams lists them",
		`{"source": {"topic": "stream_nosuch"}, ` + probe + `}`:              "source.topic: topic stream_nosuch does not exist",
		`{"source": {"url": "http://127.0.0.1:8080/a.mp4"}, ` + probe + `}`:  "source.url: refusing a source at 127.0.0.1, a loopback, private or reserved address",
		`{"source": {"url": "http://[::1]/a.mp4"}, ` + probe + `}`:           "source.url: refusing a source at ::1",
		`{"source": {"url": "http://intranet.example.com/"}, ` + probe + `}`: "source.url: refusing a source at 10.0.0.7",
		`{"source": {"url": "http://nosuch.invalid/"}, ` + probe + `}`:       "source.url: host nosuch.invalid does not resolve: no such host nosuch.invalid",
	} {
		_, err := svc.Create(ctx, parse(t, body))
		var re *RequestError
		if !errors.As(err, &re) || len(re.Problems) != 1 || !strings.HasPrefix(re.Problems[0].Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", body, err, want)
		}
	}
	_, err := svc.Create(ctx, parse(t, `{"source": {"vod": "vod-import"}, `+probe+`}`))
	if !errors.Is(err, ErrConflict) || err.Error() != "source.vod: vod vod-import cannot be processed: it was imported from a URL and weir keeps no original of it; give that URL as source.url" {
		t.Errorf("imported vod: %v", err)
	}
	_, err = svc.Create(ctx, parse(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "ocr"}]}`))
	if !errors.Is(err, ErrConflict) || !errors.Is(err, ErrEngineUnavailable) || !strings.HasPrefix(err.Error(), "engines[0].name: engine ocr is unavailable: ") {
		t.Errorf("unavailable engine: %v", err)
	}
	svc.AllowPrivateSources = true
	if _, err := svc.Create(ctx, parse(t, `{"source": {"url": "http://127.0.0.1:8080/a.mp4"}, `+probe+`}`)); err != nil {
		t.Errorf("private URL with AllowPrivateSources: %v", err)
	}
	// Refused requests store nothing and announce nothing.
	jobs, _, err := meta.ListJobs(ctx, "", 0, "")
	if err != nil || len(jobs) != 5 || len(b.Records(protocol.TopicJobs)) != 5 {
		t.Fatalf("%d jobs stored, %d announced, want 5 of each (%v)", len(jobs), len(b.Records(protocol.TopicJobs)), err)
	}
}

func TestCreateMarksTheJobFailedWhenTheBusRefusesIt(t *testing.T) {
	ctx := context.Background()
	svc, meta, b := newService(t)
	b.FailProduce(errors.New("broker down"))
	_, err := svc.Create(ctx, parse(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`))
	if !errors.Is(err, ErrBus) || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("error %v, want ErrBus with the cause", err)
	}
	jobs, _, err := meta.ListJobs(ctx, "", 0, "")
	if err != nil || len(jobs) != 1 || jobs[0].Status != metastore.JobFailed || jobs[0].Error != "could not queue the job on the bus" {
		t.Fatalf("jobs %+v, %v", jobs, err)
	}
}

func TestViewShowsEachEnginesProgress(t *testing.T) {
	ctx := context.Background()
	svc, meta, _ := newService(t)
	v, err := svc.Create(ctx, parse(t, `{"source": {"live": "live-1"}, "engines": [{"name": "people"}, {"name": "probe"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	states := []metastore.ChunkState{metastore.ChunkDone, metastore.ChunkDone, metastore.ChunkDone, metastore.ChunkDropped,
		metastore.ChunkFailed, metastore.ChunkIgnored, metastore.ChunkSent, metastore.ChunkQueued}
	for i, st := range states {
		if err := meta.PutJobChunk(ctx, metastore.JobChunk{JobID: v.ID, Engine: "people", ChunkUUID: fmt.Sprint("u-", i),
			ChunkIndex: int64(i), State: st}); err != nil {
			t.Fatal(err)
		}
	}
	beat := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	if err := meta.UpsertTask(ctx, metastore.Task{ID: TaskID(v.ID, "people"), JobID: v.ID, Name: "people", Engine: "people",
		Status: metastore.JobRunning, Output: TaskOutput{LastHeartbeat: beat, Instances: []string{"host-a-1", "host-b-1"}}.JSON()}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.Get(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Engines[0]
	if p.Total != 8 || p.Done != 3 || p.Dropped != 1 || p.Failed != 1 || p.Ignored != 1 || p.Sent != 1 || p.Queued != 1 ||
		p.Finished() != 6 || p.Status != "running" || p.LastHeartbeat == nil || !p.LastHeartbeat.Equal(beat) ||
		!reflect.DeepEqual(p.Instances, []string{"host-a-1", "host-b-1"}) {
		t.Fatalf("people progress %+v", p)
	}
	if q := got.Engines[1]; q.Name != "probe" || q.Total != 0 || q.Status != "pending" || q.LastHeartbeat != nil || q.Instances == nil {
		t.Fatalf("probe progress %+v", q)
	}

	if _, err := svc.Get(ctx, "job-nosuch"); !errors.Is(err, ErrNotFound) || err.Error() != "job job-nosuch not found; GET /jobs lists them" {
		t.Fatalf("unknown job: %v", err)
	}
}

func TestListCancelAndResults(t *testing.T) {
	ctx := context.Background()
	svc, meta, _ := newService(t)
	var ids []string
	for range 3 {
		v, err := svc.Create(ctx, parse(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "people"}, {"name": "probe"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	c, err := svc.Cancel(ctx, ids[1])
	if err != nil || c.Status != "cancelled" || c.Error != "cancelled" || c.Engines[0].Status != "cancelled" {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	if _, err := svc.Cancel(ctx, ids[1]); !errors.Is(err, ErrConflict) || err.Error() != "job "+ids[1]+" is already cancelled and cannot be cancelled" {
		t.Fatalf("cancel twice: %v", err)
	}
	if _, err := svc.Cancel(ctx, "job-nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}

	var listed []string
	cursor := ""
	for {
		page, next, err := svc.List(ctx, "pending", 1, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			listed = append(listed, v.ID)
			if len(v.Engines) != 2 {
				t.Fatalf("listed view without engines: %+v", v)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(listed) != 2 || listed[0] == ids[1] || listed[1] == ids[1] {
		t.Fatalf("pending jobs %v (all %v, cancelled %s)", listed, ids, ids[1])
	}
	for status, field := range map[string]string{"done": "status", "": "cursor"} {
		_, _, err := svc.List(ctx, status, 0, "bogus")
		var re *RequestError
		if !errors.As(err, &re) || re.Problems[0].Field != field {
			t.Errorf("List(%q, cursor bogus): %v, want a problem with %s", status, err, field)
		}
	}

	job := ids[0]
	for i, eng := range []string{"probe", "people", "people"} {
		if err := meta.PutResult(ctx, metastore.Result{JobID: job, Engine: eng, ChunkUUID: fmt.Sprint("u-", i),
			StartMs: int64(2-i) * 1000, EndMs: int64(3-i) * 1000, Content: json.RawMessage(`{"object": []}`)}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := svc.Results(ctx, job, metastore.ResultQuery{Engine: "people"})
	if err != nil || len(page.Items) != 2 || page.Items[0].StartMs != 0 || page.Items[1].StartMs != 1000 || page.Next != "" {
		t.Fatalf("people results: %+v, %v", page, err)
	}
	page, err = svc.Results(ctx, job, metastore.ResultQuery{FromMs: 1500, Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Items[0].Engine != "people" || page.Next == "" {
		t.Fatalf("from 1500, first page: %+v, %v", page, err)
	}
	for q, want := range map[metastore.ResultQuery]string{
		{Engine: "faces"}:        "engine: job " + job + " runs no engine faces (it runs people, probe)",
		{FromMs: -1}:             "from: must not be negative, got -1",
		{FromMs: 500, ToMs: 500}: "to: must be after from (500 ms), got 500",
		{After: "bogus"}:         "cursor: is not a cursor this server issued",
	} {
		_, err := svc.Results(ctx, job, q)
		var re *RequestError
		if !errors.As(err, &re) || !strings.HasPrefix(re.Problems[0].Error(), want) {
			t.Errorf("Results(%+v): %v, want %q", q, err, want)
		}
	}
	if _, err := svc.Results(ctx, "job-nosuch", metastore.ResultQuery{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("results of an unknown job: %v", err)
	}
}

func TestListWhereKeepsTheJobsOfOneStream(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	mine := map[string]bool{}
	for i, src := range []string{`{"vod": "vod-upload"}`, `{"live": "live-1"}`, `{"vod": "vod-upload"}`, `{"topic": "stream_00000012"}`} {
		v, err := svc.Create(ctx, parse(t, `{"source": `+src+`, "engines": [{"name": "probe"}]}`))
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if strings.Contains(src, "vod-upload") {
			mine[v.ID] = true
		}
	}
	views, next, err := svc.ListWhere(ctx, ListFilter{Stream: "vod-upload"}, 10, "")
	if err != nil || next != "" || len(views) != 2 {
		t.Fatalf("the jobs of vod-upload: %d, next %q, %v; want 2", len(views), next, err)
	}
	for _, v := range views {
		if !mine[v.ID] || v.Source.VOD != "vod-upload" {
			t.Errorf("listed %s (source %+v) for vod-upload", v.ID, v.Source)
		}
	}
	if live, _, err := svc.ListWhere(ctx, ListFilter{Stream: "live-1", Status: "pending"}, 10, ""); err != nil || len(live) != 1 || live[0].Source.Live != "live-1" {
		t.Fatalf("the pending jobs of live-1: %+v, %v", live, err)
	}
	if none, _, err := svc.ListWhere(ctx, ListFilter{Stream: "vod-nosuch"}, 10, ""); err != nil || len(none) != 0 {
		t.Fatalf("the jobs of a stream with none: %+v, %v", none, err)
	}
	var re *RequestError
	if _, _, err := svc.ListWhere(ctx, ListFilter{Stream: "vod-upload", Status: "done"}, 10, ""); !errors.As(err, &re) || re.Problems[0].Field != "status" {
		t.Fatalf("an unknown status: %v", err)
	}
}
