package examples_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/protocol"
)

// TestADetectionRuleOnTheFacesEngine: a detection rule (a face, at
// least one, made with weir rules add) over a job running the faces
// example engine on a clip of messi5.jpg raises an alert, signed, with
// the count in its details.
func TestADetectionRuleOnTheFacesEngine(t *testing.T) {
	base := startFaces(t)
	messi := opencvSample(t, "messi5.jpg")
	ctx := testCtx(t, 3*time.Minute)
	w := startWeir(t, "--webhook-allow", "127.0.0.1")

	var mu sync.Mutex
	var secret string
	var got []*protocol.Alert
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := alerts.Verify(secret, r.Header.Get(alerts.HeaderTimestamp), r.Header.Get(alerts.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook: %v", err)
		}
		m, err := protocol.DecodeAlert(nil, body)
		if err != nil {
			t.Errorf("webhook body: %v", err)
		} else {
			got = append(got, m)
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	clip := filepath.Join(t.TempDir(), "messi.mp4")
	if out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-loop", "1", "-i", messi,
		"-t", "4", "-r", "25", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	manifest, err := os.ReadFile(filepath.Join("faces-http", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w.registerEngine(t, []byte(strings.Replace(string(manifest), "url: http://127.0.0.1:8891", "url: "+base, 1)))
	waitEngineAvailable(t, w, "faces")

	out := w.mustCLI(t, ctx, "rules", "add", "--name", "a face", "--type", "detection", "--label", "face", "--min-count", "1",
		"--webhook", hook.URL, "--cooldown", "0s", "--server", w.url)
	m := regexp.MustCompile(`whsec_\S+`).FindString(out)
	if m == "" {
		t.Fatalf("weir rules add printed no secret:\n%s", out)
	}
	mu.Lock()
	secret = m
	mu.Unlock()

	out = w.mustCLI(t, ctx, "vod", "upload", clip, "--server", w.url)
	vod := regexp.MustCompile(`vod-[0-9a-f]+`).FindString(out)
	if vod == "" {
		t.Fatalf("no VOD id in:\n%s", out)
	}
	w.mustCLI(t, ctx, "jobs", "create", "--server", w.url, "--vod", vod, "--engine", "faces", "--frame-rate", "1", "--wait")
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no alert within 30 s of the job's end")
	}
	a := got[0]
	var details map[string]any
	json.Unmarshal(a.Details, &details)
	if a.Event != protocol.AlertRaised || a.Condition != "detection" || a.StreamID != vod || details["label"] != "face" || details["count"].(float64) < 1 {
		t.Fatalf("alert %+v, details %s", a, a.Details)
	}
	t.Logf("%s at %d–%d ms: %s", a.Event, *a.StartMs, *a.EndMs, a.Summary)
}
