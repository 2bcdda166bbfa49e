package cli

// Test helpers shared by the command tests: run weir in-process, start an
// embedded broker, stand in for `weir serve`'s GET /bus, make media with
// ffmpeg, and drive kcat.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/testenv"
)

// weirResult is what one in-process weir command did.
type weirResult struct {
	stdout, stderr string
	err            error
}

// exitCode is the code Main would exit with.
func (r weirResult) exitCode() int {
	if r.err == nil {
		return 0
	}
	if ee, ok := r.err.(*exitError); ok {
		return ee.code
	}
	return 1
}

// runWeir runs the weir command line args in-process, as Main would,
// under ctx.
func runWeir(ctx context.Context, args ...string) weirResult {
	root := NewRoot()
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(ctx)
	return weirResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// testContext ends with the test or after a generous deadline.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// discardLogger keeps kgo goroutines, which may log after a test ends,
// away from t.Log. WEIR_TEST_LOG=1 shows them.
func discardLogger() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startEmbeddedBroker starts a broker on a free loopback port with its data
// in a temporary directory, closed when the test ends.
func startEmbeddedBroker(t testing.TB) *bus.Broker {
	t.Helper()
	b, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(t.TempDir()), bus.WithLogger(discardLogger()))
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// newBusClient returns a client for addr, closed when the test ends.
func newBusClient(t testing.TB, addr string) *bus.Client {
	t.Helper()
	c, err := bus.NewClient([]string{addr}, bus.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// fakeServer stands in for a running `weir serve`: it answers GET /bus
// with brokers, and 404 to anything else.
func fakeServer(t testing.TB, brokers ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/bus" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string][]string{"brokers": brokers})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// makeClip renders media with ffmpeg's lavfi sources into the test's
// temporary directory.
func makeClip(t testing.TB, name string, args ...string) string {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), name)
	full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	if b, err := exec.Command("ffmpeg", append(full, out)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// makeTSClip makes 3 s of video and audio in MPEG-TS, a few hundred KB.
func makeTSClip(t testing.TB) string {
	return makeClip(t, "clip.ts", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "mpegts")
}

// makeRadioClip makes 4 s of ADTS AAC, what an Icecast station sends.
func makeRadioClip(t testing.TB) string {
	return makeClip(t, "radio.aac", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100",
		"-t", "4", "-c:a", "aac", "-b:a", "128k", "-f", "adts")
}

func requireKcat(t testing.TB) {
	t.Helper()
	testenv.RequireTool(t, "kcat")
}

// runKcat runs kcat with args and stdin and returns its stdout, failing
// the test on error.
func runKcat(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes()
}
