package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// BenchmarkAggregatorWindowLatency measures what docs/benchmarks.md
// reports: for each window, the time from the moment the last engine's
// bound passing the window's end is produced on the results topic (the
// embedded broker) to the merged window's emission, stored in SQLite and
// produced on the windows topic. Three engine tasks each write three
// results per window and move their bound past it; the third task's bound
// is the one timed. One iteration is one window; run with
// -benchtime=500x for a p99 worth reading.
func BenchmarkAggregatorWindowLatency(b *testing.B) {
	client, store := startBroker(b), openStore(b)
	ctx := context.Background()
	tasks := []Task{{ID: "job-1-a", Engine: "a"}, {ID: "job-1-b", Engine: "b"}, {ID: "job-1-c", Engine: "c"}}
	if err := client.CreateTopic(ctx, protocol.ResultsTopic("job-1"), 1); err != nil {
		b.Fatal(err)
	}
	emitted := make(chan time.Time, 1)
	a, err := New(Config{JobID: "job-1", Tasks: tasks, Window: time.Second, StallTimeout: time.Hour, Bus: client, Store: store,
		Log: testLog(), OnWindow: func(metastore.Window) { emitted <- time.Now() }})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(runCtx) })
	defer func() { cancel(); wg.Wait() }()
	for _, t := range tasks {
		produceAll(b, client, boundOf(t, 0))
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for k := range int64(b.N) {
		end := (k + 1) * 1000
		var before []protocol.Message
		for _, t := range tasks {
			for j := range int64(3) {
				before = append(before, outputOf(t, k*1000+300*j, k*1000+300*j+200))
			}
		}
		produceAll(b, client, append(before, boundOf(tasks[0], end), boundOf(tasks[1], end))...)
		start := time.Now()
		produceAll(b, client, boundOf(tasks[2], end))
		select {
		case at := <-emitted:
			lat = append(lat, at.Sub(start))
		case <-time.After(30 * time.Second):
			b.Fatalf("window %d not emitted in 30 s", k)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func boundOf(t Task, ms int64) *protocol.TimestampBound {
	return &protocol.TimestampBound{Header: protocol.Header{TaskID: t.ID, JobID: "job-1"}, EngineID: t.Engine, TimestampBoundMs: ms}
}

func outputOf(t Task, start, end int64) *protocol.EngineOutput {
	doc := fmt.Sprintf(`{"series":[{"startTimeMs":%d,"stopTimeMs":%d,"tags":[{"key":"level","value":"-23.1"}]}]}`, start, end)
	return &protocol.EngineOutput{Header: protocol.Header{TaskID: t.ID, JobID: "job-1"}, OutputType: "tag", MimeType: "application/json",
		StartOffsetMs: start, EndOffsetMs: end, ChunkUUID: fmt.Sprintf("%s-%d", t.Engine, start), Content: json.RawMessage(doc)}
}

// produceAll produces messages on job-1's results topic in one call.
func produceAll(b testing.TB, client bus.Bus, msgs ...protocol.Message) {
	b.Helper()
	recs := make([]*bus.Record, 0, len(msgs))
	for _, m := range msgs {
		key, value, err := protocol.Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &bus.Record{Topic: protocol.ResultsTopic("job-1"), Key: key, Value: value})
	}
	if err := client.Produce(context.Background(), recs...); err != nil {
		b.Fatal(err)
	}
}
