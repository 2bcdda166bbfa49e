package alerts

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/protocol"
)

// events records a core's decisions as "raise <rule> <start>-<end>" and
// "resolve <rule> <start>-<end>".
type events struct{ got []string }

func (e *events) raise(r *Rule, ep *episode) error {
	e.got = append(e.got, fmt.Sprintf("raise %s %d-%d at %d", r.ID, ep.start, ep.end, ep.trueAt))
	return nil
}

func (e *events) resolve(r *Rule, ep *episode) error {
	e.got = append(e.got, fmt.Sprintf("resolve %s %d-%d", r.ID, ep.start, ep.end))
	return nil
}

func mustRule(t *testing.T, id, body string) *Rule {
	t.Helper()
	nr, err := ParseRule([]byte(body), ParseOptions{})
	if err != nil {
		t.Fatalf("rule %s: %v", body, err)
	}
	r := nr.Rule
	r.ID = id
	return &r
}

func doc(t *testing.T, d *protocol.Document) *output {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return newOutput("", 0, 0, b)
}

func utterance(start, end int64, text string) protocol.Series {
	return protocol.Series{StartTimeMs: start, StopTimeMs: end, Tags: []protocol.Tag{{Key: "utterance"}},
		Words: []protocol.Word{{Word: text, BestPath: true}}}
}

func TestCoreKeywordAlertsMergeWithinTheCooldownAndResolveOnBounds(t *testing.T) {
	r := mustRule(t, "rule-k", `{"name": "fire", "condition": {"type": "keyword", "phrase": "Fire!  exit"}, "cooldown": "5s"}`)
	ev := &events{}
	c := newCore("job-1", map[string]string{"t-stt": "stt", "t-loud": "loudness"}, []*Rule{r}, ev)
	at := time.Now()
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	step(c.bound("t-stt", 0, false))
	step(c.bound("t-loud", 0, false))
	step(c.output(at, "t-stt", doc(t, &protocol.Document{Series: []protocol.Series{utterance(1000, 2500, "the fire exit is there")}})))
	step(c.output(at, "t-stt", doc(t, &protocol.Document{Series: []protocol.Series{utterance(3000, 4000, "no fire here"), utterance(6000, 7000, "FIRE, exit now")}})))
	// The loudness task's bound does not hold the keyword rule back: stt
	// feeds it.
	step(c.bound("t-stt", 11000, false))
	step(c.bound("t-stt", 12500, false))
	step(c.output(at, "t-stt", doc(t, &protocol.Document{Series: []protocol.Series{utterance(20000, 21000, "fire exit")}})))
	step(c.bound("t-stt", 30000, true))
	want := []string{"raise rule-k 1000-2500 at 1000", "resolve rule-k 1000-7000", "raise rule-k 20000-21000 at 20000", "resolve rule-k 20000-21000"}
	if strings.Join(ev.got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(ev.got, "\n"), strings.Join(want, "\n"))
	}
	if c.allDone() {
		t.Fatal("allDone with the loudness task still going")
	}
}

