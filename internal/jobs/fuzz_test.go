package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRequest feeds ParseRequest any bytes: it must never panic, a
// refusal is always a *RequestError with at least one problem, and an
// accepted request is normalized (one source, engines within bounds,
// defaults set), survives ResolveEngines without panicking, and reads
// back from its stored form unchanged.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"source": {"vod": "vod-3e87dd00aab5"}, "engines": [{"name": "people", "options": {"threshold": 0.7}}]}`,
		`{"source": {"live": "live-1"}, "engines": [{"name": "probe", "policy": {"max_in_flight": 1, "max_backlog": 2, "retries": 0, "chunk_timeout": "30s"}}], "chunking": {"duration": "5", "frame_rate": 2, "scene_threshold": 0.3, "audio": "source"}}`,
		`{"source": {"topic": "stream_00000012"}, "engines": [{"name": "probe"}, {"name": "probe"}]}`,
		`{"source": {"url": "https://example.com/a.mp4"}, "engines": [{"name": "people", "options": {"window": "1m", "max_people": 1e400}}], "title": "x"}`,
		`{"source": {}, "engines": [], "chunking": {"frame_rate": -1}}`,
		`{"source": {"vod": "v"}, "engines": [{"name": "probe"}], "aggregate": {"window": "2.5", "stall_timeout": "1m"}}`,
		`[]`,
		`{"source": null, "engines": null}`,
		`{"engines": [{"name": "people", "options": {"a": [[[[{"b": 1}]]]]}}]}`,
	} {
		f.Add([]byte(seed))
	}
	cat := newTestCatalog(f, openMeta(f))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(strings.NewReader(string(body)))
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || len(re.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a *RequestError with problems", err, err)
			}
			return
		}
		if req.Source.Kind() == "" || len(req.Engines) == 0 || len(req.Engines) > MaxEngines || req.Chunking.ChunkDuration() == 0 ||
			req.Aggregate.WindowDuration() < MinWindow || req.Aggregate.Stall() < MinStallTimeout {
			t.Fatalf("accepted an unnormalized request %+v", req)
		}
		for _, e := range req.Engines {
			p := e.Policy
			if p.MaxInFlight < 1 || p.MaxBacklog < 1 || p.Retries < 0 || p.Timeout() == 0 {
				t.Fatalf("accepted policy %+v", p)
			}
		}
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("marshal %+v: %v", req, err)
		}
		back, err := DecodeSpec(raw)
		if err != nil {
			t.Fatalf("DecodeSpec(%s): %v", raw, err)
		}
		if again, _ := json.Marshal(back); string(again) != string(raw) {
			t.Fatalf("stored form changed:\n%s\n%s", raw, again)
		}
		before := req.Engines[0].Name
		if _, err := req.ResolveEngines(context.Background(), cat); err == nil && !reflect.DeepEqual(req.Engines[0].Name, before) {
			t.Fatalf("ResolveEngines renamed an engine")
		}
	})
}
