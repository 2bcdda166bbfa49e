package jobs

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/chunker"
	"github.com/weir-media/weir/internal/engines"
)

// This file reads the second form of POST /jobs: Veritone aiWARE's
// createJob form, a list of tasks with routes between their ioFolders,
// which lets one engine's output feed another. It maps the DAG onto
// weir's job: the adapter task is the job's source, the chunker task its
// chunking, the aggregator task its aggregate, each engine task one of its
// engines, and a route from an engine to another engine the child's
// EngineInput. The DAG itself is kept in the job's spec (Request.Tasks and
// Routes), for the console to draw.
//
//	{"tasks": [
//	   {"engineId": "adapter", "payload": {"vod": "vod-3e87dd00aab5"},
//	    "ioFolders": [{"referenceId": "src", "mode": "stream", "type": "output"}]},
//	   {"engineId": "scenes", "ioFolders": [{"referenceId": "scenesIn", "mode": "stream", "type": "input"},
//	                                        {"referenceId": "scenesOut", "mode": "chunk", "type": "output"}]},
//	   {"engineId": "ocr-frame", "ioFolders": [{"referenceId": "ocrIn", "mode": "chunk", "type": "input"}]}],
//	 "routes": [{"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "scenesIn"},
//	            {"parentIoFolderReferenceId": "scenesOut", "childIoFolderReferenceId": "ocrIn"}]}

// The engineIds of the tasks that are not engines. An engine of one of
// these names cannot be used in a task DAG.
const (
	TaskAdapter      = "adapter"
	TaskChunker      = "chunker"
	TaskAggregator   = "aggregator"
	TaskOutputWriter = "output-writer"
)

// The ioFolder modes and types of Veritone's form.
const (
	FolderStream = "stream"
	FolderChunk  = "chunk"
	FolderInput  = "input"
	FolderOutput = "output"
)

// The ways an engine reads another engine's output (EngineInput.Kind).
const (
	// RouteFrames: the runner cuts the source's frame at each time the
	// parent reports (a scene change) and sends it as an image chunk.
	RouteFrames = "frames"
	// RouteDocuments: each output of the parent is one chunk holding its
	// vtn-standard document (engine.DocumentMimeType).
	RouteDocuments = "documents"
)

// Limits of a task DAG.
const (
	MaxTasks          = MaxEngines + 4
	MaxIOFolders      = 8
	MaxRoutes         = 64
	maxReferenceIDLen = 128
)

// Task is one task of a task DAG, in Veritone's form: the engine it runs
// (an engine's name, or adapter, chunker, aggregator, output-writer), its
// payload (the engine's options; the adapter's source; the chunker's
// chunking; the aggregator's window and stall timeout) and its ioFolders.
// Policy is weir's: an engine's flow policy.
type Task struct {
	EngineID  string         `json:"engineId"`
	Payload   map[string]any `json:"payload,omitempty"`
	IOFolders []IOFolder     `json:"ioFolders"`
	Policy    *FlowPolicy    `json:"policy,omitempty"`
}

// IOFolder is a task's input or output: referenceId names it in routes,
// mode is stream or chunk, type input or output.
type IOFolder struct {
	ReferenceID string `json:"referenceId"`
	Mode        string `json:"mode"`
	Type        string `json:"type"`
}

// Route carries what a task writes to an output ioFolder into another
// task's input ioFolder.
type Route struct {
	Parent string `json:"parentIoFolderReferenceId"`
	Child  string `json:"childIoFolderReferenceId"`
}

// EngineInput says that an engine of a task DAG reads another engine's
// output, and how; it is set from the DAG's routes (never given in the
// simple form), Kind and OutputType by ResolveEngines.
type EngineInput struct {
	// From is the parent engine's name.
	From string `json:"from"`
	// Kind is RouteFrames or RouteDocuments.
	Kind string `json:"kind,omitempty" enum:"frames,documents"`
	// OutputType is the parent's output type that is routed.
	OutputType string `json:"output_type,omitempty"`
}

