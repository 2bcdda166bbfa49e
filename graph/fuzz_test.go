package graph

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseConfig feeds arbitrary bytes to the YAML parser and checks that
// it never panics, that every problem is reported as a diagnostic with a
// message, and that whatever Validate accepts New can build and Dot can
// render.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(passYAML))
	f.Add([]byte(deadlockYAML))
	f.Add([]byte("input_streams: [in\n"))
	f.Add([]byte("nodes:\n  - calculator: Gate\n    input_streams: [in, \"ALLOW:a\"]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := ParseConfig(src)
		if cfg == nil {
			t.Fatal("ParseConfig returned a nil config")
		}
		for _, d := range diags {
			if d.Message == "" || d.Line < 0 {
				t.Fatalf("malformed diagnostic %+v", d)
			}
		}
		_ = Dot(cfg)
		if len(diags) > 0 {
			return
		}
		all := Validate(src)
		for _, d := range all {
			if d.Message == "" {
				t.Fatalf("empty diagnostic for %q", src)
			}
		}
		if len(all) == 0 {
			if _, err := New(cfg); err != nil {
				t.Fatalf("Validate accepted but New failed: %v\n%s", err, src)
			}
		}
	})
}

// FuzzParseStreamRef checks that every accepted stream reference prints
// back to a string that parses to the same reference.
func FuzzParseStreamRef(f *testing.F) {
	for _, s := range []string{"in", "VIDEO:frames", "IN:2:audio", ":1:x", "a:b:c:d", "TAG:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseStreamRef(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("error %q does not quote the input %q", err, s)
			}
			return
		}
		back, err := ParseStreamRef(r.String())
		if err != nil || back != r {
			t.Fatalf("%q parsed to %+v, printed %q, reparsed to %+v (%v)", s, r, r.String(), back, err)
		}
	})
}
