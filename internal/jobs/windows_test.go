package jobs

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// newBrokerRig is a rig on the embedded broker: weir's built-in engines,
// the clock engine and the extra chunk engines given, each hosted
// in-process.
func newBrokerRig(t *testing.T, e *clockEngine, extra map[string]engine.ChunkEngine) *rig {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(t.TempDir()), bus.WithLogger(testLog()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	client, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(testLog()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	meta := openMeta(t)
	objects, err := objstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.calls = map[string]int{}
	reg := engine.NewRegistry()
	for _, builtin := range engine.Default().List() {
		if err := reg.Register(builtin.Spec, builtin.Factory); err != nil {
			t.Fatal(err)
		}
	}
	register := func(spec engine.Spec, ce engine.ChunkEngine) {
		if err := reg.Register(spec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return ce, nil })); err != nil {
			t.Fatal(err)
		}
	}
	register(clockSpec, e)
	for name, ce := range extra {
		spec := clockSpec
		spec.Name = name
		register(spec, ce)
	}
	cat := engines.NewCatalog(reg, meta)
	r := &rig{t: t, meta: meta, objects: objects, b: client, engine: e, catalog: cat, engines: reg, reg: prometheus.NewRegistry(),
		svc: &Service{Meta: meta, Bus: client, Catalog: cat, Log: testLog()}}
	r.host(reg)
	for name := range extra {
		r.hostEngine(reg, name)
	}
	return r
}

// topicRecords reads a topic from its start to its end.
func (r *rig) topicRecords(topic string) []protocol.Message {
	r.t.Helper()
	var out []protocol.Message
	err := r.b.Consume(context.Background(), bus.ConsumeOptions{Topics: []string{topic}, FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			if m, err := protocol.Decode(rec.Key, rec.Value); err == nil {
				out = append(out, m)
			}
			return nil
		}})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// windows lists a job's stored windows, every page.
func (r *rig) windows(id string) []metastore.Window {
	r.t.Helper()
	var out []metastore.Window
	after := ""
	for {
		page, next, err := r.meta.ListWindows(context.Background(), metastore.WindowQuery{JobID: id, Limit: 3, After: after})
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		after = next
	}
}

// resultID names a result by engine, chunk and time.
func resultID(engine, chunk string, start, end int64) string {
	return fmt.Sprintf("%s/%s/%d-%d", engine, chunk, start, end)
}

// checkWindows checks a finished job's windows: numbered from 0, back to
// back, each stored once and produced once on the windows topic, and each
// holding exactly the stored results that overlap it; every stored result
// is in a window. It returns the windows.
func checkWindows(t *testing.T, r *rig, id string, width int64) []metastore.Window {
	t.Helper()
	ws := r.windows(id)
	if len(ws) == 0 {
		t.Fatal("no windows")
	}
	all := r.results(id)
	inSome := map[string]bool{}
	for i, w := range ws {
		if w.Seq != int64(i) || w.EndMs-w.StartMs != width || (i > 0 && w.StartMs != ws[i-1].EndMs) || w.StartMs%width != 0 {
			t.Fatalf("window %d: seq %d [%d, %d), after %+v", i, w.Seq, w.StartMs, w.EndMs, ws[max(i-1, 0)])
		}
		var got, want []string
		for _, x := range w.Results {
			got = append(got, resultID(x.Engine, x.ChunkUUID, x.StartMs, x.EndMs))
		}
		for _, x := range all {
			if overlapsWindow(x, w) {
				want = append(want, resultID(x.Engine, x.ChunkUUID, x.StartMs, x.EndMs))
				inSome[resultID(x.Engine, x.ChunkUUID, x.StartMs, x.EndMs)] = true
			}
		}
		if sort.Strings(want); !slices.Equal(got, want) && !sameSet(got, want) {
			t.Errorf("window [%d, %d): results\n got %q\nwant %q (the stored results overlapping it)", w.StartMs, w.EndMs, got, want)
		}
	}
	for _, x := range all {
		if !inSome[resultID(x.Engine, x.ChunkUUID, x.StartMs, x.EndMs)] {
			t.Errorf("stored result %s [%d, %d] is in no window", x.Engine, x.StartMs, x.EndMs)
		}
	}
	var produced []int64
	for _, m := range r.topicRecords(protocol.WindowsTopic(id)) {
		if w, ok := m.(*protocol.ResultWindow); ok {
			produced = append(produced, w.WindowStartMs)
		}
	}
	if len(produced) != len(ws) {
		t.Errorf("windows topic holds %d windows %v, the store %d", len(produced), produced, len(ws))
	}
	for i := range min(len(produced), len(ws)) {
		if produced[i] != ws[i].StartMs {
			t.Errorf("windows topic holds %v, want each stored window once, in order", produced)
			break
		}
	}
	return ws
}

