package server

import (
	"context"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// Two publishers push the same stream key at the same moment, each to a
// different ingest process: exactly one is accepted, the other is refused,
// whatever process each reached.
func TestClusterTwoPublishersRaceForOneKey(t *testing.T) {
	c := newCluster(t)
	api := c.start("api", "--roles", "api,ingest,packager")
	other := c.start("ingest-2", "--roles", "ingest")
	c.waitReady(api)
	c.waitReady(other)

	var started struct {
		ID         string `json:"stream_id"`
		PublishKey string `json:"publish_key"`
	}
	if code := api.api(t, http.MethodPost, "/streams/start", map[string]string{"title": "race"}, &started); code >= 300 {
		t.Fatalf("POST /streams/start: %d", code)
	}
	publish := func(p *weirProc) *exec.Cmd {
		return exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
			"-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
			"-f", "flv", "rtmp://"+p.rtmp+"/live/"+started.PublishKey)
	}
	type result struct {
		name string
		err  error
		took time.Duration
	}
	results := make(chan result, 2)
	for _, p := range []*weirProc{api, other} {
		cmd := publish(p)
		begin := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		go func() { err := cmd.Wait(); results <- result{p.name, err, time.Since(begin)} }()
	}
	a, b := <-results, <-results
	t.Logf("%s: %v after %v; %s: %v after %v", a.name, a.err, a.took.Round(time.Millisecond), b.name, b.err, b.took.Round(time.Millisecond))
	winners := 0
	for _, r := range []result{a, b} {
		if r.err == nil {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d publishers were accepted for one key, want exactly 1", winners)
	}
	loser := a
	if a.err == nil {
		loser = b
	}
	if loser.took > 10*time.Second {
		t.Fatalf("the refused publisher ran for %v: it was not refused when it connected", loser.took)
	}

	meta, err := metastore.Open(context.Background(), c.metadata)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	st, err := meta.GetStream(context.Background(), started.ID)
	if err != nil || (st.Status != metastore.StatusLive && st.Status != metastore.StatusVOD) {
		t.Fatalf("stream after the race: %s, %v", st.Status, err)
	}
}
