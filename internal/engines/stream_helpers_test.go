package engines

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// runStreamEngine runs the registered stream engine name on a file as a
// job does: the file's bytes are the stream's body, format its
// stream_init's ffmpegFormat. It returns the pieces the engine emitted (on
// the input's own timeline: offset 0) and its final bound.
func runStreamEngine(t *testing.T, name, path, format string, opts map[string]any) ([]engine.Piece, int64) {
	t.Helper()
	reg, ok := engine.Default().Lookup(name)
	if !ok {
		t.Fatalf("engine %s is not registered", name)
	}
	factory, ok := reg.Factory.(engine.StreamFactory)
	if !ok {
		t.Fatalf("engine %s is not a stream engine", name)
	}
	o, err := reg.Spec.ParseOptions(opts)
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	eng, err := factory()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pieces []engine.Piece
	emit := engine.NewEmitter(func(p engine.Piece) error { pieces = append(pieces, p); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: format}, Body: f}
	if err := eng.Process(ctx, s, o, emit); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return pieces, emit.BoundMs()
}
