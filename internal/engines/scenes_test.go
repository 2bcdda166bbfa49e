package engines

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// sceneSource is one shot of a generated clip: a lavfi source and its
// length in frames.
type sceneSource struct {
	lavfi  string // with %s for the size and %d for the rate
	frames int
}

// sceneShots are the shots of the accuracy clip: moving, static, slowly
// zooming, noisy and flat sources, cut at frame-exact times.
var sceneShots = []sceneSource{
	{"testsrc2=s=%s:r=%d", 72},                         // moving pattern and counter
	{"smptebars=s=%s:r=%d", 93},                        // static
	{"mandelbrot=s=%s:r=%d", 75},                       // slow zoom
	{"color=c=red:s=%s:r=%d,noise=alls=30:allf=t", 66}, // red with noise that changes every frame
	{"testsrc=s=%s:r=%d", 51},                          // moving counter
	{"rgbtestsrc=s=%s:r=%d", 60},                       // static
	{"color=c=0x204060:s=%s:r=%d", 60},                 // flat
}

// makeSceneClip writes an MPEG-TS (H.264) clip of the shots at size and
// rate, and returns its path and the times of its cuts in ms.
func makeSceneClip(t testing.TB, dir, size string, rate int, shots []sceneSource) (string, []int64) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	var args []string
	var graph strings.Builder
	var cuts []int64
	frames := 0
	for i, s := range shots {
		src := fmt.Sprintf(s.lavfi, size, rate)
		args = append(args, "-f", "lavfi", "-i", src)
		fmt.Fprintf(&graph, "[%d:v]trim=end_frame=%d,setpts=PTS-STARTPTS,format=yuv420p[v%d];", i, s.frames, i)
		if i > 0 {
			cuts = append(cuts, int64(frames)*1000/int64(rate))
		}
		frames += s.frames
	}
	for i := range shots {
		fmt.Fprintf(&graph, "[v%d]", i)
	}
	fmt.Fprintf(&graph, "concat=n=%d:v=1[v]", len(shots))
	path := filepath.Join(dir, "scenes.ts")
	args = append(args, "-filter_complex", graph.String(), "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast",
		"-crf", "20", "-g", "50", "-f", "mpegts", "-y", path)
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make clip: %v: %s", err, out)
	}
	return path, cuts
}

// memArtifacts is an artifact store in memory, as a host gives one.
type memArtifacts struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (m *memArtifacts) Put(_ context.Context, name, contentType string, data []byte) (string, error) {
	if err := engine.ValidArtifactName(name); err != nil {
		return "", err
	}
	if contentType != "image/jpeg" {
		return "", fmt.Errorf("content type %q", contentType)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[name] = data
	return "http://weir.test/jobs/job-1/artifacts/scenes/" + name, nil
}

// runScenes runs the scenes engine on body with an artifact store.
func runScenes(t testing.TB, body io.Reader, opts map[string]any, store engine.Artifacts) ([]timedPiece, int64) {
	t.Helper()
	o, err := scenesSpec.ParseOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var pieces []timedPiece
	emit := engine.NewEmitter(func(p engine.Piece) error {
		mu.Lock()
		defer mu.Unlock()
		pieces = append(pieces, timedPiece{p, time.Now()})
		return nil
	}, engine.WithArtifacts(store))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: body}
	if err := (scenes{}).Process(ctx, s, o, emit); err != nil {
		t.Fatalf("scenes: %v", err)
	}
	return pieces, emit.BoundMs()
}

