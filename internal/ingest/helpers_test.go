package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// mediaDir holds the media files the tests make with ffmpeg, once per
// test binary.
var mediaDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-ingest-test-")
	if err != nil {
		panic(err)
	}
	mediaDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// mediaRecipes are the test inputs, made from ffmpeg's lavfi sources.
var mediaRecipes = map[string][]string{
	// 3 s of video and audio in MPEG-TS, a few hundred KB.
	"av.ts": {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "mpegts"},
	// The same in MP4 with the moov box at the end (ffmpeg's default),
	// which cannot be recognised from its first bytes.
	"moov-at-end.mp4": {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mp4"},
	// 5 s of ADTS AAC, as an Icecast station sends it.
	"radio.aac": {"-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100", "-t", "5", "-c:a", "aac", "-b:a", "128k", "-f", "adts"},
}

var mediaOnce sync.Map // name → *sync.Once

// testMedia returns the path of a test input, making it on first use.
func testMedia(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(mediaDir, name)
	if name == "notes.txt" {
		once, _ := mediaOnce.LoadOrStore(name, new(sync.Once))
		once.(*sync.Once).Do(func() {
			text := strings.Repeat("These are meeting notes, not media.\n", 2000)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				panic(err)
			}
		})
		return path
	}
	testenv.RequireTool(t, "ffmpeg")
	recipe, ok := mediaRecipes[name]
	if !ok {
		t.Fatalf("no recipe for %s", name)
	}
	var ferr error
	once, _ := mediaOnce.LoadOrStore(name, new(sync.Once))
	once.(*sync.Once).Do(func() {
		args := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, recipe...)
		if out, err := exec.Command("ffmpeg", append(args, path)...).CombinedOutput(); err != nil {
			ferr = err
			t.Logf("ffmpeg: %s", out)
			os.Remove(path)
		}
	})
	if ferr != nil {
		t.Fatalf("making %s: %v", name, ferr)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("making %s failed earlier: %v", name, err)
	}
	return path
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quietLogger discards logs: kgo goroutines may log after a test returns,
// which t.Log does not allow. WEIR_TEST_LOG=1 shows them.
func quietLogger() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker starts an embedded broker on a free port with its data in a
// temporary directory, and a client for it; both are closed after the
// test.
func startBroker(t testing.TB) (*bus.Broker, *bus.Client) {
	t.Helper()
	b, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(t.TempDir()), bus.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := bus.NewClient([]string{b.Addr()}, bus.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return b, c
}

// testCtx ends with the test or after a generous deadline.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readTopic returns every record of topic; ok is false when the topic
// does not exist.
func readTopic(t testing.TB, c *bus.Client, topic string) (recs []*bus.Record, ok bool) {
	t.Helper()
	recs, err := c.ReadAll(testCtx(t), topic, 0)
	if err != nil {
		if strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") || strings.Contains(err.Error(), "does not exist") {
			return nil, false
		}
		t.Fatalf("read topic %s: %v", topic, err)
	}
	return recs, true
}

// cycle returns the first n bytes of data repeated forever.
func cycle(data []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, data[:min(len(data), n-len(out))]...)
	}
	return out
}

// loopingStation serves data in a loop forever, paced, like an Icecast
// station: chunk bytes every period until the client goes away.
func loopingStation(data []byte, contentType string, chunk int, period time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Icy-Name", "weir test radio")
		fl := w.(http.Flusher)
		tick := time.NewTicker(period)
		defer tick.Stop()
		off := 0
		for {
			piece := make([]byte, 0, chunk)
			for len(piece) < chunk {
				n := min(chunk-len(piece), len(data)-off)
				piece = append(piece, data[off:off+n]...)
				off = (off + n) % len(data)
			}
			if _, err := w.Write(piece); err != nil {
				return
			}
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}
}

// countingTransport signals once the client has read at least n bytes of
// a response body, so a test can break the connection after the data it
// sent was surely received.
type countingTransport struct {
	n    int
	read chan struct{}
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, t: c}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	t     *countingTransport
	total int
	once  sync.Once
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.total += n
	if b.total >= b.t.n {
		b.once.Do(func() { close(b.t.read) })
	}
	return n, err
}

// rawWatcher is a bus that passes records on and closes first once a
// raw_stream record was produced.
type rawWatcher struct {
	bus.Bus
	once  sync.Once
	first chan struct{}
}

func (r *rawWatcher) ProduceAsync(rec *bus.Record, done func(*bus.Record, error)) {
	r.Bus.ProduceAsync(rec, func(rec *bus.Record, err error) {
		if _, t, ok := protocol.SplitStreamKey(rec.Key); ok && t == protocol.TypeRawStream && err == nil {
			r.once.Do(func() { close(r.first) })
		}
		done(rec, err)
	})
}

// isPrefix reports whether got is where want starts.
func isPrefix(got, want []byte) bool {
	return len(got) <= len(want) && bytes.Equal(got, want[:len(got)])
}
