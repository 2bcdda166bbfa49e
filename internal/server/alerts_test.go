package server

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// The alerts clip: 30 s of 640x360 video and 16 kHz audio in which each
// condition type holds once, at a known time.
const (
	alertSentence   = "please call me at home tomorrow morning"
	alertSpeechMs   = 1000  // the sentence starts
	alertDrawnFrom  = 6000  // "Lighthouse" drawn from
	alertDrawnTo    = 10000 // to
	alertJingleMs   = 5000  // the 10 s jingle starts
	alertMelodyMs   = 15000 // other music from the jingle's end
	alertSilenceMs  = 22000 // digital silence from here to the end
	alertBlackMs    = 24000 // black picture from here to the end
	alertClipMs     = 30000
	alertJingleExpr = "0.3*sin(2*PI*523.25*pow(2,mod(floor(t*4)*floor(t*4)*7+floor(t*4)*3,17)/12)*t)*(0.7+0.3*sin(2*PI*3*t))" +
		"+0.2*sin(2*PI*130.81*pow(2,mod(floor(t)*5,7)/12)*t)"
	alertMelodyExpr = "0.2*sin(2*PI*220*pow(2,mod(floor(t/0.37)*7,19)/12)*t)+0.12*sin(2*PI*(330+110*sin(2*PI*0.05*t))*t)"
)

// makeAlertClip writes the clip and the jingle alone (the fingerprint
// library's reference).
func makeAlertClip(t *testing.T) (clip, jingle string) {
	t.Helper()
	dir := t.TempDir()
	wav := filepath.Join(dir, "speech.wav")
	if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, alertSentence).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	jingle = filepath.Join(dir, "jingle.wav")
	ffmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='%s':s=44100:d=10", alertJingleExpr), "-c:a", "pcm_s16le", jingle)
	clip = filepath.Join(dir, "clip.mp4")
	sec := func(ms int) string { return fmt.Sprintf("%g", float64(ms)/1000) }
	video := fmt.Sprintf("[0]drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:text=Lighthouse:fontsize=64:fontcolor=white:"+
		"x=(w-tw)/2:y=(h-th)/2:enable='between(t,%s,%s)',drawbox=c=black:t=fill:enable='gte(t,%s)'[v]",
		sec(alertDrawnFrom), sec(alertDrawnTo-1), sec(alertBlackMs))
	audio := fmt.Sprintf("[1]aresample=16000,adelay=%d:all=1[s];[2]aresample=16000,adelay=%d:all=1[j];"+
		"[3]aresample=16000,adelay=%d:all=1[m];[s][j][m]amix=inputs=3:normalize=0:duration=longest,atrim=0:%s,apad=whole_dur=%s[a]",
		alertSpeechMs, alertJingleMs, alertMelodyMs, sec(alertSilenceMs), sec(alertClipMs))
	ffmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("color=c=0x203040:s=640x360:r=25:d=%s", sec(alertClipMs)),
		"-i", wav,
		"-i", jingle,
		"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='%s':s=44100:d=%s", alertMelodyExpr, sec(alertSilenceMs-alertMelodyMs)),
		"-filter_complex", video+";"+audio, "-map", "[v]", "-map", "[a]",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-c:a", "aac", "-ar", "16000", "-ac", "1", "-t", sec(alertClipMs), clip)
	return clip, jingle
}

