package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// The clip of the search test: a sentence spoken by espeak-ng from
// searchSpeechMs, and a word drawn on screen from searchDrawnFromMs to
// searchDrawnToMs, in searchClipMs of H.264 and AAC.
const (
	searchSentence    = "please call me at home tomorrow morning"
	searchSpokenWord  = "tomorrow"
	searchDrawnWord   = "Lighthouse"
	searchSpeechMs    = 2000
	searchDrawnFromMs = 6000
	searchDrawnToMs   = 10000
	searchClipMs      = 12000
)

// makeSearchClip writes the clip and returns its path and where the
// speech ends (ms).
func makeSearchClip(t *testing.T) (string, int64) {
	t.Helper()
	dir := t.TempDir()
	wav := filepath.Join(dir, "speech.wav")
	if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, searchSentence).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", wav).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", wav, err)
	}
	var seconds float64
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &seconds); err != nil {
		t.Fatalf("ffprobe %s: %q", wav, out)
	}
	clip := filepath.Join(dir, "clip.mp4")
	draw := fmt.Sprintf("drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:text=%s:fontsize=64:fontcolor=white:x=(w-tw)/2:y=(h-th)/2:enable='between(t,%g,%g)'",
		searchDrawnWord, float64(searchDrawnFromMs)/1000, float64(searchDrawnToMs)/1000-0.001)
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("color=c=0x203040:s=640x360:r=25:d=%g", float64(searchClipMs)/1000),
		"-i", wav,
		"-f", "lavfi", "-i", fmt.Sprintf("anoisesrc=color=pink:amplitude=0.003:sample_rate=16000:seed=7:duration=%g", float64(searchClipMs)/1000),
		"-filter_complex", fmt.Sprintf("[0]%s[v];[1]aresample=16000,adelay=%d:all=1[s];[s][2]amix=inputs=2:normalize=0:duration=longest[a]", draw, searchSpeechMs),
		"-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-c:a", "aac", "-ar", "16000", "-ac", "1", "-t", fmt.Sprintf("%g", float64(searchClipMs)/1000), clip)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return clip, searchSpeechMs + int64(seconds*1000)
}

