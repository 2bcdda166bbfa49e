package enginehost_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/enginehost"
)

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct{ body, err string }{
		{goodDoc, ""},
		{`{}`, ""},
		{"  \n", "malformed output: empty body"},
		{`null`, "got null"},
		{`"{}"`, "got a string"},
		{`42`, "got a number"},
		{`<html>oops</html>`, `got "<html>oops</html>"`},
		{`{"series":[{"startTimeMs":-5,"stopTimeMs":1}]}`, `field "series[0].startTimeMs": must not be negative`},
		{`{"series":[{"startTimeMs":"0"}]}`, "malformed output: invalid JSON: "},
		{`{"series":[]} trailing`, "malformed output: invalid JSON: "},
	} {
		doc, err := enginehost.ParseResponse([]byte(tc.body))
		if tc.err == "" {
			if err != nil || doc == nil {
				t.Errorf("%q: %v", tc.body, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, enginehost.ErrMalformedOutput) {
			t.Errorf("%q: err %v, want malformed output saying %q", tc.body, err, tc.err)
		}
	}
}

// FuzzParseResponse: any answer either parses into a valid document that
// survives a round trip, or is refused as malformed output; never a panic.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{goodDoc, `{}`, `{"series":[{"startTimeMs":5,"stopTimeMs":1}]}`, `[]`, ``,
		`{"tags":[{"key":"k","value":true}],"series":[{"startTimeMs":0,"stopTimeMs":1,"words":[{"word":"hi"}]}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := enginehost.ParseResponse(body)
		if err != nil {
			if !errors.Is(err, enginehost.ErrMalformedOutput) {
				t.Fatalf("error %v does not wrap ErrMalformedOutput", err)
			}
			return
		}
		if err := doc.Validate(); err != nil {
			t.Fatalf("accepted an invalid document: %v", err)
		}
		again, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("accepted document does not encode: %v", err)
		}
		doc2, err := enginehost.ParseResponse(again)
		if err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, again)
		}
		if len(doc2.Series) != len(doc.Series) {
			t.Fatalf("round trip changed the series: %d, then %d", len(doc.Series), len(doc2.Series))
		}
	})
}