func overlapsWindow(x metastore.Result, w metastore.Window) bool {
	if x.EndMs == x.StartMs {
		return x.StartMs >= w.StartMs && x.StartMs < w.EndMs
	}
	return x.StartMs < w.EndMs && x.EndMs > w.StartMs
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// makeAnalysisClip encodes 20 s of test video, black from 8 s to 11 s,
// with a tone that is silent from 3 s to 6 s and from 14 s to 16 s.
func makeAnalysisClip(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clip.ts")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:d=20,drawbox=x=0:y=0:w=iw:h=ih:t=fill:c=black:enable='between(t,8,11)'",
		"-f", "lavfi", "-i", "sine=f=440:d=20,volume='if(between(t,3,6)+between(t,14,16),0,1)':eval=frame",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-t", "20", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// TestJobWindowsHoldEachEnginesResults runs loudness, silence and black
// (stream engines) and probe (a chunk engine) on a 20 s clip over the
// embedded broker: the job completes once its last window is out, and
// every window holds exactly the stored results of every engine that
// overlap it, complete.
func TestJobWindowsHoldEachEnginesResults(t *testing.T) {
	r := newBrokerRig(t, &clockEngine{}, nil)
	r.hostEngine(r.engines, "probe")
	r.vod("vod-1", makeAnalysisClip(t))
	r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "5s"}, "aggregate": {"window": "5s"},
		"engines": [{"name": "loudness"}, {"name": "silence"}, {"name": "black"}, {"name": "probe"}]}`)
	r.wait(id, metastore.JobComplete)
	ws := checkWindows(t, r, id, 5000)
	if len(ws) != 5 && len(ws) != 4 || ws[0].StartMs != 0 {
		t.Fatalf("%d windows from %d ms for a 20 s clip", len(ws), ws[0].StartMs)
	}
	engines := map[string]int{}
	for _, w := range ws {
		if w.Status != metastore.WindowComplete || len(w.Missing) != 0 || len(w.Late) != 0 {
			t.Errorf("window [%d, %d) %s missing %v, %d late", w.StartMs, w.EndMs, w.Status, w.Missing, len(w.Late))
		}
		for _, x := range w.Results {
			engines[x.Engine]++
		}
	}
	for _, e := range []string{"loudness", "silence", "black", "probe"} {
		if engines[e] == 0 {
			t.Errorf("no window holds a result of %s (%v)", e, engines)
		}
	}
	silent := ws[0].Results // [0, 5 s) holds the silence from 3 s
	if !slices.ContainsFunc(silent, func(x metastore.Result) bool { return x.Engine == "silence" && x.StartMs >= 2900 && x.StartMs <= 3100 }) {
		t.Errorf("the first window has no silence starting near 3 s: %v", describeResults(silent))
	}
	if n := counterValue(t, r.reg, "weir_aggregator_windows_total", "complete"); n != float64(len(ws)) {
		t.Errorf("weir_aggregator_windows_total{state=complete} = %v, want %d", n, len(ws))
	}
}

func describeResults(rs []metastore.Result) []string {
	var out []string
	for _, x := range rs {
		out = append(out, resultID(x.Engine, x.ChunkUUID, x.StartMs, x.EndMs))
	}
	return out
}

// stickyEngine answers every chunk at once but the one with index hold,
// which it answers only once released.
type stickyEngine struct {
	hold    int64
	release chan struct{}
	once    sync.Once
}

func (e *stickyEngine) Process(ctx context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
	if c.Meta.ChunkIndex == e.hold {
		select {
		case <-e.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(),
		Tags: []protocol.Tag{{Key: "index", Value: fmt.Sprint(c.Meta.ChunkIndex)}}}}}, nil
}

// TestAStalledEngineMakesPartialWindowsThenLateResults: an engine that
// does not answer one chunk holds its bound at that chunk; once the other
// engine is ahead for the stall timeout, the windows are emitted partial,
// naming it. When it answers at last, its result for the chunk is late:
// stored with the window, counted, not added to it. The job completes.
func TestAStalledEngineMakesPartialWindowsThenLateResults(t *testing.T) {
	sticky := &stickyEngine{hold: 1, release: make(chan struct{})}
	r := newBrokerRig(t, &clockEngine{}, map[string]engine.ChunkEngine{"sticky": sticky})
	r.vod("vod-1", makeClip(t, 6))
	r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "1s"}, "aggregate": {"window": "1s", "stall_timeout": "2s"},
		"engines": [{"name": "clock"}, {"name": "sticky", "policy": {"chunk_timeout": "5m"}}]}`)
	deadline := time.Now().Add(60 * time.Second)
	var partial metastore.Window
	for partial.JobID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no partial window in 60 s: %d windows", len(r.windows(id)))
		}
		time.Sleep(100 * time.Millisecond)
		for _, w := range r.windows(id) {
			if w.Status == metastore.WindowPartial && w.StartMs == 1000 {
				partial = w
			}
		}
	}
	held := r.stickyChunk(id, 1)
	if !slices.Equal(partial.Missing, []string{"sticky"}) || slices.ContainsFunc(partial.Results, func(x metastore.Result) bool {
		return x.Engine == "sticky" && x.ChunkUUID == held.ChunkUUID
	}) {
		t.Fatalf("partial window %v missing %v: want sticky missing, without the chunk it holds", describeResults(partial.Results), partial.Missing)
	}
	close(sticky.release)
	r.wait(id, metastore.JobComplete)
	ws := r.windows(id)
	var late []metastore.LateResult
	for _, w := range ws {
		late = append(late, w.Late...)
	}
	if !slices.ContainsFunc(late, func(l metastore.LateResult) bool {
		return l.Engine == "sticky" && l.ChunkUUID == held.ChunkUUID && l.WindowStartMs == 1000 && l.StartMs == held.StartMs
	}) {
		t.Fatalf("late results %+v: want sticky's chunk 1 [%d, %d] late for the window at 1000 ms", late, held.StartMs, held.EndMs)
	}
	if n := counterValue(t, r.reg, "weir_aggregator_windows_total", "partial"); n == 0 {
		t.Error("weir_aggregator_windows_total{state=partial} is 0")
	}
	if n := gaugeOrCounter(t, r.reg, "weir_aggregator_late_results_total"); n != float64(len(late)) {
		t.Errorf("weir_aggregator_late_results_total = %v, want %d", n, len(late))
	}
	for i, w := range ws {
		if w.Seq != int64(i) {
			t.Fatalf("window %d has seq %d", i, w.Seq)
		}
	}
}

