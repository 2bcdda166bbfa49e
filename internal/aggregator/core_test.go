package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// testLog discards logs unless WEIR_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openStore is a fresh SQLite store holding job-1.
func openStore(t testing.TB) metastore.Store {
	t.Helper()
	s, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.CreateJob(context.Background(), metastore.Job{ID: "job-1"}); err != nil {
		t.Fatal(err)
	}
	return s
}

var twoTasks = []Task{{ID: "job-1-a", Engine: "a"}, {ID: "job-1-b", Engine: "b"}}

// harness drives a core directly, with a clock of its own, over a real
// graph, store and (in-memory) bus: every rule is checked without timing.
type harness struct {
	t       *testing.T
	store   metastore.Store
	bus     *bustest.Bus
	m       *Metrics
	c       *core
	g       *graph.Graph
	t0      time.Time
	now     time.Time // the clock records are read at; tick moves it
	off     int64
	mu      sync.Mutex
	windows []metastore.Window
}

func newHarness(t *testing.T, store metastore.Store, b *bustest.Bus, tasks []Task) *harness {
	t.Helper()
	h := &harness{t: t, store: store, bus: b, t0: time.Unix(1000, 0)}
	h.now = h.t0
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	a, err := New(Config{JobID: "job-1", TDOID: "tdo-1", Tasks: tasks, Window: 5 * time.Second, StallTimeout: 10 * time.Second,
		Bus: b, Store: store, Metrics: m, Log: testLog(), OnWindow: h.collect})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	marks, err := store.WindowMarks(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if h.g, err = newGraph(len(tasks)); err != nil {
		t.Fatal(err)
	}
	em := &emitter{a: a, ctx: ctx}
	if err := h.g.ObserveOutputStream(windowStream, em.emit); err != nil {
		t.Fatal(err)
	}
	if err := h.g.StartRun(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.g.Cancel(); _ = h.g.WaitUntilDone(ctx) })
	h.c = newCore(&a.cfg, marks, h.t0)
	h.c.feed, h.c.late = &graphFeeder{g: h.g, ctx: ctx}, em.late
	return h
}

func (h *harness) collect(w metastore.Window) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.windows = append(h.windows, w)
}

// at is the harness clock d after its start.
func (h *harness) at(d time.Duration) time.Time { return h.t0.Add(d) }

// bound feeds a timestamp_bound record.
func (h *harness) bound(task string, ms int64, done bool) {
	h.t.Helper()
	if err := h.c.bound(h.off, "job-1-"+task, ms, done, h.now); err != nil {
		h.t.Fatal(err)
	}
	h.off++
}

// out feeds an engine_output record.
func (h *harness) out(task string, start, end int64) {
	h.t.Helper()
	r := metastore.Result{JobID: "job-1", Engine: task, TaskID: "job-1-" + task, ChunkUUID: fmt.Sprintf("%s-%d", task, start),
		StartMs: start, EndMs: end, OutputType: "tag", Content: json.RawMessage(`{"series":[]}`)}
	if err := h.c.result(h.off, "job-1-"+task, r, h.now); err != nil {
		h.t.Fatal(err)
	}
	h.off++
}

// settle waits until the graph has emitted what it was fed.
func (h *harness) settle() []metastore.Window {
	h.t.Helper()
	if err := h.g.WaitUntilIdle(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.windows)
}

// describe sums a window up: "[0,5000) complete a:1000-2000 b:3000-6000".
func describe(w metastore.Window) string {
	s := fmt.Sprintf("[%d,%d) %s", w.StartMs, w.EndMs, w.Status)
	if len(w.Missing) > 0 {
		s += " missing=" + strings.Join(w.Missing, ",")
	}
	for _, r := range w.Results {
		s += fmt.Sprintf(" %s:%d-%d", r.Engine, r.StartMs, r.EndMs)
	}
	return s
}

func describeAll(ws []metastore.Window) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = describe(w)
	}
	return out
}

func wantWindows(t *testing.T, got []metastore.Window, want ...string) {
	t.Helper()
	if d := describeAll(got); !reflect.DeepEqual(d, want) {
		t.Fatalf("windows\n got: %q\nwant: %q", d, want)
	}
	for i, w := range got {
		if w.Seq != got[0].Seq+int64(i) || w.StartMs != 5000*w.Seq {
			t.Fatalf("window %d has seq %d, start %d", i, w.Seq, w.StartMs)
		}
	}
}

