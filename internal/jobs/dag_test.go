package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// task is a task of a test DAG: engineId, payload and ioFolders written
// as "in:ref:mode" / "out:ref:mode".
func task(id string, payload map[string]any, folders ...string) map[string]any {
	t := map[string]any{"engineId": id}
	if payload != nil {
		t["payload"] = payload
	}
	fs := []any{}
	for _, f := range folders {
		p := strings.Split(f, ":")
		typ := map[string]string{"in": "input", "out": "output"}[p[0]]
		fs = append(fs, map[string]any{"referenceId": p[1], "mode": p[2], "type": typ})
	}
	t["ioFolders"] = fs
	return t
}

// dagBody is a request of tasks and routes ("parent>child").
func dagBody(t *testing.T, tasks []map[string]any, routes ...string) string {
	t.Helper()
	rs := []any{}
	for _, r := range routes {
		p, c, _ := strings.Cut(r, ">")
		rs = append(rs, map[string]any{"parentIoFolderReferenceId": p, "childIoFolderReferenceId": c})
	}
	b, err := json.Marshal(map[string]any{"tasks": tasks, "routes": rs, "title": "dag"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fullDAG is the two examples of docs/results.md in one job: scenes →
// people on the frames at scene changes, stt → keywords, and probe on the
// chunker's chunks, with an aggregator and an output writer.
func fullDAG(t *testing.T) string {
	return dagBody(t, []map[string]any{
		task("adapter", map[string]any{"vod": "vod-3e87dd00aab5"}, "out:src:stream"),
		task("chunker", map[string]any{"duration": "5s"}, "in:chunkIn:stream", "out:chunks:chunk"),
		task("scenes", nil, "in:scenesIn:stream", "out:scenesOut:chunk"),
		task("people", map[string]any{"threshold": 0.7}, "in:peopleIn:chunk", "out:peopleOut:chunk"),
		task("stt", nil, "in:sttIn:stream", "out:sttOut:chunk"),
		task("keywords", nil, "in:kwIn:chunk", "out:kwOut:chunk"),
		task("probe", nil, "in:probeIn:chunk", "out:probeOut:chunk"),
		task("aggregator", map[string]any{"window": "2s"}, "in:aggIn:chunk"),
		task("output-writer", nil, "in:owIn:chunk"),
	}, "src>chunkIn", "src>scenesIn", "src>sttIn", "scenesOut>peopleIn", "sttOut>kwIn", "chunks>probeIn",
		"peopleOut>owIn", "kwOut>owIn", "probeOut>aggIn", "peopleOut>aggIn")
}

// TestParseDAGMapsTasksOntoTheJob: the adapter is the source, the chunker
// the chunking, the aggregator the aggregate, each engine task an engine
// (with its options and defaults), and a route from an engine the child's
// input, resolved to frames or documents; the DAG is kept and the stored
// form reads back unchanged.
func TestParseDAGMapsTasksOntoTheJob(t *testing.T) {
	req, err := ParseRequest(strings.NewReader(fullDAG(t)))
	if err != nil {
		t.Fatal(err)
	}
	if req.Source != (Source{VOD: "vod-3e87dd00aab5"}) || req.Chunking.Duration != "5s" || req.Chunking.FrameRate != 1 ||
		req.Aggregate.Window != "2s" || req.Aggregate.StallTimeout != "30s" || req.Title != "dag" {
		t.Fatalf("source %+v chunking %+v aggregate %+v", req.Source, req.Chunking, req.Aggregate)
	}
	if got := req.EngineNames(); !reflect.DeepEqual(got, []string{"scenes", "people", "stt", "keywords", "probe"}) {
		t.Fatalf("engines %v", got)
	}
	if len(req.Tasks) != 9 || len(req.Routes) != 10 {
		t.Fatalf("the DAG is not kept: %d tasks, %d routes", len(req.Tasks), len(req.Routes))
	}
	if _, err := req.ResolveEngines(context.Background(), newTestCatalog(t, openMeta(t))); err != nil {
		t.Fatal(err)
	}
	want := map[string]*EngineInput{
		"people":   {From: "scenes", Kind: RouteFrames, OutputType: "scene"},
		"keywords": {From: "stt", Kind: RouteDocuments, OutputType: "transcript"},
	}
	for _, e := range req.Engines {
		if !reflect.DeepEqual(e.Input, want[e.Name]) {
			t.Errorf("%s reads %+v, want %+v", e.Name, e.Input, want[e.Name])
		}
	}
	if p, _ := req.Engine("people"); p.Options["threshold"] != 0.7 || p.Options["max_people"] != int64(20) || p.Policy.MaxInFlight != DefaultMaxInFlight {
		t.Errorf("people: options %v policy %+v", p.Options, p.Policy)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(back); string(again) != string(raw) {
		t.Fatalf("stored form changed:\n%s\n%s", raw, again)
	}
}

// TestParseDAGWithoutChunkerOrAggregator: a DAG of stream engines only
// needs no chunker; the defaults fill chunking and aggregate.
func TestParseDAGWithoutChunkerOrAggregator(t *testing.T) {
	body := dagBody(t, []map[string]any{
		task("adapter", map[string]any{"live": "live-616cd0cb2f45"}, "out:src:stream"),
		task("stt", nil, "in:a:stream", "out:b:chunk"),
		task("keywords", map[string]any{"words": 1}, "in:c:chunk"),
	}, "src>a", "b>c")
	req, err := ParseRequest(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if req.Source.Live != "live-616cd0cb2f45" || req.Chunking.Duration != DefaultChunkDuration.String() || req.Aggregate.Window != DefaultWindow.String() {
		t.Fatalf("%+v", req)
	}
	if k, _ := req.Engine("keywords"); k.Input == nil || k.Input.From != "stt" {
		t.Fatalf("keywords reads %+v", k.Input)
	}
}

// TestParseDAGNamesTheBadTaskOrRoute: each problem of a DAG names the
// task or route at fault.
func TestParseDAGNamesTheBadTaskOrRoute(t *testing.T) {
	adapter := task("adapter", map[string]any{"vod": "vod-1"}, "out:src:stream")
	chunker := task("chunker", nil, "in:ci:stream", "out:co:chunk")
	scenes := task("scenes", nil, "in:si:stream", "out:so:chunk")
	stt := task("stt", nil, "in:ti:stream", "out:to:chunk")
	cases := []struct {
		name, body string
		want       []string
	}{
		{"no tasks", `{"tasks": []}`, []string{"tasks: is required"}},
		{"mixed forms", `{"source": {"vod": "v"}, "tasks": [], "routes": []}`, []string{"source: a task DAG gives it as a task (the adapter's payload)"}},
		{"unknown task member", `{"tasks": [{"engineId": "adapter", "engine": "x", "ioFolders": []}]}`, []string{"tasks[0].engine: unknown member; tasks[0] takes engineId, ioFolders, payload, policy"}},
		{"unknown route member", `{"tasks": [], "routes": [{"parent": "a"}]}`, []string{"routes[0].parent: unknown member; routes[0] takes childIoFolderReferenceId, parentIoFolderReferenceId"}},
		{"no adapter", dagBody(t, []map[string]any{scenes}), []string{"tasks: has no adapter task"}},
		{"engine twice", dagBody(t, []map[string]any{adapter, scenes, task("scenes", nil, "in:x:stream")}, "src>si", "src>x"),
			[]string{"tasks[2].engineId: scenes is already tasks[1]"}},
		{"bad engine name", dagBody(t, []map[string]any{adapter, task("Scenes!", nil, "in:si:stream")}, "src>si"),
			[]string{`tasks[1].engineId: "Scenes!" is not an engine name`}},
		{"bad folder", dagBody(t, []map[string]any{adapter, task("scenes", nil, "sideways:si:batch", "in:si:stream")}, "src>si"),
			[]string{`tasks[1].ioFolders[0].mode: must be "stream" or "chunk", got "batch"`, `tasks[1].ioFolders[0].type: must be "input" or "output", got ""`,
				"tasks[1].ioFolders[1].referenceId: si is already tasks[1].ioFolders[0]"}},
		{"dangling reference", dagBody(t, []map[string]any{adapter, scenes}, "src>si", "so>ocrIn"),
			[]string{`routes[1].childIoFolderReferenceId: no ioFolder is called "ocrIn" (a dangling reference)`}},
		{"route against the folders' types", dagBody(t, []map[string]any{adapter, scenes}, "si>src"),
			[]string{"routes[0].parentIoFolderReferenceId: si is an input folder of tasks[1] (scenes)", "routes[0].childIoFolderReferenceId: src is an output folder of tasks[0] (adapter)"}},
		{"modes differ", dagBody(t, []map[string]any{adapter, task("scenes", nil, "in:si:chunk")}, "src>si"),
			[]string{"routes[0]: joins a stream folder (src of tasks[0] (adapter)) to a chunk folder (si of tasks[1] (scenes))"}},
		{"engine not routed", dagBody(t, []map[string]any{adapter, scenes}),
			[]string{"tasks[1].ioFolders: tasks[1] (scenes): 0 routes lead into its input folder si"}},
		{"two inputs", dagBody(t, []map[string]any{adapter, task("scenes", nil, "in:a:stream", "in:b:stream")}, "src>a", "src>b"),
			[]string{"tasks[1].ioFolders: tasks[1] (scenes) has 2 input folders"}},
		{"cycle", dagBody(t, []map[string]any{adapter, chunker, task("people", nil, "in:pi:chunk", "out:po:chunk"),
			task("keywords", nil, "in:ki:chunk", "out:ko:chunk"), task("probe", nil, "in:bi:chunk", "out:bo:chunk")},
			"src>ci", "bo>pi", "po>ki", "ko>bi"),
			[]string{"routes[1]: the engines read each other's outputs in a cycle: "}},
		{"chunker from an engine", dagBody(t, []map[string]any{adapter, scenes, task("chunker", nil, "in:ci:chunk", "out:co:chunk")}, "src>si", "so>ci"),
			[]string{"routes[1]: tasks[2] (chunker) cuts the source: route the adapter's stream output to it, not scenes's"}},
		{"stream engine on chunks", dagBody(t, []map[string]any{adapter, chunker, task("scenes", nil, "in:si:chunk")}, "src>ci", "co>si"),
			[]string{"tasks[2].engineId: engine scenes is a stream engine: route the adapter's stream output to it"}},
		{"chunk engine on the stream", dagBody(t, []map[string]any{adapter, task("probe", nil, "in:pi:stream")}, "src>pi"),
			[]string{"tasks[1].engineId: engine probe is a chunk engine: route the chunker's chunk output to it"}},
		{"unknown engine", dagBody(t, []map[string]any{adapter, chunker, task("faces", nil, "in:fi:chunk")}, "src>ci", "co>fi"),
			[]string{"tasks[2].engineId: no engine is called faces; GET /engines lists them"}},
		{"no output the child reads", dagBody(t, []map[string]any{adapter, stt, task("people", nil, "in:pi:chunk")}, "src>ti", "to>pi"),
			[]string{"routes[1]: engine stt writes transcript, and engine people reads image/jpeg: pictures are cut only at the scene changes of an engine that writes scene"}},
		{"documents the parent does not write", dagBody(t, []map[string]any{adapter, scenes, task("keywords", nil, "in:ki:chunk")}, "src>si", "so>ki"),
			[]string{"routes[1]: engine scenes writes scene, and engine keywords reads application/vnd.vtn.transcript+json: route an engine that writes transcript to it"}},
		{"bad payloads", dagBody(t, []map[string]any{task("adapter", map[string]any{"vod": "a/b"}, "out:src:stream"),
			task("chunker", map[string]any{"frame_rate": -1, "size": 3}, "in:ci:stream", "out:co:chunk"),
			task("people", map[string]any{"threshold": 2}, "in:pi:chunk"), task("aggregator", map[string]any{"window": "1ms"}, "in:ai:chunk")},
			"src>ci", "co>pi"),
			[]string{"tasks[1].payload.size: unknown member; tasks[1].payload takes"}},
		{"bad values", dagBody(t, []map[string]any{task("adapter", map[string]any{"vod": "a/b"}, "out:src:stream"),
			task("chunker", map[string]any{"frame_rate": -1}, "in:ci:stream", "out:co:chunk"),
			task("people", map[string]any{"threshold": 2}, "in:pi:chunk"), task("aggregator", map[string]any{"window": "1ms"}, "in:ai:chunk")},
			"src>ci", "co>pi"),
			[]string{"tasks[0].payload.vod: is not a stream id", "tasks[1].payload.frame_rate: must be above 0", "tasks[3].payload.window: must be between 1s and 1h0m0s"}},
		{"bad option", dagBody(t, []map[string]any{adapter, chunker, task("people", map[string]any{"threshold": 2}, "in:pi:chunk")}, "src>ci", "co>pi"),
			[]string{"tasks[2].payload.threshold: "}},
		{"aggregator reads the chunker", dagBody(t, []map[string]any{adapter, chunker, task("aggregator", nil, "in:ai:chunk")}, "src>ci", "co>ai"),
			[]string{"routes[1]: tasks[2] (aggregator) reads engines' outputs, not chunker's"}},
		{"policy on the adapter", `{"tasks": [{"engineId": "adapter", "payload": {"vod": "v"}, "policy": {"retries": 1}, "ioFolders": [{"referenceId": "s", "mode": "stream", "type": "output"}]}]}`,
			[]string{"tasks[0].policy: only an engine task has a flow policy"}},
		{"bad policy", dagBody(t, []map[string]any{adapter, chunker, {"engineId": "probe", "policy": map[string]any{"retries": 99},
			"ioFolders": []any{map[string]any{"referenceId": "pi", "mode": "chunk", "type": "input"}}}}, "src>ci", "co>pi"),
			[]string{"tasks[2].policy.retries: must be between 0 and 10, got 99"}},
	}
	cat := newTestCatalog(t, openMeta(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := ParseRequest(strings.NewReader(c.body))
			if err == nil {
				_, err = req.ResolveEngines(context.Background(), cat)
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want a *RequestError", err, err)
			}
			for _, w := range c.want {
				found := false
				for _, p := range re.Problems {
					found = found || strings.HasPrefix(p.Error(), w)
				}
				if !found {
					t.Errorf("no problem starts with %q; got:\n%s", w, strings.ReplaceAll(re.Error(), "; ", "\n"))
				}
			}
		})
	}
}

// TestSimpleFormRefusesAnEngineThatReadsOutputs: keywords reads other
// engines' outputs, so it only runs behind a route.
func TestSimpleFormRefusesAnEngineThatReadsOutputs(t *testing.T) {
	req, err := ParseRequest(strings.NewReader(`{"source": {"vod": "v"}, "engines": [{"name": "keywords"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = req.ResolveEngines(context.Background(), newTestCatalog(t, openMeta(t)))
	if err == nil || !strings.Contains(err.Error(), "engines[0].name: engine keywords reads other engines' outputs (transcript), not media: give the job as a task DAG") {
		t.Fatalf("got %v", err)
	}
}