func TestCoreSilenceRaisesOnceItHasLastedMinDuration(t *testing.T) {
	r := mustRule(t, "rule-s", `{"name": "dead air", "condition": {"type": "silence", "min_duration": "3s"}, "cooldown": "2s"}`)
	ev := &events{}
	c := newCore("job-1", map[string]string{"t-sil": "silence"}, []*Rule{r}, ev)
	at := time.Now()
	silence := func(start, end int64) *output {
		return doc(t, &protocol.Document{Series: []protocol.Series{{StartTimeMs: start, StopTimeMs: end, Tags: []protocol.Tag{{Key: "silence"}}}}})
	}
	for _, f := range []func() error{
		func() error { return c.output(at, "t-sil", silence(0, 1000)) },    // too short
		func() error { return c.bound("t-sil", 5000, false) },              // nothing open
		func() error { return c.output(at, "t-sil", silence(5000, 6000)) }, // pieces of one open silence
		func() error { return c.output(at, "t-sil", silence(6000, 7000)) },
		func() error { return c.output(at, "t-sil", silence(7000, 8500)) }, // 3.5 s: raised
		func() error { return c.output(at, "t-sil", silence(8500, 9000)) },
		func() error { return c.bound("t-sil", 10000, false) },
		func() error { return c.bound("t-sil", 11000, false) }, // 9000 + 2000 cool-down: resolved
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"raise rule-s 5000-8500 at 8000", "resolve rule-s 5000-9000"}
	if strings.Join(ev.got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(ev.got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCoreLoudnessRunsBreakOnALevelInRange(t *testing.T) {
	r := mustRule(t, "rule-l", `{"name": "quiet", "condition": {"type": "loudness", "measure": "momentary", "min_lufs": -40, "min_duration": "2s"}, "cooldown": "0s"}`)
	ev := &events{}
	c := newCore("job-1", map[string]string{"t": "loudness"}, []*Rule{r}, ev)
	at := time.Now()
	piece := func(start int64, level string) *output {
		return doc(t, &protocol.Document{Series: []protocol.Series{{StartTimeMs: start, StopTimeMs: start + 900,
			Tags: []protocol.Tag{{Key: "momentary_lufs", Value: level}, {Key: "short_term_lufs", Value: "-20.0"}}}}})
	}
	levels := []string{"-20.0", "-50.0", "-inf", "-20.0", "-45.0", "-60.0", "-inf", "-19.0"}
	for i, l := range levels {
		if err := c.output(at, "t", piece(int64(i)*1000, l)); err != nil {
			t.Fatal(err)
		}
		if err := c.bound("t", int64(i+1)*1000, false); err != nil {
			t.Fatal(err)
		}
	}
	// 1000–2900 is under 2 s; 4000–6900 raises at 6000 and resolves once
	// the bound passes its end.
	want := []string{"raise rule-l 4000-6900 at 6000", "resolve rule-l 4000-6900"}
	if strings.Join(ev.got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(ev.got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCoreRulesSeeOnlyRecordsFromTheirCreation(t *testing.T) {
	r := mustRule(t, "rule-o", `{"name": "ocr", "condition": {"type": "ocr", "pattern": "(?i)breaking\\s+news"}}`)
	r.CreatedAt = time.Unix(1000, 0)
	ev := &events{}
	c := newCore("job-1", map[string]string{"t": "ocr"}, []*Rule{r}, ev)
	line := func(start int64, text string) *output {
		return doc(t, &protocol.Document{Series: []protocol.Series{{StartTimeMs: start, StopTimeMs: start + 500, Object: &protocol.Object{Type: "text", Text: text}}}})
	}
	if err := c.output(time.Unix(999, 0), "t", line(0, "BREAKING NEWS")); err != nil {
		t.Fatal(err)
	}
	if err := c.output(time.Unix(1001, 0), "t", line(60000, "weather")); err != nil {
		t.Fatal(err)
	}
	if err := c.output(time.Unix(1002, 0), "t", line(61000, "Breaking   news: rates")); err != nil {
		t.Fatal(err)
	}
	if err := c.finish(); err != nil {
		t.Fatal(err)
	}
	want := []string{"raise rule-o 61000-61500 at 61000", "resolve rule-o 61000-61500"}
	if strings.Join(ev.got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(ev.got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCoreDetectionsAndFingerprints(t *testing.T) {
	faces := mustRule(t, "rule-d", `{"name": "crowd", "condition": {"type": "detection", "label": "face", "min_count": 2}}`)
	jingle := mustRule(t, "rule-f", `{"name": "jingle", "condition": {"type": "fingerprint", "reference": "Station Jingle", "min_score": 0.5}}`)
	ev := &events{}
	c := newCore("job-1", map[string]string{"t": "faces"}, []*Rule{faces, jingle}, ev)
	face := func(at int64) protocol.Series {
		return protocol.Series{StartTimeMs: at, StopTimeMs: at + 40, Object: &protocol.Object{Type: "face", Label: "face"}}
	}
	at := time.Now()
	for _, o := range []*output{
		doc(t, &protocol.Document{Series: []protocol.Series{face(0), face(40)}}),      // one face per frame
		doc(t, &protocol.Document{Series: []protocol.Series{face(1000), face(1000)}}), // two in one frame
		doc(t, &protocol.Document{Series: []protocol.Series{{StartTimeMs: 5000, StopTimeMs: 9000, Object: &protocol.Object{Type: "fingerprint", Label: "station jingle", EntityID: "fp-1", Confidence: 0.4}}}}),
		doc(t, &protocol.Document{Series: []protocol.Series{{StartTimeMs: 15000, StopTimeMs: 19000, Object: &protocol.Object{Type: "fingerprint", Label: "station jingle", EntityID: "fp-1", Confidence: 0.9}}}}),
	} {
		if err := c.output(at, "t", o); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"raise rule-d 1000-1040 at 1000", "raise rule-f 15000-19000 at 15000"}
	if strings.Join(ev.got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(ev.got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAlertIDIsStableAndDistinct(t *testing.T) {
	a := AlertID("rule-1", "job:j", 1000)
	if a != AlertID("rule-1", "job:j", 1000) || len(a) != len("al-")+16 {
		t.Fatalf("AlertID not stable or of the wrong shape: %s", a)
	}
	for _, b := range []string{AlertID("rule-2", "job:j", 1000), AlertID("rule-1", "job:k", 1000), AlertID("rule-1", "job:j", 1001)} {
		if b == a {
			t.Fatalf("two alerts share id %s", a)
		}
	}
}
