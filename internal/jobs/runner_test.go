package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// clockEngine is a chunk engine for the runner's tests: it answers every
// chunk with one series covering it, tagged with the chunk's index, after
// a delay; chunks whose index is in fail always fail, those in empty are
// answered with nothing found. It counts its calls per chunkUUID.
type clockEngine struct {
	delay time.Duration
	fail  map[int64]bool
	empty map[int64]bool

	mu    sync.Mutex
	calls map[string]int
}

func (e *clockEngine) Process(ctx context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
	e.mu.Lock()
	e.calls[c.Meta.ChunkUUID]++
	e.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(e.delay):
	}
	if e.fail[c.Meta.ChunkIndex] {
		return nil, fmt.Errorf("chunk %d is cursed", c.Meta.ChunkIndex)
	}
	if e.empty[c.Meta.ChunkIndex] {
		return nil, nil
	}
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(),
		Tags: []protocol.Tag{{Key: "index", Value: fmt.Sprint(c.Meta.ChunkIndex)}}}}}, nil
}

func (e *clockEngine) callsOf(uuid string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[uuid]
}

var clockSpec = engine.Spec{Name: "clock", Mode: engine.ModeChunk, Summary: "Tags each chunk with its index",
	Inputs: []string{"video/*"}, Outputs: []string{"tag"}}

// rig is a job runner with everything it needs, in memory and on disk:
// SQLite, a file object store, the in-memory bus, and the clock engine
// hosted in-process.
type rig struct {
	t       *testing.T
	meta    metastore.Store
	objects objstore.Store
	bus     *bustest.Bus // the in-memory bus, nil on a broker rig
	b       bus.Bus      // the bus the runner and engines use
	svc     *Service
	engine  *clockEngine
	catalog *engines.Catalog
	engines *engine.Registry
	reg     *prometheus.Registry
}

const rigPublicURL = "http://weir.test"

func newRig(t *testing.T, e *clockEngine, extra ...engine.Spec) *rig {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	meta := openMeta(t)
	objects, err := objstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.calls = map[string]int{}
	reg := engine.NewRegistry()
	if err := reg.Register(clockSpec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return e, nil })); err != nil {
		t.Fatal(err)
	}
	for _, s := range extra {
		if err := reg.Register(s, engine.StreamFactory(func() (engine.StreamEngine, error) { return byteCounter{}, nil })); err != nil {
			t.Fatal(err)
		}
	}
	b := bustest.New()
	t.Cleanup(b.Close)
	cat := engines.NewCatalog(reg, meta)
	r := &rig{t: t, meta: meta, objects: objects, bus: b, b: b, engine: e, catalog: cat, engines: reg, reg: prometheus.NewRegistry(),
		svc: &Service{Meta: meta, Bus: b, Catalog: cat, Log: slog.New(slog.DiscardHandler)}}
	r.host(reg)
	return r
}

// host runs the clock engine's host until the test ends.
func (r *rig) host(reg *engine.Registry) { r.hostEngine(reg, "clock") }

