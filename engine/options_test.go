package engine

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseOptionsConvertsEachType(t *testing.T) {
	s := validSpec()
	var raw map[string]any
	// As a task payload gives them: JSON numbers are float64.
	if err := json.Unmarshal([]byte(`{"target": -18.5, "window": "1m30s", "mode": "short-term",
		"channels": ["L", "R"], "gate": false, "peaks": 10}`), &raw); err != nil {
		t.Fatal(err)
	}
	opts, err := s.ParseOptions(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := opts.Float("target"); got != -18.5 {
		t.Errorf("target = %v", got)
	}
	if got := opts.Duration("window"); got != 90*time.Second {
		t.Errorf("window = %v", got)
	}
	if got := opts.String("mode"); got != "short-term" {
		t.Errorf("mode = %v", got)
	}
	if got := opts.List("channels"); !reflect.DeepEqual(got, []string{"L", "R"}) {
		t.Errorf("channels = %v", got)
	}
	if got := opts.Bool("gate"); got {
		t.Errorf("gate = %v", got)
	}
	if got := opts.Int("peaks"); got != 10 {
		t.Errorf("peaks = %v", got)
	}
}

func TestParseOptionsFillsDefaultsAndLeavesTheRestUnset(t *testing.T) {
	opts, err := validSpec().ParseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Float("target") != -23 || opts.Duration("window") != 3*time.Second || !opts.Bool("gate") || opts.Int("peaks") != 3 {
		t.Errorf("defaults = %v", opts.Map())
	}
	if opts.Has("channels") || opts.List("channels") != nil {
		t.Errorf("channels has no default but reads %v", opts.List("channels"))
	}
	want := map[string]any{"target": -23.0, "window": "3s", "mode": "momentary", "gate": true, "peaks": int64(3)}
	if got := opts.Map(); !reflect.DeepEqual(got, want) {
		t.Errorf("Map = %#v, want %#v", got, want)
	}
}

func TestParseOptionsReportsEveryProblemByOptionName(t *testing.T) {
	s := validSpec()
	s.Options = append(s.Options, Option{Name: "library", Type: TypeString, Required: true, Doc: "Reference library id"})
	_, err := s.ParseOptions(map[string]any{
		"target": "loud", "window": "50ms", "channels": []any{"L", 3}, "speed": 2, "peaks": 1.5,
	})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`option "channels": item 1: want a string, got number 3`,
		`option "library": is required: Reference library id`,
		`option "peaks": want an int, got 1.5`,
		`option "speed": engine loudness has no such option (it takes target, window, mode, channels, gate, peaks, library)`,
		`option "target": want a float, got string "loud"`,
		`option "window": must be at least 400ms, got 50ms`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option != "channels" {
		t.Errorf("errors.As gives %v", oe)
	}
}

func TestParseOptionsRefusesValuesOfAnotherJSONType(t *testing.T) {
	s := Spec{Name: "x", Options: []Option{
		{Name: "n", Type: TypeInt, Doc: "n"}, {Name: "f", Type: TypeFloat, Doc: "f"},
		{Name: "b", Type: TypeBool, Doc: "b"}, {Name: "l", Type: TypeList, Doc: "l"},
	}}
	for name, v := range map[string]any{"n": "3", "f": "0.5", "b": "true", "l": "a,b"} {
		if _, err := s.ParseOptions(map[string]any{name: v}); err == nil {
			t.Errorf("option %s accepted %#v", name, v)
		}
	}
	if _, err := (Spec{Name: "x"}).ParseOptions(map[string]any{"a": 1}); err == nil ||
		err.Error() != `option "a": engine x takes no options` {
		t.Errorf("error = %v", err)
	}
}

func TestGettersPanicOnUndeclaredOrMistypedOptions(t *testing.T) {
	opts, err := validSpec().ParseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func(){
		`engine loudness: option "treshold" is not declared in its spec`: func() { opts.Float("treshold") },
		`engine loudness: option "peaks" is an int, not string`:          func() { opts.String("peaks") },
	} {
		func() {
			defer func() {
				if r := recover(); r != name {
					t.Errorf("panic = %v, want %s", r, name)
				}
			}()
			get()
		}()
	}
}

func TestListGetterReturnsACopy(t *testing.T) {
	opts, _ := validSpec().ParseOptions(map[string]any{"channels": []string{"L"}})
	opts.List("channels")[0] = "R"
	if got := opts.List("channels")[0]; got != "L" {
		t.Errorf("channels changed through a returned slice: %v", got)
	}
}

func TestOptionJSONWritesDurationsAsStrings(t *testing.T) {
	n, err := validSpec().normalized()
	if err != nil {
		t.Fatal(err)
	}
	o, _ := n.Option("window")
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"window","type":"duration","default":"3s","doc":"Measurement window","min":"400ms"}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	var back Option
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, err := back.normalized()
	if err != nil || !reflect.DeepEqual(again, o) {
		t.Errorf("round trip = %#v, %v; want %#v", again, err, o)
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add([]byte(`{"target": -18, "window": "2s", "channels": ["L"]}`))
	f.Add([]byte(`{"peaks": 1e300, "gate": null}`))
	f.Add([]byte(`{"mode": "integrated", "unknown": {}}`))
	s := validSpec()
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw map[string]any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		opts, err := s.ParseOptions(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "option ") {
				t.Fatalf("error does not name an option: %v", err)
			}
			return
		}
		// What parsed once parses again, from its JSON form, to the same.
		b, err := json.Marshal(opts.Map())
		if err != nil {
			t.Fatal(err)
		}
		var again map[string]any
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		opts2, err := s.ParseOptions(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(opts.Map(), opts2.Map()) {
			t.Fatalf("round trip %v != %v", opts.Map(), opts2.Map())
		}
	})
}
