package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRequestFillsDefaults(t *testing.T) {
	req, err := ParseRequest(strings.NewReader(`{"source": {"vod": " vod-3e87dd00aab5 "},
		"engines": [{"name": "people", "options": {"threshold": 0.7}}, {"name": "probe", "policy": {"retries": 0, "chunk_timeout": "90"}}],
		"title": " Match "}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Request{
		Source: Source{VOD: "vod-3e87dd00aab5"},
		Engines: []EngineRequest{
			{Name: "people", Options: map[string]any{"threshold": 0.7},
				Policy: FlowPolicy{MaxInFlight: 2, MaxBacklog: 3, Retries: 2, ChunkTimeout: "2m0s"}},
			{Name: "probe", Policy: FlowPolicy{MaxInFlight: 2, MaxBacklog: 3, Retries: 0, ChunkTimeout: "1m30s"}},
		},
		Chunking:  Chunking{Duration: "10s", FrameRate: 1, Audio: "wav"},
		Aggregate: Aggregate{Window: "5s", StallTimeout: "30s"},
		Title:     "Match",
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("parsed\n got %+v\nwant %+v", req, want)
	}
	if req.Source.Kind() != SourceVOD || req.Chunking.ChunkDuration().Seconds() != 10 || req.Engines[1].Policy.Timeout().Seconds() != 90 {
		t.Fatalf("kind %q duration %v timeout %v", req.Source.Kind(), req.Chunking.ChunkDuration(), req.Engines[1].Policy.Timeout())
	}
	// The stored form reads back as it is: an explicit "no retries" stays.
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("DecodeSpec(%s)\n got %+v\nwant %+v", raw, back, want)
	}
}

// Every problem names the member at fault.
func TestParseRequestNamesEveryProblem(t *testing.T) {
	const probe = `"engines": [{"name": "probe"}]`
	cases := []struct {
		name, body string
		want       []string // each a problem's start: "field: ..."
	}{
		{"empty", ``, []string{"the request is empty"}},
		{"not an object", `[1]`, []string{"the request must be a JSON object, got an array"}},
		{"syntax", `{"source": {"vod": "a"},}`, []string{"malformed JSON at byte"}},
		{"trailing data", `{"source": {"vod": "a"}, ` + probe + `} {}`, []string{"malformed JSON: data after the first JSON value"}},
		{"unknown member", `{"source": {"vod": "v"}, ` + probe + `, "priority": 1}`, []string{"priority: unknown member; request takes aggregate, chunking, engines, routes, source, tasks, title"}},
		{"unknown nested member", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "polcy": {}}]}`, []string{"engines[0].polcy: unknown member; engines[0] takes name, options, policy"}},
		{"unknown policy member", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"max_inflight": 1}}]}`, []string{"engines[0].policy.max_inflight: unknown member"}},
		{"unknown source", `{"source": {"file": "/etc/passwd"}, ` + probe + `}`, []string{"source.file: unknown member; source takes live, topic, url, vod"}},
		{"no source", `{` + probe + `}`, []string{"source: is required"}},
		{"two sources", `{"source": {"vod": "v", "url": "http://x/"}, ` + probe + `}`, []string{"source: give exactly one of vod, live, topic and url, got url and vod"}},
		{"bad stream id", `{"source": {"live": "a/b"}, ` + probe + `}`, []string{"source.live: is not a stream id"}},
		{"bad topic", `{"source": {"topic": "a b"}, ` + probe + `}`, []string{`source.topic: topic name "a b": character ' ' at 1`}},
		{"control topic", `{"source": {"topic": "control_jobs"}, ` + probe + `}`, []string{`source.topic: "control_jobs" is one of weir's control topics`}},
		{"ftp url", `{"source": {"url": "ftp://example.com/a.mp4"}, ` + probe + `}`, []string{`source.url: scheme must be http or https, got "ftp"`}},
		{"url without host", `{"source": {"url": "http:///a.mp4"}, ` + probe + `}`, []string{"source.url: must include a host"}},
		{"no engines", `{"source": {"vod": "v"}, "engines": []}`, []string{"engines: is required"}},
		{"engines not an array", `{"source": {"vod": "v"}, "engines": {"name": "probe"}}`, []string{"engines: must be an array, got an object"}},
		{"engine twice", `{"source": {"vod": "v"}, "engines": [{"name": "probe"}, {"name": "people"}, {"name": "probe"}]}`, []string{"engines[2].name: engine probe is already engines[0]"}},
		{"engine without name", `{"source": {"vod": "v"}, "engines": [{"options": {}}]}`, []string{"engines[0].name: is required"}},
		{"bad engine name", `{"source": {"vod": "v"}, "engines": [{"name": "Probe!"}]}`, []string{`engines[0].name: "Probe!" is not an engine name`}},
		{"name of the wrong type", `{"source": {"vod": "v"}, "engines": [{"name": 7}]}`, []string{"engines[0].name: must be a string, got the number 7"}},
		{"options not an object", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "options": [1]}]}`, []string{"engines[0].options: must be an object, got an array"}},
		{"huge option number", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "options": {"x": [1e999]}}]}`, []string{"engines[0].options.x[0]: is too large a number"}},
		{"in flight zero", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"max_in_flight": 0}}]}`, []string{"engines[0].policy.max_in_flight: must be between 1 and 64, got 0"}},
		{"in flight fractional", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"max_in_flight": 1.5}}]}`, []string{"engines[0].policy.max_in_flight: must be an integer between"}},
		{"in flight huge", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"max_in_flight": 99999999999999999999}}]}`, []string{"engines[0].policy.max_in_flight: must be an integer between"}},
		{"backlog", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"max_backlog": 1001}}]}`, []string{"engines[0].policy.max_backlog: must be between 1 and 1000, got 1001"}},
		{"retries", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"retries": -1}}]}`, []string{"engines[0].policy.retries: must be between 0 and 10, got -1"}},
		{"timeout", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"chunk_timeout": "2 minutes"}}]}`, []string{`engines[0].policy.chunk_timeout: duration "2 minutes": want Go syntax`}},
		{"timeout too long", `{"source": {"vod": "v"}, "engines": [{"name": "probe", "policy": {"chunk_timeout": "2h"}}]}`, []string{"engines[0].policy.chunk_timeout: must be between 1s and 1h0m0s, got 2h0m0s"}},
		{"chunk duration", `{"source": {"vod": "v"}, ` + probe + `, "chunking": {"duration": "0"}}`, []string{`chunking.duration: duration "0": must be positive`}},
		{"chunk duration short", `{"source": {"vod": "v"}, ` + probe + `, "chunking": {"duration": "100ms"}}`, []string{"chunking.duration: must be between 1s and 10m0s, got 100ms"}},
		{"frame rate", `{"source": {"vod": "v"}, ` + probe + `, "chunking": {"frame_rate": 0}}`, []string{"chunking.frame_rate: must be above 0 and at most 60"}},
		{"frame rate type", `{"source": {"vod": "v"}, ` + probe + `, "chunking": {"frame_rate": "1"}}`, []string{`chunking.frame_rate: must be a number, got "1"`}},
		{"scene", `{"source": {"vod": "v"}, ` + probe + `, "chunking": {"scene_threshold": 1.5}}`, []string{"chunking.scene_threshold: must be between 0 (off) and 1, got 1.5"}},
		{"audio", `{"source": {"vod": "v"}, ` + probe + `, "chunking": {"audio": "mp3"}}`, []string{`chunking.audio: must be "wav" (16 kHz mono) or "source" (the source's codec), got "mp3"`}},
		{"title", `{"source": {"vod": "v"}, ` + probe + `, "title": "` + strings.Repeat("x", 201) + `"}`, []string{"title: is 201 characters long, more than 200"}},
		{"title control", `{"source": {"vod": "v"}, ` + probe + `, "title": "a\u0007b"}`, []string{"title: has a control character at byte 1"}},
		{"window short", `{"source": {"vod": "v"}, ` + probe + `, "aggregate": {"window": "500ms"}}`, []string{"aggregate.window: must be between 1s and 1h0m0s, got 500ms"}},
		{"window malformed", `{"source": {"vod": "v"}, ` + probe + `, "aggregate": {"window": "soon"}}`, []string{`aggregate.window: duration "soon"`}},
		{"stall timeout", `{"source": {"vod": "v"}, ` + probe + `, "aggregate": {"stall_timeout": "2h"}}`, []string{"aggregate.stall_timeout: must be between 1s and 1h0m0s, got 2h0m0s"}},
		{"aggregate member", `{"source": {"vod": "v"}, ` + probe + `, "aggregate": {"width": "5s"}}`, []string{"aggregate.width: unknown member; aggregate takes stall_timeout, window"}},
		{"several at once", `{"source": {}, "engines": [], "chunking": {"audio": "mp3"}}`, []string{"source: is required", "engines: is required", "chunking.audio: must be"}},
		{"too large", `{"title": "` + strings.Repeat("x", MaxRequestBytes) + `"}`, []string{"the request is larger than 262144 bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest(strings.NewReader(c.body))
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want a *RequestError", err, err)
			}
			if len(re.Problems) != len(c.want) {
				t.Fatalf("problems %q, want %d of them", re.Error(), len(c.want))
			}
			for i, want := range c.want {
				if got := re.Problems[i].Error(); !strings.HasPrefix(got, want) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got, want)
				}
			}
		})
	}
}