// hostEngine runs a host of a registered chunk engine until the test
// ends.
func (r *rig) hostEngine(reg *engine.Registry, name string) {
	registration, _ := reg.Lookup(name)
	proc, err := enginehost.NewInProcess(registration, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatal(err)
	}
	h, err := enginehost.New(enginehost.Config{Spec: registration.Spec, Processor: proc, Bus: r.b, Concurrency: 2,
		HeartbeatInterval: 200 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
		Fetch: func(ctx context.Context, uri string) (io.ReadCloser, error) {
			rc, _, err := r.objects.Get(ctx, strings.TrimPrefix(uri, rigPublicURL+"/"))
			return rc, err
		}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.goRun(h.Run)
}

// goRun runs f until the test ends, and waits for it.
func (r *rig) goRun(f func(context.Context) error) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return func() { cancel(); <-done }
}

// runner starts a job runner; the returned function stops it.
func (r *rig) runner(hb time.Duration) context.CancelFunc {
	run, err := NewRunner(RunnerConfig{Bus: r.b, Meta: r.meta, Objects: r.objects, Catalog: r.catalog, Engines: r.engines,
		PublicURL: func() string { return rigPublicURL }, TempDir: r.t.TempDir(), HeartbeatInterval: hb,
		Tick: 50 * time.Millisecond, InlineMax: 1024, Registry: r.reg, Log: testLog()})
	if err != nil {
		r.t.Fatal(err)
	}
	return r.goRun(run.Run)
}

// vod stores a clip as a VOD title's original upload.
func (r *rig) vod(id, clip string) {
	f, err := os.Open(clip)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	key := id + "/source/clip.ts"
	if _, err := r.objects.Put(context.Background(), key, f, -1, "video/mp2t"); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.meta.CreateStream(context.Background(), metastore.Stream{ID: id, Kind: metastore.KindVOD, SourceKey: key}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) create(body string) string {
	r.t.Helper()
	v, err := r.svc.Create(context.Background(), parse(r.t, body))
	if err != nil {
		r.t.Fatal(err)
	}
	return v.ID
}

// wait waits for the job to reach status.
func (r *rig) wait(id string, status metastore.JobStatus) metastore.Job {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		job, err := r.meta.GetJob(context.Background(), id)
		if err != nil {
			r.t.Fatal(err)
		}
		if job.Status == status {
			return job
		}
		if jobOver(job.Status) || time.Now().After(deadline) {
			r.t.Fatalf("job %s is %s (%s), want %s", id, job.Status, job.Error, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) chunks(id string) []metastore.JobChunk {
	cs, err := r.meta.ListJobChunks(context.Background(), id, "clock")
	if err != nil {
		r.t.Fatal(err)
	}
	return cs
}

func (r *rig) results(id string) []metastore.Result {
	res, _, err := r.meta.ListResults(context.Background(), metastore.ResultQuery{JobID: id, Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// makeClip encodes seconds of test video with a key frame every second.
func makeClip(t *testing.T, seconds int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clip.ts")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// TestRunnerRunsAVODJobToTheEnd: a 6 s title cut into 2 s chunks gives
// three results, back to back on the recording's timeline, each chunk
// processed once, and the job completes.
func TestRunnerRunsAVODJobToTheEnd(t *testing.T) {
	r := newRig(t, &clockEngine{})
	r.vod("vod-1", makeClip(t, 6))
	r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "engines": [{"name": "clock"}], "chunking": {"duration": "2s"}}`)
	r.wait(id, metastore.JobComplete)
	res := r.results(id)
	if len(res) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(res), res)
	}
	var end int64
	for i, x := range res {
		if x.StartMs != end || x.EndMs-x.StartMs < 1900 || x.EndMs-x.StartMs > 2100 || x.Engine != "clock" || x.OutputType != "tag" {
			t.Errorf("result %d: [%d, %d] %s %s, want 2 s from %d", i, x.StartMs, x.EndMs, x.Engine, x.OutputType, end)
		}
		if !strings.Contains(string(x.Content), fmt.Sprintf(`"startTimeMs":%d`, x.StartMs)) {
			t.Errorf("result %d content not on the recording's timeline: %s", i, x.Content)
		}
		end = x.EndMs
		if n := r.engine.callsOf(x.ChunkUUID); n != 1 {
			t.Errorf("chunk %s processed %d times", x.ChunkUUID, n)
		}
	}
	for _, c := range r.chunks(id) {
		if c.State != metastore.ChunkDone || c.Attempts != 1 {
			t.Errorf("chunk %d: %s after %d attempts", c.ChunkIndex, c.State, c.Attempts)
		}
	}
	tasks, _ := r.meta.ListTasks(context.Background(), id)
	if len(tasks) != 1 || tasks[0].Status != metastore.JobComplete || !strings.Contains(string(tasks[0].Output), "last_heartbeat") {
		t.Errorf("task %+v", tasks)
	}
}

// TestRunnerRetriesThenFailsAChunkAndGoesOn: a chunk the engine always
// fails is tried 1 + retries times, then recorded failed with the
// engine's reason; the other chunks' results are kept and the job
// completes with partial results.
func TestRunnerRetriesThenFailsAChunkAndGoesOn(t *testing.T) {
	r := newRig(t, &clockEngine{fail: map[int64]bool{1: true}})
	r.vod("vod-1", makeClip(t, 6))
	r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "2s"},
		"engines": [{"name": "clock", "policy": {"retries": 2}}]}`)
	r.wait(id, metastore.JobComplete)
	var failed metastore.JobChunk
	for _, c := range r.chunks(id) {
		if c.ChunkIndex == 1 {
			failed = c
		} else if c.State != metastore.ChunkDone {
			t.Errorf("chunk %d: %s", c.ChunkIndex, c.State)
		}
	}
	if failed.State != metastore.ChunkFailed || failed.Attempts != 3 || !strings.Contains(failed.Info, "chunk 1 is cursed") {
		t.Fatalf("failed chunk %+v", failed)
	}
	if n := r.engine.callsOf(failed.ChunkUUID); n != 3 {
		t.Errorf("the failing chunk was processed %d times, want 3", n)
	}
	if res := r.results(id); len(res) != 2 {
		t.Errorf("%d results, want the 2 good chunks'", len(res))
	}
}

// TestRunnerTakesOverAJobWithoutRedoingFinishedChunks: a runner stopped
// mid-job (its process gone) leaves the job to the next one, which cuts
// the source again into the same chunks and sends only those not yet
// answered: every chunk is processed, those finished before the stop
// once, and no result is doubled.
func TestRunnerTakesOverAJobWithoutRedoingFinishedChunks(t *testing.T) {
	r := newRig(t, &clockEngine{delay: 300 * time.Millisecond})
	r.vod("vod-1", makeClip(t, 8))
	stop := r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "1s"},
		"engines": [{"name": "clock", "policy": {"max_in_flight": 1}}]}`)
	var before []string
	deadline := time.Now().Add(60 * time.Second)
	for len(before) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no chunk finished in 60 s")
		}
		time.Sleep(50 * time.Millisecond)
		before = before[:0]
		for _, c := range r.chunks(id) {
			if c.State == metastore.ChunkDone {
				before = append(before, c.ChunkUUID)
			}
		}
	}
	stop()
	if job, _ := r.meta.GetJob(context.Background(), id); jobOver(job.Status) {
		t.Fatalf("job already %s when its runner stopped; make the engine slower", job.Status)
	}
	r.runner(0)
	r.wait(id, metastore.JobComplete)
	for _, uuid := range before {
		if n := r.engine.callsOf(uuid); n != 1 {
			t.Errorf("chunk %s, done before the takeover, processed %d times", uuid, n)
		}
	}
	res := r.results(id)
	seen := map[string]bool{}
	for _, x := range res {
		if seen[x.ChunkUUID] {
			t.Errorf("chunk %s has two results", x.ChunkUUID)
		}
		seen[x.ChunkUUID] = true
	}
	if len(res) != 8 {
		t.Errorf("%d results, want 8", len(res))
	}
}

// writeStream writes a clip to a stream topic as an adapter would:
// stream_init (durationMS 0: a live source), raw_stream records, stream_eof.
func writeStream(t *testing.T, b bus.Bus, topic, clip string, durationMS int64) {
	t.Helper()
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(m protocol.Message) {
		key, value, err := protocol.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Produce(ctx, &bus.Record{Topic: topic, Key: key, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	put(&protocol.StreamInit{Header: protocol.Header{Type: protocol.TypeStreamInit, TaskID: "adapter"},
		RelativeStartOffsetMS: 60000, DurationMS: durationMS, ChunkSize: 65536, MimeType: "video/mp2t", FFmpegFormat: "mpegts"})
	for len(data) > 0 {
		n := min(len(data), 65536)
		put(&protocol.RawStream{Data: data[:n]})
		data = data[n:]
	}
	put(&protocol.StreamEOF{Header: protocol.Header{Type: protocol.TypeStreamEOF, TaskID: "adapter"}})
}

// TestRunnerDropsTheOldestChunksOfALiveSource: an engine slower than the
// source on a live stream keeps at most max_backlog chunks; the rest are
// dropped, recorded and announced IGNORED with how far behind live the
// engine was, and the job ends with the stream. Offsets carry the stream's
// relativeStartOffsetMS.
func TestRunnerDropsTheOldestChunksOfALiveSource(t *testing.T) {
	r := newRig(t, &clockEngine{delay: 400 * time.Millisecond})
	r.runner(0)
	writeStream(t, r.bus, "stream_cam1", makeClip(t, 12), 0)
	id := r.create(`{"source": {"topic": "stream_cam1"}, "chunking": {"duration": "1s"},
		"engines": [{"name": "clock", "policy": {"max_in_flight": 1, "max_backlog": 2}}]}`)
	r.wait(id, metastore.JobComplete)
	var dropped, done int
	for _, c := range r.chunks(id) {
		switch c.State {
		case metastore.ChunkDropped:
			dropped++
			if !strings.HasPrefix(c.Info, "dropped: engine ") || !strings.HasSuffix(c.Info, " s behind live") {
				t.Errorf("drop reason %q", c.Info)
			}
		case metastore.ChunkDone:
			done++
		}
		if c.StartMs < 60000 {
			t.Errorf("chunk %d starts at %d ms, before the stream's offset", c.ChunkIndex, c.StartMs)
		}
	}
	if dropped == 0 || done == 0 || dropped+done != 12 {
		t.Fatalf("%d dropped, %d done of 12 chunks", dropped, done)
	}
	var announced int
	for _, rec := range r.bus.Records(protocol.ResultsTopic(id)) {
		if m, err := protocol.Decode(rec.Key, rec.Value); err == nil {
			if st, ok := m.(*protocol.ChunkProcessedStatus); ok && st.Status == protocol.ChunkIgnored && strings.HasPrefix(st.InfoMsg, "dropped: ") {
				announced++
			}
		}
	}
	if announced != dropped {
		t.Errorf("%d drops announced on the results topic, %d recorded", announced, dropped)
	}
	if n := counterValue(t, r.reg, "weir_job_chunks_total", "dropped"); n != float64(dropped) {
		t.Errorf("weir_job_chunks_total{state=dropped} = %v, want %d", n, dropped)
	}
}

// TestRunnerStopsACancelledJob: cancelling a job through the service stops
// its runner, which sends nothing more.
func TestRunnerStopsACancelledJob(t *testing.T) {
	r := newRig(t, &clockEngine{delay: 500 * time.Millisecond})
	r.vod("vod-1", makeClip(t, 8))
	r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "1s"},
		"engines": [{"name": "clock", "policy": {"max_in_flight": 1}}]}`)
	r.wait(id, metastore.JobRunning)
	if _, err := r.svc.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the runner notices within a second
	sent := len(r.bus.Records(protocol.ChunkTopic("clock")))
	time.Sleep(2 * time.Second)
	if now := len(r.bus.Records(protocol.ChunkTopic("clock"))); now != sent || sent >= 8 {
		t.Fatalf("chunks sent: %d, then %d after the job was cancelled", sent, now)
	}
	if job, _ := r.meta.GetJob(context.Background(), id); job.Status != metastore.JobCancelled {
		t.Fatalf("job %s", job.Status)
	}
}

// counterValue reads the sample of a counter vector whose state label is
// state.
func counterValue(t *testing.T, reg *prometheus.Registry, name, state string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == state {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// byteCounter is a stream engine for the tests: it reads the whole stream
// and emits one piece, [0, 1000] ms, tagged with the bytes it read and
// the URL of an artifact, count.txt, holding the count.
type byteCounter struct{}

func (byteCounter) Process(ctx context.Context, s *engine.Stream, _ engine.Options, emit *engine.Emitter) error {
	n, err := io.Copy(io.Discard, s.Body)
	if err != nil {
		return err
	}
	url, err := emit.Artifacts().Put(ctx, "count.txt", "text/plain", []byte(fmt.Sprint(n)))
	if err != nil {
		return err
	}
	return emit.Emit(0, 1000, &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: 1000,
		Tags: []protocol.Tag{{Key: "bytes", Value: fmt.Sprint(n)}, {Key: "artifact", Value: url}}}}})
}

var counterSpec = engine.Spec{Name: "counter", Mode: engine.ModeStream, Summary: "Counts the stream's bytes",
	Inputs: []string{"*/*"}, Outputs: []string{"tag"}}

// TestRunnerRunsStreamEnginesOnTheSourceBytes: a stream engine in a job
// reads every byte of the source, beside a chunk engine cutting the same
// bytes, and its output lands in the results on the recording's timeline
// (the topic's relativeStartOffsetMS added).
func TestRunnerRunsStreamEnginesOnTheSourceBytes(t *testing.T) {
	for _, source := range []string{"topic", "vod"} {
		t.Run(source, func(t *testing.T) {
			r := newRig(t, &clockEngine{}, counterSpec)
			clip := makeClip(t, 3)
			info, _ := os.Stat(clip)
			offset := int64(0)
			body := `{"source": {"vod": "vod-1"}, "engines": [{"name": "clock"}, {"name": "counter"}], "chunking": {"duration": "1s"}}`
			if source == "topic" {
				writeStream(t, r.bus, "stream_cam1", clip, 3000)
				offset = 60000
				body = strings.Replace(body, `"vod": "vod-1"`, `"topic": "stream_cam1"`, 1)
			} else {
				r.vod("vod-1", clip)
			}
			r.runner(0)
			id := r.create(body)
			r.wait(id, metastore.JobComplete)
			res, _, err := r.meta.ListResults(context.Background(), metastore.ResultQuery{JobID: id, Engine: "counter", Limit: 10})
			if err != nil || len(res) != 1 {
				t.Fatalf("counter results %+v, %v", res, err)
			}
			// A topic's bytes reach the engine as they are; a file is
			// remuxed (NUT) for the stream engines, so only its size differs.
			want := fmt.Sprintf(`"value":"%d"`, info.Size())
			if source == "vod" {
				want = `"key":"bytes","value":"`
			}
			if res[0].StartMs != offset || res[0].EndMs != offset+1000 || !strings.Contains(string(res[0].Content), want) ||
				strings.Contains(string(res[0].Content), `"value":"0"`) {
				t.Fatalf("counter result [%d, %d] %s, want %d bytes from %d ms", res[0].StartMs, res[0].EndMs, res[0].Content, info.Size(), offset)
			}
			clock, _, _ := r.meta.ListResults(context.Background(), metastore.ResultQuery{JobID: id, Engine: "clock", Limit: 10})
			if len(clock) != 3 {
				t.Fatalf("%d clock results beside the stream engine, want 3", len(clock))
			}
			cs, _ := r.meta.ListJobChunks(context.Background(), id, "counter")
			if len(cs) != 1 || cs[0].State != metastore.ChunkDone {
				t.Fatalf("counter progress %+v", cs)
			}
			var doc protocol.Document
			if err := json.Unmarshal(res[0].Content, &doc); err != nil || len(doc.Series) == 0 || len(doc.Series[0].Tags) == 0 {
				t.Fatalf("counter document %s: %v", res[0].Content, err)
			}
			checkArtifact(t, r, id, string(res[0].Content), fmt.Sprint(doc.Series[0].Tags[0].Value))
		})
	}
}

// checkArtifact checks that the counter's artifact is in the object store
// under the job's key, its URL in the result.
func checkArtifact(t *testing.T, r *rig, jobID, content, want string) {
	t.Helper()
	key := ArtifactKey(jobID, "counter", "count.txt")
	if key != "jobs/"+jobID+"/artifacts/counter/count.txt" {
		t.Fatalf("artifact key %s", key)
	}
	if url := rigPublicURL + "/" + key; !strings.Contains(content, `"value":"`+url+`"`) {
		t.Fatalf("result %s lacks the artifact's URL %s", content, url)
	}
	rc, info, err := r.objects.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("artifact: %v", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if string(b) != want || info.ContentType != "text/plain" {
		t.Fatalf("artifact %q (%s), want %q (text/plain)", b, info.ContentType, want)
	}
}

// TestJobArtifactsRefuseNamesThatAreNotFileNames: an engine's artifact
// name never reaches the object store as a path.
func TestJobArtifactsRefuseNamesThatAreNotFileNames(t *testing.T) {
	objects, err := objstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &jobArtifacts{engine: "scenes", ru: &run{job: metastore.Job{ID: "job-0123456789ab"},
		r: &Runner{cfg: RunnerConfig{Objects: objects, PublicURL: func() string { return rigPublicURL }}}}}
	for _, name := range []string{"", "..", "../../x.jpg", "a/b.jpg", "thumb jpg"} {
		if url, err := a.Put(context.Background(), name, "image/jpeg", []byte{1}); err == nil || !strings.Contains(err.Error(), "engine scenes: artifact name") {
			t.Errorf("Put(%q) = %q, %v; want a refusal", name, url, err)
		}
	}
	url, err := a.Put(context.Background(), "scene-000000.jpg", "", []byte{1})
	if err != nil || url != rigPublicURL+"/jobs/job-0123456789ab/artifacts/scenes/scene-000000.jpg" {
		t.Fatalf("Put = %q, %v", url, err)
	}
}

// testLog discards logs unless WEIR_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestRunnerPullsAURLSource: a URL source is pulled into a stream topic of
// the job's own, as Veritone's pull adapter does, and chunked from there;
// a URL that answers 404 fails the job with the status in its error.
func TestRunnerPullsAURLSource(t *testing.T) {
	r := newRig(t, &clockEngine{})
	r.svc.AllowPrivateSources = true
	clip := makeClip(t, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/clip.ts" {
			http.NotFound(w, req)
			return
		}
		http.ServeFile(w, req, clip)
	}))
	defer srv.Close()
	r.runner(0)
	id := r.create(`{"source": {"url": "` + srv.URL + `/clip.ts"}, "engines": [{"name": "clock"}], "chunking": {"duration": "1s"}}`)
	r.wait(id, metastore.JobComplete)
	if res := r.results(id); len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	if n := len(r.bus.Records(protocol.StreamTopic(id))); n < 3 {
		t.Fatalf("the job's stream topic holds %d records", n)
	}

	missing := r.create(`{"source": {"url": "` + srv.URL + `/gone.ts"}, "engines": [{"name": "clock"}]}`)
	job := r.wait(missing, metastore.JobFailed)
	if !strings.Contains(job.Error, "404") {
		t.Fatalf("failed job's error %q does not name the 404", job.Error)
	}
}

