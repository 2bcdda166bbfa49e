package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// streamJob is the part of a job's view the live engines test reads.
type streamJob struct {
	ID      string                `json:"id"`
	Status  string                `json:"status"`
	Error   string                `json:"error"`
	Source  struct{ Live string } `json:"source"`
	Engines []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Done   int64  `json:"done"`
	} `json:"engines"`
}

// TestLiveStreamWithEnginesResultsWhileLiveAndOnTheRecording starts a
// live stream with loudness attached, publishes to it over RTMP with
// ffmpeg, attaches probe while it is live: both jobs' results arrive while
// the stream is live. Ending the stream completes both jobs, and the
// recording the stream became (the same id) keeps them: GET /jobs?stream=
// lists them complete, and its HLS timed metadata lists both jobs and
// holds their results.
func TestLiveStreamWithEnginesResultsWhileLiveAndOnTheRecording(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	r := start(t, testConfig(t.TempDir()))
	defer r.stop(t)
	base := r.HTTPURL()

	var started struct {
		ID         string     `json:"stream_id"`
		PublishKey string     `json:"publish_key"`
		Job        *streamJob `json:"job"`
	}
	body := `{"title": "Live with engines", "engines": [{"name": "loudness"}], "aggregate": {"window": "2s"}}`
	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/start", "application/json", strings.NewReader(body), &started); code != http.StatusCreated || started.Job == nil {
		t.Fatalf("POST /streams/start: %d %s", code, raw)
	}
	if started.Job.Source.Live != started.ID {
		t.Fatalf("the stream's job reads %+v, want live %s", started.Job.Source, started.ID)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "120", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-f", "flv", "rtmp://"+r.rtmp.Addr().String()+"/live/"+started.PublishKey)
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- pub.Wait() }()

	status := func() string {
		var md struct {
			Status string `json:"status"`
		}
		httpJSON(t, http.MethodGet, base+"/streams/"+started.ID+"/metadata", "", nil, &md)
		return md.Status
	}
	count := func(job string) int {
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		httpJSON(t, http.MethodGet, base+"/jobs/"+job+"/results?limit=1000", "", nil, &page)
		return len(page.Items)
	}
	// whileLive waits for job's results, seen while the stream is live.
	whileLive := func(job string, want int) {
		t.Helper()
		waitUntil(t, 90*time.Second, "results of job "+job+" while live", func() bool { return count(job) >= want })
		if s := status(); s != "live" {
			t.Fatalf("job %s's results came once the stream was %s, not while live", job, s)
		}
	}
	whileLive(started.Job.ID, 3)

	var attached streamJob
	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/"+started.ID+"/engines", "application/json",
		strings.NewReader(`{"engines": [{"name": "probe"}], "chunking": {"duration": "2s"}}`), &attached); code != http.StatusCreated {
		t.Fatalf("POST /streams/%s/engines: %d %s", started.ID, code, raw)
	}
	whileLive(attached.ID, 2)
	loudnessLive := count(started.Job.ID)

	// Ending the stream completes both jobs.
	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/"+started.ID+"/end", "", nil, nil); code != http.StatusAccepted {
		t.Fatalf("end: %d %s", code, raw)
	}
	waitUntil(t, 2*time.Minute, "the stream to become vod", func() bool { return status() == "vod" })
	var list struct {
		Items []streamJob `json:"items"`
	}
	waitUntil(t, 2*time.Minute, "both jobs to complete", func() bool {
		httpJSON(t, http.MethodGet, base+"/jobs?stream="+started.ID, "", nil, &list)
		done := 0
		for _, j := range list.Items {
			if j.Status == "failed" || j.Status == "cancelled" {
				t.Fatalf("job %s ended %s: %s", j.ID, j.Status, j.Error)
			}
			if j.Status == "complete" {
				done++
			}
		}
		return done == 2
	})
	select {
	case <-published:
	case <-time.After(30 * time.Second):
		t.Error("the publisher was not disconnected when the stream ended")
	}
	if n := count(started.Job.ID); n < loudnessLive {
		t.Fatalf("loudness has %d results after the end, %d while live", n, loudnessLive)
	}

	// The recording keeps the jobs: its timed metadata lists them, and a
	// segment holds their results.
	var index struct {
		Playlist string `json:"playlist"`
		Jobs     []struct {
			JobID  string `json:"job_id"`
			Status string `json:"status"`
		} `json:"jobs"`
		Engines []string `json:"engines"`
	}
	if code, raw := httpJSON(t, http.MethodGet, base+"/hls/"+started.ID+"/meta/index.json", "", nil, &index); code != http.StatusOK {
		t.Fatalf("meta/index.json: %d %s", code, raw)
	}
	jobsListed := map[string]string{}
	for _, j := range index.Jobs {
		jobsListed[j.JobID] = j.Status
	}
	if jobsListed[started.Job.ID] != "complete" || jobsListed[attached.ID] != "complete" || index.Playlist == "" {
		t.Fatalf("the recording's metadata index: %+v", index)
	}
	code, playlist := httpJSON(t, http.MethodGet, base+"/hls/"+started.ID+"/meta/"+index.Playlist, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(playlist), "#EXT-X-ENDLIST") {
		t.Fatalf("metadata playlist %s: %d %s", index.Playlist, code, playlist)
	}
	var segment string
	for _, line := range strings.Split(string(playlist), "\n") {
		if strings.HasSuffix(line, ".json") {
			segment = line
			break
		}
	}
	var seg struct {
		Results []struct {
			JobID  string `json:"job_id"`
			Engine string `json:"engine"`
		} `json:"results"`
	}
	dir := index.Playlist[:strings.LastIndex(index.Playlist, "/")+1]
	if code, raw := httpJSON(t, http.MethodGet, base+"/hls/"+started.ID+"/meta/"+dir+segment, "", nil, &seg); code != http.StatusOK {
		t.Fatalf("metadata segment %s: %d %s", segment, code, raw)
	}
	engines := map[string]bool{}
	for _, res := range seg.Results {
		engines[res.Engine] = true
	}
	if !engines["loudness"] || !engines["probe"] {
		t.Fatalf("the recording's first metadata segment holds results of %v, want loudness and probe", engines)
	}
	t.Logf("loudness: %d results while live, %d in all; metadata playlist %s", loudnessLive, count(started.Job.ID), index.Playlist)
}