func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// hookReceiver takes webhook requests of several rules, verifying each
// with its rule's secret, and keeps the events by event id.
type hookReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	secrets map[string]string // rule id → secret
	events  map[string]*protocol.Alert
	arrived map[string]time.Time
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{t: t, secrets: map[string]string{}, events: map[string]*protocol.Alert{}, arrived: map[string]time.Time{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m, err := protocol.DecodeAlert(nil, body)
		if err != nil {
			t.Errorf("webhook body: %v: %s", err, body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := alerts.Verify(h.secrets[m.RuleID], r.Header.Get(alerts.HeaderTimestamp), r.Header.Get(alerts.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook of rule %s: %v", m.RuleID, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, ok := h.events[m.EventID]; !ok {
			h.events[m.EventID], h.arrived[m.EventID] = m, time.Now()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// ofRule returns the rule's events of kind event, by start.
func (h *hookReceiver) ofRule(rule, event string) []*protocol.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*protocol.Alert
	for _, m := range h.events {
		if m.RuleID == rule && m.Event == event {
			out = append(out, m)
		}
	}
	return out
}

// createRule posts a rule and registers its secret with the receiver.
func (h *hookReceiver) createRule(t *testing.T, base, body string) string {
	t.Helper()
	var rule struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/rules", "application/json", strings.NewReader(body), &rule); code != http.StatusCreated {
		t.Fatalf("POST /rules %s: %d %s", body, code, raw)
	}
	h.mu.Lock()
	h.secrets[rule.ID] = rule.Secret
	h.mu.Unlock()
	return rule.ID
}

// TestEveryConditionTypeOnGeneratedMedia runs stt, ocr, fingerprint,
// loudness, silence and black over a generated title in which each
// condition holds once, with a rule per condition type: each rule's
// webhook gets one alert, raised and resolved, at the media time the
// condition held. A no_segments rule on a live stream nobody publishes
// to raises its alert too.
func TestEveryConditionTypeOnGeneratedMedia(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe", "espeak-ng", "tesseract", "pocketsphinx_batch", "fpcalc")
	clip, jingle := makeAlertClip(t)
	cfg := testConfig(t.TempDir())
	cfg.WebhookAllow = "127.0.0.1"
	r := start(t, cfg)
	defer r.stop(t)
	base := r.HTTPURL()
	hooks := newHookReceiver(t)

	// The jingle is the fingerprint library's reference.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("name", "station jingle")
	fw, _ := mw.CreateFormFile("file", "jingle.wav")
	data, _ := os.ReadFile(jingle)
	fw.Write(data)
	mw.Close()
	if code, raw := httpJSON(t, http.MethodPost, base+"/fingerprints", mw.FormDataContentType(), &form, nil); code != http.StatusCreated {
		t.Fatalf("POST /fingerprints: %d %s", code, raw)
	}

	vod := searchUpload(t, base, clip)
	hook := fmt.Sprintf(`"webhooks": [{"url": %q}]`, hooks.srv.URL+"/weir")
	scope := fmt.Sprintf(`"scope": {"title": %q}`, vod)
	rules := map[string]string{}
	for name, cond := range map[string]string{
		"keyword":     `{"type": "keyword", "phrase": "Tomorrow morning"}`,
		"ocr":         `{"type": "ocr", "pattern": "(?i)light\\w*"}`,
		"fingerprint": `{"type": "fingerprint", "reference": "station jingle"}`,
		"loudness":    `{"type": "loudness", "measure": "momentary", "min_lufs": -60, "min_duration": "3s"}`,
		"silence":     `{"type": "silence", "min_duration": "4s"}`,
		"black":       `{"type": "black", "min_duration": "2s"}`,
	} {
		rules[name] = hooks.createRule(t, base, fmt.Sprintf(`{"name": %q, "condition": %s, %s, "cooldown": "1s", %s}`, name, cond, scope, hook))
	}
	// A live stream nobody publishes to.
	var live struct {
		ID string `json:"stream_id"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/start", "application/json", strings.NewReader(`{"title": "nobody"}`), &live); code/100 != 2 {
		t.Fatalf("start stream: %d %s", code, raw)
	}
	rules["no_segments"] = hooks.createRule(t, base, fmt.Sprintf(`{"name": "no_segments", "condition": {"type": "no_segments", "min_duration": "2s"},
		"scope": {"stream": %q}, %s}`, live.ID, hook))

	req := fmt.Sprintf(`{"source": {"vod": %q}, "engines": [{"name": "stt"}, {"name": "ocr", "options": {"frame_interval": "500ms"}},
		{"name": "fingerprint"}, {"name": "loudness"}, {"name": "silence"}, {"name": "black", "options": {"detect": ["black"]}}]}`, vod)
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/jobs", "application/json", strings.NewReader(req), &job); code != http.StatusCreated {
		t.Fatalf("POST /jobs: %d %s", code, raw)
	}
	waitUntil(t, 6*time.Minute, "job "+job.ID+" to end", func() bool {
		httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID, "", nil, &job)
		return job.Status == "complete" || job.Status == "failed" || job.Status == "cancelled"
	})
	if job.Status != "complete" {
		t.Fatalf("job %s ended %s: %s", job.ID, job.Status, job.Error)
	}

	// Where each condition holds, ms (start, end), within tol.
	want := map[string][2]int64{
		"keyword":     {alertSpeechMs, alertSpeechMs + 3000},
		"ocr":         {alertDrawnFrom, alertDrawnTo},
		"fingerprint": {alertJingleMs, alertJingleMs + 10000},
		"loudness":    {alertSilenceMs, alertClipMs},
		"silence":     {alertSilenceMs, alertClipMs},
		"black":       {alertBlackMs, alertClipMs},
	}
	tol := map[string]int64{"keyword": 1500, "ocr": 1000, "fingerprint": 1000, "loudness": 1500, "silence": 500, "black": 200}
	defer func() {
		if t.Failed() {
			_, alertsRaw := httpJSON(t, http.MethodGet, base+"/alerts", "", nil, nil)
			_, deliveries := httpJSON(t, http.MethodGet, base+"/alerts/deliveries?limit=100", "", nil, nil)
			t.Logf("alerts: %s\ndeliveries: %.3000s", alertsRaw, deliveries)
			for _, e := range []string{"stt", "ocr", "fingerprint", "silence", "black"} {
				_, res := httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID+"/results?limit=1000&engine="+e, "", nil, nil)
				t.Logf("%s results: %.2000s", e, res)
			}
		}
	}()
	for name, span := range want {
		rule := rules[name]
		if !waitFor(time.Minute, func() bool { return len(hooks.ofRule(rule, protocol.AlertResolved)) > 0 }) {
			t.Errorf("%s: no alert resolved within a minute of the job's end", name)
			continue
		}
		raised, resolved := hooks.ofRule(rule, protocol.AlertRaised), hooks.ofRule(rule, protocol.AlertResolved)
		if len(raised) != 1 || len(resolved) != 1 {
			t.Errorf("%s: %d raised, %d resolved; want one each", name, len(raised), len(resolved))
			continue
		}
		a, z := raised[0], resolved[0]
		if a.AlertID != z.AlertID || a.JobID != job.ID || a.StreamID != vod || a.Condition != name {
			t.Errorf("%s: raised %+v resolved %+v", name, a, z)
		}
		start, end := *z.StartMs, *z.EndMs
		if abs(start-span[0]) > tol[name] || (name != "keyword" && abs(end-span[1]) > tol[name]) {
			t.Errorf("%s: alert at %d–%d ms, want %d–%d (±%d)", name, start, end, span[0], span[1], tol[name])
		}
		t.Logf("%s: %d–%d ms: %s", name, start, end, a.Summary)
	}
	waitUntil(t, time.Minute, "the no_segments alert", func() bool { return len(hooks.ofRule(rules["no_segments"], protocol.AlertRaised)) == 1 })
	ns := hooks.ofRule(rules["no_segments"], protocol.AlertRaised)[0]
	if ns.StreamID != live.ID || ns.StartMs != nil || ns.StartedAt.IsZero() {
		t.Errorf("no_segments: %+v", ns)
	}
	// The API lists the alerts.
	var list struct {
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	if code, raw := httpJSON(t, http.MethodGet, base+"/alerts?job="+job.ID, "", nil, &list); code != http.StatusOK || len(list.Items) != 6 {
		t.Errorf("GET /alerts?job=: %d %s", code, raw)
	}
}

// waitFor polls cond until it holds (true) or d passes (false).
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}
