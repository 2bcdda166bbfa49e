package engines

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// Helpers shared by the loudness, silence and black engines' tests.

// levelsMedia runs ffmpeg to write name (in a temporary directory) from
// the arguments, lavfi sources typically.
func levelsMedia(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	testenv.RequireTool(tb, "ffmpeg", "ffprobe")
	out := filepath.Join(tb.TempDir(), name)
	args = append([]string{"-hide_banner", "-loglevel", "error", "-y"}, append(args, out)...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// levelsStream makes the registered stream engine name and parses opts.
func levelsStream(tb testing.TB, name string, opts map[string]any) (engine.StreamEngine, engine.Options) {
	tb.Helper()
	reg, ok := engine.Default().Lookup(name)
	if !ok {
		tb.Fatalf("engine %s is not registered", name)
	}
	o, err := reg.Spec.ParseOptions(opts)
	if err != nil {
		tb.Fatalf("options: %v", err)
	}
	eng, err := reg.Factory.(engine.StreamFactory)()
	if err != nil {
		tb.Fatal(err)
	}
	return eng, o
}

// timedPiece is a piece and when the engine emitted it.
type timedPiece struct {
	engine.Piece
	at time.Time
}

// eofReader notes when its reader first returns io.EOF.
type eofReader struct {
	r   io.Reader
	mu  sync.Mutex
	eof time.Time
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.mu.Lock()
		if e.eof.IsZero() {
			e.eof = time.Now()
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *eofReader) at() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.eof }

// levelsLive runs the stream engine name on path as a live stream: ffmpeg
// copies it at real time (-re) into MPEG-TS on a pipe that is the
// stream's body. It returns the pieces with the time each came, and when
// the body ended.
func levelsLive(t *testing.T, name, path string, opts map[string]any) ([]timedPiece, time.Time) {
	t.Helper()
	eng, o := levelsStream(t, name, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	feed := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", path,
		"-c", "copy", "-f", "mpegts", "pipe:1")
	out, err := feed.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	feed.Stderr = os.Stderr
	if err := feed.Start(); err != nil {
		t.Fatal(err)
	}
	body := &eofReader{r: out}
	var mu sync.Mutex
	var pieces []timedPiece
	var bounds int
	emit := engine.NewEmitter(func(p engine.Piece) error {
		mu.Lock()
		defer mu.Unlock()
		pieces = append(pieces, timedPiece{p, time.Now()})
		return nil
	}, engine.OnBound(func(int64) error {
		if body.at().IsZero() {
			mu.Lock()
			bounds++
			mu.Unlock()
		}
		return nil
	}))
	s := &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: body}
	if err := eng.Process(ctx, s, o, emit); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := feed.Wait(); err != nil {
		t.Fatalf("feeding ffmpeg: %v", err)
	}
	// The bound moves as the media does (a piece or Bound), not only at the end.
	if bounds < 4 {
		t.Errorf("the bound moved %d times before the end of a live stream, want it to follow the media", bounds)
	}
	return pieces, body.at()
}

// assertLiveBeforeEnd fails unless the first piece came well before the
// live body ended.
func assertLiveBeforeEnd(t *testing.T, pieces []timedPiece, eof time.Time) {
	t.Helper()
	if len(pieces) == 0 {
		t.Fatal("no output from the live stream")
	}
	if eof.IsZero() {
		t.Fatal("the live body never ended")
	}
	if lead := eof.Sub(pieces[0].at); lead < time.Second {
		t.Fatalf("first result came %v before the end of the stream, want at least 1s: not live", lead)
	}
	t.Logf("first result %v before the end of the stream", eof.Sub(pieces[0].at).Round(time.Millisecond))
}

// interval is a stretch of media time, ms.
type interval struct{ start, end int64 }

// seriesWithTag returns the series of the pieces that carry tag key=value
// (any value when value is "").
func seriesWithTag(pieces []engine.Piece, key, value string) []protocol.Series {
	var out []protocol.Series
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			for _, tag := range s.Tags {
				if tag.Key == key && (value == "" || tag.Value == value) {
					out = append(out, s)
					break
				}
			}
		}
	}
	return out
}

// assertIntervals fails unless got holds exactly the want intervals, each
// within tol ms at both ends.
func assertIntervals(t *testing.T, what string, got []protocol.Series, want []interval, tol int64) {
	t.Helper()
	for _, s := range got {
		t.Logf("%s [%d, %d] ms", what, s.StartTimeMs, s.StopTimeMs)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: found %d intervals, want %d: %v", what, len(got), len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if abs64(g.StartTimeMs-w.start) > tol || abs64(g.StopTimeMs-w.end) > tol {
			t.Errorf("%s %d: [%d, %d] ms, want [%d, %d] ±%d", what, i, g.StartTimeMs, g.StopTimeMs, w.start, w.end, tol)
		}
	}
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// benchStream runs the stream engine name on path b.N times and reports
// the real-time factor: seconds of media per second of processing.
func benchStream(b *testing.B, name, path, format string, mediaSeconds float64, opts map[string]any) {
	eng, o := levelsStream(b, name, opts)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		emit := engine.NewEmitter(func(engine.Piece) error { return nil })
		s := &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: format}, Body: f}
		err = eng.Process(context.Background(), s, o, emit)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(mediaSeconds*float64(b.N)/time.Since(start).Seconds(), "x-realtime")
}

// levelsRunErr runs the stream engine name on path and returns its error.
func levelsRunErr(t *testing.T, name, path, format string, opts map[string]any) error {
	t.Helper()
	eng, o := levelsStream(t, name, opts)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emit := engine.NewEmitter(func(engine.Piece) error { return nil })
	return eng.Process(ctx, &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: format}, Body: f}, o, emit)
}
