package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// Aggregator merges one job's results into windows. See the package
// documentation.
type Aggregator struct {
	cfg  Config
	log  *slog.Logger
	done chan struct{}
	once sync.Once
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Aggregator, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &Aggregator{cfg: cfg, log: cfg.Log.With("component", "aggregator", "job", cfg.JobID), done: make(chan struct{})}, nil
}

// Done is closed once the job's last window is emitted (every task said
// it is done).
func (a *Aggregator) Done() <-chan struct{} { return a.done }

// Finished reports whether Done is closed.
func (a *Aggregator) Finished() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Run aggregates until the job's last window is emitted (then it returns
// nil) or ctx ends (nil too: the next aggregator of the job resumes from
// the stored windows). A failure (the store or the bus down) starts it
// again from the stored windows, after a pause.
func (a *Aggregator) Run(ctx context.Context) error {
	pause := time.Second
	for {
		err := a.runOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		a.log.Warn("aggregator stopped; starting again from the stored windows", "err", err, "after", pause)
		if !sleep(ctx, pause) {
			return nil
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// runOnce resumes from the stored windows and reads the results topic
// from its start until the last window is emitted.
func (a *Aggregator) runOnce(ctx context.Context) error {
	marks, err := a.cfg.Store.WindowMarks(ctx, a.cfg.JobID)
	if err != nil {
		return err
	}
	if err := a.repair(ctx, marks); err != nil {
		return fmt.Errorf("windows topic: %w", err)
	}
	g, err := newGraph(len(a.cfg.Tasks), graph.WithLogger(a.log))
	if err != nil {
		return err
	}
	em := &emitter{a: a, ctx: ctx}
	if err := g.ObserveOutputStream(windowStream, em.emit); err != nil {
		return err
	}
	if err := g.StartRun(ctx, nil); err != nil {
		return err
	}
	c := newCore(&a.cfg, marks, time.Now())
	c.feed, c.late = &graphFeeder{g: g, ctx: ctx}, em.late
	if err := a.consume(ctx, c); err != nil {
		g.Cancel()
		_ = g.WaitUntilDone(context.WithoutCancel(ctx))
		return err
	}
	if err := g.WaitUntilDone(ctx); err != nil {
		return err
	}
	a.once.Do(func() { close(a.done) })
	a.log.Info("aggregation complete", "windows", em.count)
	return nil
}

// consume feeds the core from the results topic, and the clock, until the
// core has closed the graph's inputs. An error means it did not.
func (a *Aggregator) consume(ctx context.Context, c *core) error {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	step := func(f func() error) error {
		mu.Lock()
		defer mu.Unlock()
		err := f()
		if c.closed {
			stop()
		}
		return err
	}
	go a.tick(cctx, func(now time.Time) error { return step(func() error { return c.tick(now) }) }, stop)
	err := a.cfg.Bus.Consume(cctx, bus.ConsumeOptions{
		Topics:         []string{protocol.ResultsTopic(a.cfg.JobID)},
		FromBeginning:  true,
		MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
		Handler: func(_ context.Context, rec *bus.Record) error {
			return step(func() error { return a.record(c, rec) })
		},
	})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case c.closed:
		return nil
	case err != nil:
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return errors.New("the results topic stopped before the job's end")
}

// tick looks for stalls every Tick; a failure stops consumption.
func (a *Aggregator) tick(ctx context.Context, f func(time.Time) error, stop func()) {
	t := time.NewTicker(a.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := f(now); err != nil {
				a.log.Warn("stall check", "err", err)
				stop()
				return
			}
		}
	}
}

// record hands one record of the results topic to the core. Records that
// are not engine_output or timestamp_bound, or do not decode, are
// skipped: the job's runner reads the same topic and reports them.
func (a *Aggregator) record(c *core, rec *bus.Record) error {
	msg, err := protocol.Decode(rec.Key, rec.Value)
	if err != nil {
		return nil
	}
	switch m := msg.(type) {
	case *protocol.EngineOutput:
		return c.result(rec.Offset, m.TaskID, c.resultOf(m), time.Now())
	case *protocol.TimestampBound:
		return c.bound(rec.Offset, m.TaskID, m.TimestampBoundMs, m.Done, time.Now())
	}
	return nil
}

// resultOf turns an engine_output into the result the store keeps: the
// content as a document when it is one, the chunk "-" when it answers
// none (as the job runner stores it).
func (c *core) resultOf(m *protocol.EngineOutput) metastore.Result {
	content := m.Content
	if doc, err := m.Document(); err == nil && doc != nil {
		if b, err := json.Marshal(doc); err == nil {
			content = b
		}
	}
	uuid := m.ChunkUUID
	if uuid == "" {
		uuid = "-"
	}
	engine := ""
	if t := c.byID[m.TaskID]; t != nil {
		engine = t.Engine
	}
	return metastore.Result{JobID: c.jobID, Engine: engine, TaskID: m.TaskID, ChunkUUID: uuid, StartMs: m.StartOffsetMs,
		EndMs: m.EndOffsetMs, OutputType: m.OutputType, Rev: m.Rev, Content: content}
}

// graphFeeder is the core's feeder on a running graph.
type graphFeeder struct {
	g   *graph.Graph
	ctx context.Context
}

func (f *graphFeeder) add(input string, s *share, ts graph.Timestamp) error {
	return f.g.AddPacketToInputStreamContext(f.ctx, input, graph.MakePacket(s, ts))
}

func (f *graphFeeder) bound(input string, ts graph.Timestamp) error {
	return f.g.SetInputStreamTimestampBound(input, ts)
}

func (f *graphFeeder) closeAll() error { return f.g.CloseAllInputStreams() }

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
