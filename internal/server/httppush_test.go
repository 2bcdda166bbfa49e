package server

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A weir process takes HTTP publishers on its HTTP listener: the answer to
// POST /streams/start names the URL, ffmpeg -method PUT publishes to it
// with the publish key alone (the API token guards the API, not
// publishing), the stream goes live, and a wrong key gets 401.
func TestServeTakesHTTPPublishersOnTheHTTPListener(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.APIToken = "secret-token"
	r := start(t, cfg)
	defer r.stop(t)
	base := "http://" + r.HTTPAddr()

	req, _ := http.NewRequest("POST", base+"/streams/start", strings.NewReader(`{"title":"http push"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer secret-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		ID      string `json:"stream_id"`
		Publish struct {
			HTTP      string `json:"http"`
			WebSocket string `json:"websocket"`
		} `json:"publish"`
	}
	err = json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /streams/start: %d, %v", resp.StatusCode, err)
	}
	if !strings.HasPrefix(started.Publish.HTTP, base+"/publish/") || started.Publish.WebSocket != "ws"+strings.TrimPrefix(started.Publish.HTTP, "http") {
		t.Fatalf("publish URLs %+v, want %s/publish/KEY and its ws:// twin", started.Publish, base)
	}

	bad, _ := http.NewRequest("PUT", base+"/publish/0123456789abcdef0123456789abcdef", strings.NewReader("x"))
	resp, err = http.DefaultClient.Do(bad)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("PUT with an unknown key: %d %s, want a 401 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-f", "mpegts", "-method", "PUT", started.Publish.HTTP)
	if out, err := ff.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -method PUT: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "the stream to have segments", func() bool {
		resp, err := http.Get(base + "/streams/" + started.ID + "/metadata")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var md struct {
			Status   string `json:"status"`
			Segments int    `json:"segment_count"`
		}
		return json.NewDecoder(resp.Body).Decode(&md) == nil && md.Status == "live" && md.Segments >= 2
	})
}
