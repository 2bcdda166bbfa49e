package results

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The stt engine's own document shape (docs/engines.md): a sentence series
// tagged "utterance" followed by a series per word.
const sttDoc = `{"series": [
  {"startTimeMs": 41040, "stopTimeMs": 42580, "tags": [{"key": "utterance", "value": "u8"}],
   "words": [{"word": "i would like a cup of coffee", "confidence": 0.689, "bestPath": true, "utteranceLength": 7}]},
  {"startTimeMs": 41040, "stopTimeMs": 41210, "words": [{"word": "i", "confidence": 0.993, "bestPath": true}]},
  {"startTimeMs": 42110, "stopTimeMs": 42580, "words": [{"word": "coffee", "confidence": 1, "bestPath": true}]}
]}`

const ocrDoc = `{"series": [{"startTimeMs": 2000, "stopTimeMs": 8000,
  "words": [{"word": "Breaking", "bestPath": true}, {"word": "news", "bestPath": true}],
  "object": {"type": "text", "text": "Breaking  news", "confidence": 0.965}}]}`

const keywordDoc = `{"series": [{"startTimeMs": 5000, "stopTimeMs": 5900,
  "words": [{"word": "tomorrow morning", "utteranceLength": 2}],
  "object": {"type": "keyword", "label": "tomorrow morning", "text": "tomorrow morning"}}]}`

// An external recogniser that writes only per-word series, two phrases
// 3 s apart, with alternatives of which the best path is the second.
const wordsDoc = `{"series": [
  {"startTimeMs": 1000, "stopTimeMs": 1300, "words": [{"word": "hello"}]},
  {"startTimeMs": 1400, "stopTimeMs": 1800, "words": [{"word": "word", "confidence": 0.2}, {"word": "world", "bestPath": true}]},
  {"startTimeMs": 4800, "stopTimeMs": 5200, "words": [{"word": "again"}]}
]}`

func TestTextsReadEachEngineShape(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []Text
	}{
		{"stt sentences, words not read twice", sttDoc, []Text{{KindSpeech, 41040, 42580, "i would like a cup of coffee"}}},
		{"ocr lines, white space collapsed", ocrDoc, []Text{{KindScreen, 2000, 8000, "Breaking news"}}},
		{"keywords", keywordDoc, []Text{{KindKeyword, 5000, 5900, "tomorrow morning"}}},
		{"per-word transcripts joined at gaps", wordsDoc, []Text{{KindSpeech, 1000, 1800, "hello world"}, {KindSpeech, 4800, 5200, "again"}}},
		{"loudness has no text", `{"series":[{"startTimeMs":0,"stopTimeMs":1000,"tags":[{"key":"momentary_lufs","value":"-23.0"}]}]}`, nil},
		{"not a document", `[1,2]`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := TextsOf(json.RawMessage(c.doc))
			if len(got) != len(c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("text %d: got %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestCuesNeverStackAndHaveALength(t *testing.T) {
	texts := []Text{
		{KindSpeech, 0, 3000, "one"},
		{KindScreen, 500, 900, "not speech"},
		{KindSpeech, 2000, 2000, "two"},
		{KindSpeech, 5000, 6000, "three"},
	}
	got := Cues(texts, KindSpeech)
	want := []Cue{{0, 2000, "one"}, {2000, 2500, "two"}, {5000, 6000, "three"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("cue %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestCaptionFilesReadByFFmpeg writes WebVTT and SRT and has ffmpeg, a
// reader nobody here wrote, convert each to the other: the cues' times and
// texts must come back.
func TestCaptionFilesReadByFFmpeg(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required (scripts/deps.sh test installs it)")
	}
	cues := []Cue{{1500, 4000, "hello <world> & you"}, {3725000, 3726250, "an hour later"}}
	dir := t.TempDir()
	var vtt, srt bytes.Buffer
	if err := WriteWebVTT(&vtt, cues, "X-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000", 0); err != nil {
		t.Fatal(err)
	}
	if err := WriteSRT(&srt, cues); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name, to string
		data     []byte
		want     []string
	}{
		{"in.vtt", "srt", vtt.Bytes(), []string{"00:00:01,500 --> 00:00:04,000", "hello <world> & you", "01:02:05,000 --> 01:02:06,250", "an hour later"}},
		{"in.srt", "webvtt", srt.Bytes(), []string{"00:01.500 --> 00:04.000", "01:02:05.000 --> 01:02:06.250", "an hour later"}},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ffmpeg", "-v", "error", "-i", p, "-f", f.to, "-").CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg read %s: %v\n%s\n%s", f.name, err, out, f.data)
		}
		for _, w := range f.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("ffmpeg's reading of %s lacks %q:\n%s", f.name, w, out)
			}
		}
	}
}