// dagInfo is what ParseRequest learnt of a task DAG, to name tasks and
// routes in problems found later (ResolveEngines).
type dagInfo struct {
	engineTask  []int    // engines[i] is tasks[engineTask[i]]
	engineRoute []int    // the route into engines[i]
	engineFrom  []string // what engines[i] reads: adapter, chunker or an engine's name
	adapter     int
	chunker     int // -1 when absent
	aggregator  int // -1 when absent
}

var (
	taskShape = &shape{kind: shapeObject, members: map[string]*shape{
		"engineId":  stringShape,
		"payload":   {kind: shapeObject, values: anyShape},
		"ioFolders": {kind: shapeArray, elem: folderShape},
		"policy":    requestShape.members["engines"].elem.members["policy"],
	}}
	folderShape = &shape{kind: shapeObject, members: map[string]*shape{
		"referenceId": stringShape, "mode": stringShape, "type": stringShape,
	}}
	routeShape = &shape{kind: shapeObject, members: map[string]*shape{
		"parentIoFolderReferenceId": stringShape, "childIoFolderReferenceId": stringShape,
	}}
	referenceID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
)

func init() {
	requestShape.members["tasks"] = &shape{kind: shapeArray, elem: taskShape}
	requestShape.members["routes"] = &shape{kind: shapeArray, elem: routeShape}
}

// isDAG reports whether a decoded request is in the task DAG form.
func isDAG(tree any) bool {
	obj, _ := tree.(map[string]any)
	_, tasks := obj["tasks"]
	_, routes := obj["routes"]
	return tasks || routes
}

