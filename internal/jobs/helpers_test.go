package jobs

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

type nopChunk struct{}

func (nopChunk) Process(context.Context, *engine.Chunk, engine.Options) (*protocol.Document, error) {
	return nil, nil
}

// testSpecs are the built-in engines of the tests' registry: one with
// options of every kind of bound, one without options, and one whose
// program is missing (unavailable).
var testSpecs = []engine.Spec{
	{Name: "people", Mode: engine.ModeChunk, Summary: "Finds people", Inputs: []string{"image/jpeg"}, Outputs: []string{"object"},
		Options: []engine.Option{
			{Name: "threshold", Type: engine.TypeFloat, Default: 0.5, Min: 0.0, Max: 1.0, Doc: "Lowest confidence kept"},
			{Name: "max_people", Type: engine.TypeInt, Default: 20, Min: 1, Doc: "Most people reported per frame"},
			{Name: "window", Type: engine.TypeDuration, Default: "2s", Doc: "How long a track is kept"},
		}},
	{Name: "probe", Mode: engine.ModeChunk, Summary: "Reports each chunk", Inputs: []string{"*/*"}, Outputs: []string{"text"}},
	{Name: "ocr", Mode: engine.ModeChunk, Summary: "Reads text", Inputs: []string{"image/*"}, Outputs: []string{"text"},
		Requires: []engine.Requirement{{Command: "weir-test-no-tesseract", DebianPackage: "tesseract-ocr", Why: "to read text"}}},
	{Name: "subtitles", Mode: engine.ModeChunk, Summary: "Reads captions", Inputs: []string{"text/vtt"}, Outputs: []string{"text"}},
	{Name: "keywords", Mode: engine.ModeChunk, Summary: "Spots phrases", Inputs: []string{engine.DocumentMimeType("transcript")}, Outputs: []string{"object"}},
}

// testStreamSpecs are the stream engines of the tests' registry.
var testStreamSpecs = []engine.Spec{
	{Name: "scenes", Mode: engine.ModeStream, Summary: "Finds cuts", Inputs: []string{"video/*"}, Outputs: []string{"scene"}},
	{Name: "stt", Mode: engine.ModeStream, Summary: "Transcribes", Inputs: []string{"audio/*"}, Outputs: []string{"transcript"}},
}

type nopStream struct{}

func (nopStream) Process(context.Context, *engine.Stream, engine.Options, *engine.Emitter) error {
	return nil
}

// newTestCatalog is a catalog of testSpecs over meta.
func newTestCatalog(t testing.TB, meta metastore.Store) *engines.Catalog {
	t.Helper()
	reg := engine.NewRegistry()
	factory := engine.ChunkFactory(func() (engine.ChunkEngine, error) { return nopChunk{}, nil })
	for _, s := range testSpecs {
		if err := reg.Register(s, factory); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range testStreamSpecs {
		if err := reg.Register(s, engine.StreamFactory(func() (engine.StreamEngine, error) { return nopStream{}, nil })); err != nil {
			t.Fatal(err)
		}
	}
	return engines.NewCatalog(reg, meta)
}

// openMeta is a fresh SQLite store, closed when the test ends.
func openMeta(t testing.TB) metastore.Store {
	t.Helper()
	meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	return meta
}