func TestResolveEnginesParsesOptionsWithTheSpec(t *testing.T) {
	ctx := context.Background()
	cat := newTestCatalog(t, openMeta(t))
	req, err := ParseRequest(strings.NewReader(`{"source": {"vod": "v"}, "engines": [{"name": "probe"},
		{"name": "people", "options": {"max_people": 5, "window": "500ms"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := req.ResolveEngines(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[1].Spec.Name != "people" {
		t.Fatalf("entries %+v", entries)
	}
	want := map[string]any{"threshold": 0.5, "max_people": int64(5), "window": "500ms"}
	if !reflect.DeepEqual(req.Engines[1].Options, want) {
		t.Fatalf("people options %#v, want %#v", req.Engines[1].Options, want)
	}
	if len(req.Engines[0].Options) != 0 {
		t.Fatalf("probe options %#v, want none", req.Engines[0].Options)
	}

	for body, wants := range map[string][]string{
		`{"source": {"vod": "v"}, "engines": [{"name": "probe"}, {"name": "people", "options": {"threshold": 2, "colour": "red"}}]}`: {
			`engines[1].options.colour: engine people has no such option (it takes threshold, max_people, window)`,
			`engines[1].options.threshold: must be at most 1, got 2`,
		},
		`{"source": {"vod": "v"}, "engines": [{"name": "nosuch"}, {"name": "probe", "options": {"x": 1}}]}`: {
			`engines[0].name: no engine is called nosuch; GET /engines lists them`,
			`engines[1].options.x: engine probe takes no options`,
		},
		`{"source": {"vod": "v"}, "engines": [{"name": "people", "options": {"window": 5}}]}`: {
			`engines[0].options.window: want a duration such as "250ms" or "1m30s", got`,
		},
		`{"source": {"vod": "v"}, "engines": [{"name": "subtitles"}]}`: {
			`engines[0].name: engine subtitles reads text/vtt, none of which weir's chunker makes`,
		},
	} {
		req, err := ParseRequest(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = req.ResolveEngines(ctx, cat)
		var re *RequestError
		if !errors.As(err, &re) || len(re.Problems) != len(wants) {
			t.Fatalf("%s: error %v, want %d problems", body, err, len(wants))
		}
		for i, want := range wants {
			if got := re.Problems[i].Error(); !strings.HasPrefix(got, want) {
				t.Errorf("problem %d = %q, want it to start with %q", i, got, want)
			}
		}
	}

	req, err = ParseRequest(strings.NewReader(`{"source": {"vod": "v"}, "engines": [{"name": "probe"}, {"name": "ocr"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = req.ResolveEngines(ctx, cat)
	if !errors.Is(err, ErrEngineUnavailable) || !strings.Contains(err.Error(), "engines[1].name: engine ocr is unavailable: ") ||
		!strings.Contains(err.Error(), "weir-test-no-tesseract") {
		t.Fatalf("unavailable engine: %v", err)
	}
}

// TestAggregateDefaults: a request's aggregate member is normalized, and a
// job stored before aggregation existed gets the defaults when read.
func TestAggregateDefaults(t *testing.T) {
	req, err := ParseRequest(strings.NewReader(`{"source": {"vod": "v"}, "engines": [{"name": "probe"}],
		"aggregate": {"window": "2", "stall_timeout": " 1m30s "}}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Aggregate != (Aggregate{Window: "2s", StallTimeout: "1m30s"}) || req.Aggregate.WindowDuration() != 2*time.Second ||
		req.Aggregate.Stall() != 90*time.Second {
		t.Fatalf("aggregate %+v", req.Aggregate)
	}
	old, err := DecodeSpec(json.RawMessage(`{"source": {"vod": "v"}, "engines": [{"name": "probe"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if old.Aggregate.WindowDuration() != DefaultWindow || old.Aggregate.Stall() != DefaultStallTimeout {
		t.Fatalf("a stored job without aggregate: %v, %v", old.Aggregate.WindowDuration(), old.Aggregate.Stall())
	}
}

// TestNormalizedRequestSurvivesARoundTrip stores a normalized request as
// JSON and parses it again, as a job's spec is kept and read back by the
// runner that takes the job over: nothing may change, retries 0 included
// (an omitted member would come back as the default).
func TestNormalizedRequestSurvivesARoundTrip(t *testing.T) {
	req, err := ParseRequest(strings.NewReader(`{"source": {"vod": "vod-3e87dd00aab5"},
		"engines": [{"name": "probe", "policy": {"retries": 0}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseRequest(strings.NewReader(string(spec)))
	if err != nil {
		t.Fatalf("the stored spec is refused: %v\n%s", err, spec)
	}
	if !reflect.DeepEqual(again, req) {
		t.Errorf("spec read back as\n%+v\nwant\n%+v\n(stored: %s)", again, req, spec)
	}
}
