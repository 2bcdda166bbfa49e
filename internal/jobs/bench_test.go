package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// stampingStore notes when each chunk's result was stored.
type stampingStore struct {
	metastore.Store
	mu sync.Mutex
	at map[string]time.Time // chunkUUID → when its first result was stored
}

func (s *stampingStore) PutResult(ctx context.Context, r metastore.Result) error {
	if err := s.Store.PutResult(ctx, r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[r.ChunkUUID]; !ok {
		s.at[r.ChunkUUID] = time.Now()
	}
	return nil
}

// trivialSpec is an engine that answers every video chunk at once.
var trivialSpec = engine.Spec{Name: "trivial", Mode: engine.ModeChunk, Summary: "Tags every chunk",
	Inputs: []string{"video/*"}, Outputs: []string{"tag"}}

type trivialChunk struct{}

func (trivialChunk) Process(_ context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(), Tags: []protocol.Tag{{Key: "seen"}}}}}, nil
}

// liveBenchSeconds is how long each live stream of the latency benchmark
// lasts.
const liveBenchSeconds = 15

// BenchmarkLiveResultLatency measures, on a live source, how long after a
// chunk's last media sample was produced its result is stored: ffmpeg
// encodes a test pattern at real time (-re, a key frame a second) into a
// stream topic of the embedded broker, as an ingest would (stream_init of
// a live stream, raw_stream flushed as the bytes come, stream_eof), a job
// cuts it into 1 s chunks for a trivial engine hosted in-process, and for
// every result the latency is (when the runner stored it) − (when the
// source produced the chunk's end: the wall clock of the stream's first
// bytes + the chunk's end time). Reported as p50/p99 in milliseconds over
// every result, the first chunk's latency, and p50/p99 of the chunks after
// the chunker's probe window (probeWindowMs); the aim is one chunk
// duration + 250 ms. Each iteration is one liveBenchSeconds stream.
func BenchmarkLiveResultLatency(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg", "ffprobe")
	reg := engine.NewRegistry()
	if err := reg.Register(trivialSpec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return trivialChunk{}, nil })); err != nil {
		b.Fatal(err)
	}
	rig := newLiveRig(b, reg)
	ctx, svc, meta, client := rig.ctx, rig.svc, rig.meta, rig.bus
	var all, steady, first []time.Duration
	n := 0
	for b.Loop() {
		n++
		for _, l := range liveLatencies(b, ctx, svc, meta, client, fmt.Sprintf("stream_latency%d", n)) {
			all = append(all, l.d)
			if l.startMs == 0 {
				first = append(first, l.d)
			}
			if l.startMs >= probeWindowMs {
				steady = append(steady, l.d)
			}
		}
	}
	b.ReportMetric(percentileMs(all, 0.50), "p50-ms")
	b.ReportMetric(percentileMs(all, 0.99), "p99-ms")
	b.ReportMetric(percentileMs(first, 0.50), "first-ms")
	b.ReportMetric(percentileMs(steady, 0.50), "steady-p50-ms")
	b.ReportMetric(percentileMs(steady, 0.99), "steady-p99-ms")
	b.ReportMetric(float64(len(all))/float64(n), "results/op")
}

// probeWindowMs is the start of a live stream the chunker's probe holds
// back (ffprobe's default analyzeduration, 5 s): chunks starting after it
// show the steady latency.
const probeWindowMs = 5000

// latency is one result's: its chunk's start and how late it was stored.
type latency struct {
	startMs int64
	d       time.Duration
}

// liveRig is the embedded broker, a metadata store that notes when
// results are stored, a file object store, and a job runner whose built-in
// engines are reg's (the trivial chunk engine, when reg has it, hosted
// in-process on the bus): what the live benchmarks run jobs on. Everything
// stops when the benchmark ends.
type liveRig struct {
	ctx     context.Context
	bus     bus.Bus
	meta    *stampingStore
	objects objstore.Store
	svc     *Service
}