// stickyChunk is the sticky engine's chunk with index i.
func (r *rig) stickyChunk(id string, i int64) metastore.JobChunk {
	r.t.Helper()
	cs, err := r.meta.ListJobChunks(context.Background(), id, "sticky")
	if err != nil {
		r.t.Fatal(err)
	}
	for _, c := range cs {
		if c.ChunkIndex == i {
			return c
		}
	}
	r.t.Fatalf("sticky has no chunk %d", i)
	return metastore.JobChunk{}
}

// gaugeOrCounter reads an unlabelled counter.
func gaugeOrCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// TestATakenOverJobEmitsEachWindowOnce: a runner stopped in the middle of
// a job leaves it to another, whose aggregator resumes from the stored
// windows: in the end every window of the job is stored and produced
// exactly once, back to back, each with the results that overlap it.
func TestATakenOverJobEmitsEachWindowOnce(t *testing.T) {
	r := newBrokerRig(t, &clockEngine{delay: 300 * time.Millisecond}, nil)
	r.vod("vod-1", makeClip(t, 8))
	stop := r.runner(0)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "1s"}, "aggregate": {"window": "1s"},
		"engines": [{"name": "clock", "policy": {"max_in_flight": 1}}, {"name": "silence"}]}`)
	deadline := time.Now().Add(60 * time.Second)
	for len(r.windows(id)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 2 windows in 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	before := len(r.windows(id))
	if job, _ := r.meta.GetJob(context.Background(), id); jobOver(job.Status) || before >= 8 {
		t.Fatalf("job %s with %d windows when its runner stopped; make the engine slower", job.Status, before)
	}
	r.runner(0)
	r.wait(id, metastore.JobComplete)
	ws := checkWindows(t, r, id, 1000)
	chunks := r.chunks(id)
	if want := (chunks[len(chunks)-1].EndMs + 999) / 1000; int64(len(ws)) != want {
		t.Fatalf("%d windows after the takeover (%d before), want %d, to the last chunk's end", len(ws), before, want)
	}
}

// TestChunkBoundsPassEmptyFailedAndDroppedChunks reads the clock task's
// timestamp_bound records: its bound starts at the source's start and
// moves past every chunk as it settles, whether the engine found nothing
// in it, it failed, or flow control dropped it; the task ends done at the
// last chunk's end.
func TestChunkBoundsPassEmptyFailedAndDroppedChunks(t *testing.T) {
	t.Run("vod", func(t *testing.T) {
		e := &clockEngine{fail: map[int64]bool{3: true}, empty: map[int64]bool{1: true}}
		r := newBrokerRig(t, e, nil)
		r.vod("vod-1", makeClip(t, 6))
		r.runner(0)
		id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "1s"}, "aggregate": {"window": "1s"},
			"engines": [{"name": "clock", "policy": {"max_in_flight": 1, "retries": 0}}]}`)
		r.wait(id, metastore.JobComplete)
		running, done := r.bounds(id)
		want := []int64{0}
		for _, c := range r.chunks(id) {
			want = append(want, c.EndMs)
		}
		if !slices.Equal(running, want) || done != want[len(want)-1] {
			t.Fatalf("bounds %v then done at %d; want %v: one per chunk, the empty chunk 1 and the failed chunk 3 included", running, done, want)
		}
		if res := r.results(id); len(res) != 4 {
			t.Fatalf("%d results, want 4 (chunk 1 empty, chunk 3 failed)", len(res))
		}
	})
	t.Run("live", func(t *testing.T) {
		r := newBrokerRig(t, &clockEngine{delay: 400 * time.Millisecond}, nil)
		r.runner(0)
		writeStream(t, r.b, "stream_cam1", makeClip(t, 12), 0)
		id := r.create(`{"source": {"topic": "stream_cam1"}, "chunking": {"duration": "1s"}, "aggregate": {"window": "1s"},
			"engines": [{"name": "clock", "policy": {"max_in_flight": 1, "max_backlog": 2}}]}`)
		r.wait(id, metastore.JobComplete)
		running, done := r.bounds(id)
		chunks := r.chunks(id)
		last := chunks[len(chunks)-1].EndMs
		if len(running) == 0 || running[0] != 60000 || running[len(running)-1] != last || done != last {
			t.Fatalf("bounds %v then done at %d; want from 60000 (the stream's start) to %d", running, done, last)
		}
		var dropped int
		for _, c := range chunks {
			if c.State == metastore.ChunkDropped {
				dropped++
				if i, _ := slices.BinarySearch(running, c.EndMs); i == len(running) {
					t.Errorf("no bound passed dropped chunk %d [%d, %d]: %v", c.ChunkIndex, c.StartMs, c.EndMs, running)
				}
			}
		}
		if dropped == 0 {
			t.Fatal("no chunk was dropped; make the engine slower")
		}
	})
}

// bounds reads the clock task's timestamp_bound records: the running ones
// in order, and where the done one put its end (-1 when none). It fails
// the test when a bound moves back.
func (r *rig) bounds(id string) (running []int64, done int64) {
	r.t.Helper()
	done = -1
	for _, m := range r.topicRecords(protocol.ResultsTopic(id)) {
		b, ok := m.(*protocol.TimestampBound)
		if !ok || b.TaskID != TaskID(id, "clock") {
			continue
		}
		if b.Done {
			done = b.TimestampBoundMs
			continue
		}
		if n := len(running); n > 0 && b.TimestampBoundMs < running[n-1] {
			r.t.Fatalf("bound moved back from %d to %d", running[n-1], b.TimestampBoundMs)
		}
		running = append(running, b.TimestampBoundMs)
	}
	return running, done
}