// searchUpload posts file to base/vod/upload and returns the title's id.
func searchUpload(t *testing.T, base, file string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filepath.Base(file))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	var out struct {
		ID string `json:"stream_id"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/vod/upload", mw.FormDataContentType(), &body, &out); code != http.StatusAccepted || out.ID == "" {
		t.Fatalf("upload: %d %s", code, raw)
	}
	return out.ID
}

// httpJSON sends a request and decodes a JSON answer into v; it returns
// the status and the body.
func httpJSON(t *testing.T, method, target, contentType string, body io.Reader, v any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, target, err, raw)
		}
	}
	return resp.StatusCode, raw
}

// searchHit is the part of a GET /search hit the test reads.
type searchHit struct {
	JobID    string `json:"job_id"`
	StreamID string `json:"stream_id"`
	Source   string `json:"source"`
	Engine   string `json:"engine"`
	Kind     string `json:"kind"`
	StartMs  int64  `json:"start_ms"`
	EndMs    int64  `json:"end_ms"`
	Text     string `json:"text"`
	Snippet  string `json:"snippet"`
}

// TestSearchFindsASpokenAndADrawnWordAtTheirTimes runs the stt and ocr
// engines over a title with a spoken sentence and a drawn word, in a whole
// weir (embedded broker, SQLite, job runner, engine hosts, API), then
// searches for each word: the hit is the title's, of the right engine and
// kind, within a second of where the word was; the transcript exported as
// WebVTT is read back by ffmpeg.
func TestSearchFindsASpokenAndADrawnWordAtTheirTimes(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe", "espeak-ng", "tesseract", "pocketsphinx_batch")
	clip, speechEndMs := makeSearchClip(t)
	r := start(t, testConfig(t.TempDir()))
	defer r.stop(t)
	base := r.HTTPURL()

	vod := searchUpload(t, base, clip)
	req := fmt.Sprintf(`{"source": {"vod": %q}, "engines": [{"name": "stt"}, {"name": "ocr", "options": {"frame_interval": "500ms"}}]}`, vod)
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/jobs", "application/json", strings.NewReader(req), &job); code != http.StatusCreated {
		t.Fatalf("POST /jobs: %d %s", code, raw)
	}
	waitUntil(t, 4*time.Minute, "job "+job.ID+" to end", func() bool {
		httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID, "", nil, &job)
		return job.Status == "complete" || job.Status == "failed" || job.Status == "cancelled"
	})
	if job.Status != "complete" {
		t.Fatalf("job %s ended %s: %s", job.ID, job.Status, job.Error)
	}

	find := func(q string) searchHit {
		t.Helper()
		var page struct {
			Items []searchHit `json:"items"`
		}
		if code, raw := httpJSON(t, http.MethodGet, base+"/search?q="+url.QueryEscape(q), "", nil, &page); code != http.StatusOK || len(page.Items) == 0 {
			_, results := httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID+"/results?limit=1000", "", nil, nil)
			t.Fatalf("GET /search?q=%s: %d %s\nthe job's results: %s", q, code, raw, results)
		}
		return page.Items[0]
	}
	spoken := find(searchSpokenWord)
	if spoken.JobID != job.ID || spoken.StreamID != vod || spoken.Source != "vod" || spoken.Engine != "stt" || spoken.Kind != "speech" ||
		!strings.Contains(spoken.Snippet, "<mark>"+searchSpokenWord+"</mark>") {
		t.Fatalf("the spoken word's hit: %+v", spoken)
	}
	if abs(spoken.StartMs-searchSpeechMs) > 1000 || abs(spoken.EndMs-speechEndMs) > 1000 {
		t.Errorf("%q found at %d..%d ms; the sentence is at %d..%d ms", searchSpokenWord, spoken.StartMs, spoken.EndMs, searchSpeechMs, speechEndMs)
	}
	drawn := find(strings.ToLower(searchDrawnWord) + " ")
	if drawn.JobID != job.ID || drawn.StreamID != vod || drawn.Engine != "ocr" || drawn.Kind != "screen" ||
		!strings.Contains(drawn.Snippet, "<mark>"+searchDrawnWord+"</mark>") {
		t.Fatalf("the drawn word's hit: %+v", drawn)
	}
	if abs(drawn.StartMs-searchDrawnFromMs) > 1000 || abs(drawn.EndMs-searchDrawnToMs) > 1000 {
		t.Errorf("%q found at %d..%d ms; it is shown at %d..%d ms", searchDrawnWord, drawn.StartMs, drawn.EndMs, searchDrawnFromMs, searchDrawnToMs)
	}
	t.Logf("spoken: %+v", spoken)
	t.Logf("drawn: %+v", drawn)
	// The search is scoped: another stream has nothing.
	var none struct {
		Items []searchHit `json:"items"`
	}
	if httpJSON(t, http.MethodGet, base+"/search?q="+searchSpokenWord+"&stream=vod-none", "", nil, &none); len(none.Items) != 0 {
		t.Fatalf("a search of another stream: %+v", none.Items)
	}

	// The transcript as WebVTT, read by ffmpeg.
	dir := t.TempDir()
	for kind, want := range map[string]string{"speech": searchSpokenWord, "screen": searchDrawnWord} {
		code, vtt := httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID+"/results?format=vtt&kind="+kind, "", nil, nil)
		if code != http.StatusOK {
			t.Fatalf("%s vtt: %d %s", kind, code, vtt)
		}
		path := filepath.Join(dir, kind+".vtt")
		if err := os.WriteFile(path, vtt, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "srt", "-").CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), " --> ") {
			t.Fatalf("ffmpeg read the %s vtt: %v\n%s\nfrom\n%s", kind, err, out, vtt)
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