func newLiveRig(b *testing.B, reg *engine.Registry) *liveRig {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	quiet := slog.New(slog.DiscardHandler)
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(b.TempDir()), bus.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { broker.Close() })
	client, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.Close)
	meta := &stampingStore{Store: openMeta(b), at: map[string]time.Time{}}
	objects, err := objstore.NewFS(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cat := engines.NewCatalog(reg, meta)
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	runInBackground := func(f func(context.Context) error) { wg.Go(func() { _ = f(ctx) }) }
	if registration, ok := reg.Lookup(trivialSpec.Name); ok {
		proc, err := enginehost.NewInProcess(registration, quiet)
		if err != nil {
			b.Fatal(err)
		}
		host, err := enginehost.New(enginehost.Config{Spec: trivialSpec, Processor: proc, Bus: client, Log: quiet,
			Fetch: func(ctx context.Context, uri string) (io.ReadCloser, error) {
				rc, _, err := objects.Get(ctx, strings.TrimPrefix(uri, rigPublicURL+"/"))
				return rc, err
			}})
		if err != nil {
			b.Fatal(err)
		}
		runInBackground(host.Run)
	}
	runner, err := NewRunner(RunnerConfig{Bus: client, Meta: meta, Objects: objects, Catalog: cat, Engines: reg,
		PublicURL: func() string { return rigPublicURL }, TempDir: b.TempDir(), Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	runInBackground(runner.Run)
	return &liveRig{ctx: ctx, bus: client, meta: meta, objects: objects, svc: &Service{Meta: meta, Bus: client, Catalog: cat, Log: quiet}}
}

// openLiveStream starts a live stream on topic as weir's ingest does: a
// stream_init with no duration.
func openLiveStream(b *testing.B, ctx context.Context, bb bus.Bus, topic string) *ingest.StreamWriter {
	b.Helper()
	w, err := ingest.NewStreamWriter(bb, topic, ingest.StreamOptions{TaskID: "bench", JobID: "bench", TdoID: "bench",
		MimeType: "video/mp2t", FFmpegFormat: "mpegts"})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Init(ctx); err != nil {
		b.Fatal(err)
	}
	return w
}

// waitJobComplete waits for a job to end and fails the benchmark unless it
// completed.
func waitJobComplete(b *testing.B, ctx context.Context, meta metastore.Store, id string) {
	b.Helper()
	for {
		job, err := meta.GetJob(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if jobOver(job.Status) {
			if job.Status != metastore.JobComplete {
				b.Fatalf("job %s: %s: %s", id, job.Status, job.Error)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// percentileMs is the p-th percentile (nearest rank below) of ds in
// milliseconds; 0 for none.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
}

// liveLatencies streams liveBenchSeconds of real-time video into topic
// under a job of 1 s chunks for the trivial engine, and returns each
// result's latency.
func liveLatencies(b *testing.B, ctx context.Context, svc *Service, meta *stampingStore, bb bus.Bus, topic string) []latency {
	b.Helper()
	req, err := ParseRequest(strings.NewReader(fmt.Sprintf(`{"source": {"topic": %q}, "chunking": {"duration": "1s"},
		"engines": [{"name": "trivial", "policy": {"max_in_flight": 4}}]}`, topic)))
	if err != nil {
		b.Fatal(err)
	}
	v, err := svc.Create(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	w := openLiveStream(b, ctx, bb, topic)
	t0, _ := publishRealTime(b, ctx, w, testPatternArgs(liveBenchSeconds)...)
	if err := w.Close(ctx, false); err != nil {
		b.Fatal(err)
	}
	waitJobComplete(b, ctx, meta, v.ID)
	results, _, err := meta.ListResults(ctx, metastore.ResultQuery{JobID: v.ID, Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	if len(results) < liveBenchSeconds-2 {
		b.Fatalf("%d results of a %d s stream in 1 s chunks", len(results), liveBenchSeconds)
	}
	meta.mu.Lock()
	defer meta.mu.Unlock()
	out := make([]latency, 0, len(results))
	for _, r := range results {
		produced := t0.Add(time.Duration(r.EndMs) * time.Millisecond)
		out = append(out, latency{startMs: r.StartMs, d: meta.at[r.ChunkUUID].Sub(produced)})
	}
	return out
}

// testPatternArgs are ffmpeg's arguments for seconds of a test pattern
// encoded at real time into MPEG-TS on its standard output, a key frame a
// second.
func testPatternArgs(seconds int) []string {
	return []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25",
		"-sc_threshold", "0", "-flush_packets", "1", "-f", "mpegts", "pipe:1"}
}

// publishRealTime runs ffmpeg with args (which write a stream at real
// time to its standard output) into w, flushing every read as a live
// ingest does, and returns when its first bytes came (the wall clock of
// media time 0) and how ffmpeg ended (its resource use).
func publishRealTime(b *testing.B, ctx context.Context, w *ingest.StreamWriter, args ...string) (time.Time, *os.ProcessState) {
	b.Helper()
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-loglevel", "error"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var t0 time.Time
	buf := make([]byte, 64<<10)
	for {
		n, rerr := stdout.Read(buf)
		if n > 0 {
			if t0.IsZero() {
				t0 = time.Now()
			}
			if _, err := w.Write(buf[:n]); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if rerr != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("ffmpeg: %v", err)
	}
	return t0, cmd.ProcessState
}
