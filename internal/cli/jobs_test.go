package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

var jobIDPattern = regexp.MustCompile(`job-[0-9a-f]{12}`)

// startJobsServer runs the real REST API over real stores with an
// uploaded VOD to make jobs of.
func startJobsServer(t *testing.T) (string, metastore.Store, controlRecorder) {
	t.Helper()
	testenv.RequireTool(t, "ffprobe") // the probe engine is available only with it
	hs, meta, rec := startStreamsServer(t)
	if _, err := meta.CreateStream(context.Background(), metastore.Stream{ID: "vod-match", Kind: metastore.KindVOD,
		SourceKey: "vod-match/source/match.mp4"}); err != nil {
		t.Fatal(err)
	}
	return hs.URL, meta, rec
}

// createJob makes a job with the CLI and returns its id.
func createJob(t *testing.T, server string, args ...string) string {
	t.Helper()
	res := runWeir(testContext(t), append([]string{"jobs", "create", "--server", server}, args...)...)
	if res.err != nil {
		t.Fatalf("jobs create %v: %v\n%s", args, res.err, res.stderr)
	}
	id := jobIDPattern.FindString(res.stdout)
	if id == "" {
		t.Fatalf("no job id in:\n%s", res.stdout)
	}
	return id
}

func TestJobsCreateSendsTheEnginesWithTypedOptions(t *testing.T) {
	server, meta, rec := startJobsServer(t)
	res := runWeir(testContext(t), "jobs", "create", "--server", server, "--vod", "vod-match",
		"--engine", "probe,include=video,audio", "--chunk-duration", "5s", "--frame-rate", "2", "--title", "Match")
	if res.err != nil {
		t.Fatalf("jobs create: %v\n%s", res.err, res.stderr)
	}
	id := jobIDPattern.FindString(res.stdout)
	for _, want := range []string{"Created " + id + " (pending): probe on vod vod-match", "weir jobs show " + id + " --wait"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	job, err := meta.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := jobs.DecodeSpec(job.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(spec.Engines[0].Options["include"], []any{"video", "audio"}) || spec.Chunking.Duration != "5s" ||
		spec.Chunking.FrameRate != 2 || spec.Title != "Match" {
		t.Fatalf("stored request %+v", spec)
	}
	if recs := rec.Records(protocol.TopicJobs); len(recs) != 1 || string(recs[0].Key) != id {
		t.Fatalf("JobRun records %v", recs)
	}
}

func TestJobsCreateRefusals(t *testing.T) {
	server, _, _ := startJobsServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--engine", "probe"}, "give exactly one source"},
		{[]string{"--vod", "vod-match", "--live", "live-1", "--engine", "probe"}, "give exactly one source"},
		{[]string{"--vod", "vod-match"}, "give at least one --engine"},
		{[]string{"--vod", "vod-match", "--engine", ",x=1"}, "starts with the engine's name"},
		{[]string{"--vod", "vod-match", "--engine", "probe,include=colour"}, `engines[0].options.include: "colour" is not one of format, duration, video, audio`},
		{[]string{"--vod", "vod-nosuch", "--engine", "probe"}, "422 Unprocessable Entity: invalid job request: field source.vod: no vod stream is called vod-nosuch"},
		{[]string{"--vod", "vod-match", "--engine", "nosuch"}, "engines[0].name: no engine is called nosuch"},
		{[]string{"--vod", "vod-match", "--engine", "probe", "--chunk-duration", "1h"}, "chunking.duration: must be between 1s and 10m0s"},
	} {
		res := runWeir(testContext(t), append([]string{"jobs", "create", "--server", server}, c.args...)...)
		if res.err == nil || !strings.Contains(res.err.Error(), c.want) {
			t.Errorf("jobs create %v: %v, want an error containing %q", c.args, res.err, c.want)
		}
	}
}

func TestJobsListShowCancel(t *testing.T) {
	server, meta, _ := startJobsServer(t)
	a := createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	b := createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	ctx := context.Background()
	for i, st := range []metastore.ChunkState{metastore.ChunkDone, metastore.ChunkDone, metastore.ChunkDropped, metastore.ChunkSent} {
		if err := meta.PutJobChunk(ctx, metastore.JobChunk{JobID: b, Engine: "probe", ChunkUUID: fmt.Sprint("u", i), ChunkIndex: int64(i), State: st}); err != nil {
			t.Fatal(err)
		}
	}

	res := runWeir(testContext(t), "jobs", "list", "--server", server)
	if res.err != nil {
		t.Fatalf("jobs list: %v", res.err)
	}
	lines := strings.Split(strings.TrimSpace(squeeze(res.stdout)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID STATUS SOURCE ENGINES (DONE/TOTAL) CREATED") ||
		!strings.HasPrefix(lines[1], b+" pending vod vod-match probe 2/4") || !strings.HasPrefix(lines[2], a+" pending vod vod-match probe 0/0") {
		t.Fatalf("jobs list:\n%s", res.stdout)
	}

	res = runWeir(testContext(t), "jobs", "show", b, "--server", server)
	if res.err != nil {
		t.Fatalf("jobs show: %v", res.err)
	}
	for _, want := range []string{"Status pending", "Source vod vod-match", "Chunking 10s chunks, 1 frames/s, audio wav",
		"ENGINE STATUS DONE/TOTAL IN FLIGHT QUEUED IGNORED DROPPED FAILED HEARTBEAT INSTANCES", "probe pending 2/4 1 0 0 1 0 -"} {
		if !strings.Contains(squeeze(res.stdout), want) {
			t.Errorf("jobs show lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runWeir(testContext(t), "jobs", "show", b, "--json", "--server", server)
	var v jobs.View
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil || v.ID != b || v.Engines[0].Dropped != 1 {
		t.Fatalf("jobs show --json: %v\n%s", err, res.stdout)
	}

	res = runWeir(testContext(t), "jobs", "cancel", a, "--server", server)
	if res.err != nil || !strings.Contains(res.stdout, "Cancelled "+a) {
		t.Fatalf("jobs cancel: %v\n%s", res.err, res.stdout)
	}
	res = runWeir(testContext(t), "jobs", "cancel", a, "--server", server)
	if res.err == nil || !strings.Contains(res.err.Error(), "409 Conflict: job "+a+" is already cancelled") {
		t.Fatalf("cancel twice: %v", res.err)
	}
	res = runWeir(testContext(t), "jobs", "list", "--status", "cancelled", "--server", server)
	if res.err != nil || !strings.Contains(res.stdout, a) || strings.Contains(res.stdout, b) {
		t.Fatalf("jobs list --status cancelled: %v\n%s", res.err, res.stdout)
	}
	if _, err := meta.CreateStream(ctx, metastore.Stream{ID: "vod-other", Kind: metastore.KindVOD, SourceKey: "vod-other/source/a.mp4"}); err != nil {
		t.Fatal(err)
	}
	c := createJob(t, server, "--vod", "vod-other", "--engine", "probe")
	res = runWeir(testContext(t), "jobs", "list", "--stream", "vod-other", "--server", server)
	if res.err != nil || !strings.Contains(res.stdout, c) || strings.Contains(res.stdout, a) || strings.Contains(res.stdout, b) {
		t.Fatalf("jobs list --stream vod-other: %v\n%s", res.err, res.stdout)
	}
	res = runWeir(testContext(t), "jobs", "list", "--stream", "vod-match", "--status", "pending", "--server", server)
	if res.err != nil || !strings.Contains(res.stdout, b) || strings.Contains(res.stdout, a) || strings.Contains(res.stdout, c) {
		t.Fatalf("jobs list --stream vod-match --status pending: %v\n%s", res.err, res.stdout)
	}
	res = runWeir(testContext(t), "jobs", "show", "job-nosuch", "--server", server)
	if res.err == nil || !strings.Contains(res.err.Error(), "404 Not Found: job job-nosuch not found") {
		t.Fatalf("show unknown: %v", res.err)
	}
}

// runnerStandIn plays a job runner: it moves the job to running, cuts
// chunks and answers them over a few polls, then ends the job in final.
func runnerStandIn(t *testing.T, meta metastore.Store, id string, final metastore.JobStatus) {
	t.Helper()
	ctx := context.Background()
	setStatus := func(st metastore.JobStatus, reason string) {
		job, err := meta.GetJob(ctx, id)
		if err != nil {
			t.Error(err)
			return
		}
		job.Status, job.Error = st, reason
		if _, err := meta.UpdateJob(ctx, job); err != nil {
			t.Error(err)
		}
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		setStatus(metastore.JobRunning, "")
		for i := range 3 {
			for _, st := range []metastore.ChunkState{metastore.ChunkSent, metastore.ChunkDone} {
				if i == 2 && st == metastore.ChunkDone && final == metastore.JobFailed {
					st = metastore.ChunkFailed
				}
				if err := meta.PutJobChunk(ctx, metastore.JobChunk{JobID: id, Engine: "probe", ChunkUUID: fmt.Sprint("u", i),
					ChunkIndex: int64(i), State: st}); err != nil {
					t.Error(err)
				}
				time.Sleep(60 * time.Millisecond)
			}
		}
		reason := ""
		if final == metastore.JobFailed {
			reason = "engine probe failed every chunk"
		}
		setStatus(final, reason)
	}()
}

func TestJobsShowWaitFollowsTheJobToItsEnd(t *testing.T) {
	server, meta, _ := startJobsServer(t)
	id := createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	runnerStandIn(t, meta, id, metastore.JobComplete)
	res := runWeir(testContext(t), "jobs", "show", id, "--wait", "--interval", "20ms", "--server", server)
	if res.err != nil {
		t.Fatalf("jobs show --wait: %v\n%s", res.err, res.stdout)
	}
	out := res.stdout
	// Plain lines (stdout is not a terminal), each status once, and the
	// counts as they grow.
	for _, want := range []string{"Watching " + id, "● pending", "● running", "● complete",
		"probe: 0/0 done, 0 dropped, 0 failed", "probe: 3/3 done, 0 dropped, 0 failed",
		"Job " + id + " complete. Its results: weir jobs results " + id} {
		if strings.Count(out, want) != 1 {
			t.Errorf("output has %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
	if strings.Contains(out, "\033[") {
		t.Errorf("terminal escapes in plain output:\n%q", out)
	}
	if i, j := strings.Index(out, "● running"), strings.Index(out, "● complete"); i < 0 || j < i {
		t.Errorf("statuses out of order:\n%s", out)
	}

	id = createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	runnerStandIn(t, meta, id, metastore.JobFailed)
	res = runWeir(testContext(t), "jobs", "show", id, "--wait", "--interval", "20ms", "--server", server)
	if res.exitCode() != 1 || !strings.Contains(res.err.Error(), "job "+id+" failed: engine probe failed every chunk") ||
		!strings.Contains(res.stdout, "probe: 2/3 done, 0 dropped, 1 failed") {
		t.Fatalf("failed job: exit %d, %v\n%s", res.exitCode(), res.err, res.stdout)
	}
}

func TestJobProgressRedrawsBarsOnATerminal(t *testing.T) {
	var buf strings.Builder
	p := &jobProgress{w: &buf, tty: true, last: map[string]string{}}
	v := jobs.View{Status: "running", Engines: []jobs.EngineProgress{
		{Name: "people", Total: 4, Done: 2, Dropped: 1, Sent: 1},
		{Name: "probe", Total: 4, Done: 4},
	}}
	p.update(v)
	v.Engines[0].Done, v.Engines[0].Sent = 3, 0
	p.update(v)
	out := buf.String()
	for _, want := range []string{
		"  people [==================      ] 2/4 done, 1 dropped, 0 failed, 1 in flight\n",
		"  probe  [========================] 4/4 done, 0 dropped, 0 failed\n",
		"\033[2A\r\033[K\n\r\033[K\n\033[2A  people [========================] 3/4 done, 1 dropped, 0 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	if strings.Count(out, "● running") != 1 {
		t.Errorf("status printed %d times:\n%q", strings.Count(out, "● running"), out)
	}
}

func TestJobsResultsPrintsTimeOrderedOutputs(t *testing.T) {
	server, meta, _ := startJobsServer(t)
	id := createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	ctx := context.Background()
	for i, start := range []int64{70000, 0, 95500} {
		if err := meta.PutResult(ctx, metastore.Result{JobID: id, Engine: "probe", ChunkUUID: fmt.Sprint("u", i),
			StartMs: start, EndMs: start + 10000, OutputType: "tag",
			Content: json.RawMessage(fmt.Sprintf(`{"series": [{"startTimeMs": %d, "object": {"label": "n%d"}}]}`, start, i))}); err != nil {
			t.Fatal(err)
		}
	}
	res := runWeir(testContext(t), "jobs", "results", id, "--server", server)
	if res.err != nil {
		t.Fatalf("jobs results: %v", res.err)
	}
	lines := strings.Split(strings.TrimSpace(squeeze(res.stdout)), "\n")
	want := []string{
		"START END ENGINE TYPE CONTENT",
		`0:00.000 0:10.000 probe tag {"series":[{"startTimeMs":0,"object":{"label":"n1"}}]}`,
		`1:10.000 1:20.000 probe tag {"series":[{"startTimeMs":70000,"object":{"label":"n0"}}]}`,
		`1:35.500 1:45.500 probe tag {"series":[{"startTimeMs":95500,"object":{"label":"n2"}}]}`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("jobs results:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	res = runWeir(testContext(t), "jobs", "results", id, "--from", "75", "--to", "1m40s", "--engine", "probe", "--json", "--server", server)
	var page struct {
		Items []struct {
			StartMs int64 `json:"start_ms"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &page); err != nil || len(page.Items) != 2 || page.Items[0].StartMs != 70000 {
		t.Fatalf("results --from 75 --to 1m40s --json: %v\n%s", err, res.stdout)
	}
	res = runWeir(testContext(t), "jobs", "results", id, "--engine", "faces", "--server", server)
	if res.err == nil || !strings.Contains(res.err.Error(), "runs no engine faces") {
		t.Fatalf("results --engine faces: %v", res.err)
	}
	res = runWeir(testContext(t), "jobs", "results", id, "--from", "soon", "--server", server)
	if res.err == nil || !strings.Contains(res.err.Error(), `--from "soon": want a duration`) {
		t.Fatalf("results --from soon: %v", res.err)
	}
}
