package results

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzTextsOf feeds stored result contents, which come from engines and so
// are hostile: reading them must never panic, and every text must be one
// line that WebVTT writes as one cue.
func FuzzTextsOf(f *testing.F) {
	for _, s := range []string{sttDoc, ocrDoc, keywordDoc, wordsDoc, `{}`, `null`, `{"series":[{"words":[]}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		texts := TextsOf(json.RawMessage(b))
		for _, x := range texts {
			if strings.ContainsAny(x.Text, "\n\r") || x.Text == "" {
				t.Fatalf("text %q is not one non-empty line", x.Text)
			}
		}
		var buf bytes.Buffer
		cues := Cues(texts, KindSpeech)
		if err := WriteWebVTT(&buf, cues, "", 0); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(buf.String(), " --> "); got != len(cues) {
			t.Fatalf("%d cues written as %d timing lines:\n%s", len(cues), got, buf.String())
		}
	})
}
