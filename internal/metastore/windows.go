package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds what a job's aggregator records: the windows it emitted
// (Store.PutWindow, ListWindows, WindowMarks) and the results that came
// too late for theirs (Store.PutLateResult).

// WindowStatus says whether every engine of a job was in a window.
type WindowStatus string

const (
	// WindowComplete: every engine had passed the window's end.
	WindowComplete WindowStatus = "complete"
	// WindowPartial: the engines in Missing stalled and were left out.
	WindowPartial WindowStatus = "partial"
)

// Window is one window of time of a job as its aggregator emitted it: the
// results of every engine overlapping [StartMs, EndMs), keyed by (JobID,
// StartMs).
type Window struct {
	JobID   string       `json:"job_id"`
	StartMs int64        `json:"start_ms"`
	EndMs   int64        `json:"end_ms"`
	Seq     int64        `json:"seq"`
	Status  WindowStatus `json:"status"`
	// Missing names the engines a partial window left out, sorted.
	Missing []string `json:"missing"`
	// Results are the window's results in time order.
	Results []Result `json:"results"`
	// ThroughOffset is the offset of the last record of the job's results
	// topic the aggregator had read when it emitted the window.
	ThroughOffset int64     `json:"through_offset"`
	EmittedAt     time.Time `json:"emitted_at"`
	// Late are the results that came after the window's engines had
	// settled it; ListWindows fills them in.
	Late []LateResult `json:"late"`
}

// LateResult is a result that arrived after its engine's share of the
// window starting at WindowStartMs was settled. Result.CreatedAt is when it
// arrived. Keyed by (JobID, WindowStartMs, Engine, ChunkUUID, StartMs, Rev).
type LateResult struct {
	WindowStartMs int64 `json:"window_start_ms"`
	Result
}

// WindowQuery selects a job's windows for ListWindows.
type WindowQuery struct {
	JobID string
	// FromMs and ToMs select the windows that overlap [FromMs, ToMs) on
	// the source's timeline; ToMs 0 means no end.
	FromMs, ToMs int64
	// Limit caps the page size (default 50, max 1000).
	Limit int
	// After is the cursor returned by the previous page ("" for the first).
	After string
}

const windowColumns = `job_id, start_ms, end_ms, seq, status, missing, results, through_offset, emitted_at`

// checkWindow says why w cannot be stored, wrapping ErrInvalid.
func checkWindow(w Window) error {
	what := fmt.Sprintf("window of job %q at %d ms", w.JobID, w.StartMs)
	switch {
	case w.JobID == "":
		return fmt.Errorf("%s: job id is required: %w", what, ErrInvalid)
	case w.StartMs < 0 || w.EndMs <= w.StartMs || w.Seq < 0:
		return fmt.Errorf("%s: range [%d, %d) or seq %d: %w", what, w.StartMs, w.EndMs, w.Seq, ErrInvalid)
	case w.Status != WindowComplete && w.Status != WindowPartial:
		return fmt.Errorf("%s: unknown status %q: %w", what, w.Status, ErrInvalid)
	case (w.Status == WindowPartial) != (len(w.Missing) > 0):
		return fmt.Errorf("%s: a partial window names its missing engines, a complete one none: %w", what, ErrInvalid)
	}
	return nil
}

