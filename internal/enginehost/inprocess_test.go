package enginehost_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/protocol"
)

// countingEngine answers with one series covering the chunk and counts
// its instances.
type countingEngine struct {
	id      int64
	process func(ctx context.Context, c *engine.Chunk) error
}

func (e *countingEngine) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	if e.process != nil {
		if err := e.process(ctx, c); err != nil {
			return nil, err
		}
	}
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(),
		Tags: []protocol.Tag{{Key: "instance", Value: string(rune('0' + e.id))}}}}}, nil
}

func countingRegistration(made *atomic.Int64, process func(ctx context.Context, c *engine.Chunk) error) engine.Registration {
	return engine.Registration{Spec: testSpec("counting"), Factory: engine.ChunkFactory(func() (engine.ChunkEngine, error) {
		return &countingEngine{id: made.Add(1), process: process}, nil
	})}
}

func TestInProcessReusesInstancesOneChunkAtATime(t *testing.T) {
	var made atomic.Int64
	p, err := enginehost.NewInProcess(countingRegistration(&made, nil), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	c := &engine.Chunk{Meta: *chunkFor("job-i", 0, "audio/wav", []byte("RIFF"))}
	// The same chunk twice (a retry) and chunks going back in time are
	// fine: each is a run of its own.
	for _, start := range []int64{5000, 5000, 0, 3000} {
		c.Meta.StartOffsetMs, c.Meta.EndOffsetMs = start, start+1000
		doc, err := p.Process(testCtx(t), c, engine.Options{})
		if err != nil {
			t.Fatalf("chunk at %d ms: %v", start, err)
		}
		if len(doc.Series) != 1 || doc.Series[0].StopTimeMs != 1000 {
			t.Fatalf("chunk at %d ms: %+v", start, doc.Series)
		}
	}
	if made.Load() != 1 {
		t.Fatalf("%d instances for chunks one after another, want 1", made.Load())
	}

	// Chunks at once each get an instance of their own.
	var mu sync.Mutex
	inside := map[*engine.Chunk]bool{}
	gate := make(chan struct{})
	made.Store(0)
	p, _ = enginehost.NewInProcess(countingRegistration(&made, func(ctx context.Context, c *engine.Chunk) error {
		mu.Lock()
		inside[c] = true
		if len(inside) == 3 {
			close(gate)
		}
		mu.Unlock()
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}), quietLogger())
	var wg sync.WaitGroup
	for i := range int64(3) {
		wg.Go(func() {
			c := &engine.Chunk{Meta: *chunkFor("job-i", i, "audio/wav", []byte("RIFF"))}
			if _, err := p.Process(testCtx(t), c, engine.Options{}); err != nil {
				t.Errorf("concurrent chunk %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if made.Load() != 3 {
		t.Fatalf("%d instances for 3 chunks at once, want 3", made.Load())
	}
}

func TestInProcessEngineSeesTheChunkDeadline(t *testing.T) {
	var made atomic.Int64
	var deadline time.Time
	p, _ := enginehost.NewInProcess(countingRegistration(&made, func(ctx context.Context, _ *engine.Chunk) error {
		deadline, _ = ctx.Deadline()
		return nil
	}), quietLogger())
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	if _, err := p.Process(ctx, &engine.Chunk{Meta: *chunkFor("job-d", 0, "audio/wav", []byte("x"))}, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if !deadline.Equal(want) {
		t.Fatalf("engine saw deadline %v, want the chunk's %v", deadline, want)
	}
}

func TestInProcessPanicsErrorsAndFactories(t *testing.T) {
	var made atomic.Int64
	p, _ := enginehost.NewInProcess(countingRegistration(&made, func(context.Context, *engine.Chunk) error {
		var m map[string]int
		m["x"]++ // a nil map write panics
		return nil
	}), quietLogger())
	c := &engine.Chunk{Meta: *chunkFor("job-p", 0, "audio/wav", []byte("x"))}
	_, err := p.Process(testCtx(t), c, engine.Options{})
	var pe *enginehost.PanicError
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "engine panicked: assignment to entry in nil map") || len(pe.Stack) == 0 {
		t.Fatalf("err %v, want a PanicError with the panic's value and stack", err)
	}

	failing := engine.Registration{Spec: testSpec("broken"), Factory: engine.ChunkFactory(func() (engine.ChunkEngine, error) {
		return nil, errors.New("model weights not found in /models")
	})}
	p, _ = enginehost.NewInProcess(failing, quietLogger())
	if _, err := p.Process(testCtx(t), c, engine.Options{}); err == nil || !strings.Contains(err.Error(), `engine "broken": start an instance: model weights not found`) {
		t.Fatalf("err %v, want the factory's error", err)
	}

	stream := engine.Registration{Spec: testSpec("streamer"), Factory: engine.StreamFactory(func() (engine.StreamEngine, error) { return nil, nil })}
	if _, err := enginehost.NewInProcess(stream, nil); err == nil || !strings.Contains(err.Error(), "stream engine") {
		t.Fatalf("NewInProcess of a stream engine: %v", err)
	}
}

func TestInProcessAbandonedInstanceIsNotReused(t *testing.T) {
	var made atomic.Int64
	release := make(chan struct{})
	defer close(release)
	p, _ := enginehost.NewInProcess(countingRegistration(&made, func(_ context.Context, c *engine.Chunk) error {
		if c.Meta.ChunkIndex == 0 {
			<-release // ignores its context
		}
		return nil
	}), quietLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Process(ctx, &engine.Chunk{Meta: *chunkFor("job-a", 0, "audio/wav", []byte("x"))}, engine.Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline", err)
	}
	doc, err := p.Process(testCtx(t), &engine.Chunk{Meta: *chunkFor("job-a", 1, "audio/wav", []byte("x"))}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Series[0].Tags[0].Value; got != "2" || made.Load() != 2 {
		t.Fatalf("second chunk ran on instance %s of %d, want a fresh instance 2", got, made.Load())
	}
}