// sceneAt is what a piece reports.
func sceneAt(t *testing.T, p engine.Piece) (n int, score float64, uri string) {
	t.Helper()
	if len(p.Doc.Series) != 1 || p.StartMs != p.EndMs {
		t.Fatalf("piece [%d, %d] %+v: want one instant", p.StartMs, p.EndMs, p.Doc.Series)
	}
	s := p.Doc.Series[0]
	if s.StartTimeMs != p.StartMs || s.StopTimeMs != p.StartMs || len(s.Tags) != 1 || s.Tags[0].Key != "scene" {
		t.Fatalf("series %+v", s)
	}
	n, err := strconv.Atoi(s.Tags[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if s.Object != nil {
		uri = s.Object.URI
	}
	return n, s.Tags[0].Score, uri
}

// TestScenesFindsEveryCutWithinAFrame: on seven different sources cut at
// known frames, every cut is found within one frame, none is found inside
// a shot (moving, static, zooming or noisy), and each scene's thumbnail
// is a JPEG of the asked width.
func TestScenesFindsEveryCutWithinAFrame(t *testing.T) {
	dir := t.TempDir()
	clip, cuts := makeSceneClip(t, dir, "640x360", 30, sceneShots)
	f, err := os.Open(clip)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	store := &memArtifacts{}
	pieces, bound := runScenes(t, f, map[string]any{"thumbnail_width": 240}, store)
	const frameMs = 1000.0 / 30
	want := append([]int64{0}, cuts...)
	if len(pieces) != len(want) {
		var got []int64
		for _, p := range pieces {
			got = append(got, p.StartMs)
		}
		t.Fatalf("scenes at %v ms, want %v", got, want)
	}
	for i, p := range pieces {
		n, score, uri := sceneAt(t, p.Piece)
		if d := float64(p.StartMs - want[i]); n != i || d > frameMs || d < -frameMs {
			t.Errorf("scene %d at %d ms, want scene %d at %d ms (±1 frame)", n, p.StartMs, i, want[i])
		}
		if (i == 0) != (score == 0) || score > 1 || i > 0 && score <= 0.25 {
			t.Errorf("scene %d score %v", i, score)
		}
		name := fmt.Sprintf("scene-%06d.jpg", i)
		if uri != "http://weir.test/jobs/job-1/artifacts/scenes/"+name {
			t.Errorf("scene %d thumbnail %q", i, uri)
		}
		checkThumbnail(t, dir, name, store.files[name], 240, 136)
	}
	if bound < want[len(want)-1] {
		t.Errorf("bound %d ms, want at least the last cut", bound)
	}
}

// checkThumbnail decodes a thumbnail with ffprobe.
func checkThumbnail(t *testing.T, dir, name string, data []byte, width, height int) {
	t.Helper()
	if len(data) < 100 {
		t.Errorf("thumbnail %s: %d bytes", name, len(data))
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
		"-of", "csv=p=0", path).CombinedOutput()
	if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("mjpeg,%d,%d", width, height); err != nil || got != want {
		t.Errorf("thumbnail %s: ffprobe says %q (%v), want %q", name, got, err, want)
	}
}

// TestScenesWithoutAnArtifactStoreReportsCutsWithoutThumbnails: a host
// that keeps no files gets the cuts all the same; so does a job that
// turns thumbnails off, with min_interval merging cuts closer than it.
func TestScenesWithoutAnArtifactStoreReportsCutsWithoutThumbnails(t *testing.T) {
	shots := []sceneSource{{"smptebars=s=%s:r=%d", 30}, {"testsrc2=s=%s:r=%d", 12}, {"mandelbrot=s=%s:r=%d", 45}}
	clip, cuts := makeSceneClip(t, t.TempDir(), "320x180", 30, shots)
	for _, tc := range []struct {
		name string
		opts map[string]any
		want []int64
	}{
		{"no store", nil, append([]int64{0}, cuts...)},
		{"no thumbnails, min_interval 1s", map[string]any{"thumbnails": false, "min_interval": "1s"}, []int64{0, cuts[0]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pieces, _ := runStreamEngine(t, "scenes", clip, "mpegts", tc.opts)
			if len(pieces) != len(tc.want) {
				t.Fatalf("%d scenes, want %d at %v", len(pieces), len(tc.want), tc.want)
			}
			for i, p := range pieces {
				if _, _, uri := sceneAt(t, p); uri != "" || p.StartMs < tc.want[i]-34 || p.StartMs > tc.want[i]+34 {
					t.Errorf("scene %d at %d ms, thumbnail %q; want %d ms and none", i, p.StartMs, uri, tc.want[i])
				}
			}
		})
	}
}

// TestScenesReportsCutsWhileALiveStreamRuns: fed at about real time
// through a pipe, each cut arrives, with its thumbnail, long before the
// stream ends.
func TestScenesReportsCutsWhileALiveStreamRuns(t *testing.T) {
	shots := []sceneSource{{"smptebars=s=%s:r=%d", 60}, {"testsrc2=s=%s:r=%d", 60}, {"mandelbrot=s=%s:r=%d", 120}}
	clip, cuts := makeSceneClip(t, t.TempDir(), "320x180", 30, shots)
	// ffmpeg -re sends the clip at its own pace, as a live source does.
	feed := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", clip, "-c", "copy", "-f", "mpegts", "pipe:1")
	pr, pw := io.Pipe()
	feed.Stdout = pw
	var ended time.Time
	if err := feed.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := feed.Wait()
		ended = time.Now()
		pw.CloseWithError(err)
	}()
	store := &memArtifacts{}
	pieces, _ := runScenes(t, pr, nil, store)
	for _, p := range pieces {
		t.Logf("scene at %d ms arrived %v before the end", p.StartMs, ended.Sub(p.at))
	}
	if len(pieces) != 3 {
		t.Fatalf("%d scenes, want 3", len(pieces))
	}
	// The cut at 4 s is followed by 4 s of stream: it must arrive well
	// before the end (a floor of 1.5 s leaves room for a loaded machine).
	if p := pieces[2]; p.StartMs < cuts[1]-34 || ended.Sub(p.at) < 1500*time.Millisecond {
		t.Errorf("cut at %d ms arrived %v before the stream ended; want it while the stream runs", p.StartMs, ended.Sub(p.at))
	}
	if _, _, uri := sceneAt(t, pieces[2].Piece); uri == "" || len(store.files) != 3 {
		t.Errorf("live cut without a thumbnail: %q, %d stored", uri, len(store.files))
	}
}

func TestScenesOptions(t *testing.T) {
	o, err := scenesSpec.ParseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newSceneConfig(o)
	if c.threshold != 0.25 || c.minInterval != 200*time.Millisecond || !c.thumbnails || c.width != 320 || c.qscale != 9 {
		t.Errorf("defaults %+v", c)
	}
	for q, want := range map[int]int64{1: 31, 100: 2, 50: 17} {
		o, _ := scenesSpec.ParseOptions(map[string]any{"thumbnail_quality": q})
		if got := newSceneConfig(o).qscale; got != want {
			t.Errorf("quality %d: qscale %d, want %d", q, got, want)
		}
	}
	args := strings.Join(c.args(), " ")
	for _, want := range []string{"gt(scene,0.25)*gte(t-prev_selected_t,0.2)", "scale=320:-2", "-qmin 9 -qmax 9", "image2pipe pipe:1"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %s lack %s", args, want)
		}
	}
	for opts, want := range map[string]map[string]any{
		`option "threshold": must be at most 1`:         {"threshold": 10},
		`option "thumbnail_width": must be at least 16`: {"thumbnail_width": 8},
	} {
		if _, err := scenesSpec.ParseOptions(want); err == nil || !strings.Contains(err.Error(), opts) {
			t.Errorf("%v: %v, want %s", want, err, opts)
		}
	}
}

// BenchmarkScenes reports the scenes engine's speed on 720p30 H.264 (the
// accuracy clip's shots, 14 s) with thumbnails, as a multiple of real
// time.
func BenchmarkScenes(b *testing.B) {
	clip, _ := makeSceneClip(b, b.TempDir(), "1280x720", 30, sceneShots)
	data, err := os.ReadFile(clip)
	if err != nil {
		b.Fatal(err)
	}
	frames := 0
	for _, s := range sceneShots {
		frames += s.frames
	}
	media := time.Duration(frames) * time.Second / 30
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		runScenes(b, strings.NewReader(string(data)), nil, &memArtifacts{})
	}
	b.ReportMetric(media.Seconds()*float64(b.N)/time.Since(start).Seconds(), "x-realtime")
}
