package engine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// validSpec is a spec that passes Validate; tests break one field at a time.
func validSpec() Spec {
	return Spec{
		Name: "loudness", Title: "Loudness", Mode: ModeChunk,
		Summary: "EBU R128 loudness of every chunk",
		Inputs:  []string{"audio/*", "video/mp2t"}, Outputs: []string{"tag"},
		Options: []Option{
			{Name: "target", Type: TypeFloat, Default: -23, Min: -70, Max: 0, Doc: "Target loudness, LUFS"},
			{Name: "window", Type: TypeDuration, Default: "3s", Min: "400ms", Doc: "Measurement window"},
			{Name: "mode", Type: TypeString, Default: "momentary", Enum: []string{"momentary", "short-term"}, Doc: "Which loudness"},
			{Name: "channels", Type: TypeList, Enum: []string{"L", "R", "C"}, Doc: "Channels measured"},
			{Name: "gate", Type: TypeBool, Default: true, Doc: "Apply the relative gate"},
			{Name: "peaks", Type: TypeInt, Default: 3, Min: 0, Doc: "Loudest peaks reported"},
		},
		Examples: []Example{{Title: "Broadcast target", Options: map[string]any{"target": -24, "mode": "short-term"}}},
		Requires: []Requirement{{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to measure"}},
	}
}

func TestValidateAcceptsACompleteSpec(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheFieldAtFault(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*Spec)
		field  string
		says   string
	}{
		{"missing name", func(s *Spec) { s.Name = "" }, "name", "is required"},
		{"upper-case name", func(s *Spec) { s.Name = "Loudness" }, "name", "[a-z0-9-]"},
		{"name ending in a dash", func(s *Spec) { s.Name = "loud-" }, "name", "not ending in '-'"},
		{"name too long", func(s *Spec) { s.Name = strings.Repeat("a", 64) }, "name", "1 to 63"},
		{"legacy mode", func(s *Spec) { s.Mode = "legacy" }, "engineMode", "not real-time"},
		{"unknown mode", func(s *Spec) { s.Mode = "realtime" }, "engineMode", "not one of chunk, stream, batch"},
		{"no mode", func(s *Spec) { s.Mode = "" }, "engineMode", "is required"},
		{"no summary", func(s *Spec) { s.Summary = " " }, "summary", "is required"},
		{"two-line summary", func(s *Spec) { s.Summary = "a\nb" }, "summary", "one line"},
		{"no inputs", func(s *Spec) { s.Inputs = nil }, "inputs", "at least one"},
		{"bad input", func(s *Spec) { s.Inputs = []string{"audio/*", "wav"} }, "inputs[1]", `"wav" is not a MIME type`},
		{"no outputs", func(s *Spec) { s.Outputs = nil }, "outputs", "at least one"},
		{"bad output", func(s *Spec) { s.Outputs = []string{"Tag Cloud"} }, "outputs[0]", "not an output type"},
		{"bad option name", func(s *Spec) { s.Options[1].Name = "Window" }, "options[1].name", "lower-case"},
		{"repeated option", func(s *Spec) { s.Options[2].Name = "target" }, "options[2].name", "declared twice (also options[0])"},
		{"unknown type", func(s *Spec) { s.Options[0].Type = "number" }, "options[0].type", `"number" is not one of string, int, float, bool, duration, list`},
		{"no doc", func(s *Spec) { s.Options[4].Doc = "" }, "options[4].doc", "is required"},
		{"default of another type", func(s *Spec) { s.Options[5].Default = "three" }, "options[5].default", `want an int, got string "three"`},
		{"fractional int default", func(s *Spec) { s.Options[5].Default = 2.5 }, "options[5].default", "want an int, got 2.5"},
		{"default below min", func(s *Spec) { s.Options[0].Default = -80 }, "options[0].default", "must be at least -70, got -80"},
		{"default outside enum", func(s *Spec) { s.Options[2].Default = "integrated" }, "options[2].default", `"integrated" is not one of momentary, short-term`},
		{"bad duration default", func(s *Spec) { s.Options[1].Default = "3 seconds" }, "options[1].default", `want a duration such as "250ms"`},
		{"enum on an int", func(s *Spec) { s.Options[5].Enum = []string{"1"} }, "options[5].enum", "only string and list"},
		{"repeated enum value", func(s *Spec) { s.Options[3].Enum = []string{"L", "L"} }, "options[3].enum[1]", "empty or repeated"},
		{"bounds on a bool", func(s *Spec) { s.Options[4].Min = 0 }, "options[4].min", "only int, float and duration"},
		{"max below min", func(s *Spec) { s.Options[0].Max = -80 }, "options[0].max", "-80 is below min -70"},
		{"required with default", func(s *Spec) { s.Options[0].Required = true }, "options[0].required", "cannot have a default"},
		{"example without title", func(s *Spec) { s.Examples[0].Title = "" }, "examples[0].title", "is required"},
		{"example with a bad value", func(s *Spec) { s.Examples[0].Options["target"] = 5 }, "examples[0].options", `option "target": must be at most 0, got 5`},
		{"example with an unknown option", func(s *Spec) { s.Examples[0].Options["lang"] = "de" }, "examples[0].options", `option "lang": engine loudness has no such option`},
		{"command with a path", func(s *Spec) { s.Requires[0].Command = "/usr/bin/ffmpeg" }, "requires[0].command", "program name"},
		{"bad package", func(s *Spec) { s.Requires[0].DebianPackage = "FFmpeg!" }, "requires[0].debianPackage", "not a Debian package name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			s.Examples[0].Options = map[string]any{"target": -24}
			tt.break_(&s)
			err := s.Validate()
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Validate = %v, want a *SpecError", err)
			}
			if se.Field != tt.field || !strings.Contains(se.Problem, tt.says) {
				t.Fatalf("Validate = field %q problem %q, want field %q saying %q", se.Field, se.Problem, tt.field, tt.says)
			}
			if !strings.Contains(err.Error(), tt.field+": ") {
				t.Fatalf("message %q does not name the field", err)
			}
		})
	}
}

