package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/internal/testenv/chromium"
)

// glassMode is one way of serving the stream to the player.
type glassMode struct {
	name    string
	segment time.Duration // --live-segment-duration
	ll      bool          // LL-HLS: "ll_hls": true on POST /streams/start, hls.js lowLatencyMode
	part    time.Duration // --live-part-target
}

var glassModes = []glassMode{
	{name: "hls-2s", segment: 2 * time.Second},
	{name: "hls-1s", segment: time.Second},
	{name: "ll-hls", segment: time.Second, ll: true, part: 300 * time.Millisecond},
}

// glassPart is the ll-hls mode's part target (WEIR_GLASS_PART_TARGET, a
// duration, default 300ms).
func glassPart(b *testing.B, def time.Duration) time.Duration {
	s := os.Getenv("WEIR_GLASS_PART_TARGET")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("WEIR_GLASS_PART_TARGET=%q: want a duration such as 200ms", s)
	}
	return d
}

// glassSeconds is how long each iteration collects samples
// (WEIR_GLASS_SECONDS, default 20).
func glassSeconds(b *testing.B) time.Duration {
	s := os.Getenv("WEIR_GLASS_SECONDS")
	if s == "" {
		return 20 * time.Second
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("WEIR_GLASS_SECONDS=%q: want a positive number of seconds", s)
	}
	return time.Duration(n) * time.Second
}

// BenchmarkGlassToGlass measures glass-to-glass latency: from the moment
// a frame is made to the moment the player shows it. A publisher draws
// its wall clock into each frame (glass_clock_test.go: 30 fps 640x360,
// the time as big blocks with a CRC), encodes it with ffmpeg (libx264
// ultrafast, zerolatency, a key frame a second) and pushes it over RTMP
// into a real `weir serve`; headless Chromium plays the stream's live
// playlist with hls.js (default settings, lowLatencyMode on for LL-HLS),
// draws every frame it presents (requestVideoFrameCallback) into a canvas
// (at a quarter of its size),
// reads the time back and records now − that time. Publisher, server and
// browser share this machine's clock. Each mode gets its own server, stream
// and browser; samples start 5 s after the first frame is read, and each
// iteration collects WEIR_GLASS_SECONDS (20) seconds of them. Reported: the
// p50 and p99 latency in ms, the samples, frames whose code did not read
// (a CRC mismatch: a frame caught mid-change, or smeared), and how often
// the video stalled (its waiting event).
//
// Modes: hls-2s and hls-1s (standard HLS with that segment target) and
// ll-hls (1 s segments, 300 ms parts, "ll_hls": true on POST
// /streams/start; WEIR_GLASS_PART_TARGET sets another part target).
//
//	go test -run '^$' -bench GlassToGlass -benchtime 2x ./internal/server/
func BenchmarkGlassToGlass(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg")
	hlsjs, err := os.ReadFile(filepath.Join("..", "console", "static", "vendor", "hls.min.js"))
	if err != nil {
		b.Fatalf("hls.js is not vendored (%v): run scripts/fetch-vendor.sh, which `make build` and `make test` run for you", err)
	}
	chromium.Path(b)
	bin := testenv.WeirBinary(b)
	page := httptest.NewServer(glassPage(hlsjs))
	defer page.Close()
	for _, m := range glassModes {
		b.Run(m.name, func(b *testing.B) { runGlass(b, bin, page.URL, m) })
	}
}

