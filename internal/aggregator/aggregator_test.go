package aggregator

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// startBroker runs the embedded broker and returns a client of it.
func startBroker(t testing.TB) *bus.Client {
	t.Helper()
	quiet := testLog()
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(t.TempDir()), bus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	client, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

// put produces protocol messages on job-1's results topic.
func put(t testing.TB, b bus.Bus, msgs ...protocol.Message) {
	t.Helper()
	for _, m := range msgs {
		key, value, err := protocol.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Produce(context.Background(), &bus.Record{Topic: protocol.ResultsTopic("job-1"), Key: key, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
}

func boundMsg(task string, ms int64, done bool) *protocol.TimestampBound {
	return &protocol.TimestampBound{Header: protocol.Header{TaskID: "job-1-" + task, JobID: "job-1"}, EngineID: task,
		TimestampBoundMs: ms, Done: done}
}

func outMsg(task string, start, end int64) *protocol.EngineOutput {
	return &protocol.EngineOutput{Header: protocol.Header{TaskID: "job-1-" + task, JobID: "job-1"}, OutputType: "tag",
		StartOffsetMs: start, EndOffsetMs: end, ChunkUUID: "c", Content: json.RawMessage(`{"series":[]}`)}
}

// runAggregator runs an aggregator of job-1 until the test ends; windows
// it emits go to the returned channel.
func runAggregator(t *testing.T, store metastore.Store, b bus.Bus, stall time.Duration) (*Aggregator, <-chan metastore.Window, context.CancelFunc) {
	t.Helper()
	ch := make(chan metastore.Window, 100)
	a, err := New(Config{JobID: "job-1", Tasks: twoTasks, Window: 5 * time.Second, StallTimeout: stall, Bus: b, Store: store,
		Log: testLog(), OnWindow: func(w metastore.Window) { ch <- w }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return a, ch, stop
}

func next(t *testing.T, ch <-chan metastore.Window) metastore.Window {
	t.Helper()
	select {
	case w := <-ch:
		return w
	case <-time.After(30 * time.Second):
		t.Fatal("no window within 30 s")
		return metastore.Window{}
	}
}

// TestAggregatorOverTheBroker reads bounds and results from a real
// broker's results topic, emits windows as the bounds allow, and is done
// after the last; the windows are on the windows topic.
func TestAggregatorOverTheBroker(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	if err := b.CreateTopic(context.Background(), protocol.ResultsTopic("job-1"), 1); err != nil {
		t.Fatal(err)
	}
	a, ch, _ := runAggregator(t, store, b, time.Minute)
	put(t, b, boundMsg("a", 0, false), boundMsg("b", 0, false), outMsg("a", 1000, 2000), boundMsg("a", 10000, false))
	put(t, b, outMsg("b", 4000, 4500), boundMsg("b", 5000, false))
	if w := next(t, ch); describe(w) != "[0,5000) complete a:1000-2000 b:4000-4500" {
		t.Fatalf("first window %s", describe(w))
	}
	select {
	case w := <-ch:
		t.Fatalf("window %s before b passed 10000", describe(w))
	case <-time.After(300 * time.Millisecond):
	}
	put(t, b, boundMsg("b", 7000, true), boundMsg("a", 10000, true))
	if w := next(t, ch); describe(w) != "[5000,10000) complete" {
		t.Fatalf("second window %s", describe(w))
	}
	select {
	case <-a.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("not done after every task is")
	}
	var got []int64
	err := b.Consume(context.Background(), bus.ConsumeOptions{Topics: []string{protocol.WindowsTopic("job-1")}, FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			m, err := protocol.Decode(rec.Key, rec.Value)
			if err == nil {
				got = append(got, m.(*protocol.ResultWindow).WindowStartMs)
			}
			return err
		}})
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 5000 {
		t.Fatalf("windows topic holds %v, %v", got, err)
	}
}

// TestAggregatorTimesOutAStalledEngine: with real time, a task whose bound
// stands still is left out after the stall timeout.
func TestAggregatorTimesOutAStalledEngine(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	_, ch, _ := runAggregator(t, store, b, 500*time.Millisecond)
	put(t, b, boundMsg("a", 0, false), boundMsg("b", 0, false), boundMsg("a", 5000, false))
	start := time.Now()
	w := next(t, ch)
	if describe(w) != "[0,5000) partial missing=b" {
		t.Fatalf("window %s", describe(w))
	}
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Fatalf("timed out after %v, before the stall timeout", waited)
	}
}

// TestAggregatorProducesAStoredWindowItsPredecessorDidNot: a window
// stored by an aggregator that died before producing it is produced by the
// next, once.
func TestAggregatorProducesAStoredWindowItsPredecessorDidNot(t *testing.T) {
	b, store := startBroker(t), openStore(t)
	ctx := context.Background()
	put(t, b, boundMsg("a", 0, false), boundMsg("b", 0, false), outMsg("a", 100, 200), boundMsg("a", 5000, false), boundMsg("b", 5000, false))
	stored := metastore.Window{JobID: "job-1", StartMs: 0, EndMs: 5000, Status: metastore.WindowComplete, ThroughOffset: 4,
		Results: []metastore.Result{{JobID: "job-1", Engine: "a", TaskID: "job-1-a", ChunkUUID: "c", StartMs: 100, EndMs: 200,
			OutputType: "tag", Content: json.RawMessage(`{"series":[]}`)}}}
	if _, err := store.PutWindow(ctx, stored); err != nil {
		t.Fatal(err)
	}
	_, ch, stop := runAggregator(t, store, b, time.Minute)
	put(t, b, boundMsg("a", 10000, true), boundMsg("b", 10000, true))
	if w := next(t, ch); w.StartMs != 5000 {
		t.Fatalf("emitted %s, want only the window after the stored one", describe(w))
	}
	stop()
	var starts []int64
	err := b.Consume(ctx, bus.ConsumeOptions{Topics: []string{protocol.WindowsTopic("job-1")}, FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			m, err := protocol.Decode(rec.Key, rec.Value)
			if err == nil {
				w := m.(*protocol.ResultWindow)
				starts = append(starts, w.WindowStartMs)
				if w.WindowStartMs == 0 && (len(w.Results) != 1 || w.Results[0].StartOffsetMs != 100) {
					t.Errorf("repaired window %+v", w)
				}
			}
			return err
		}})
	if err != nil || len(starts) != 2 || starts[0] != 0 || starts[1] != 5000 {
		t.Fatalf("windows topic holds %v, %v; want 0 then 5000, once each", starts, err)
	}
	// A third aggregator of the finished job produces nothing more.
	_, ch3, stop3 := runAggregator(t, store, b, time.Minute)
	defer stop3()
	select {
	case w := <-ch3:
		t.Fatalf("a third aggregator emitted %s", describe(w))
	case <-time.After(2 * time.Second):
	}
}
