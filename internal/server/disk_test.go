package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// A live stream whose object store (a 64 MiB disk) fills up mid-stream
// keeps its publisher and its status, and goes on adding segments once
// space is freed. (The bus and metadata are on another disk here: when the
// embedded broker's own data dir is full it refuses produce requests and
// the publisher is dropped; see docs/security.md.)
func TestLiveKeepsTheStreamThroughAFullDiskAndResumes(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg")
	disk := testenv.SmallDisk(t, 64)
	cfg := testConfig(t.TempDir())
	cfg.Objects = disk + "/objects"
	cfg.LiveSegmentDuration = time.Second
	cfg.LiveWindow = 5
	srv := start(t, cfg)
	defer srv.stop(t)
	base := "http://" + srv.HTTPAddr()

	resp, err := http.Post(base+"/streams/start", "application/json", strings.NewReader(`{"title":"full disk"}`))
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		ID      string `json:"stream_id"`
		Publish struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if started.ID == "" {
		t.Fatalf("POST /streams/start: %d", resp.StatusCode)
	}
	ffmpeg := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "flv", started.Publish.RTMP)
	if err := ffmpeg.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- ffmpeg.Wait() }()
	defer ffmpeg.Process.Kill()

	w := &playlistWatcher{bySeq: map[int64]string{}, byURI: map[string]int64{}}
	ctx, stopWatching := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); w.poll(ctx, base+"/hls/"+started.ID+"/live.m3u8") }()
	defer func() { stopWatching(); <-watched }()
	waitUntil(t, time.Minute, "four live segments", func() bool { return w.count() >= 4 })

	filler := testenv.FillDisk(t, disk, 0)
	time.Sleep(5 * time.Second) // five segments' worth of media on a full disk
	select {
	case err := <-published:
		t.Fatalf("the publisher was dropped while the disk was full: %v", err)
	default:
	}
	status := func() string {
		var md struct {
			Status string `json:"status"`
		}
		resp, err := http.Get(base + "/streams/" + started.ID + "/metadata")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&md)
		return md.Status
	}
	if st := status(); st != "live" {
		t.Fatalf("stream status %q while the disk is full, want live", st)
	}

	before := w.count()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "new segments once space is back", func() bool { return w.count() >= before+3 })
	if st := status(); st != "live" {
		t.Fatalf("stream status %q after space returned, want live", st)
	}
	w.mu.Lock()
	for _, p := range w.problems {
		t.Error(p)
	}
	w.mu.Unlock()
}
