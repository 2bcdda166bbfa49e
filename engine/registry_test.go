package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/weir-media/weir/protocol"
)

type nopChunk struct{}

func (nopChunk) Process(context.Context, *Chunk, Options) (*protocol.Document, error) {
	return nil, nil
}

type nopStream struct{}

func (nopStream) Process(context.Context, *Stream, Options, *Emitter) error { return nil }

var (
	chunkFactory  = ChunkFactory(func() (ChunkEngine, error) { return nopChunk{}, nil })
	streamFactory = StreamFactory(func() (StreamEngine, error) { return nopStream{}, nil })
)

func specNamed(name string, mode Mode) Spec {
	return Spec{Name: name, Mode: mode, Summary: "s", Inputs: []string{"*/*"}, Outputs: []string{"tag"}}
}

func TestRegistryListsEnginesSortedByName(t *testing.T) {
	r := NewRegistry()
	for _, name := range []string{"scenes", "asr", "loudness"} {
		if err := r.Register(specNamed(name, ModeChunk), chunkFactory); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, reg := range r.List() {
		names = append(names, reg.Spec.Name)
	}
	if strings.Join(names, ",") != "asr,loudness,scenes" {
		t.Errorf("List = %v", names)
	}
	reg, ok := r.Lookup("loudness")
	if !ok || reg.Factory.Mode() != ModeChunk {
		t.Fatalf("Lookup = %v, %v", reg, ok)
	}
	if _, ok := r.Lookup("ocr"); ok {
		t.Error("Lookup found an engine never registered")
	}
}

func TestRegistryRefusesDuplicatesBadSpecsAndMismatchedFactories(t *testing.T) {
	r := NewRegistry()
	if err := r.Register(specNamed("asr", ModeChunk), chunkFactory); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec Spec
		f    Factory
		says string
	}{
		{"duplicate", specNamed("asr", ModeChunk), chunkFactory, `engine "asr" is already registered`},
		{"invalid spec", specNamed("ASR", ModeChunk), chunkFactory, `engine "ASR": name:`},
		{"mode mismatch", specNamed("ocr", ModeChunk), streamFactory, `engine "ocr": engineMode is chunk but the factory makes stream engines`},
		{"nil factory", specNamed("ocr", ModeChunk), nil, `engine "ocr": no factory`},
		{"typed nil factory", specNamed("ocr", ModeStream), StreamFactory(nil), `engine "ocr": no factory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Register(tt.spec, tt.f)
			if err == nil || !strings.HasPrefix(err.Error(), tt.says) {
				t.Fatalf("Register = %v, want %s", err, tt.says)
			}
		})
	}
	if len(r.List()) != 1 {
		t.Errorf("a refused engine was registered: %v", r.List())
	}
	var se *SpecError
	if err := r.Register(specNamed("ASR", ModeChunk), chunkFactory); !errors.As(err, &se) {
		t.Errorf("an invalid spec's error is %T, want *SpecError", err)
	}
}

func TestRegistryStoresTheNormalizedSpec(t *testing.T) {
	r := NewRegistry()
	s := specNamed("asr", ModeChunk)
	s.Options = []Option{{Name: "beam", Type: TypeInt, Default: 5.0, Doc: "Beam width"}}
	if err := r.Register(s, chunkFactory); err != nil {
		t.Fatal(err)
	}
	reg, _ := r.Lookup("asr")
	if reg.Spec.Options[0].Default != int64(5) {
		t.Errorf("default = %#v, want int64(5)", reg.Spec.Options[0].Default)
	}
	if s.Options[0].Default != 5.0 {
		t.Errorf("the caller's spec changed: %#v", s.Options[0].Default)
	}
}

func TestRegisterPanicsOnAMistakeInTheDefaultRegistry(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(error).Error(), "summary") {
			t.Errorf("recover = %v", r)
		}
	}()
	s := specNamed("engine-test-no-summary", ModeChunk)
	s.Summary = ""
	Register(s, chunkFactory)
}
