package results

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/weir-media/weir/protocol"
)

// Kinds of Text.
const (
	// KindSpeech is an utterance: words spoken, from a transcript.
	KindSpeech = "speech"
	// KindScreen is a line of text read on screen (OCR).
	KindScreen = "screen"
	// KindKeyword is a spotted keyword or phrase.
	KindKeyword = "keyword"
)

// Text is one time-coded piece of text an engine found: an utterance, a
// line read on screen or a spotted keyword. Times are milliseconds on the
// source's timeline.
type Text struct {
	Kind    string `json:"kind"`
	StartMs int64  `json:"start_ms"`
	EndMs   int64  `json:"end_ms"`
	Text    string `json:"text"`
}

// Texts reads the texts of one result document, in the order of its
// series:
//
//   - a series tagged "utterance" is an utterance whose text is its one
//     word (weir's stt writes each utterance so, followed by a series per
//     word, which are then not read again);
//   - a series whose object is of type "text" is a line on screen;
//   - a series whose object is of type "keyword" is a spotted phrase;
//   - a document whose other series hold words (an external recogniser's
//     per-word transcript) is one utterance per run of words, split
//     where the gap between two words passes MaxWordGapMs.
//
// Everything else (loudness series, detections, scene tags) has no text.
func Texts(doc *protocol.Document) []Text {
	if doc == nil {
		return nil
	}
	var out []Text
	var words []protocol.Series
	utterances := false
	for _, s := range doc.Series {
		switch {
		case hasTag(s, "utterance"):
			utterances = true
			if w := bestWord(s); w != "" {
				out = append(out, Text{Kind: KindSpeech, StartMs: s.StartTimeMs, EndMs: s.StopTimeMs, Text: w})
			}
		case s.Object != nil && s.Object.Type == "text":
			if t := clean(s.Object.Text); t != "" {
				out = append(out, Text{Kind: KindScreen, StartMs: s.StartTimeMs, EndMs: s.StopTimeMs, Text: t})
			}
		case s.Object != nil && s.Object.Type == "keyword":
			t := clean(s.Object.Text)
			if t == "" {
				t = clean(s.Object.Label)
			}
			if t != "" {
				out = append(out, Text{Kind: KindKeyword, StartMs: s.StartTimeMs, EndMs: s.StopTimeMs, Text: t})
			}
		case s.Object == nil && len(s.Words) > 0:
			words = append(words, s)
		}
	}
	if !utterances {
		out = append(out, joinWords(words)...)
	}
	slices.SortStableFunc(out, func(a, b Text) int { return int(a.StartMs - b.StartMs) })
	return out
}

// MaxWordGapMs is the silence between two words of a per-word transcript
// that starts a new utterance.
const MaxWordGapMs = 1000

// joinWords makes utterances of per-word series.
func joinWords(series []protocol.Series) []Text {
	var out []Text
	var cur *Text
	for _, s := range series {
		w := bestWord(s)
		if w == "" {
			continue
		}
		if cur != nil && s.StartTimeMs-cur.EndMs <= MaxWordGapMs && s.StartTimeMs >= cur.StartMs {
			cur.Text += " " + w
			cur.EndMs = max(cur.EndMs, s.StopTimeMs)
			continue
		}
		out = append(out, Text{Kind: KindSpeech, StartMs: s.StartTimeMs, EndMs: s.StopTimeMs, Text: w})
		cur = &out[len(out)-1]
	}
	return out
}

// TextsOf reads the texts of a stored result's content; content that is
// not a vtn-standard document has none.
func TextsOf(content json.RawMessage) []Text {
	var doc protocol.Document
	if len(content) == 0 || json.Unmarshal(content, &doc) != nil {
		return nil
	}
	return Texts(&doc)
}

func hasTag(s protocol.Series, key string) bool {
	for _, t := range s.Tags {
		if t.Key == key {
			return true
		}
	}
	return false
}

// bestWord is the series' best-path word, or its first when none is
// marked.
func bestWord(s protocol.Series) string {
	if len(s.Words) == 0 {
		return ""
	}
	for _, w := range s.Words {
		if w.BestPath {
			return clean(w.Word)
		}
	}
	return clean(s.Words[0].Word)
}

// clean collapses white space, so a text is one line.
func clean(s string) string { return strings.Join(strings.Fields(s), " ") }
