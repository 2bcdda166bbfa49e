package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// realtimeFFmpegDir returns a directory holding an `ffmpeg` that runs the
// real one at the input's own pace (-re), to put first on a worker's PATH:
// a transcode then lasts as long as the clip, whatever the machine's speed,
// so a test can kill its worker in the middle.
func realtimeFFmpegDir(t *testing.T) string {
	t.Helper()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nexec %s -re \"$@\"\n", real)
	if err := os.WriteFile(filepath.Join(dir, "ffmpeg"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// upload posts file to /vod/upload on p and returns the stream id.
func upload(t *testing.T, p *weirProc, file string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filepath.Base(file))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(fw, f); err != nil {
		t.Fatal(err)
	}
	mw.Close()
	resp, err := http.Post("http://"+p.http+"/vod/upload", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"stream_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.ID == "" {
		t.Fatalf("upload: %s %s", resp.Status, raw)
	}
	return out.ID
}

// metric reads one sample of a Prometheus metric from p's /metrics (0 when
// absent).
func metric(t *testing.T, p *weirProc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`)
	m := re.FindSubmatch(raw)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// Two VOD workers share the job topic; the one transcoding a title is
// killed with SIGKILL, and the other finishes the title exactly once: one
// set of segment rows, one "ready".
func TestClusterVODWorkerKilledMidTranscode(t *testing.T) {
	c := newCluster(t)
	slowPath := realtimeFFmpegDir(t) + ":" + os.Getenv("PATH")
	workers := map[int]*weirProc{}
	for _, name := range []string{"worker-1", "worker-2"} {
		p := c.startEnv(name, []string{"PATH=" + slowPath}, "--roles", "packager,vod")
		c.waitReady(p)
		workers[p.pid()] = p
	}
	api := c.start("api", "--roles", "api,ingest")
	c.waitReady(api)

	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=426x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "24", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	id := upload(t, api, clip)

	meta, err := metastore.Open(context.Background(), c.metadata)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	ctx := ctxFor(t, 5*time.Minute)

	// Find the worker holding the title's lease once it transcodes.
	var victim *weirProc
	waitUntil(t, 2*time.Minute, "a worker to transcode the title", func() bool {
		st, err := meta.GetStream(ctx, id)
		if err != nil || st.Status != metastore.StatusTranscoding {
			return false
		}
		l, err := meta.GetLease(ctx, metastore.VODLeaseName(id))
		if err != nil || !l.Held {
			return false
		}
		victim = workers[holderPID(t, l.Holder)]
		return victim != nil
	})
	waitUntil(t, time.Minute, "the first segments", func() bool {
		segs, err := meta.ListSegments(ctx, id, "240p", 0, 0)
		return err == nil && len(segs) >= 2
	})
	killedAt := time.Now()
	victim.kill9()
	t.Logf("killed %s (pid %d), the worker transcoding %s", victim.name, victim.pid(), id)

	var survivor *weirProc
	for _, p := range workers {
		if p != victim {
			survivor = p
		}
	}
	waitUntil(t, 3*time.Minute, "the surviving worker to finish the title", func() bool {
		st, err := meta.GetStream(ctx, id)
		if err == nil && st.Status == metastore.StatusFailed {
			t.Fatalf("the title failed: %s", st.Error)
		}
		return err == nil && st.Status == metastore.StatusReady
	})
	t.Logf("title ready %v after the kill", time.Since(killedAt).Round(100*time.Millisecond))

	st, err := meta.GetStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := meta.GetLease(ctx, metastore.VODLeaseName(id)); err != nil || holderPID(t, l.Holder) != survivor.pid() {
		t.Fatalf("the title's lease at the end: %+v, %v; the survivor (pid %d) should have taken it", l, err, survivor.pid())
	}
	if ready := metric(t, survivor, `weir_vod_jobs_total{outcome="ready"}`); ready != 1 {
		t.Fatalf("the survivor counted %v ready titles, want exactly 1", ready)
	}
	// One set of segment rows: indexes 0..n-1 per rendition, each listed
	// once in the rendition's playlist.
	for _, rendition := range st.VariantsGenerated {
		segs, err := meta.ListSegments(ctx, id, rendition, 0, 0)
		if err != nil || len(segs) == 0 {
			t.Fatalf("rendition %s: %d segments, %v", rendition, len(segs), err)
		}
		for i, s := range segs {
			if s.ChunkIndex != int64(i) {
				t.Fatalf("rendition %s: segment %d has index %d: rows are not one clean set", rendition, i, s.ChunkIndex)
			}
		}
		var playlist string
		resp, err := http.Get("http://" + api.http + "/hls/" + id + "/" + rendition + "/index.m3u8")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			playlist = string(b)
		}
		if n := strings.Count(playlist, "#EXTINF"); n != len(segs) {
			t.Fatalf("rendition %s: playlist lists %d segments, %d rows exist:\n%s", rendition, n, len(segs), playlist)
		}
	}
}

// holderPID reads the process id out of a lease holder name
// ("host/pid#claim").
func holderPID(t *testing.T, holder string) int {
	t.Helper()
	m := regexp.MustCompile(`/(\d+)(#|$)`).FindStringSubmatch(holder)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}