// TestWindowsWaitForEveryEngine: a window is emitted once every engine
// has passed its end, with every result overlapping it (a result over two
// windows is in both), in order; the last ones when every engine is done.
func TestWindowsWaitForEveryEngine(t *testing.T) {
	h := newHarness(t, openStore(t), bustest.New(), twoTasks)
	h.bound("a", 0, false)
	h.bound("b", 0, false)
	h.out("a", 1000, 2000)
	h.bound("a", 12000, false)
	if ws := h.settle(); len(ws) != 0 {
		t.Fatalf("emitted %q while b has passed nothing", describeAll(ws))
	}
	h.out("b", 3000, 6000)
	h.out("b", 5000, 5000) // zero length, at the second window's start
	h.bound("b", 5000, false)
	wantWindows(t, h.settle(), "[0,5000) complete a:1000-2000 b:3000-6000")
	h.bound("b", 9999, false)
	if ws := h.settle(); len(ws) != 1 {
		t.Fatalf("a window emitted before b passed 10000: %q", describeAll(ws))
	}
	h.bound("b", 10000, true)
	h.out("a", 10500, 11000)
	h.bound("a", 12000, true)
	wantWindows(t, h.settle(),
		"[0,5000) complete a:1000-2000 b:3000-6000",
		"[5000,10000) complete b:3000-6000 b:5000-5000",
		"[10000,15000) complete a:10500-11000")
	stored, _, err := h.store.ListWindows(context.Background(), metastore.WindowQuery{JobID: "job-1"})
	if err != nil || !reflect.DeepEqual(describeAll(stored), describeAll(h.settle())) {
		t.Fatalf("stored windows %q, %v", describeAll(stored), err)
	}
	produced := h.bus.Records(protocol.WindowsTopic("job-1"))
	if len(produced) != 3 {
		t.Fatalf("%d windows produced, want 3", len(produced))
	}
	m, err := protocol.Decode(produced[1].Key, produced[1].Value)
	if err != nil {
		t.Fatal(err)
	}
	if w := m.(*protocol.ResultWindow); w.JobID != "job-1" || w.TDOID != "tdo-1" || w.Seq != 1 || len(w.Results) != 2 ||
		w.Results[0].EngineID != "b" || w.Results[0].StartOffsetMs != 3000 || string(w.Results[0].Content) != `{"series":[]}` {
		t.Fatalf("produced window %+v", w)
	}
	if n, late := counterValue(h.m.windows.WithLabelValues("complete")), counterValue(h.m.late); n != 3 || late != 0 {
		t.Fatalf("weir_aggregator_windows_total{state=complete} %v, late results %v", n, late)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// tick runs the stall check at d after the start.
func (h *harness) tick(d time.Duration) {
	h.t.Helper()
	h.now = h.at(d)
	if err := h.c.tick(h.now); err != nil {
		h.t.Fatal(err)
	}
}

// lateResults lists the stored late results as "window:engine:start".
func (h *harness) lateResults() []string {
	h.t.Helper()
	ws, _, err := h.store.ListWindows(context.Background(), metastore.WindowQuery{JobID: "job-1"})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, w := range ws {
		for _, l := range w.Late {
			out = append(out, fmt.Sprintf("%d:%s:%d", l.WindowStartMs, l.Engine, l.StartMs))
		}
	}
	return out
}

// TestAStalledEngineGivesPartialWindowsThenLateResults: an engine whose
// bound stands still for the stall timeout while the other is ahead is
// timed out: the windows the other passed are emitted partial, naming it,
// with what it had sent; what it sends for them later is late (stored,
// counted), and once its bound moves it is waited for again.
func TestAStalledEngineGivesPartialWindowsThenLateResults(t *testing.T) {
	h := newHarness(t, openStore(t), bustest.New(), twoTasks)
	h.bound("a", 0, false)
	h.bound("b", 0, false)
	h.out("b", 500, 700) // before it stalls
	h.out("a", 6000, 6100)
	h.bound("a", 15000, false)
	h.tick(9 * time.Second)
	if ws := h.settle(); len(ws) != 0 {
		t.Fatalf("windows before the stall timeout: %q", describeAll(ws))
	}
	h.tick(10 * time.Second)
	wantWindows(t, h.settle(),
		"[0,5000) partial missing=b b:500-700",
		"[5000,10000) partial missing=b a:6000-6100",
		"[10000,15000) partial missing=b")
	h.out("b", 6000, 11000) // late for two windows
	if got := h.lateResults(); !reflect.DeepEqual(got, []string{"5000:b:6000", "10000:b:6000"}) {
		t.Fatalf("late results %q", got)
	}
	h.bound("a", 20000, false)
	h.tick(11 * time.Second) // b is still timed out: no new wait
	h.bound("b", 21000, false)
	h.bound("a", 25000, true)
	h.tick(12 * time.Second)
	h.bound("b", 21000, true)
	wantWindows(t, h.settle()[3:],
		"[15000,20000) partial missing=b",
		"[20000,25000) complete")
	if p, c, late := counterValue(h.m.windows.WithLabelValues("partial")), counterValue(h.m.windows.WithLabelValues("complete")),
		counterValue(h.m.late); p != 4 || c != 1 || late != 2 {
		t.Fatalf("metrics: %v partial, %v complete, %v late", p, c, late)
	}
}

// TestAMovingEngineIsNotTimedOut: an engine behind the others is waited
// for as long as its bound keeps moving.
func TestAMovingEngineIsNotTimedOut(t *testing.T) {
	h := newHarness(t, openStore(t), bustest.New(), twoTasks)
	h.bound("a", 0, false)
	h.bound("a", 30000, false)
	for i := range int64(4) {
		h.tick(time.Duration(i) * 8 * time.Second)
		h.bound("b", 1000*i, false)
		h.tick(time.Duration(i)*8*time.Second + 7*time.Second)
	}
	if ws := h.settle(); len(ws) != 0 {
		t.Fatalf("windows while b moves: %q", describeAll(ws))
	}
}

// TestTheFirstWindowHoldsTheSourceStart: windows are aligned on the
// window width, from the one holding the earliest time any task reported.
func TestTheFirstWindowHoldsTheSourceStart(t *testing.T) {
	h := newHarness(t, openStore(t), bustest.New(), twoTasks)
	h.bound("a", 61000, false)
	h.out("b", 62000, 63000) // b's results before its first bound
	h.bound("b", 61000, false)
	h.bound("a", 66000, true)
	h.bound("b", 64000, true)
	ws := h.settle()
	if got := describeAll(ws); !reflect.DeepEqual(got, []string{"[60000,65000) complete b:62000-63000", "[65000,70000) complete"}) || ws[0].Seq != 0 {
		t.Fatalf("windows %q", got)
	}
}

// TestRepeatedResultsCountOnce: the same output read twice (a redelivery,
// an engine that processed a chunk twice) is in its window once, and an
// older rev after a newer one is dropped.
func TestRepeatedResultsCountOnce(t *testing.T) {
	h := newHarness(t, openStore(t), bustest.New(), []Task{{ID: "job-1-a", Engine: "a"}})
	h.bound("a", 0, false)
	h.out("a", 1000, 2000)
	h.out("a", 1000, 2000)
	h.bound("a", 5000, true)
	wantWindows(t, h.settle(), "[0,5000) complete a:1000-2000")
	h.out("a", 1000, 2000) // after the end: ignored, not late
	if got := h.lateResults(); len(got) != 0 {
		t.Fatalf("late %q", got)
	}
}

// TestNoResultsNoWindows: a job whose tasks are done without reporting
// any time has no window, and is finished.
func TestNoResultsNoWindows(t *testing.T) {
	h := newHarness(t, openStore(t), bustest.New(), twoTasks)
	h.bound("a", 0, true)
	h.bound("b", 0, true)
	if ws := h.settle(); len(ws) != 0 || !h.c.closed {
		t.Fatalf("windows %q, closed %v", describeAll(ws), h.c.closed)
	}
}

// TestAResumedAggregatorEmitsEachWindowOnce: an aggregator that takes a job
// over replays the results topic from its start. Windows stored by the
// first are not emitted again; results the first put into a partial
// window stay in it, those it recorded late are late again (and stored
// once), and the next windows come as if nothing had happened.
func TestAResumedAggregatorEmitsEachWindowOnce(t *testing.T) {
	store, b := openStore(t), bustest.New()
	records := []func(h *harness){
		func(h *harness) { h.bound("a", 0, false) },
		func(h *harness) { h.bound("b", 0, false) },
		func(h *harness) { h.out("b", 500, 700) },
		func(h *harness) { h.out("a", 6000, 6100) },
		func(h *harness) { h.bound("a", 15000, false) },
		func(h *harness) { h.tick(10 * time.Second) }, // not a record: b times out
		func(h *harness) { h.out("b", 6000, 11000) },
		func(h *harness) { h.out("b", 12000, 12500) },
		func(h *harness) { h.bound("a", 20000, false) },
		func(h *harness) { h.bound("b", 16000, false) },
	}
	first := newHarness(t, store, b, twoTasks)
	for _, r := range records {
		r(first)
	}
	wantWindows(t, first.settle(),
		"[0,5000) partial missing=b b:500-700",
		"[5000,10000) partial missing=b a:6000-6100",
		"[10000,15000) partial missing=b")
	late := []string{"5000:b:6000", "10000:b:6000", "10000:b:12000"}
	if got := first.lateResults(); !reflect.DeepEqual(got, late) {
		t.Fatalf("late results %q", got)
	}
	first.g.Cancel() // the runner dies

	second := newHarness(t, store, b, twoTasks)
	for i, r := range records {
		if i != 5 { // the replay reads records only; its clock starts afresh
			r(second)
		}
	}
	if ws := second.settle(); len(ws) != 0 {
		t.Fatalf("the replay emitted %q again", describeAll(ws))
	}
	second.out("b", 17000, 18000)
	second.bound("b", 20000, false)
	second.bound("a", 20000, true)
	second.bound("b", 20000, true)
	wantWindows(t, second.settle(), "[15000,20000) complete b:17000-18000")
	if got := second.lateResults(); !reflect.DeepEqual(got, late) {
		t.Fatalf("late results after the replay %q, want %q", got, late)
	}
	if n := counterValue(second.m.late); n != 0 {
		t.Fatalf("the replay counted %v late results again", n)
	}
	stored, _, _ := store.ListWindows(context.Background(), metastore.WindowQuery{JobID: "job-1"})
	wantWindows(t, stored,
		"[0,5000) partial missing=b b:500-700",
		"[5000,10000) partial missing=b a:6000-6100",
		"[10000,15000) partial missing=b",
		"[15000,20000) complete b:17000-18000")
	if n := len(b.Records(protocol.WindowsTopic("job-1"))); n != 4 {
		t.Fatalf("%d windows produced, want 4", n)
	}
}

// TestAResultBreakingItsBoundIsLateEvenBeforeItsWindowIsOut: a result
// starting before its task's bound is late for the windows the bound had
// passed, whether or not they are out yet; replaying the topic decides the
// same. A result after its task said done is late too.
func TestAResultBreakingItsBoundIsLateEvenBeforeItsWindowIsOut(t *testing.T) {
	store, b := openStore(t), bustest.New()
	records := []func(h *harness){
		func(h *harness) { h.bound("a", 0, false) },
		func(h *harness) { h.bound("b", 0, false) },
		func(h *harness) { h.bound("a", 12000, false) },
		func(h *harness) { h.out("a", 1000, 6000) }, // breaks a's bound: late for [0, 5000) and [5000, 10000)
		func(h *harness) { h.bound("a", 15000, true) },
		func(h *harness) { h.out("a", 14000, 14500) }, // after done: late
		func(h *harness) { h.bound("b", 10000, false) },
	}
	first := newHarness(t, store, b, twoTasks)
	for _, r := range records {
		r(first)
	}
	wantWindows(t, first.settle(), "[0,5000) complete", "[5000,10000) complete")
	late := []string{"0:a:1000", "5000:a:1000"} // the window at 10000 is not stored yet
	if got := first.lateResults(); !reflect.DeepEqual(got, late) {
		t.Fatalf("late %q, want %q", got, late)
	}
	first.g.Cancel()
	second := newHarness(t, store, b, twoTasks)
	for _, r := range records {
		r(second)
	}
	second.bound("b", 15000, true)
	wantWindows(t, second.settle(), "[10000,15000) complete")
	if got, want := second.lateResults(), append(late, "10000:a:14000"); !reflect.DeepEqual(got, want) {
		t.Fatalf("late after the replay %q, want %q", got, want)
	}
}
