package engines

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/engine"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/engines.md from the registry")

var enginesDoc = filepath.Join("..", "..", "docs", "engines.md")

// docs/engines.md's engine table is made from the Default registry; this
// fails when the file and the registry differ. Rewrite it with
//
//	go test ./internal/engines -run TestEnginesDocMatchesTheRegistry -update
func TestEnginesDocMatchesTheRegistry(t *testing.T) {
	doc, err := os.ReadFile(enginesDoc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceGenerated(doc, MarkdownTable(engine.Default().List()))
	if err != nil {
		t.Fatalf("%s: %v", enginesDoc, err)
	}
	if *update {
		if err := os.WriteFile(enginesDoc, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(doc) != string(want) {
		t.Fatalf("%s is out of date with the engine registry; run\n\tgo test ./internal/engines -run TestEnginesDocMatchesTheRegistry -update", enginesDoc)
	}
}

func TestMarkdownTableDocumentsEveryPartOfTheSpec(t *testing.T) {
	r := engine.NewRegistry()
	spec := engine.Spec{
		Name: "silence", Title: "Silence | gaps", Mode: engine.ModeStream,
		Summary: "Finds silent stretches.", Description: "Uses ffmpeg's silencedetect.",
		Inputs: []string{"audio/*"}, Outputs: []string{"tag"},
		Options: []engine.Option{
			{Name: "threshold_db", Type: engine.TypeFloat, Default: -50, Min: -90, Max: 0, Doc: "Level below which audio is silent, dBFS"},
			{Name: "min_duration", Type: engine.TypeDuration, Default: "2s", Min: "100ms", Doc: "Shortest silence"},
			{Name: "library", Type: engine.TypeString, Required: true, Doc: "Library | id"},
			{Name: "channels", Type: engine.TypeList, Enum: []string{"L", "R"}, Doc: "Channels"},
		},
		Examples: []engine.Example{{Title: "Quiet rooms", Options: map[string]any{"threshold_db": -60, "library": "x"}}},
		Requires: []engine.Requirement{{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to measure levels"}},
	}
	if err := r.Register(spec, engine.StreamFactory(func() (engine.StreamEngine, error) { return nil, nil })); err != nil {
		t.Fatal(err)
	}
	got := MarkdownTable(r.List())
	for _, want := range []string{
		"| [`silence`](#silence--silence--gaps) | stream | `audio/*` | `tag` | Finds silent stretches. |",
		"### silence — Silence | gaps",
		"Finds silent stretches (`stream` mode). Reads `audio/*`; writes `tag`.",
		"Uses ffmpeg's silencedetect.",
		"| `threshold_db` | float | `-50` | Level below which audio is silent, dBFS; -90 to 0 |",
		"| `min_duration` | duration | `2s` | Shortest silence; at least 100ms |",
		"| `library` | string | required | Library \\| id |",
		"| `channels` | list | — | Channels; one of `L`, `R` |",
		"- Quiet rooms: `{\"library\":\"x\",\"threshold_db\":-60}`",
		"- `ffmpeg` (`apt-get install -y ffmpeg`), to measure levels",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestReplaceGeneratedKeepsTheRestOfTheDoc(t *testing.T) {
	doc := "intro\n" + DocBegin + "\nold table\n" + DocEnd + "\noutro\n"
	got, err := ReplaceGenerated([]byte(doc), "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + DocBegin + "\nnew table\n" + DocEnd + "\noutro\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"no markers", DocEnd + DocBegin, DocBegin + " only"} {
		if _, err := ReplaceGenerated([]byte(bad), "x"); err == nil {
			t.Errorf("ReplaceGenerated(%q) succeeded", bad)
		}
	}
}