func TestSpecErrorTextNamesEngineAndField(t *testing.T) {
	s := validSpec()
	s.Options[5].Default = "x"
	want := `engine "loudness": options[5].default: want an int, got string "x"`
	if err := s.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	s.Name = ""
	if err := s.Validate(); err == nil || err.Error() != "engine spec: name: is required" {
		t.Fatalf("error = %v", err)
	}
}

func TestNormalizedSpecHoldsGoTypes(t *testing.T) {
	n, err := validSpec().normalized()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"target": -23.0, "window": 3 * time.Second, "mode": "momentary", "gate": true, "peaks": int64(3)}
	for name, v := range want {
		o, _ := n.Option(name)
		if o.Default != v {
			t.Errorf("option %s default = %#v, want %#v", name, o.Default, v)
		}
	}
	if o, _ := n.Option("window"); o.Min != 400*time.Millisecond {
		t.Errorf("window min = %#v", o.Min)
	}
	if o, _ := n.Option("target"); o.Min != -70.0 || o.Max != 0.0 {
		t.Errorf("target bounds = %#v %#v", o.Min, o.Max)
	}
}

func TestAcceptsMatchesTypesFamiliesAndWildcards(t *testing.T) {
	s := Spec{Inputs: []string{"audio/*", "video/MP2T"}}
	any := Spec{Inputs: []string{"*/*"}}
	tests := []struct {
		mime     string
		s        Spec
		accepted bool
	}{
		{"audio/wav", s, true},
		{"audio/L16; rate=16000", s, true},
		{"Video/mp2t", s, true},
		{"video/mp4", s, false},
		{"audiox/wav", s, false},
		{"audio", s, false},
		{"", s, false},
		{"image/png", any, true},
		{"nonsense", any, false},
	}
	for _, tt := range tests {
		if got := tt.s.Accepts(tt.mime); got != tt.accepted {
			t.Errorf("%v accepts %q = %v, want %v", tt.s.Inputs, tt.mime, got, tt.accepted)
		}
	}
}

func TestParseModeRefusesLegacyWithAReason(t *testing.T) {
	for _, m := range Modes {
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("legacy"); err == nil || !strings.Contains(err.Error(), "not real-time") {
		t.Errorf("ParseMode(legacy) = %v", err)
	}
}

func TestDisplayTitleFallsBackToName(t *testing.T) {
	if got := (Spec{Name: "probe"}).DisplayTitle(); got != "probe" {
		t.Errorf("DisplayTitle = %q", got)
	}
	if got := (Spec{Name: "probe", Title: "Media probe"}).DisplayTitle(); got != "Media probe" {
		t.Errorf("DisplayTitle = %q", got)
	}
}