func runGlass(b *testing.B, bin, pageURL string, m glassMode) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startGlassServer(b, bin, m)
	req := map[string]any{"title": "glass " + m.name}
	if m.ll {
		req["ll_hls"] = true
	}
	var started struct {
		ID       string `json:"stream_id"`
		Playback string `json:"playback"`
		Publish  struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	code, raw := glassPost(b, "http://"+p.http+"/streams/start", req, &started)
	if code != http.StatusOK && code != http.StatusCreated {
		b.Fatalf("POST /streams/start: %d %s", code, raw)
	}
	live := "http://" + p.http + "/hls/" + started.ID + "/live.m3u8"

	pub := startGlassPublisher(b, ctx, started.Publish.RTMP)
	// Let a few segments be listed, so the player joins a running stream
	// as a viewer would, not its first segment.
	var playlist string
	glassWait(b, p, 90*time.Second, "four segments in "+live, func() bool {
		playlist = glassGet(live)
		return strings.Count(playlist, "#EXTINF:") >= 4
	})
	if m.ll && !strings.Contains(playlist, "#EXT-X-PART:") {
		b.Fatalf("the stream was started with ll_hls but its playlist lists no parts:\n%s", playlist)
	}
	b.Logf("%s: %s", m.name, glassPlaylistHead(playlist))

	tab := chromium.Start(b, ctx).NewTab(ctx)
	tab.Navigate(ctx, pageURL+"/")
	var ready bool
	tab.WaitFor(ctx, "hls.js on the page", 30*time.Second, `typeof Hls === 'function' && typeof glassStart === 'function'`, &ready, func() bool { return ready })
	if err := tab.Eval(ctx, fmt.Sprintf("glassStart(%q, %v)", live, m.ll), nil); err != nil {
		b.Fatal(err)
	}
	var st glassState
	take := func() {
		if err := tab.Eval(ctx, `glassTake()`, &st); err != nil {
			b.Fatal(err)
		}
	}
	tab.WaitFor(ctx, "the first frame's clock read by the page", time.Minute, `glassTake()`, &st, func() bool {
		if slices.ContainsFunc(st.Errors, func(e string) bool { return strings.HasSuffix(e, ":fatal") }) {
			b.Fatalf("hls.js: %v", st.Errors)
		}
		if pub.exited() {
			b.Fatalf("the publisher exited: %s", pub.stderr())
		}
		return len(st.Samples) > 0
	})
	time.Sleep(5 * time.Second)
	take()
	base := st

	var samples []float64
	loadStart := loadavg()
	for b.Loop() {
		end := time.Now().Add(glassSeconds(b))
		for time.Now().Before(end) {
			time.Sleep(time.Second)
			take()
			samples = append(samples, st.Samples...)
			if pub.exited() {
				b.Fatalf("the publisher exited: %s", pub.stderr())
			}
		}
	}
	b.Logf("%s: load average %s at the start, %s at the end", m.name, loadStart, loadavg())
	if len(samples) == 0 {
		b.Fatalf("no frame's clock was read in %v (hls.js errors %v)", glassSeconds(b), st.Errors)
	}
	slices.Sort(samples)
	b.ReportMetric(percentile(samples, 50), "p50-ms")
	b.ReportMetric(percentile(samples, 99), "p99-ms")
	b.ReportMetric(float64(len(samples)), "samples")
	b.ReportMetric(float64(st.Bad-base.Bad), "unread-frames")
	b.ReportMetric(float64(st.Stalls-base.Stalls), "stalls")
	b.Logf("%s: %d samples, min %.0f ms, p50 %.0f ms, p99 %.0f ms, max %.0f ms; %d frames drawn, %d unread, %d stalls; hls.js errors %v",
		m.name, len(samples), samples[0], percentile(samples, 50), percentile(samples, 99), samples[len(samples)-1],
		st.Frames-base.Frames, st.Bad-base.Bad, st.Stalls-base.Stalls, st.Errors)
}

// loadavg is the machine's 1, 5 and 15 minute load averages, for the log:
// the figures mean little on a machine busy with other work.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "(unknown)"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// glassState is what the page has seen (glassTake): the latencies (ms)
// since the last call, and counts since the start.
type glassState struct {
	Samples []float64 `json:"samples"`
	Frames  int       `json:"frames"`
	Bad     int       `json:"bad"`
	Stalls  int       `json:"stalls"`
	Errors  []string  `json:"errors"`
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// glassPage serves the player page and hls.js.
func glassPage(hlsjs []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hls.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(hlsjs)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, glassPageHTML)
	})
	return mux
}

var glassPageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>glass to glass</title></head>
<body>
<video id="v" muted autoplay playsinline width="` + strconv.Itoa(glassWidth) + `" height="` + strconv.Itoa(glassHeight) + `"></video>
<script src="/hls.min.js"></script>
<script>
` + glassDecoderJS + `
window.g2g = {samples: [], frames: 0, bad: 0, stalls: 0, errors: [], last: -1};
function glassTake() {
	const s = g2g.samples;
	g2g.samples = [];
	return {samples: s, frames: g2g.frames, bad: g2g.bad, stalls: g2g.stalls, errors: g2g.errors.slice(-10)};
}
function glassStart(src, ll) {
	const W = ` + strconv.Itoa(glassWidth/glassScale) + `, H = ` + strconv.Itoa(glassHeight/glassScale) + `;
	const v = document.getElementById('v');
	const c = document.createElement('canvas');
	c.width = W;
	c.height = H;
	const ctx = c.getContext('2d', {willReadFrequently: true});
	const hls = new Hls({lowLatencyMode: ll});
	window.glassHls = hls;
	hls.on(Hls.Events.ERROR, (e, d) => g2g.errors.push(d.details + (d.fatal ? ':fatal' : '')));
	hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch((e) => g2g.errors.push('play: ' + e)));
	v.addEventListener('waiting', () => g2g.stalls++);
	hls.loadSource(src);
	hls.attachMedia(v);
	const next = () => v.requestVideoFrameCallback ? v.requestVideoFrameCallback(read) : setTimeout(read, 10);
	const read = () => {
		const now = Date.now();
		if (v.videoWidth) {
			ctx.drawImage(v, 0, 0, W, H);
			const code = glassRead(ctx.getImageData(0, 0, W, H).data, W);
			g2g.frames++;
			if (code < 0) {
				g2g.bad++;
			} else if (code !== g2g.last) {
				g2g.last = code;
				const lat = ((now % 4294967296) - code + 4294967296) % 4294967296;
				if (lat > 120000) g2g.bad++; else g2g.samples.push(lat);
			}
		}
		next();
	};
	next();
}
</script>
</body></html>
`

// startGlassServer runs `weir serve` with everything in one process and
// the mode's segment target (and part target for LL-HLS), and waits until
// it is ready. The longest segment
// is the target too, so EXT-X-TARGETDURATION is the target (the default,
// twice the target, would set hls.js's live sync point, three target
// durations from the live edge, twice as far back); the publisher's key
// frame a second divides every target.
func startGlassServer(b *testing.B, bin string, m glassMode) *weirProc {
	dir := b.TempDir()
	p := &weirProc{name: "weir-" + m.name, http: testenv.FreeAddr(b), rtmp: testenv.FreeAddr(b), srt: testenv.FreeAddr(b),
		logPath: filepath.Join(dir, "weir.log"), exited: make(chan struct{})}
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--http", p.http, "--kafka-listen", testenv.FreeAddr(b),
		"--rtmp", p.rtmp, "--srt", p.srt, "--live-segment-duration", m.segment.String(),
		"--live-max-segment-duration", m.segment.String(), "--log-level", "info"}
	if m.ll {
		args = append(args, "--live-part-target", glassPart(b, m.part).String())
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		b.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start weir serve: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	b.Cleanup(func() {
		p.stop()
		if b.Failed() {
			b.Logf("--- log of %s (last 40 lines)\n%s", p.name, tail(p.logPath, 40))
		}
	})
	glassWait(b, p, time.Minute, p.name+" ready", func() bool {
		resp, err := http.Get("http://" + p.http + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// glassWait polls cond every 100 ms until it holds, failing after d or
// when the server exits.
func glassWait(b *testing.B, p *weirProc, d time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-p.exited:
			b.Fatalf("%s exited while waiting for %s:\n%s", p.name, what, tail(p.logPath, 40))
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("no %s after %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// glassPost POSTs body as JSON and decodes a 2xx answer into out.
func glassPost(b *testing.B, url string, body, out any) (int, string) {
	b.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(string(data)))
	if err != nil {
		b.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			b.Fatalf("POST %s: %d %s: %v", url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// glassGet returns the body of a 200 answer, or "".
func glassGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(raw)
}

// glassPlaylistHead is a playlist's tags up to its first segment, on one
// line, for the log.
func glassPlaylistHead(playlist string) string {
	var head []string
	for _, line := range strings.Split(playlist, "\n") {
		if strings.HasPrefix(line, "#EXTINF") || strings.HasPrefix(line, "#EXT-X-PART:") {
			break
		}
		if line != "" && line != "#EXTM3U" {
			head = append(head, line)
		}
	}
	return strings.Join(head, " ")
}

// glassPublisher is ffmpeg encoding frames this process draws, each
// carrying the wall clock at the moment it was drawn, and pushing them
// over RTMP at 30 fps.
type glassPublisher struct {
	cmd    *exec.Cmd
	done   chan struct{}
	errBuf *tailBuffer
}

func (p *glassPublisher) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *glassPublisher) stderr() string { return p.errBuf.String() }

func startGlassPublisher(b *testing.B, ctx context.Context, rtmpURL string) *glassPublisher {
	args := append(append([]string{"-hide_banner", "-loglevel", "error"}, glassRawInput()...), glassEncodeArgs()...)
	args = append(args, "-f", "flv", "-flvflags", "no_duration_filesize", rtmpURL)
	cmd := exec.Command("ffmpeg", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	p := &glassPublisher{cmd: cmd, done: make(chan struct{}), errBuf: &tailBuffer{}}
	cmd.Stderr = p.errBuf
	if err := cmd.Start(); err != nil {
		b.Fatalf("start ffmpeg: %v", err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		defer stdin.Close()
		frame := make([]byte, glassFrameSize)
		tick := time.NewTicker(time.Second / glassFPS)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			glassFrame(frame, uint32(time.Now().UnixMilli()))
			if _, err := stdin.Write(frame); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		<-fed
	})
	return p
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
