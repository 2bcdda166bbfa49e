package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/metastore"
)

// JobWindow is one window of a job's merged results.
type JobWindow struct {
	StartMs int64  `json:"start_ms" doc:"Start of the window on the source's timeline, in milliseconds"`
	EndMs   int64  `json:"end_ms" doc:"End of the window (excluded), in milliseconds"`
	Seq     int64  `json:"seq" doc:"The window's number, from 0 for the job's first"`
	Status  string `json:"status" enum:"complete,partial" doc:"complete: every engine had passed the window's end; partial: the engines in missing stalled and were left out"`
	// Missing names the engines a partial window left out.
	Missing []string `json:"missing" doc:"The engines timed out for a partial window"`
	// Results are the engines' outputs overlapping the window, in time
	// order.
	Results []WindowResult `json:"results" doc:"Every engine's outputs overlapping the window, in time order (start, end, engine, chunk)"`
	// Late are the outputs that came after their engine's share of the
	// window was settled.
	Late      []LateJobResult `json:"late" doc:"Outputs that arrived after the window was emitted without them; never added to results"`
	EmittedAt time.Time       `json:"emitted_at"`
}

// WindowResult is one engine output in a window.
type WindowResult struct {
	Engine     string `json:"engine" example:"people"`
	TaskID     string `json:"task_id" example:"job-3e87dd00aab5-people"`
	ChunkUUID  string `json:"chunk_uuid" doc:"The chunk the output answers; - for a stream engine's"`
	StartMs    int64  `json:"start_ms" doc:"Start on the source's timeline, in milliseconds"`
	EndMs      int64  `json:"end_ms" doc:"End on the source's timeline, in milliseconds"`
	OutputType string `json:"output_type" example:"object"`
	Rev        int64  `json:"rev"`
	Content    any    `json:"content" doc:"The engine's vtn-standard document; series times are on the source's timeline"`
}

// LateJobResult is an output that came too late for its window.
type LateJobResult struct {
	WindowResult
	ArrivedAt time.Time `json:"arrived_at"`
}

// JobWindows is a page of a job's windows.
type JobWindows struct {
	JobID      string      `json:"job_id"`
	Items      []JobWindow `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

type jobWindowsInput struct {
	ID     string `path:"id" maxLength:"128" example:"job-3e87dd00aab5" doc:"Job id"`
	From   int64  `query:"from" minimum:"0" doc:"Only windows ending after this time, in milliseconds on the source's timeline"`
	To     int64  `query:"to" minimum:"0" doc:"Only windows starting before this time, in milliseconds (0: no end)"`
	Limit  int    `query:"limit" default:"20" minimum:"1" maximum:"1000" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"32" doc:"next_cursor of the previous page"`
}

type jobWindowsOutput struct{ Body JobWindows }

func (s *Server) registerJobWindows() {
	huma.Register(s.api, huma.Operation{
		OperationID: "job-windows",
		Method:      http.MethodGet,
		Path:        "/jobs/{id}/windows",
		Summary:     "A job's merged results, window by window",
		Description: "The windows the job's aggregator emitted, by start: each holds every engine's outputs overlapping [start_ms, end_ms), is complete once every engine had passed its end, or partial naming the engines that stalled, with the outputs that came too late for it. from and to (milliseconds) select the windows overlapping [from, to); page with limit and cursor. docs/results.md describes the timing.",
		Tags:        []string{"jobs"},
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.jobWindows)
}

func (s *Server) jobWindows(ctx context.Context, in *jobWindowsInput) (*jobWindowsOutput, error) {
	page, err := s.cfg.Jobs.Windows(ctx, in.ID, metastore.WindowQuery{FromMs: in.From, ToMs: in.To, Limit: in.Limit, After: in.Cursor})
	if err != nil {
		return nil, s.jobError(ctx, "read windows of job "+in.ID, err)
	}
	out := JobWindows{JobID: in.ID, Items: make([]JobWindow, 0, len(page.Items)), NextCursor: page.Next}
	for _, w := range page.Items {
		out.Items = append(out.Items, jobWindow(w))
	}
	return &jobWindowsOutput{Body: out}, nil
}

func jobWindow(w metastore.Window) JobWindow {
	jw := JobWindow{StartMs: w.StartMs, EndMs: w.EndMs, Seq: w.Seq, Status: string(w.Status), Missing: w.Missing,
		Results: make([]WindowResult, 0, len(w.Results)), Late: make([]LateJobResult, 0, len(w.Late)), EmittedAt: w.EmittedAt.UTC()}
	if jw.Missing == nil {
		jw.Missing = []string{}
	}
	for _, r := range w.Results {
		jw.Results = append(jw.Results, windowResult(r))
	}
	for _, l := range w.Late {
		jw.Late = append(jw.Late, LateJobResult{WindowResult: windowResult(l.Result), ArrivedAt: l.CreatedAt.UTC()})
	}
	return jw
}

func windowResult(r metastore.Result) WindowResult {
	return WindowResult{Engine: r.Engine, TaskID: r.TaskID, ChunkUUID: r.ChunkUUID, StartMs: r.StartMs, EndMs: r.EndMs,
		OutputType: r.OutputType, Rev: r.Rev, Content: json.RawMessage(r.Content)}
}
