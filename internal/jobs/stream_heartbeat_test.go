package jobs

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// busyEngine is a stream engine that moves its bound once, then works for
// busy without moving it (as stt does while it decodes a long utterance,
// or black inside a long black stretch), then reads its stream and emits
// one piece.
type busyEngine struct{ busy time.Duration }

func (e busyEngine) Process(ctx context.Context, s *engine.Stream, _ engine.Options, emit *engine.Emitter) error {
	if err := emit.Bound(1); err != nil {
		return err
	}
	select {
	case <-time.After(e.busy):
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := io.Copy(io.Discard, s.Body); err != nil {
		return err
	}
	return emit.Emit(1, 1000, &protocol.Document{Series: []protocol.Series{{StartTimeMs: 1, StopTimeMs: 1000,
		Tags: []protocol.Tag{{Key: "busy"}}}}})
}

// TestRunnerKeepsABusyStreamEngineAlive: a stream engine that holds its
// bound for ten heartbeat intervals is alive all the same: its instance is
// not marked down for silence, its task is done (not failed), and its
// result is stored.
func TestRunnerKeepsABusyStreamEngineAlive(t *testing.T) {
	const hb = 100 * time.Millisecond
	busy := engine.Spec{Name: "busy", Mode: engine.ModeStream, Summary: "Works long without moving its bound",
		Inputs: []string{"*/*"}, Outputs: []string{"tag"}}
	r := newRig(t, &clockEngine{})
	if err := r.engines.Register(busy, engine.StreamFactory(func() (engine.StreamEngine, error) {
		return busyEngine{busy: 10 * hb}, nil
	})); err != nil {
		t.Fatal(err)
	}
	r.vod("vod-1", makeClip(t, 2))
	r.runner(hb)
	id := r.create(`{"source": {"vod": "vod-1"}, "chunking": {"duration": "2s"}, "engines": [{"name": "busy"}]}`)
	r.wait(id, metastore.JobComplete)
	cs, err := r.meta.ListJobChunks(context.Background(), id, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].State != metastore.ChunkDone {
		t.Fatalf("the busy engine's progress %+v, want its stream done", cs)
	}
	if res := r.results(id); len(res) != 1 {
		t.Fatalf("%d results, want the busy engine's one", len(res))
	}
}
