//go:build unix

package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/server"
)

// The browser test's server requires this token on every write, so the
// test also shows the console sending the token the user pasted.
const testToken = "console-browser-test-token"

// lockedBuffer collects the server's log for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startWeir runs a whole weir server (embedded broker, stores, pipelines,
// API and console) on loopback ports in a temporary data directory; tune
// changes its configuration.
func startWeir(t *testing.T, tune ...func(*server.Config)) (base string, log *lockedBuffer) {
	t.Helper()
	log = &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := server.Config{
		Data:        t.TempDir(),
		HTTP:        "127.0.0.1:0",
		KafkaListen: "127.0.0.1:0",
		RTMP:        "127.0.0.1:0",
		SRT:         "127.0.0.1:0",
		MaxUpload:   1 << 30,
		APIToken:    testToken,
	}
	for _, f := range tune {
		f(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("starting weir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("weir Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("weir did not stop within 60s")
		}
	})
	return "http://" + srv.HTTPAddr(), log
}

// makeClip encodes a 4 s 720p test pattern with a tone, so the ladder has
// three rungs (720p, 480p, 360p) for the variants table.
func makeClip(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is not installed: `make test` installs it (scripts/deps.sh test)")
	}
	out := filepath.Join(t.TempDir(), "pattern.mp4")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// getJSON decodes GET base+path into out.
func getJSON(t *testing.T, base, path string, out any) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

type vodMeta struct {
	Status   string   `json:"status"`
	Error    string   `json:"error"`
	Variants []string `json:"variants_generated"`
}

