package alerts

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/weir-media/weir/internal/results"
	"github.com/weir-media/weir/protocol"
)

// observation is what one engine output says about a condition over a
// span of media time: that it holds there (a phrase said, loudness out of
// range), or that it does not (loudness in range).
type observation struct {
	start, end int64
	holds      bool
	// what, for an observation that holds, describes it: the summary's
	// words and the alert's details.
	what    string
	details map[string]any
}

// output is one engine_output as conditions read it.
type output struct {
	engine     string
	start, end int64
	content    json.RawMessage
	doc        *protocol.Document // nil when content is not a document
}

// newOutput reads an engine_output's content once for every rule.
func newOutput(engine string, start, end int64, content json.RawMessage) *output {
	o := &output{engine: engine, start: start, end: end, content: content}
	var doc protocol.Document
	if len(content) > 0 && content[0] == '{' && json.Unmarshal(content, &doc) == nil {
		o.doc = &doc
	}
	return o
}

// durational reports whether the condition must hold for a while
// (MinDuration) before it raises an alert.
func (c *Condition) durational() bool {
	switch c.Type {
	case CondLoudness, CondSilence, CondBlack:
		return true
	}
	return false
}

// defaultEngine is the built-in engine whose output the condition reads.
func (c *Condition) defaultEngine() string {
	switch c.Type {
	case CondKeyword:
		return "stt"
	case CondOCR:
		return "ocr"
	case CondFingerprint, CondLoudness, CondSilence, CondBlack:
		return c.Type
	}
	return ""
}

// observe reads what an output says about the condition.
func (c *Condition) observe(o *output) []observation {
	if c.Engine != "" && c.Engine != o.engine {
		return nil
	}
	switch c.Type {
	case CondKeyword:
		return c.observeTexts(o, func(t results.Text) bool {
			return (t.Kind == results.KindSpeech || t.Kind == results.KindKeyword) && hasPhrase(words(t.Text), c.phrase)
		}, "said")
	case CondOCR:
		return c.observeTexts(o, func(t results.Text) bool { return t.Kind == results.KindScreen && c.re.MatchString(t.Text) }, "on screen")
	}
	if o.doc == nil {
		return nil
	}
	switch c.Type {
	case CondFingerprint:
		return c.observeFingerprints(o.doc)
	case CondDetection:
		return c.observeDetections(o)
	case CondLoudness:
		return c.observeLoudness(o.doc)
	case CondSilence:
		return observeTagged(o.doc, func(s protocol.Series) bool { return tagValue(s, "silence") != nil }, "silence")
	case CondBlack:
		return observeTagged(o.doc, func(s protocol.Series) bool {
			v := tagValue(s, "kind")
			return v != nil && *v == "black"
		}, "black")
	}
	return nil
}

func (c *Condition) observeTexts(o *output, match func(results.Text) bool, verb string) []observation {
	var out []observation
	for _, t := range results.TextsOf(o.content) {
		if !match(t) {
			continue
		}
		out = append(out, observation{start: t.StartMs, end: max(t.EndMs, t.StartMs), holds: true,
			what:    fmt.Sprintf("%s: %q", verb, clip(t.Text, 160)),
			details: map[string]any{"text": clip(t.Text, 1000), "kind": t.Kind, "engine": o.engine}})
	}
	return out
}

// hasPhrase reports whether phrase occurs in ws, word by word.
func hasPhrase(ws, phrase []string) bool {
	for i := 0; i+len(phrase) <= len(ws); i++ {
		if slices.Equal(ws[i:i+len(phrase)], phrase) {
			return true
		}
	}
	return false
}

func (c *Condition) observeFingerprints(doc *protocol.Document) []observation {
	var out []observation
	for _, s := range doc.Series {
		ob := s.Object
		if ob == nil || ob.Type != "fingerprint" || (!strings.EqualFold(ob.Label, c.Reference) && ob.EntityID != c.Reference) {
			continue
		}
		if ob.Confidence < c.MinScore {
			continue
		}
		out = append(out, observation{start: s.StartTimeMs, end: max(s.StopTimeMs, s.StartTimeMs), holds: true,
			what:    fmt.Sprintf("fingerprint %q matched (score %.2f)", ob.Label, ob.Confidence),
			details: map[string]any{"reference": ob.Label, "reference_id": ob.EntityID, "score": ob.Confidence}})
	}
	return out
}

