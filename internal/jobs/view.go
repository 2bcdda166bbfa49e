package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// TaskOutput is what a job's runner keeps in metastore.Task.Output for
// each engine of the job, and what View reads back.
type TaskOutput struct {
	// LastHeartbeat is when an instance of the engine last sent an
	// engine_heartbeat for the job.
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	// Instances are the engineInstanceIds seen working for the job.
	Instances []string `json:"instances,omitempty"`
	// Error says why the engine's task failed.
	Error string `json:"error,omitempty"`
}

// ParseTaskOutput reads a task's Output; empty is the zero TaskOutput.
func ParseTaskOutput(raw json.RawMessage) (TaskOutput, error) {
	var out TaskOutput
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return TaskOutput{}, fmt.Errorf("task output: %w", err)
	}
	return out, nil
}

// JSON encodes the output for metastore.Task.Output.
func (o TaskOutput) JSON() json.RawMessage {
	raw, _ := json.Marshal(o) // strings, a time and a slice of strings: cannot fail
	return raw
}

// View is a job as GET /jobs/{id} shows it: its request, status and the
// progress of each engine.
type View struct {
	ID     string `json:"id" example:"job-3e87dd00aab5"`
	Status string `json:"status" enum:"pending,running,complete,failed,cancelled" doc:"pending (accepted, waiting for a runner) → running → complete, failed or cancelled"`
	Title  string `json:"title,omitempty"`
	// Source is where the media comes from.
	Source Source `json:"source"`
	// Chunking is how the source is cut, defaults filled in.
	Chunking Chunking `json:"chunking"`
	// Aggregate is how the results are merged into windows (GET
	// /jobs/{id}/windows), defaults filled in.
	Aggregate Aggregate `json:"aggregate"`
	Error     string    `json:"error,omitempty" doc:"Why the job failed or was cancelled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Engines is the progress of each engine, in the request's order.
	Engines []EngineProgress `json:"engines"`
	// Tasks and Routes are the job's task DAG when it was given as one
	// (Veritone's createJob form), as given, normalized.
	Tasks  []Task  `json:"tasks,omitempty" doc:"The task DAG, when the job was created from one"`
	Routes []Route `json:"routes,omitempty" doc:"The routes between the DAG's ioFolders"`
}

// EngineProgress is one engine's share of a job.
type EngineProgress struct {
	Name   string `json:"name" example:"people"`
	TaskID string `json:"task_id" example:"job-3e87dd00aab5-people"`
	Status string `json:"status" enum:"pending,running,complete,failed,cancelled" doc:"The engine's task status; a task left unfinished by a finished job shows the job's status"`
	// Options are the engine's options, checked against its spec with
	// its defaults filled in.
	Options map[string]any `json:"options,omitempty"`
	Policy  FlowPolicy     `json:"policy"`
	// The chunk counts: Total is every chunk cut for the engine so far;
	// the others split it by state.
	Total   int64 `json:"total" doc:"Chunks cut for this engine so far"`
	Queued  int64 `json:"queued" doc:"Chunks waiting for room in the engine's flow window"`
	Sent    int64 `json:"sent" doc:"Chunks in flight: sent, not yet answered"`
	Done    int64 `json:"done" doc:"Chunks the engine answered SUCCESS"`
	Ignored int64 `json:"ignored" doc:"Chunks the engine answered IGNORED (a type it does not read)"`
	Dropped int64 `json:"dropped" doc:"Chunks flow control dropped because the engine fell behind a live source"`
	Failed  int64 `json:"failed" doc:"Chunks that failed on every try"`
	// LastHeartbeat is when an instance of the engine last reported.
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	Instances     []string   `json:"instances" doc:"engineInstanceIds seen working for the job"`
	Error         string     `json:"error,omitempty"`
	// Input is set for an engine that reads another engine's output
	// (a task DAG's route).
	Input *EngineInput `json:"input,omitempty"`
}

// Finished is the number of chunks with an answer: done, ignored,
// dropped or failed.
func (p EngineProgress) Finished() int64 { return p.Done + p.Ignored + p.Dropped + p.Failed }

// NewView assembles a job's view from its row, its tasks and its chunk
// counts (metastore.CountJobChunks). The engines come from the job's
// stored request, each matched with its task (by engine name) and counts.
func NewView(job metastore.Job, tasks []metastore.Task, counts map[string]map[metastore.ChunkState]int64) (View, error) {
	req, err := DecodeSpec(job.Spec)
	if err != nil {
		return View{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	v := View{
		ID: job.ID, Status: string(job.Status), Title: req.Title, Source: req.Source, Chunking: req.Chunking,
		Aggregate: Aggregate{Window: req.Aggregate.WindowDuration().String(), StallTimeout: req.Aggregate.Stall().String()},
		Error:     job.Error, CreatedAt: job.CreatedAt.UTC(), UpdatedAt: job.UpdatedAt.UTC(),
		Engines: make([]EngineProgress, 0, len(req.Engines)), Tasks: req.Tasks, Routes: req.Routes,
	}
	byEngine := make(map[string]metastore.Task, len(tasks))
	for _, t := range tasks {
		byEngine[t.Engine] = t
	}
	for _, e := range req.Engines {
		v.Engines = append(v.Engines, engineProgress(job, e, byEngine[e.Name], counts[e.Name]))
	}
	return v, nil
}

func engineProgress(job metastore.Job, e EngineRequest, task metastore.Task, counts map[metastore.ChunkState]int64) EngineProgress {
	p := EngineProgress{
		Name: e.Name, TaskID: TaskID(job.ID, e.Name), Status: string(task.Status), Options: e.Options, Policy: e.Policy,
		Queued: counts[metastore.ChunkQueued], Sent: counts[metastore.ChunkSent], Done: counts[metastore.ChunkDone],
		Ignored: counts[metastore.ChunkIgnored], Dropped: counts[metastore.ChunkDropped], Failed: counts[metastore.ChunkFailed],
		Instances: []string{}, Error: task.Error, Input: e.Input,
	}
	for _, n := range counts {
		p.Total += n
	}
	if task.ID != "" {
		p.TaskID = task.ID
	}
	if p.Status == "" || (job.Status.Terminal() && !task.Status.Terminal()) {
		p.Status = string(job.Status)
	}
	// A malformed output (an older runner's, say) shows no heartbeat
	// rather than failing the whole view.
	if out, err := ParseTaskOutput(task.Output); err == nil {
		if !out.LastHeartbeat.IsZero() {
			t := out.LastHeartbeat.UTC()
			p.LastHeartbeat = &t
		}
		if len(out.Instances) > 0 {
			p.Instances = out.Instances
		}
		if p.Error == "" {
			p.Error = out.Error
		}
	}
	return p
}

// Done reports whether the job has ended: complete, failed or cancelled.
func (v View) Done() bool { return metastore.JobStatus(v.Status).Terminal() }