// slowReader is a stream engine slower than real time: it reads its
// stream 4 KiB every 20 ms, then emits how much it read.
type slowReader struct{}

func (slowReader) Process(ctx context.Context, s *engine.Stream, _ engine.Options, emit *engine.Emitter) error {
	buf := make([]byte, 4<<10)
	var n int64
	for {
		k, err := s.Body.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return emit.Emit(0, 1, &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: 1,
		Tags: []protocol.Tag{{Key: "bytes", Value: fmt.Sprint(n)}}}}})
}

// TestRunnerKeepsASlowStreamEngineFromHoldingUpALiveJob: on a live source
// a stream engine slower than the stream reads through a bounded queue of
// its own: the bytes it cannot keep up with are dropped for it alone (and
// reported), while the chunk engine gets every chunk.
func TestRunnerKeepsASlowStreamEngineFromHoldingUpALiveJob(t *testing.T) {
	old := liveFeedBytes
	liveFeedBytes = 64 << 10
	defer func() { liveFeedBytes = old }()
	slow := engine.Spec{Name: "slow", Mode: engine.ModeStream, Summary: "Reads slowly", Inputs: []string{"*/*"}, Outputs: []string{"tag"}}
	r := newRig(t, &clockEngine{})
	if err := r.engines.Register(slow, engine.StreamFactory(func() (engine.StreamEngine, error) { return slowReader{}, nil })); err != nil {
		t.Fatal(err)
	}
	r.runner(0)
	writeStream(t, r.bus, "stream_cam1", makeClip(t, 6), 0)
	id := r.create(`{"source": {"topic": "stream_cam1"}, "chunking": {"duration": "1s"},
		"engines": [{"name": "clock", "policy": {"max_backlog": 100, "max_in_flight": 8}}, {"name": "slow"}]}`)
	r.wait(id, metastore.JobComplete)
	cs, _ := r.meta.ListJobChunks(context.Background(), id, "slow")
	if len(cs) != 1 || cs[0].State != metastore.ChunkDone || !strings.Contains(cs[0].Info, "MiB of the live stream: engine behind live") {
		t.Fatalf("slow engine's progress %+v: want done with the dropped bytes reported", cs)
	}
	if res := r.results(id); len(res) < 7 {
		t.Fatalf("%d results; want the clock engine's 6 and the slow engine's", len(res))
	}
}