// observeDetections counts the objects labelled Label at each time of a
// result (the series sharing a start: one frame), and the document's own
// objects over the result's span.
func (c *Condition) observeDetections(o *output) []observation {
	type frame struct {
		start, end int64
		n          int
	}
	var frames []*frame
	byStart := map[int64]*frame{}
	for _, s := range o.doc.Series {
		if s.Object == nil || !c.counts(s.Object) {
			continue
		}
		f := byStart[s.StartTimeMs]
		if f == nil {
			f = &frame{start: s.StartTimeMs, end: s.StopTimeMs}
			byStart[s.StartTimeMs] = f
			frames = append(frames, f)
		}
		f.n++
		f.end = max(f.end, s.StopTimeMs)
	}
	if n := countObjects(o.doc.Object, c); n > 0 {
		frames = append(frames, &frame{start: o.start, end: o.end, n: n})
	}
	var out []observation
	for _, f := range frames {
		if f.n < c.MinCount {
			continue
		}
		out = append(out, observation{start: f.start, end: max(f.end, f.start), holds: true,
			what:    fmt.Sprintf("%d %s detections (at least %d)", f.n, c.Label, c.MinCount),
			details: map[string]any{"label": c.Label, "count": f.n, "min_count": c.MinCount, "engine": o.engine}})
	}
	return out
}

func (c *Condition) counts(ob *protocol.Object) bool {
	return strings.EqualFold(ob.Label, c.Label) || (ob.Label == "" && strings.EqualFold(ob.Type, c.Label))
}

func countObjects(objs []protocol.Object, c *Condition) int {
	n := 0
	for i := range objs {
		if c.counts(&objs[i]) {
			n++
		}
	}
	return n
}

// observeLoudness reads the loudness engine's series: a level outside
// the range holds, one inside does not.
func (c *Condition) observeLoudness(doc *protocol.Document) []observation {
	key := c.Measure + "_lufs"
	var out []observation
	for _, s := range doc.Series {
		v := tagValue(s, key)
		if v == nil {
			continue
		}
		level, err := strconv.ParseFloat(*v, 64)
		if err != nil || math.IsNaN(level) {
			continue
		}
		ob := observation{start: s.StartTimeMs, end: max(s.StopTimeMs, s.StartTimeMs)}
		switch {
		case c.MinLUFS != nil && level < *c.MinLUFS:
			ob.holds, ob.what = true, fmt.Sprintf("%s loudness %s LUFS, below %g LUFS", strings.ReplaceAll(c.Measure, "_", "-"), levelText(level), *c.MinLUFS)
		case c.MaxLUFS != nil && level > *c.MaxLUFS:
			ob.holds, ob.what = true, fmt.Sprintf("%s loudness %s LUFS, above %g LUFS", strings.ReplaceAll(c.Measure, "_", "-"), levelText(level), *c.MaxLUFS)
		}
		if ob.holds {
			ob.details = map[string]any{"measure": c.Measure, "level_lufs": levelText(level)}
		}
		out = append(out, ob)
	}
	return out
}

func levelText(v float64) string {
	if math.IsInf(v, -1) {
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// observeTagged reads interval series (silence, black): each that matches
// holds over its span.
func observeTagged(doc *protocol.Document, match func(protocol.Series) bool, what string) []observation {
	var out []observation
	for _, s := range doc.Series {
		if match(s) {
			out = append(out, observation{start: s.StartTimeMs, end: max(s.StopTimeMs, s.StartTimeMs), holds: true, what: what})
		}
	}
	return out
}

func tagValue(s protocol.Series, key string) *string {
	for i := range s.Tags {
		if s.Tags[i].Key == key {
			return &s.Tags[i].Value
		}
	}
	return nil
}

// clip cuts s to n characters, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
