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
		dagSeed,
		`{"tasks": [{"engineId": "adapter", "payload": {"url": "https://example.com/a.ts"}, "ioFolders": [{"referenceId": "s", "mode": "stream", "type": "output"}]},
		  {"engineId": "stt", "ioFolders": [{"referenceId": "a", "mode": "stream", "type": "input"}, {"referenceId": "b", "mode": "chunk", "type": "output"}]},
		  {"engineId": "keywords", "payload": {"keywords": ["x"]}, "policy": {"retries": 0}, "ioFolders": [{"referenceId": "c", "mode": "chunk", "type": "input"}]}],
		 "routes": [{"parentIoFolderReferenceId": "s", "childIoFolderReferenceId": "a"}, {"parentIoFolderReferenceId": "b", "childIoFolderReferenceId": "c"}]}`,
		`{"tasks": [{"engineId": "people", "ioFolders": [{"referenceId": "a", "mode": "chunk", "type": "input"}, {"referenceId": "b", "mode": "chunk", "type": "output"}]},
		  {"engineId": "probe", "ioFolders": [{"referenceId": "c", "mode": "chunk", "type": "input"}, {"referenceId": "d", "mode": "chunk", "type": "output"}]}],
		 "routes": [{"parentIoFolderReferenceId": "b", "childIoFolderReferenceId": "c"}, {"parentIoFolderReferenceId": "d", "childIoFolderReferenceId": "a"}]}`,
		`{"tasks": null, "routes": [{"parentIoFolderReferenceId": "", "childIoFolderReferenceId": null}], "source": {}}`,
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
		names := map[string]bool{}
		for _, e := range req.Engines {
			names[e.Name] = true
		}
		for _, e := range req.Engines {
			if e.Input != nil && (len(req.Tasks) == 0 || !names[e.Input.From] || e.Input.From == e.Name) {
				t.Fatalf("engine %s reads %+v, not an engine of the DAG", e.Name, e.Input)
			}
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

// dagSeed is the scenes → people and stt → keywords DAG of the tests.
const dagSeed = `{"tasks": [
  {"engineId": "adapter", "payload": {"vod": "vod-3e87dd00aab5"}, "ioFolders": [{"referenceId": "src", "mode": "stream", "type": "output"}]},
  {"engineId": "chunker", "payload": {"duration": "5s"}, "ioFolders": [{"referenceId": "ci", "mode": "stream", "type": "input"}, {"referenceId": "co", "mode": "chunk", "type": "output"}]},
  {"engineId": "scenes", "ioFolders": [{"referenceId": "si", "mode": "stream", "type": "input"}, {"referenceId": "so", "mode": "chunk", "type": "output"}]},
  {"engineId": "people", "payload": {"threshold": 0.7}, "ioFolders": [{"referenceId": "pi", "mode": "chunk", "type": "input"}]},
  {"engineId": "stt", "ioFolders": [{"referenceId": "ti", "mode": "stream", "type": "input"}, {"referenceId": "to", "mode": "chunk", "type": "output"}]},
  {"engineId": "keywords", "ioFolders": [{"referenceId": "ki", "mode": "chunk", "type": "input"}, {"referenceId": "ko", "mode": "chunk", "type": "output"}]},
  {"engineId": "probe", "ioFolders": [{"referenceId": "bi", "mode": "chunk", "type": "input"}]},
  {"engineId": "aggregator", "payload": {"window": "2s"}, "ioFolders": [{"referenceId": "ai", "mode": "chunk", "type": "input"}]},
  {"engineId": "output-writer", "ioFolders": [{"referenceId": "wi", "mode": "chunk", "type": "input"}]}],
 "routes": [
  {"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "ci"}, {"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "si"},
  {"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "ti"}, {"parentIoFolderReferenceId": "so", "childIoFolderReferenceId": "pi"},
  {"parentIoFolderReferenceId": "to", "childIoFolderReferenceId": "ki"}, {"parentIoFolderReferenceId": "co", "childIoFolderReferenceId": "bi"},
  {"parentIoFolderReferenceId": "ko", "childIoFolderReferenceId": "wi"}, {"parentIoFolderReferenceId": "ko", "childIoFolderReferenceId": "ai"}],
 "title": "dag"}`