// PutWindow implements Store.PutWindow: it inserts w unless the job
// already has a window starting at w.StartMs, and reports whether it did.
// EmittedAt zero becomes now. A window with no job, an empty or negative
// range, an unknown status or Missing not matching it fails with
// ErrInvalid; an unknown job with ErrNotFound.
func (st *sqlStore) PutWindow(ctx context.Context, w Window) (bool, error) {
	if err := checkWindow(w); err != nil {
		return false, err
	}
	missing := w.Missing
	if missing == nil {
		missing = []string{}
	}
	results := w.Results
	if results == nil {
		results = []Result{}
	}
	mj, _ := json.Marshal(missing) // strings: cannot fail
	rj, err := json.Marshal(results)
	if err != nil {
		return false, fmt.Errorf("window of job %s at %d ms: results: %v: %w", w.JobID, w.StartMs, err, ErrInvalid)
	}
	emitted := normTime(w.EmittedAt)
	if emitted.IsZero() {
		emitted = now()
	}
	n, err := st.b.writer().exec(ctx, `INSERT INTO result_windows (`+windowColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (job_id, start_ms) DO NOTHING`,
		w.JobID, w.StartMs, w.EndMs, w.Seq, string(w.Status), string(mj), string(rj),
		w.ThroughOffset, st.timeArg(emitted))
	if err != nil {
		if st.b.constraint(err) == constraintForeignKey {
			return false, fmt.Errorf("window of job %s: %w", w.JobID, ErrNotFound)
		}
		return false, fmt.Errorf("window of job %s at %d ms: %w", w.JobID, w.StartMs, err)
	}
	return n == 1, nil
}

// scanWindow reads a row of windowColumns.
func scanWindow(rows rowIter) (Window, error) {
	var w Window
	var missing, results json.RawMessage
	if err := rows.Scan(&w.JobID, &w.StartMs, &w.EndMs, &w.Seq, &w.Status, jsonCol{&missing},
		jsonCol{&results}, &w.ThroughOffset, timeCol{&w.EmittedAt}); err != nil {
		return w, err
	}
	if err := json.Unmarshal(missing, &w.Missing); err != nil {
		return w, fmt.Errorf("stored missing engines: %w", err)
	}
	if len(results) > 0 {
		if err := json.Unmarshal(results, &w.Results); err != nil {
			return w, fmt.Errorf("stored results: %w", err)
		}
	}
	if w.Missing == nil {
		w.Missing = []string{}
	}
	if w.Results == nil {
		w.Results = []Result{}
	}
	w.Late = []LateResult{}
	return w, nil
}

// ListWindows implements Store.ListWindows: a job's windows by start,
// those overlapping [FromMs, ToMs), paged as q says (next is "" on the
// last page), each with its late results. An unknown job gives an empty,
// non-nil slice. A negative FromMs or ToMs, ToMs not after FromMs, or a
// cursor ListWindows did not make fail with ErrInvalid.
func (st *sqlStore) ListWindows(ctx context.Context, q WindowQuery) ([]Window, string, error) {
	what := "windows of job " + q.JobID
	if q.FromMs < 0 || q.ToMs < 0 || (q.ToMs != 0 && q.ToMs <= q.FromMs) {
		return nil, "", fmt.Errorf("%s: time range %d..%d ms: %w", what, q.FromMs, q.ToMs, ErrInvalid)
	}
	args := []any{q.JobID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"job_id = $1", "end_ms > " + arg(q.FromMs)}
	if q.ToMs > 0 {
		where = append(where, "start_ms < "+arg(q.ToMs))
	}
	if q.After != "" {
		after, err := strconv.ParseInt(q.After, 10, 64)
		if err != nil || after < 0 {
			return nil, "", fmt.Errorf("%s: windows cursor %q: %w", what, q.After, ErrInvalid)
		}
		where = append(where, "start_ms > "+arg(after))
	}
	limit := pageSize(q.Limit)
	out, err := st.queryWindows(ctx, `SELECT `+windowColumns+` FROM result_windows WHERE `+
		strings.Join(where, " AND ")+` ORDER BY start_ms LIMIT `+arg(limit+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatInt(out[limit-1].StartMs, 10)
	}
	if err := st.attachLate(ctx, q.JobID, out); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	return out, next, nil
}

func (st *sqlStore) queryWindows(ctx context.Context, query string, args ...any) ([]Window, error) {
	rows, err := st.b.reader().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Window{}
	for rows.Next() {
		w, err := scanWindow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// WindowMarks implements Store.WindowMarks: every window of a job by
// start, without results or late results: what an aggregator taking the
// job over resumes from.
func (st *sqlStore) WindowMarks(ctx context.Context, jobID string) ([]Window, error) {
	out, err := st.queryWindows(ctx, `SELECT job_id, start_ms, end_ms, seq, status, missing, '[]',
		through_offset, emitted_at FROM result_windows WHERE job_id = $1 ORDER BY start_ms`, jobID)
	if err != nil {
		return nil, fmt.Errorf("windows of job %s: %w", jobID, err)
	}
	return out, nil
}

const lateColumns = `window_start_ms, job_id, engine, task_id, chunk_uuid, chunk_index, start_ms, end_ms,
	output_type, rev, content, arrived_at`

// attachLate fills in the late results of ws, a page of windows by start.
func (st *sqlStore) attachLate(ctx context.Context, jobID string, ws []Window) error {
	if len(ws) == 0 {
		return nil
	}
	rows, err := st.b.reader().query(ctx, `SELECT `+lateColumns+` FROM late_results
		WHERE job_id = $1 AND window_start_ms >= $2 AND window_start_ms <= $3
		ORDER BY window_start_ms, start_ms, end_ms, engine, chunk_uuid, rev`, jobID, ws[0].StartMs, ws[len(ws)-1].StartMs)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var l LateResult
		r := &l.Result
		if err := rows.Scan(&l.WindowStartMs, &r.JobID, &r.Engine, &r.TaskID, &r.ChunkUUID, &r.ChunkIndex, &r.StartMs,
			&r.EndMs, &r.OutputType, &r.Rev, jsonCol{&r.Content}, timeCol{&r.CreatedAt}); err != nil {
			return err
		}
		if i, ok := slices.BinarySearchFunc(ws, l.WindowStartMs, func(w Window, s int64) int { return cmp.Compare(w.StartMs, s) }); ok {
			ws[i].Late = append(ws[i].Late, l)
		}
	}
	return rows.Err()
}

// PutLateResult implements Store.PutLateResult: it records l unless the
// same late result (job, window, engine, chunk, start, rev) is there, and
// reports whether it did. CreatedAt zero becomes now. Missing keys, EndMs
// before StartMs, a negative Rev or content that is not JSON fail with
// ErrInvalid; an unknown job with ErrNotFound.
func (st *sqlStore) PutLateResult(ctx context.Context, l LateResult) (bool, error) {
	r := l.Result
	what := fmt.Sprintf("late result of job %q engine %q chunk %q for the window at %d ms", r.JobID, r.Engine, r.ChunkUUID, l.WindowStartMs)
	switch {
	case r.JobID == "" || r.Engine == "" || r.ChunkUUID == "":
		return false, fmt.Errorf("%s: job id, engine and chunk uuid are required: %w", what, ErrInvalid)
	case r.EndMs < r.StartMs || r.Rev < 0 || l.WindowStartMs < 0 || len(r.Content) == 0:
		return false, fmt.Errorf("%s: range [%d, %d], rev %d or empty content: %w", what, r.StartMs, r.EndMs, r.Rev, ErrInvalid)
	}
	content, err := jsonArg("content", r.Content)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	arrived := normTime(r.CreatedAt)
	if arrived.IsZero() {
		arrived = now()
	}
	n, err := st.b.writer().exec(ctx, `INSERT INTO late_results (`+lateColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (job_id, window_start_ms, engine, chunk_uuid, start_ms, rev) DO NOTHING`,
		l.WindowStartMs, r.JobID, r.Engine, r.TaskID, r.ChunkUUID, r.ChunkIndex, r.StartMs, r.EndMs,
		r.OutputType, r.Rev, content, st.timeArg(arrived))
	if err != nil {
		if st.b.constraint(err) == constraintForeignKey {
			return false, fmt.Errorf("%s: job %s: %w", what, r.JobID, ErrNotFound)
		}
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}