func waitReady(t *testing.T, base, id string, log *lockedBuffer) vodMeta {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var m vodMeta
		getJSON(t, base, "/vod/"+id+"/metadata", &m)
		switch {
		case m.Status == "ready":
			return m
		case m.Status == "failed":
			t.Fatalf("VOD %s failed: %s\nserver log:\n%s", id, m.Error, log)
		case time.Now().After(deadline):
			t.Fatalf("VOD %s still %s after 2 minutes\nserver log:\n%s", id, m.Status, log)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// screenshotDir is where screenshots go: $WEIR_CONSOLE_SCREENSHOTS when set
// (to look at them), else a directory removed after the test.
func screenshotDir(t *testing.T) string {
	if dir := os.Getenv("WEIR_CONSOLE_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// checkScreenshot checks a PNG is a whole 1280x900 viewport.
func checkScreenshot(t *testing.T, name string, data []byte) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", name, err)
	}
	if cfg.Width != 1280 || cfg.Height != 900 {
		t.Errorf("%s is %dx%d, want the 1280x900 viewport", name, cfg.Width, cfg.Height)
	}
}

// TestConsolePlaysAnUploadedTitleInChromium is the console's end-to-end
// test: headless Chromium uploads a real clip through the console's form
// (refused until the user pastes the API token), a real weir server
// transcodes it, and the console lists it, plays it through hls.js past the
// first second, and then starts and ends a live stream from its forms.
func TestConsolePlaysAnUploadedTitleInChromium(t *testing.T) {
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	clip := makeClip(t)
	base, serverLog := startWeir(t)
	b := startBrowser(t, ctx)
	shots := screenshotDir(t)
	tb := b.newTab(ctx)
	tb.navigate(ctx, base+"/")

	// Upload through the form: the file input gets the clip the way a
	// user's file picker would set it.
	var present bool
	tb.waitFor(ctx, "the upload form", 15*time.Second, `!!document.getElementById('upload-file')`, &present, func() bool { return present })
	tb.setFiles(ctx, "#upload-file", clip)
	var upload struct {
		Note     string `json:"note"`
		Progress string `json:"progress"`
		ID       string `json:"id"`
	}
	const submitUpload = `(() => {
		document.getElementById('upload-title').value = 'Browser test pattern';
		document.getElementById('upload-form').requestSubmit();
	})()`
	const uploadState = `(() => {
		const form = document.getElementById('upload-form');
		const link = form.querySelector('.notice a[href^="#/vod/"]');
		return {note: form.querySelector('.notice').textContent,
			progress: form.querySelector('#upload-progress .bar').getAttribute('aria-valuenow') || '',
			id: link ? link.textContent : ''};
	})()`
	if err := tb.eval(ctx, submitUpload, nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "the upload refused without the token", 20*time.Second, uploadState, &upload, func() bool { return upload.Note != "" })
	if !strings.Contains(upload.Note, "refused") || !strings.Contains(upload.Note, "API token") {
		t.Errorf("uploading without the token said %q, want a refusal asking for the API token", upload.Note)
	}
	if err := tb.eval(ctx, fmt.Sprintf(`(() => {
		document.getElementById('token-toggle').click();
		document.getElementById('token-input').value = %q;
		document.getElementById('token-form').requestSubmit();
	})()`, testToken), nil); err != nil {
		t.Fatal(err)
	}
	tb.setFiles(ctx, "#upload-file", clip)
	if err := tb.eval(ctx, submitUpload, nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "the upload accepted", 30*time.Second, uploadState, &upload, func() bool { return upload.ID != "" })
	if upload.Progress != "100" {
		t.Errorf("the upload progress bar ended at %q, want 100", upload.Progress)
	}
	id := upload.ID
	meta := waitReady(t, base, id, serverLog)
	broken := uploadBroken(t, base)

	// The list shows the title's duration and renditions, and why the
	// broken upload failed.
	var row struct {
		Duration   string `json:"duration"`
		Renditions string `json:"renditions"`
		Failure    string `json:"failure"`
	}
	tb.waitFor(ctx, "the VOD list showing duration, renditions and the failure reason", 30*time.Second, fmt.Sprintf(`(() => {
		const ok = document.querySelector('#vod-table tr[data-id=%q][data-status=ready]');
		const bad = document.querySelector('#vod-table tr[data-id=%q][data-status=failed] .fail-reason');
		return {duration: ok ? ok.querySelector('td.duration').textContent : '',
			renditions: ok ? ok.querySelector('td.renditions').textContent : '',
			failure: bad ? bad.textContent : ''};
	})()`, id, broken.id), &row, func() bool { return row.Duration != "" && row.Failure != "" })
	if row.Duration != "4.0 s" {
		t.Errorf("the list shows the 4 s clip's duration as %q, want \"4.0 s\"", row.Duration)
	}
	if want := strings.Join(meta.Variants, " · "); row.Renditions != want {
		t.Errorf("the list shows renditions %q, want %q", row.Renditions, want)
	}
	if row.Failure != broken.err || broken.err == "" {
		t.Errorf("the failed title's row says %q, its metadata says %q", row.Failure, broken.err)
	}

	// Home: the list shows the title as ready and the header says the
	// server is ready.
	var home struct {
		Ready  string `json:"ready"`
		Status string `json:"status"`
		Title  string `json:"title"`
	}
	tb.waitFor(ctx, "the VOD list showing the uploaded title as ready", 20*time.Second, fmt.Sprintf(`(() => {
		const row = document.querySelector('#vod-table tr[data-id=%q]');
		return {ready: document.getElementById('readiness').textContent,
			status: row ? row.dataset.status : '', title: row ? row.querySelector('a').textContent : ''};
	})()`, id), &home, func() bool { return home.Status == "ready" && home.Ready == "ready" })
	if home.Title != "Browser test pattern" {
		t.Errorf("the list shows the title as %q, want %q", home.Title, "Browser test pattern")
	}
	checkScreenshot(t, "home", tb.screenshot(ctx, filepath.Join(shots, "console-home.png")))

	// The title's page plays the master playlist through hls.js.
	tb.navigate(ctx, base+"/#/vod/"+id)
	var play struct {
		Engine     string   `json:"engine"`
		Manifest   string   `json:"manifest"`
		Fatal      string   `json:"fatal"`
		Time       float64  `json:"time"`
		Paused     bool     `json:"paused"`
		Width      int      `json:"width"`
		Playlists  []string `json:"playlists"`
		Variants   int      `json:"variants"`
		Stages     string   `json:"stages"`
		HLSVersion string   `json:"hlsVersion"`
	}
	tb.waitFor(ctx, "the player passing 1.2 s of the title", 30*time.Second, `(() => {
		const box = document.getElementById('player');
		const v = box && box.querySelector('video');
		return {
			engine: box ? box.dataset.engine || '' : '',
			manifest: box ? box.dataset.manifest || '' : '',
			fatal: box ? box.dataset.fatal || '' : '',
			time: v ? v.currentTime : -1,
			paused: v ? v.paused : true,
			width: v ? v.videoWidth : 0,
			playlists: performance.getEntriesByType('resource')
				.filter((e) => e.name.includes('/hls/') && e.name.endsWith('.m3u8'))
				.map((e) => new URL(e.name).pathname + ' ' + e.initiatorType),
			variants: document.querySelectorAll('#variants tbody tr').length,
			stages: (document.getElementById('stages') || {}).textContent || '',
			hlsVersion: window.Hls ? window.Hls.version : '',
		};
	})()`, &play, func() bool { return play.Fatal != "" || play.Time > 1.2 })
	if play.Fatal != "" {
		t.Fatalf("the player stopped with a fatal error %q\npage log:\n%s", play.Fatal, b.pageLog())
	}
	if play.Engine != "hls.js" || play.Manifest != "loaded" {
		t.Errorf("player engine %q, manifest %q; want hls.js with the manifest loaded", play.Engine, play.Manifest)
	}
	master := "/hls/" + id + "/master.m3u8"
	fetchedMaster := false
	for _, p := range play.Playlists {
		// hls.js loads playlists with XHR or fetch; a native player
		// would show up as the video element.
		if strings.HasPrefix(p, master+" ") && (strings.HasSuffix(p, " xmlhttprequest") || strings.HasSuffix(p, " fetch")) {
			fetchedMaster = true
		}
	}
	if !fetchedMaster {
		t.Errorf("hls.js did not fetch %s; playlists fetched: %v", master, play.Playlists)
	}
	if play.Width == 0 {
		t.Error("the video element reports no decoded picture (videoWidth 0)")
	}
	if play.Variants != len(meta.Variants) || play.Variants == 0 {
		t.Errorf("the variants table has %d rows, metadata lists %v", play.Variants, meta.Variants)
	}
	if !strings.Contains(play.Stages, "ready") || !strings.Contains(play.Stages, "uploaded") {
		t.Errorf("stage timestamps %q lack uploaded and ready", play.Stages)
	}
	t.Logf("played %.2f s of %s with hls.js %s (variants %v)", play.Time, id, play.HLSVersion, meta.Variants)
	checkScreenshot(t, "player", tb.screenshot(ctx, filepath.Join(shots, "console-player.png")))

	// At 1400 px wide the variants table fits its card and the page does
	// not scroll sideways.
	tb.resize(ctx, 1400, 900)
	var fit struct {
		Table, Box, Page, View, Inner int
	}
	tb.waitFor(ctx, "the variants table laid out at 1400 px", 10*time.Second, `(() => {
		const t = document.getElementById('variants');
		return {Table: t ? t.scrollWidth : 0, Box: t ? t.parentElement.clientWidth : 0,
			Page: document.documentElement.scrollWidth, View: document.documentElement.clientWidth,
			Inner: window.innerWidth};
	})()`, &fit, func() bool { return fit.Inner == 1400 && fit.Table > 0 })
	if fit.Table > fit.Box || fit.Page > fit.View {
		t.Errorf("at 1400 px the variants table is %d px wide in a %d px box, the page %d px in a %d px view; want no sideways scrolling", fit.Table, fit.Box, fit.Page, fit.View)
	}
	t.Logf("at 1400 px: variants table %d px in a %d px box; page %d px in a %d px view", fit.Table, fit.Box, fit.Page, fit.View)
	tb.resize(ctx, 1280, 900)

	// The fallback: with the player set to the browser's own HLS support
	// (what iPhones get), the title plays natively where the browser can,
	// and the page says so where it cannot.
	if err := tb.eval(ctx, `localStorage.setItem('weir.playerEngine', 'native')`, nil); err != nil {
		t.Fatal(err)
	}
	// A different URL (the query) makes it a fresh page load.
	tb.navigate(ctx, base+"/?engine=native#/vod/"+id)
	var native struct {
		CanPlay string  `json:"canPlay"`
		Engine  string  `json:"engine"`
		Fatal   string  `json:"fatal"`
		Time    float64 `json:"time"`
		Message string  `json:"message"`
	}
	tb.waitFor(ctx, "the native player playing or explaining why not", 30*time.Second, `(() => {
		const box = document.getElementById('player');
		const v = box && box.querySelector('video');
		return {
			canPlay: document.createElement('video').canPlayType('application/vnd.apple.mpegurl'),
			engine: box ? box.dataset.engine || '' : '',
			fatal: box ? box.dataset.fatal || '' : '',
			time: v ? v.currentTime : -1,
			message: box ? box.textContent : '',
		};
	})()`, &native, func() bool { return native.Fatal != "" || native.Time > 1.2 })
	switch {
	case native.CanPlay != "" && (native.Engine != "native" || native.Fatal != ""):
		t.Errorf("the browser plays HLS natively (canPlayType %q) but the native player ran as %q with error %q", native.CanPlay, native.Engine, native.Fatal)
	case native.CanPlay == "" && !strings.Contains(native.Message, "no native HLS support"):
		t.Errorf("the browser has no native HLS, and the page said %q", native.Message)
	}
	if err := tb.eval(ctx, `localStorage.removeItem('weir.playerEngine')`, nil); err != nil {
		t.Fatal(err)
	}

	// Live: the start form (the token is still saved) shows the publish
	// settings.
	tb.navigate(ctx, base+"/#/live")
	var started struct {
		ID   string `json:"id"`
		RTMP string `json:"rtmp"`
		Card string `json:"card"`
	}
	present = false
	tb.waitFor(ctx, "the start form", 15*time.Second, `!!document.getElementById('start-form')`, &present, func() bool { return present })
	if err := tb.eval(ctx, `(() => {
		document.getElementById('live-title').value = 'Browser test live';
		document.getElementById('start-form').requestSubmit();
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "the publish settings of the new stream", 15*time.Second, `(() => {
		const card = document.getElementById('publish-card');
		if (!card) return {id: '', rtmp: '', card: ''};
		const watch = card.querySelector('a[href^="#/live/"]');
		return {id: watch ? decodeURIComponent(watch.getAttribute('href').slice(7)) : '',
			rtmp: card.querySelector('.copy code').textContent, card: card.textContent};
	})()`, &started, func() bool { return started.ID != "" })
	checkScreenshot(t, "publish", tb.screenshot(ctx, filepath.Join(shots, "console-publish.png")))
	if !strings.HasPrefix(started.RTMP, "rtmp://") || !strings.Contains(started.Card, "-f flv") || !strings.Contains(started.Card, "Stream Key") {
		t.Errorf("publish card lacks the RTMP URL, the ffmpeg command or the OBS settings: rtmp %q, card %q", started.RTMP, started.Card)
	}
	var live struct {
		Status string `json:"status"`
		Title  string `json:"title"`
	}
	getJSON(t, base, "/streams/"+started.ID+"/metadata", &live)
	if live.Status != "created" || live.Title != "Browser test live" {
		t.Errorf("the stream the console started is %q %q, want created \"Browser test live\"", live.Status, live.Title)
	}

	// Its page offers the end button; ending it (the confirm dialog is
	// accepted) moves it to vod.
	tb.navigate(ctx, base+"/#/live/"+started.ID)
	var ended struct {
		Clicked bool   `json:"clicked"`
		Pill    string `json:"pill"`
	}
	tb.waitFor(ctx, "ending the stream from its page", 20*time.Second, `(() => {
		const btn = Array.from(document.querySelectorAll('button')).find((b) => b.textContent === 'End stream');
		if (btn && !btn.hidden && !btn.disabled) { btn.click(); return {clicked: true, pill: ''}; }
		const pill = document.querySelector('.card-head .pill');
		return {clicked: false, pill: pill ? pill.textContent : ''};
	})()`, &ended, func() bool { return ended.Pill == "vod" })
	getJSON(t, base, "/streams/"+started.ID+"/metadata", &live)
	if live.Status != "vod" {
		t.Errorf("after ending from the console the stream is %q, want vod", live.Status)
	}
}

// brokenUpload is a title whose upload is not media.
type brokenUpload struct{ id, err string }

// uploadBroken uploads a file that is not media and waits for it to fail.
func uploadBroken(t *testing.T, base string) brokenUpload {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "notes.mp4")
	fw.Write(bytes.Repeat([]byte("this is not a video\n"), 200))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/vod/upload", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		StreamID string `json:"stream_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 || json.Unmarshal(b, &out) != nil || out.StreamID == "" {
		t.Fatalf("uploading a file that is not media: %s %s", resp.Status, b)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var m vodMeta
		getJSON(t, base, "/vod/"+out.StreamID+"/metadata", &m)
		switch {
		case m.Status == "failed":
			return brokenUpload{id: out.StreamID, err: m.Error}
		case m.Status == "ready" || time.Now().After(deadline):
			t.Fatalf("the upload that is not media is %s, want failed within a minute", m.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// startStream creates a live stream through the API.
func startStream(t *testing.T, base, title string) (id, rtmp string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/streams/start", strings.NewReader(fmt.Sprintf(`{"title":%q}`, title)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		StreamID string `json:"stream_id"`
		Publish  struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 || json.Unmarshal(b, &out) != nil || out.StreamID == "" {
		t.Fatalf("POST /streams/start: %s %s", resp.Status, b)
	}
	return out.StreamID, out.Publish.RTMP
}

// TestConsolePlaysALiveStreamInChromium pushes a live test pattern over
// RTMP with ffmpeg and checks the console's live page plays the stream's
// generated master and through it the live playlist with hls.js, shows
// the DVR window, and follows the stream into VOD when it ends.
func TestConsolePlaysALiveStreamInChromium(t *testing.T) {
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is not installed: `make test` installs it (scripts/deps.sh test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base, serverLog := startWeir(t)
	id, rtmp := startStream(t, base, "Browser live pattern")

	pushCtx, stopPush := context.WithCancel(ctx)
	push := exec.CommandContext(pushCtx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=90",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=90",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", rtmp)
	var pushOut lockedBuffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatalf("starting ffmpeg: %v", err)
	}
	pushDone := make(chan struct{})
	go func() {
		push.Wait()
		close(pushDone)
	}()
	t.Cleanup(func() {
		stopPush()
		<-pushDone
	})

	b := startBrowser(t, ctx)
	tb := b.newTab(ctx)
	tb.navigate(ctx, base+"/#/live/"+id)
	var live struct {
		Engine    string   `json:"engine"`
		Manifest  string   `json:"manifest"`
		Fatal     string   `json:"fatal"`
		Advanced  float64  `json:"advanced"`
		Pill      string   `json:"pill"`
		Window    string   `json:"window"`
		Playlists []string `json:"playlists"`
	}
	const probe = `(() => {
		const box = document.getElementById('player');
		const v = box && box.querySelector('video');
		if (v && !v.paused && v.currentTime > 0 && window.weirTestStart === undefined) window.weirTestStart = v.currentTime;
		const pill = document.querySelector('.card-head .pill');
		const cards = Array.from(document.querySelectorAll('section.card'));
		const win = cards.find((c) => c.querySelector('h2') && c.querySelector('h2').textContent === 'DVR window');
		return {
			engine: box ? box.dataset.engine || '' : '',
			manifest: box ? box.dataset.manifest || '' : '',
			fatal: box ? box.dataset.fatal || '' : '',
			advanced: v && window.weirTestStart !== undefined ? v.currentTime - window.weirTestStart : 0,
			pill: pill ? pill.textContent : '',
			window: win ? win.textContent : '',
			playlists: performance.getEntriesByType('resource')
				.filter((e) => e.name.includes('/hls/') && e.name.endsWith('.m3u8'))
				.map((e) => new URL(e.name).pathname + ' ' + e.initiatorType),
		};
	})()`
	failed := func() bool {
		select {
		case <-pushDone:
			t.Fatalf("the ffmpeg publisher exited early:\n%s\nserver log:\n%s", pushOut.String(), serverLog)
		default:
		}
		return live.Fatal != ""
	}
	tb.waitFor(ctx, "the live player advancing a second", 60*time.Second, probe, &live, func() bool {
		return failed() || live.Advanced > 1
	})
	if live.Fatal != "" {
		t.Fatalf("the live player stopped with %q\npage log:\n%s\nserver log:\n%s", live.Fatal, b.pageLog(), serverLog)
	}
	if live.Engine != "hls.js" || live.Manifest != "loaded" || live.Pill != "live" {
		t.Errorf("engine %q, manifest %q, status %q; want hls.js, loaded, live", live.Engine, live.Manifest, live.Pill)
	}
	// The player loads the stream's generated master (captions and
	// metadata come through it), and from it live.m3u8.
	for _, file := range []string{"master.m3u8", "live.m3u8"} {
		want := "/hls/" + id + "/" + file + " "
		fetched := false
		for _, p := range live.Playlists {
			fetched = fetched || strings.HasPrefix(p, want)
		}
		if !fetched {
			t.Errorf("the player did not fetch %s; fetched %v", strings.TrimSpace(want), live.Playlists)
		}
	}
	if !strings.Contains(live.Window, "Segments listed") || !strings.Contains(live.Window, "Target duration") {
		t.Errorf("the DVR window card shows %q, want the listed segments and target duration", live.Window)
	}
	checkScreenshot(t, "live player", tb.screenshot(ctx, filepath.Join(screenshotDir(t), "console-live-player.png")))

	// Ending the stream elsewhere: the page follows it into VOD.
	req, _ := http.NewRequest(http.MethodPost, base+"/streams/"+id+"/end", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /streams/%s/end: %s", id, resp.Status)
	}
	var status struct {
		Pill string `json:"pill"`
	}
	tb.waitFor(ctx, "the live page showing the stream as VOD", 30*time.Second,
		`({pill: (document.querySelector('.card-head .pill') || {}).textContent || ''})`, &status,
		func() bool { return status.Pill == "vod" })

	// The VOD page lists the recording and links to its page.
	var meta struct {
		Segments int64 `json:"segment_count"`
	}
	getJSON(t, base, "/streams/"+id+"/metadata", &meta)
	tb.navigate(ctx, base+"/#/vod")
	var rec struct {
		Href     string `json:"href"`
		Title    string `json:"title"`
		Segments string `json:"segments"`
	}
	tb.waitFor(ctx, "the VOD page listing the recorded live stream", 20*time.Second, fmt.Sprintf(`(() => {
		const row = document.querySelector('#recorded-table tr[data-id=%q]');
		const a = row && row.querySelector('a');
		return {href: a ? a.getAttribute('href') : '', title: a ? a.textContent : '',
			segments: row ? row.children[1].textContent : ''};
	})()`, id), &rec, func() bool { return rec.Href != "" })
	if rec.Href != "#/live/"+id || rec.Title != "Browser live pattern" {
		t.Errorf("the recorded stream's row links %q titled %q, want #/live/%s titled \"Browser live pattern\"", rec.Href, rec.Title, id)
	}
	if meta.Segments == 0 || rec.Segments != fmt.Sprint(meta.Segments) {
		t.Errorf("the recorded stream's row shows %q segments, its metadata %d", rec.Segments, meta.Segments)
	}
}