// parseDAG reads a request in the task DAG form, whose shape was checked.
func parseDAG(data []byte, tree map[string]any) (*Request, error) {
	var problems RequestError
	for _, k := range []string{"source", "engines", "chunking", "aggregate"} {
		if _, ok := tree[k]; ok {
			problems.add(k, "a task DAG gives it as a task (%s); send either source and engines, or tasks and routes", dagHome[k])
		}
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil { // the shape check makes this succeed
		return nil, &RequestError{Problems: []*FieldError{{Problem: "malformed JSON: " + err.Error()}}}
	}
	req.Source, req.Engines, req.Chunking, req.Aggregate = Source{}, nil, Chunking{}, Aggregate{}
	rawTasks, _ := tree["tasks"].([]any)
	req.normalizeDAG(rawTasks, &problems)
	if err := problems.errOrNil(); err != nil {
		return nil, err
	}
	simple := req.simpleTree(rawTasks)
	var inner RequestError
	requestShape.check(simple, "", &inner)
	if len(inner.Problems) == 0 {
		raw, _ := json.Marshal(simple)
		var derived Request
		if err := json.Unmarshal(raw, &derived); err != nil {
			inner.add("", "malformed JSON: %v", err)
		} else {
			req.Source, req.Engines, req.Chunking, req.Aggregate = derived.Source, derived.Engines, derived.Chunking, derived.Aggregate
			for i := range req.Engines {
				if from := req.dag.engineFrom[i]; from != TaskAdapter && from != TaskChunker {
					req.Engines[i].Input = &EngineInput{From: from}
				}
			}
			req.normalize(treeGiven(simple), &inner)
		}
	}
	for _, p := range inner.Problems {
		problems.Problems = append(problems.Problems, req.dag.rename(p))
	}
	if err := problems.errOrNil(); err != nil {
		return nil, err
	}
	return &req, nil
}

// dagHome says which task holds what the simple form's members hold.
var dagHome = map[string]string{
	"source": "the adapter's payload", "engines": "a task per engine", "chunking": "the chunker's payload", "aggregate": "the aggregator's payload",
}

// simpleTree is the simple form the DAG maps onto, as a decoded tree, so
// the simple form's checks and defaults apply to it unchanged.
func (r *Request) simpleTree(rawTasks []any) map[string]any {
	payload := func(i int) any {
		if i < 0 {
			return nil
		}
		return rawTasks[i].(map[string]any)["payload"]
	}
	engines := make([]any, len(r.dag.engineTask))
	for i, t := range r.dag.engineTask {
		raw := rawTasks[t].(map[string]any)
		engines[i] = map[string]any{"name": raw["engineId"], "options": raw["payload"], "policy": raw["policy"]}
	}
	tree := map[string]any{"source": payload(r.dag.adapter), "engines": engines,
		"chunking": payload(r.dag.chunker), "aggregate": payload(r.dag.aggregator)}
	if r.Title != "" {
		tree["title"] = r.Title
	}
	return tree
}

// rename moves a problem of the simple form onto the task that holds it:
// source.vod → tasks[0].payload.vod, engines[1].options.x →
// tasks[3].payload.x, engines[1].name → tasks[3].engineId.
func (d *dagInfo) rename(p *FieldError) *FieldError {
	from, to := "", ""
	task := func(i int) string { return fmt.Sprintf("tasks[%d]", i) }
	switch f := p.Field; {
	case f == "source" || strings.HasPrefix(f, "source."):
		from, to = "source", task(d.adapter)+".payload"
	case f == "chunking" || strings.HasPrefix(f, "chunking."):
		from, to = "chunking", task(d.chunker)+".payload"
	case f == "aggregate" || strings.HasPrefix(f, "aggregate."):
		from, to = "aggregate", task(d.aggregator)+".payload"
	case strings.HasPrefix(f, "engines["):
		end := strings.IndexByte(f, ']')
		i, err := strconv.Atoi(f[len("engines["):max(end, len("engines["))])
		if end < 0 || err != nil || i < 0 || i >= len(d.engineTask) {
			return p
		}
		from, to = f[:end+1], task(d.engineTask[i])
		switch rest := f[end+1:]; {
		case rest == ".name":
			from, to = f, to+".engineId"
		case rest == ".options" || strings.HasPrefix(rest, ".options."):
			from, to = from+".options", to+".payload"
		}
	case f == "engines":
		from, to = "engines", "tasks"
	default:
		return p
	}
	return &FieldError{Field: to + strings.TrimPrefix(p.Field, from),
		Problem: strings.ReplaceAll(p.Problem, "; "+from+" takes", "; "+to+" takes")}
}

// taskName is how problems name a task: tasks[3] (ocr-frame).
func taskName(i int, t Task) string {
	if t.EngineID == "" {
		return fmt.Sprintf("tasks[%d]", i)
	}
	return fmt.Sprintf("tasks[%d] (%s)", i, truncate(t.EngineID, 70))
}

// folderRef is where an ioFolder is: its task and its index there.
type folderRef struct {
	task, index int
	folder      IOFolder
}

// normalizeDAG checks the tasks, their ioFolders and the routes, and
// finds which task reads what: r.dag.
func (r *Request) normalizeDAG(rawTasks []any, problems *RequestError) {
	r.dag = &dagInfo{adapter: -1, chunker: -1, aggregator: -1}
	switch {
	case len(r.Tasks) == 0:
		problems.add("tasks", `is required: list the adapter (the source) and at least one engine, as [{"engineId": "adapter", "payload": {"vod": "<stream id>"}, "ioFolders": [...]}, {"engineId": "scenes", ...}]`)
		return
	case len(r.Tasks) > MaxTasks:
		problems.add("tasks", "lists %d tasks, more than %d", len(r.Tasks), MaxTasks)
		return
	case len(r.Routes) > MaxRoutes:
		problems.add("routes", "lists %d routes, more than %d", len(r.Routes), MaxRoutes)
		return
	}
	folders := r.normalizeTasks(problems)
	if len(problems.Problems) > 0 {
		return
	}
	into := r.normalizeRoutes(folders, problems)
	if len(problems.Problems) > 0 {
		return
	}
	r.checkInputs(folders, into, problems)
	if len(problems.Problems) == 0 {
		r.checkCycles(problems)
	}
}

// normalizeTasks checks each task's engineId and ioFolders, notes the
// special tasks, and returns the folders by referenceId.
func (r *Request) normalizeTasks(problems *RequestError) map[string]folderRef {
	folders := map[string]folderRef{}
	seen := map[string]int{}
	for i := range r.Tasks {
		t := &r.Tasks[i]
		field := fmt.Sprintf("tasks[%d]", i)
		t.EngineID = strings.TrimSpace(t.EngineID)
		switch first, dup := seen[t.EngineID]; {
		case t.EngineID == "":
			problems.add(field+".engineId", `is required: an engine's name (GET /engines), or adapter, chunker, aggregator or output-writer`)
		case !validEngineID(t.EngineID):
			problems.add(field+".engineId", "%q is not an engine name (1 to 63 of a-z, 0-9 and '-')", truncate(t.EngineID, 70))
		case dup:
			problems.add(field+".engineId", "%s is already tasks[%d]; a job runs each engine, and has each of adapter, chunker and aggregator, once", t.EngineID, first)
		default:
			seen[t.EngineID] = i
		}
		switch t.EngineID {
		case TaskAdapter:
			r.dag.adapter = i
		case TaskChunker:
			r.dag.chunker = i
		case TaskAggregator:
			r.dag.aggregator = i
		}
		if t.Policy != nil && isSpecialTask(t.EngineID) {
			problems.add(field+".policy", "only an engine task has a flow policy; %s has none", t.EngineID)
		}
		if t.EngineID == TaskOutputWriter && len(t.Payload) > 0 {
			problems.add(field+".payload", "the output writer takes no payload: weir stores every engine's results")
		}
		if len(t.IOFolders) > MaxIOFolders {
			problems.add(field+".ioFolders", "lists %d ioFolders, more than %d", len(t.IOFolders), MaxIOFolders)
			continue
		}
		for j := range t.IOFolders {
			r.normalizeFolder(i, j, folders, problems)
		}
	}
	if r.dag.adapter < 0 && len(problems.Problems) == 0 {
		problems.add("tasks", `has no adapter task: add {"engineId": "adapter", "payload": {"vod": "<stream id>"}, "ioFolders": [{"referenceId": "src", "mode": "stream", "type": "output"}]}; its payload is the source`)
	}
	return folders
}

// normalizeFolder checks tasks[i].ioFolders[j] and records it.
func (r *Request) normalizeFolder(i, j int, folders map[string]folderRef, problems *RequestError) {
	f := &r.Tasks[i].IOFolders[j]
	field := fmt.Sprintf("tasks[%d].ioFolders[%d]", i, j)
	f.ReferenceID, f.Mode, f.Type = strings.TrimSpace(f.ReferenceID), strings.TrimSpace(f.Mode), strings.TrimSpace(f.Type)
	switch other, dup := folders[f.ReferenceID]; {
	case f.ReferenceID == "":
		problems.add(field+".referenceId", "is required: the name routes give this folder")
	case len(f.ReferenceID) > maxReferenceIDLen || !referenceID.MatchString(f.ReferenceID):
		problems.add(field+".referenceId", "%q must be 1 to %d of A-Z, a-z, 0-9, '_', '.', ':' and '-', starting with a letter or digit", truncate(f.ReferenceID, 70), maxReferenceIDLen)
	case dup:
		problems.add(field+".referenceId", "%s is already tasks[%d].ioFolders[%d]; referenceIds are unique in a job", f.ReferenceID, other.task, other.index)
	default:
		folders[f.ReferenceID] = folderRef{task: i, index: j, folder: *f}
	}
	if f.Mode != FolderStream && f.Mode != FolderChunk {
		problems.add(field+".mode", "must be %q or %q, got %q", FolderStream, FolderChunk, truncate(f.Mode, 40))
	}
	if f.Type != FolderInput && f.Type != FolderOutput {
		problems.add(field+".type", "must be %q or %q, got %q", FolderInput, FolderOutput, truncate(f.Type, 40))
	}
}

// normalizeRoutes checks each route's two ends and returns, for each
// input folder, the routes into it.
func (r *Request) normalizeRoutes(folders map[string]folderRef, problems *RequestError) map[string][]int {
	into := map[string][]int{}
	seen := map[Route]int{}
	for k := range r.Routes {
		rt := &r.Routes[k]
		field := fmt.Sprintf("routes[%d]", k)
		rt.Parent, rt.Child = strings.TrimSpace(rt.Parent), strings.TrimSpace(rt.Child)
		parent, pok := r.routeEnd(field+".parentIoFolderReferenceId", rt.Parent, FolderOutput, folders, problems)
		child, cok := r.routeEnd(field+".childIoFolderReferenceId", rt.Child, FolderInput, folders, problems)
		if !pok || !cok {
			continue
		}
		if first, dup := seen[*rt]; dup {
			problems.add(field, "is routes[%d] again", first)
			continue
		}
		seen[*rt] = k
		switch {
		case parent.task == child.task:
			problems.add(field, "routes %s to itself", taskName(parent.task, r.Tasks[parent.task]))
		case parent.folder.Mode != child.folder.Mode:
			problems.add(field, "joins a %s folder (%s of %s) to a %s folder (%s of %s); both ends of a route have the same mode",
				parent.folder.Mode, rt.Parent, taskName(parent.task, r.Tasks[parent.task]), child.folder.Mode, rt.Child, taskName(child.task, r.Tasks[child.task]))
		default:
			into[rt.Child] = append(into[rt.Child], k)
		}
	}
	return into
}

// routeEnd finds the folder a route names, which must be of type want.
func (r *Request) routeEnd(field, ref, want string, folders map[string]folderRef, problems *RequestError) (folderRef, bool) {
	f, ok := folders[ref]
	switch {
	case ref == "":
		problems.add(field, "is required")
	case !ok:
		problems.add(field, "no ioFolder is called %q (a dangling reference); the tasks' ioFolders are %s", truncate(ref, 70), strings.Join(sortedKeys(folders), ", "))
	case f.folder.Type != want:
		problems.add(field, "%s is an %s folder of %s; a route goes from an output folder to an input folder", ref, f.folder.Type, taskName(f.task, r.Tasks[f.task]))
	default:
		return f, true
	}
	return folderRef{}, false
}

// checkInputs checks what each task reads and records it for the
// engines: an engine reads exactly one input folder with one route into
// it, from the adapter (a stream), the chunker (chunks) or another
// engine's output; the chunker reads the adapter's stream; the adapter
// reads nothing; the aggregator and the output writer read engines'
// outputs.
func (r *Request) checkInputs(folders map[string]folderRef, into map[string][]int, problems *RequestError) {
	for i, t := range r.Tasks {
		var inputs []IOFolder
		for _, f := range t.IOFolders {
			if f.Type == FolderInput {
				inputs = append(inputs, f)
			}
		}
		name := taskName(i, t)
		field := fmt.Sprintf("tasks[%d].ioFolders", i)
		switch t.EngineID {
		case TaskAdapter:
			if len(inputs) > 0 {
				problems.add(field, "%s reads nothing: its payload is the source; give it one stream output folder", name)
			}
			if hasOutput(t, FolderChunk) {
				problems.add(field, "%s writes the source as a stream: give its output folders mode stream", name)
			}
			if !hasOutput(t, FolderStream) {
				problems.add(field, `%s has no stream output folder: add {"referenceId": "src", "mode": "stream", "type": "output"} and route it to the chunker and the stream engines`, name)
			}
			continue
		case TaskAggregator, TaskOutputWriter:
			for _, f := range inputs {
				if f.Mode != FolderChunk {
					problems.add(field, "%s reads engines' outputs, which travel as chunks: give its input folder %s mode chunk", name, f.ReferenceID)
				}
				for _, k := range into[f.ReferenceID] {
					if p := folders[r.Routes[k].Parent]; isSpecialTask(r.Tasks[p.task].EngineID) {
						problems.add(fmt.Sprintf("routes[%d]", k), "%s reads engines' outputs, not %s's", name, r.Tasks[p.task].EngineID)
					}
				}
			}
			continue
		}
		if len(inputs) != 1 {
			problems.add(field, "%s has %d input folders; give it exactly one, routed from %s", name, len(inputs), wantedParent(t.EngineID))
			continue
		}
		routes := into[inputs[0].ReferenceID]
		if len(routes) != 1 {
			problems.add(field, "%s: %d routes lead into its input folder %s; it reads exactly one, from %s", name, len(routes), inputs[0].ReferenceID, wantedParent(t.EngineID))
			continue
		}
		k := routes[0]
		parent := r.Tasks[folders[r.Routes[k].Parent].task]
		r.checkParent(i, k, parent, inputs[0], problems)
	}
}

// checkParent checks what tasks[i], not the adapter, aggregator or output
// writer, reads through routes[k] from parent, and records it for an
// engine.
func (r *Request) checkParent(i, k int, parent Task, input IOFolder, problems *RequestError) {
	t := r.Tasks[i]
	field := fmt.Sprintf("routes[%d]", k)
	name := taskName(i, t)
	switch {
	case t.EngineID == TaskChunker && parent.EngineID != TaskAdapter:
		problems.add(field, "%s cuts the source: route the adapter's stream output to it, not %s's", name, parent.EngineID)
		return
	case t.EngineID == TaskChunker:
		if !hasOutput(t, FolderChunk) || hasOutput(t, FolderStream) {
			problems.add(fmt.Sprintf("tasks[%d].ioFolders", i), "%s writes chunks: give it output folders of mode chunk only, routed to the chunk engines", name)
		}
		return
	case parent.EngineID == TaskAggregator || parent.EngineID == TaskOutputWriter:
		problems.add(field, "%s writes nothing an engine reads; route an engine's output, the chunker's chunks or the adapter's stream to %s", parent.EngineID, name)
		return
	case !isSpecialTask(parent.EngineID) && input.Mode != FolderChunk:
		problems.add(field, "an engine's outputs travel as chunks: give %s's output folder and %s's input folder mode chunk", parent.EngineID, name)
		return
	}
	r.dag.engineTask = append(r.dag.engineTask, i)
	r.dag.engineRoute = append(r.dag.engineRoute, k)
	r.dag.engineFrom = append(r.dag.engineFrom, parent.EngineID)
}

// wantedParent says where an engine's input may come from.
func wantedParent(engineID string) string {
	if engineID == TaskChunker {
		return "the adapter's stream output"
	}
	return "the adapter's stream (a stream engine), the chunker's chunks (a chunk engine) or another engine's output"
}

func hasOutput(t Task, mode string) bool {
	return slices.ContainsFunc(t.IOFolders, func(f IOFolder) bool { return f.Type == FolderOutput && f.Mode == mode })
}

func isSpecialTask(id string) bool {
	return id == TaskAdapter || id == TaskChunker || id == TaskAggregator || id == TaskOutputWriter
}

func validEngineID(id string) bool { return isSpecialTask(id) || engine.ValidName(id) }

// checkCycles refuses engines that read each other's outputs in a
// circle, naming the routes of the cycle.
func (r *Request) checkCycles(problems *RequestError) {
	parentOf := map[string]int{} // engine → its index in dag
	for e, t := range r.dag.engineTask {
		parentOf[r.Tasks[t].EngineID] = e
	}
	reported := map[int]bool{}
	for start := range r.dag.engineTask {
		seen := map[int]bool{}
		var path []int
		for e := start; ; {
			if reported[e] {
				break
			}
			if seen[e] {
				i := slices.Index(path, e)
				cycle := path[i:]
				names := make([]string, 0, len(cycle)+1)
				routes := make([]string, 0, len(cycle))
				for _, c := range cycle {
					reported[c] = true
					names = append(names, r.Tasks[r.dag.engineTask[c]].EngineID)
					routes = append(routes, fmt.Sprintf("routes[%d]", r.dag.engineRoute[c]))
				}
				slices.Reverse(names)
				names = append(names, names[0])
				sort.Strings(routes)
				problems.add(routes[0], "the engines read each other's outputs in a cycle: %s (%s); a task DAG has no cycle", strings.Join(names, " → "), strings.Join(routes, ", "))
				break
			}
			seen[e] = true
			path = append(path, e)
			next, ok := parentOf[r.dag.engineFrom[e]]
			if !ok {
				break // read from the adapter or the chunker
			}
			e = next
		}
	}
}

// checkReads says why engines[i], with spec, cannot read what the job
// gives it, or "": a chunk engine fed by the chunker must read a kind of
// chunk the chunker makes; in a task DAG, a stream engine reads the
// adapter's stream and a chunk engine reads chunks or another engine's
// output.
func (r *Request) checkReads(i int, spec engine.Spec) string {
	from := TaskChunker
	if spec.Mode == engine.ModeStream {
		from = TaskAdapter
	}
	if r.dag != nil {
		from = r.dag.engineFrom[i]
	}
	name := spec.Name
	switch {
	case from == TaskAdapter && spec.Mode != engine.ModeStream:
		return fmt.Sprintf("engine %s is a %s engine: route the chunker's chunk output to it; the adapter's stream is read by stream engines", name, spec.Mode)
	case from != TaskAdapter && spec.Mode == engine.ModeStream:
		return fmt.Sprintf("engine %s is a stream engine: route the adapter's stream output to it", name)
	case from != TaskChunker:
		return "" // a stream engine, or an engine reading another's output (resolveRoutes)
	}
	if _, ok := chunker.KindFor(spec.Inputs); ok {
		return ""
	}
	if reads := spec.ReadsOutputs(); len(reads) > 0 {
		return fmt.Sprintf("engine %s reads other engines' outputs (%s), not media: give the job as a task DAG that routes such an output to it (docs/results.md, Task DAGs)", name, strings.Join(reads, ", "))
	}
	return fmt.Sprintf("engine %s reads %s, none of which weir's chunker makes (video/*, audio/*, image/*)", name, strings.Join(spec.Inputs, ", "))
}

// resolveRoutes decides how each engine of a task DAG that reads another
// engine's output reads it (EngineInput.Kind and OutputType), or says
// why it cannot: the child reads the parent's documents when it reads an
// output type the parent writes (engine.DocumentMimeType); it reads
// frames when it reads pictures and the parent reports scene changes.
func (r *Request) resolveRoutes(entries []engines.Entry, problems *RequestError) {
	if r.dag == nil {
		return
	}
	index := map[string]int{}
	for i, e := range r.Engines {
		index[e.Name] = i
	}
	for i := range r.Engines {
		in := r.Engines[i].Input
		if in == nil {
			continue
		}
		parent, child := entries[index[in.From]].Spec, entries[i].Spec
		field := fmt.Sprintf("routes[%d]", r.dag.engineRoute[i])
		if child.Mode != engine.ModeChunk {
			problems.add(field, "engine %s is a %s engine; an engine's output is read by chunk engines only", child.Name, child.Mode)
			continue
		}
		if t := firstShared(child.ReadsOutputs(), parent.Outputs); t != "" {
			in.Kind, in.OutputType = RouteDocuments, t
			continue
		}
		if kind, _ := chunker.KindFor(child.Inputs); kind == chunker.KindFrame && slices.Contains(parent.Outputs, SceneOutput) {
			in.Kind, in.OutputType = RouteFrames, SceneOutput
			continue
		}
		problems.add(field, "engine %s writes %s, and engine %s reads %s: %s", parent.Name, strings.Join(parent.Outputs, ", "),
			child.Name, strings.Join(child.Inputs, ", "), routeHint(child))
	}
}

// SceneOutput is the output type of scene changes (the scenes engine's):
// a route from it to an engine that reads pictures cuts a frame at each.
const SceneOutput = "scene"

// routeHint says what a child could be routed from.
func routeHint(child engine.Spec) string {
	if reads := child.ReadsOutputs(); len(reads) > 0 {
		return "route an engine that writes " + strings.Join(reads, " or ") + " to it"
	}
	if kind, _ := chunker.KindFor(child.Inputs); kind == chunker.KindFrame {
		return "pictures are cut only at the scene changes of an engine that writes scene (scenes); route the chunker's chunks to it for its frames"
	}
	return "it reads media, which only the chunker and the adapter give; route those to it"
}

// firstShared is the first of a also in b, "" when none is.
func firstShared(a, b []string) string {
	for _, x := range a {
		if slices.Contains(b, x) {
			return x
		}
	}
	return ""
}
