package enginehost_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/protocol"
)

// quietLogger discards logs unless WEIR_TEST_LOG is set: goroutines may
// log after a test returns, which t.Log does not allow.
func quietLogger() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testCtx ends with the test or after a generous deadline.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// processorFunc adapts a function to enginehost.Processor.
type processorFunc func(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error)

func (f processorFunc) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	return f(ctx, c, opts)
}

// testSpec is a chunk engine reading video and audio, with one option.
func testSpec(name string) engine.Spec {
	return engine.Spec{
		Name: name, Mode: engine.ModeChunk, Summary: "A test engine",
		Inputs: []string{"video/*", "audio/*"}, Outputs: []string{"tag", "object"},
		Options: []engine.Option{{Name: "level", Type: engine.TypeInt, Default: 1, Min: 0, Max: 9, Doc: "How hard to look"}},
	}
}

// startHost runs a host until the test ends and checks that Run returns
// nil when it is stopped.
func startHost(t testing.TB, cfg enginehost.Config) *enginehost.Host {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quietLogger()
	}
	h, err := enginehost.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return h
}

// chunkFor makes a media_chunk of job for the test engine.
func chunkFor(job string, index int64, mime string, data []byte) *protocol.MediaChunk {
	return &protocol.MediaChunk{
		Header:     protocol.Header{TaskID: job + "-test", JobID: job, TDOID: "tdo-" + job},
		MimeType:   mime,
		ChunkIndex: index, StartOffsetMs: 10_000 + index*2000, EndOffsetMs: 12_000 + index*2000,
		Content: base64.StdEncoding.EncodeToString(data), ContentEncoding: protocol.ContentBase64,
		ChunkUUID: job + "-chunk-" + string(rune('a'+index)),
	}
}

// send produces media chunks on topic.
func send(t testing.TB, b bus.Bus, topic string, chunks ...*protocol.MediaChunk) {
	t.Helper()
	for _, c := range chunks {
		key, value, err := protocol.Encode(c)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if err := b.Produce(testCtx(t), &bus.Record{Topic: topic, Key: key, Value: value}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
}

// results is what a job's results topic held.
type results struct {
	records  []*bus.Record
	outputs  []*protocol.EngineOutput
	statuses []*protocol.ChunkProcessedStatus
	beats    []*protocol.EngineHeartbeat
	order    []protocol.Type
}

// status returns the status answering chunk uuid.
func (r *results) status(t testing.TB, uuid string) *protocol.ChunkProcessedStatus {
	t.Helper()
	for _, s := range r.statuses {
		if s.ChunkUUID == uuid {
			return s
		}
	}
	t.Fatalf("no chunk_processed_status for %s among %d", uuid, len(r.statuses))
	return nil
}

// waitResults reads the results topic of job until until says it has
// enough, failing the test after a generous timeout.
func waitResults(t testing.TB, b bus.Bus, job string, until func(*results) bool) *results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	r := &results{}
	err := b.Consume(ctx, bus.ConsumeOptions{
		Topics: []string{protocol.ResultsTopic(job)}, FromBeginning: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			msg, err := protocol.Decode(rec.Key, rec.Value)
			if err != nil {
				t.Errorf("results of %s: %v in %s", job, err, rec.Value)
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			r.records = append(r.records, rec)
			r.order = append(r.order, msg.MessageType())
			switch m := msg.(type) {
			case *protocol.EngineOutput:
				r.outputs = append(r.outputs, m)
			case *protocol.ChunkProcessedStatus:
				r.statuses = append(r.statuses, m)
			case *protocol.EngineHeartbeat:
				r.beats = append(r.beats, m)
			}
			if until(r) {
				cancel()
			}
			return nil
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("consume results of %s: %v", job, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !until(r) {
		t.Fatalf("results of %s: gave up waiting; got %v", job, r.order)
	}
	return r
}

// statuses says whether n chunk statuses have arrived.
func statuses(n int) func(*results) bool {
	return func(r *results) bool { return len(r.statuses) >= n }
}

// mediaChunk makes a real 2 s MPEG-TS chunk (320x240 test pattern and a
// 1 kHz tone) with ffmpeg.
func mediaChunk(t testing.TB) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (scripts/deps.sh installs it)")
	}
	path := filepath.Join(t.TempDir(), "chunk.ts")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
		"-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=2",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-shortest",
		"-f", "mpegts", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tagsOf maps a series' tags by key.
func tagsOf(s protocol.Series) map[string]string {
	m := map[string]string{}
	for _, tag := range s.Tags {
		m[tag.Key] = tag.Value
	}
	return m
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
