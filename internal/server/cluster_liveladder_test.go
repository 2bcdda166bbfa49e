package server

import (
	"context"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// TestClusterLiveLadderTranscoderKilledMidStream runs the live ladder in
// two `weir serve --roles liveladder` processes, kills the one transcoding
// a stream with SIGKILL, and checks that the other takes the stream's
// lease once it lapses and carries the rendition on: its live playlist
// keeps growing, its media sequence never goes back, and every segment it
// listed live is in its VOD playlist.
func TestClusterLiveLadderTranscoderKilledMidStream(t *testing.T) {
	c := newCluster(t)
	var transcoders []*weirProc
	for _, name := range []string{"liveladder-1", "liveladder-2"} {
		p := c.start(name, "--roles", "liveladder")
		c.waitReady(p)
		transcoders = append(transcoders, p)
	}
	api := c.start("api", "--roles", "api,ingest,packager", "--live-publisher-timeout", "1m")
	c.waitReady(api)

	var started struct {
		ID      string `json:"stream_id"`
		Publish struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	body := map[string]any{"title": "ladder failover", "ladder": []string{"120p=150k"}}
	if code := api.api(t, http.MethodPost, "/streams/start", body, &started); code != http.StatusCreated {
		t.Fatalf("POST /streams/start: %d", code)
	}
	ffmpeg := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "50", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "flv", started.Publish.RTMP)
	if err := ffmpeg.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- ffmpeg.Wait() }()
	t.Cleanup(func() { _ = ffmpeg.Process.Kill() })

	rendition := "http://" + api.http + "/hls/" + started.ID + "/120p/live.m3u8"
	w := &playlistWatcher{bySeq: map[int64]string{}, byURI: map[string]int64{}}
	ctx, stopWatching := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); w.poll(ctx, rendition) }()
	defer func() { stopWatching(); <-watched }()

	waitUntil(t, time.Minute, "five rendition segments", func() bool { return w.count() >= 5 })
	var owner *weirProc
	waitUntil(t, 10*time.Second, "the transcoder of the stream to be known", func() bool {
		for _, p := range transcoders {
			if metric(t, p, "weir_liveladder_streams") == 1 {
				owner = p
				return true
			}
		}
		return false
	})
	before := w.count()
	killedAt := time.Now()
	owner.kill9()
	t.Logf("killed %s, the transcoder of %s, after %d rendition segments", owner.name, started.ID, before)
	waitUntil(t, 45*time.Second, "a new rendition segment from the other transcoder", func() bool { return w.count() > before })
	t.Logf("takeover: the next rendition segment was listed %v after the kill (the lease lapses in 15 s)", time.Since(killedAt).Round(10*time.Millisecond))

	if err := <-published; err != nil {
		t.Fatalf("ffmpeg publishing: %v", err)
	}
	var ended map[string]any
	if code := api.api(t, http.MethodPost, "/streams/"+started.ID+"/end", nil, &ended); code >= 300 {
		t.Fatalf("POST /streams/%s/end: %d %v", started.ID, code, ended)
	}
	meta, err := metastore.Open(context.Background(), c.metadata)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	waitUntil(t, time.Minute, "the stream to become VOD", func() bool {
		st, err := meta.GetStream(context.Background(), started.ID)
		return err == nil && st.Status == metastore.StatusVOD
	})
	var vodSegs []playlistEntry
	waitUntil(t, time.Minute, "the rendition's VOD playlist", func() bool {
		var vodEnded bool
		_, vodSegs, vodEnded, err = readPlaylist("http://" + api.http + "/hls/" + started.ID + "/120p/vod.m3u8")
		return err == nil && vodEnded
	})
	stopWatching()
	<-watched
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
	inVOD := map[string]bool{}
	for _, s := range vodSegs {
		inVOD[s.uri] = true
	}
	for uri := range w.byURI {
		if !inVOD[uri] {
			t.Errorf("rendition segment %s was listed live but is missing from the VOD playlist", uri)
		}
	}
	t.Logf("%d rendition segments listed live, %d in its VOD playlist", len(w.byURI), len(vodSegs))
}
