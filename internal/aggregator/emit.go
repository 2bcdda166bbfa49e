package aggregator

import (
	"context"
	"fmt"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// emitter stores and produces the windows the graph merges, and stores
// late results. Windows reach it one at a time, in order.
type emitter struct {
	a     *Aggregator
	ctx   context.Context
	count int
}

// storeAttempts bounds the tries of a store write before the aggregator
// gives up and starts again.
const storeAttempts = 4

// emit stores a merged window, then produces it. A window the store
// already holds was emitted by an earlier aggregator of the job (which
// produced it, or the next start's repair does).
func (e *emitter) emit(p graph.Packet) error {
	m, ok := graph.As[*merged](p)
	if !ok {
		return fmt.Errorf("window at %v is not a merged window", p.Timestamp())
	}
	w := m.window(e.a.cfg.JobID)
	created, err := retry(e.ctx, func() (bool, error) { return e.a.cfg.Store.PutWindow(e.ctx, w) })
	if err != nil {
		return fmt.Errorf("store window at %d ms: %w", w.StartMs, err)
	}
	if !created {
		e.a.log.Warn("window already stored by another aggregator of the job; not produced again", "start_ms", w.StartMs)
		return nil
	}
	if err := e.a.produce(e.ctx, w); err != nil {
		return err
	}
	e.count++
	e.a.cfg.Metrics.window(w.Status)
	if f := e.a.cfg.OnWindow; f != nil {
		f(w)
	}
	return nil
}

// window is the stored form of m.
func (m *merged) window(jobID string) metastore.Window {
	w := metastore.Window{JobID: jobID, StartMs: m.startMs, EndMs: m.endMs, Seq: m.seq, Status: metastore.WindowComplete,
		Missing: m.missing, Results: m.results, ThroughOffset: m.through, EmittedAt: time.Now()}
	if len(m.missing) > 0 {
		w.Status = metastore.WindowPartial
	}
	for i := range w.Results {
		w.Results[i].JobID = jobID
	}
	return w
}

// late stores a result that came after its task's share of the window
// starting at startMs was settled, and counts it once.
func (e *emitter) late(startMs int64, r metastore.Result) error {
	if len(r.Content) == 0 {
		r.Content = []byte(`{}`)
	}
	created, err := retry(e.ctx, func() (bool, error) {
		return e.a.cfg.Store.PutLateResult(e.ctx, metastore.LateResult{WindowStartMs: startMs, Result: r})
	})
	if err != nil {
		return fmt.Errorf("store late result of %s at %d ms: %w", r.Engine, r.StartMs, err)
	}
	if created {
		e.a.cfg.Metrics.lateResult()
		e.a.log.Info("late result", "engine", r.Engine, "start_ms", r.StartMs, "end_ms", r.EndMs, "window_start_ms", startMs)
	}
	return nil
}

// retry runs f until it succeeds, storeAttempts times at most, pausing
// between tries.
func retry(ctx context.Context, f func() (bool, error)) (bool, error) {
	pause := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ok, err := f()
		if err == nil || attempt == storeAttempts || ctx.Err() != nil {
			return ok, err
		}
		if !sleep(ctx, pause) {
			return ok, err
		}
		pause *= 2
	}
}

// message is the result_window of w, without the results' contents when
// they would make it larger than protocol.MaxWindowBytes.
func (a *Aggregator) message(w metastore.Window) (key, value []byte, err error) {
	m := &protocol.ResultWindow{Header: protocol.Header{Type: protocol.TypeResultWindow, TimestampUTC: protocol.NowMillis(),
		TDOID: a.cfg.TDOID, JobID: w.JobID}, WindowStartMs: w.StartMs, WindowEndMs: w.EndMs, Seq: w.Seq,
		Status: protocol.WindowStatus(w.Status), Missing: w.Missing, Results: make([]protocol.WindowResult, len(w.Results))}
	for i, r := range w.Results {
		m.Results[i] = protocol.WindowResult{EngineID: r.Engine, TaskID: r.TaskID, OutputType: r.OutputType,
			StartOffsetMs: r.StartMs, EndOffsetMs: r.EndMs, ChunkUUID: r.ChunkUUID, Rev: r.Rev, Content: r.Content}
	}
	key, value, err = protocol.Encode(m)
	if err != nil || len(value) <= protocol.MaxWindowBytes {
		return key, value, err
	}
	for i := range m.Results {
		m.Results[i].Content = nil
	}
	m.ContentOmitted = true
	return protocol.Encode(m)
}

// produce writes w on the job's windows topic.
func (a *Aggregator) produce(ctx context.Context, w metastore.Window) error {
	key, value, err := a.message(w)
	if err != nil {
		return fmt.Errorf("window at %d ms: %w", w.StartMs, err)
	}
	_, err = retry(ctx, func() (bool, error) {
		return true, a.cfg.Bus.Produce(ctx, &bus.Record{Topic: protocol.WindowsTopic(a.cfg.JobID), Key: key, Value: value})
	})
	if err != nil {
		return fmt.Errorf("produce window at %d ms: %w", w.StartMs, err)
	}
	return nil
}
