package metastore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file holds what jobs record as they run: the engines' results
// (Store.PutResult, ListResults) and where each chunk stands with each
// engine (Store.PutJobChunk, ListJobChunks, CountJobChunks).

// Result is one engine_output of a job: what one engine made of one chunk
// (or of one time span of it), keyed by (JobID, Engine, ChunkUUID,
// StartMs). StartMs and EndMs are milliseconds on the source's timeline.
type Result struct {
	JobID      string `json:"job_id"`
	Engine     string `json:"engine"`
	TaskID     string `json:"task_id"`
	ChunkUUID  string `json:"chunk_uuid"`
	ChunkIndex int64  `json:"chunk_index"`
	StartMs    int64  `json:"start_ms"`
	EndMs      int64  `json:"end_ms"`
	// OutputType is the engine_output's outputType ("object", "transcript").
	OutputType string `json:"output_type"`
	// Rev orders rewrites of one result: a lower Rev never replaces a
	// higher one.
	Rev int64 `json:"rev"`
	// Content is the vtn-standard document, a JSON object.
	Content   json.RawMessage `json:"content"`
	CreatedAt time.Time       `json:"created_at"`
}

// ResultQuery selects a job's results for ListResults.
type ResultQuery struct {
	JobID string
	// Engine "" matches every engine.
	Engine string
	// FromMs and ToMs select the results that overlap [FromMs, ToMs) on
	// the source's timeline: EndMs > FromMs (or StartMs >= FromMs, so a
	// zero-length result at FromMs counts) and StartMs < ToMs. ToMs 0
	// means no end.
	FromMs, ToMs int64
	// Limit caps the page size (default 50, max 1000).
	Limit int
	// After is the cursor returned by the previous page ("" for the first).
	After string
}

// ChunkState is where one chunk of a job stands with one engine.
type ChunkState string

const (
	// ChunkQueued: cut, waiting for room in the engine's flow window.
	ChunkQueued ChunkState = "queued"
	// ChunkSent: produced to the engine, no answer yet.
	ChunkSent ChunkState = "sent"
	// ChunkDone: the engine answered SUCCESS.
	ChunkDone ChunkState = "done"
	// ChunkIgnored: the engine answered IGNORED (it does not read the
	// chunk's type, say).
	ChunkIgnored ChunkState = "ignored"
	// ChunkDropped: flow control dropped it before the engine got it (a
	// live source, an engine too slow).
	ChunkDropped ChunkState = "dropped"
	// ChunkFailed: the engine answered ERROR, or timed out, on every try.
	ChunkFailed ChunkState = "failed"
)

// ChunkStates lists every chunk state, the non-terminal ones first.
var ChunkStates = []ChunkState{ChunkQueued, ChunkSent, ChunkDone, ChunkIgnored, ChunkDropped, ChunkFailed}

// Valid reports whether s is one of ChunkStates.
func (s ChunkState) Valid() bool {
	switch s {
	case ChunkQueued, ChunkSent, ChunkDone, ChunkIgnored, ChunkDropped, ChunkFailed:
		return true
	}
	return false
}

// Terminal reports whether s is final: done, ignored, dropped or failed.
// PutJobChunk never replaces a terminal state with a non-terminal one.
func (s ChunkState) Terminal() bool {
	return s == ChunkDone || s == ChunkIgnored || s == ChunkDropped || s == ChunkFailed
}

// JobChunk is one chunk of a job as one engine sees it, keyed by (JobID,
// Engine, ChunkUUID).
type JobChunk struct {
	JobID      string `json:"job_id"`
	Engine     string `json:"engine"`
	ChunkUUID  string `json:"chunk_uuid"`
	ChunkIndex int64  `json:"chunk_index"`
	StartMs    int64  `json:"start_ms"`
	EndMs      int64  `json:"end_ms"`
	// Kind is the chunker's kind: "video", "audio" or "frame".
	Kind  string     `json:"kind"`
	State ChunkState `json:"state"`
	// Attempts counts the times the chunk was sent to the engine.
	Attempts int `json:"attempts"`
	// Info says why a chunk was ignored, dropped or failed.
	Info      string    `json:"info,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ---- results ----

const resultColumns = `job_id, engine, task_id, chunk_uuid, chunk_index, start_ms, end_ms,
	output_type, rev, content, created_at`

func resultDest(r *Result) []any {
	return []any{&r.JobID, &r.Engine, &r.TaskID, &r.ChunkUUID, &r.ChunkIndex, &r.StartMs, &r.EndMs,
		&r.OutputType, &r.Rev, jsonCol{&r.Content}, timeCol{&r.CreatedAt}}
}

// PutResult implements Store.PutResult: it inserts r, or replaces the row
// with the same (JobID, Engine, ChunkUUID, StartMs) unless that row has a
// higher Rev; CreatedAt keeps the first write's time (a zero CreatedAt
// becomes now). In the same transaction, the texts of a written result
// (results.TextsOf) replace the ones its key had in the search index. Missing keys, EndMs before StartMs, a negative Rev, or
// Content that is not a JSON document fail with ErrInvalid; an unknown job
// with ErrNotFound.
func (st *sqlStore) PutResult(ctx context.Context, r Result) error {
	if r.JobID == "" || r.Engine == "" || r.ChunkUUID == "" {
		return fmt.Errorf("result %q of job %q engine %q: job id, engine and chunk uuid are required: %w",
			r.ChunkUUID, r.JobID, r.Engine, ErrInvalid)
	}
	what := fmt.Sprintf("result of job %s engine %s chunk %s at %d ms", r.JobID, r.Engine, r.ChunkUUID, r.StartMs)
	if r.EndMs < r.StartMs {
		return fmt.Errorf("%s: ends at %d ms, before it starts: %w", what, r.EndMs, ErrInvalid)
	}
	if r.Rev < 0 {
		return fmt.Errorf("%s: negative rev %d: %w", what, r.Rev, ErrInvalid)
	}
	if len(r.Content) == 0 {
		return fmt.Errorf("%s: content is empty: %w", what, ErrInvalid)
	}
	content, err := jsonArg("content", r.Content)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	created := normTime(r.CreatedAt)
	if created.IsZero() {
		created = now()
	}
	texts := textsToIndex(r.Content)
	err = st.b.inTx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `INSERT INTO results (`+resultColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (job_id, engine, chunk_uuid, start_ms) DO UPDATE SET
				task_id = excluded.task_id, chunk_index = excluded.chunk_index, end_ms = excluded.end_ms,
				output_type = excluded.output_type, rev = excluded.rev, content = excluded.content
			WHERE results.rev <= excluded.rev`,
			r.JobID, r.Engine, r.TaskID, r.ChunkUUID, r.ChunkIndex, r.StartMs, r.EndMs,
			r.OutputType, r.Rev, content, st.timeArg(created))
		if err != nil || n == 0 {
			// n == 0: a higher Rev is stored, and its texts stay indexed.
			return err
		}
		return replaceTexts(ctx, q, r, texts)
	})
	if err != nil {
		if st.b.constraint(err) == constraintForeignKey {
			return fmt.Errorf("%s: job %s: %w", what, r.JobID, ErrNotFound)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// resultCursor marks the last row of a page of results.
type resultCursor struct {
	StartMs   int64  `json:"s"`
	EndMs     int64  `json:"e"`
	Engine    string `json:"g"`
	ChunkUUID string `json:"c"`
}

func encodeResultCursor(r Result) string {
	raw, _ := json.Marshal(resultCursor{r.StartMs, r.EndMs, r.Engine, r.ChunkUUID})
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeResultCursor(token string) (resultCursor, error) {
	var c resultCursor
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Engine == "" || c.ChunkUUID == "" {
		return resultCursor{}, fmt.Errorf("results cursor %q: %w", token, ErrInvalid)
	}
	return c, nil
}

// ListResults implements Store.ListResults: a job's results in time order
// (StartMs, EndMs, then Engine and ChunkUUID bytewise), filtered and paged
// as q says; next is "" on the last page. An unknown job gives an empty,
// non-nil slice. A negative FromMs or ToMs, ToMs not after FromMs, or a
// cursor ListResults did not make fail with ErrInvalid.
func (st *sqlStore) ListResults(ctx context.Context, q ResultQuery) ([]Result, string, error) {
	what := "results of job " + q.JobID
	if q.FromMs < 0 || q.ToMs < 0 || (q.ToMs != 0 && q.ToMs <= q.FromMs) {
		return nil, "", fmt.Errorf("%s: time range %d..%d ms: %w", what, q.FromMs, q.ToMs, ErrInvalid)
	}
	args := []any{q.JobID}
	where := []string{"job_id = $1"}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Engine != "" {
		where = append(where, "engine = "+arg(q.Engine))
	}
	if q.FromMs > 0 {
		from := arg(q.FromMs)
		where = append(where, "(end_ms > "+from+" OR start_ms >= "+from+")")
	}
	if q.ToMs > 0 {
		where = append(where, "start_ms < "+arg(q.ToMs))
	}
	if q.After != "" {
		c, err := decodeResultCursor(q.After)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		where = append(where, fmt.Sprintf("(start_ms, end_ms, engine, chunk_uuid) > (%s, %s, %s, %s)",
			arg(c.StartMs), arg(c.EndMs), arg(c.Engine), arg(c.ChunkUUID)))
	}
	limit := pageSize(q.Limit)
	query := `SELECT ` + resultColumns + ` FROM results WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY start_ms, end_ms, engine, chunk_uuid LIMIT ` + arg(limit+1)
	rows, err := st.b.reader().query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []Result{}
	for rows.Next() {
		var r Result
		if err := rows.Scan(resultDest(&r)...); err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeResultCursor(out[limit-1])
	}
	return out, next, nil
}

// ---- job chunks ----

const jobChunkColumns = `job_id, engine, chunk_uuid, chunk_index, start_ms, end_ms, kind, state,
	attempts, info, updated_at`

// terminalChunkStates is the SQL list of the terminal states.
const terminalChunkStates = `('done', 'ignored', 'dropped', 'failed')`

// PutJobChunk implements Store.PutJobChunk: it inserts c, or replaces the
// row with the same (JobID, Engine, ChunkUUID), except that a stored
// terminal state is never replaced by a non-terminal one (a chunk queued
// again after a restart keeps the answer it already has). UpdatedAt
// becomes now. Missing keys, an unknown state, a negative index or
// attempt count, or EndMs before StartMs fail with ErrInvalid; an unknown
// job with ErrNotFound.
func (st *sqlStore) PutJobChunk(ctx context.Context, c JobChunk) error {
	if c.JobID == "" || c.Engine == "" || c.ChunkUUID == "" {
		return fmt.Errorf("chunk %q of job %q engine %q: job id, engine and chunk uuid are required: %w",
			c.ChunkUUID, c.JobID, c.Engine, ErrInvalid)
	}
	what := fmt.Sprintf("chunk %s of job %s engine %s", c.ChunkUUID, c.JobID, c.Engine)
	switch {
	case !c.State.Valid():
		return fmt.Errorf("%s: unknown state %q: %w", what, c.State, ErrInvalid)
	case c.ChunkIndex < 0 || c.Attempts < 0:
		return fmt.Errorf("%s: negative index %d or attempts %d: %w", what, c.ChunkIndex, c.Attempts, ErrInvalid)
	case c.EndMs < c.StartMs:
		return fmt.Errorf("%s: ends at %d ms, before it starts at %d ms: %w", what, c.EndMs, c.StartMs, ErrInvalid)
	}
	_, err := st.b.writer().exec(ctx, `INSERT INTO job_chunks (`+jobChunkColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (job_id, engine, chunk_uuid) DO UPDATE SET
			chunk_index = excluded.chunk_index, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
			kind = excluded.kind, state = excluded.state, attempts = excluded.attempts,
			info = excluded.info, updated_at = excluded.updated_at
		WHERE job_chunks.state NOT IN `+terminalChunkStates+` OR excluded.state IN `+terminalChunkStates,
		c.JobID, c.Engine, c.ChunkUUID, c.ChunkIndex, c.StartMs, c.EndMs, c.Kind, string(c.State),
		c.Attempts, c.Info, st.timeArg(now()))
	if err != nil {
		if st.b.constraint(err) == constraintForeignKey {
			return fmt.Errorf("%s: job %s: %w", what, c.JobID, ErrNotFound)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ListJobChunks implements Store.ListJobChunks: the job's chunks of one
// engine (every engine when engine is ""), ordered by ChunkIndex, then
// engine and ChunkUUID. An unknown job gives an empty, non-nil slice.
func (st *sqlStore) ListJobChunks(ctx context.Context, jobID, engine string) ([]JobChunk, error) {
	what := "chunks of job " + jobID
	query := `SELECT ` + jobChunkColumns + ` FROM job_chunks WHERE job_id = $1`
	args := []any{jobID}
	if engine != "" {
		query += ` AND engine = $2`
		args = append(args, engine)
		what += " engine " + engine
	}
	rows, err := st.b.reader().query(ctx, query+` ORDER BY chunk_index, engine, chunk_uuid`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []JobChunk{}
	for rows.Next() {
		var c JobChunk
		if err := rows.Scan(&c.JobID, &c.Engine, &c.ChunkUUID, &c.ChunkIndex, &c.StartMs, &c.EndMs, &c.Kind,
			&c.State, &c.Attempts, &c.Info, timeCol{&c.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// CountJobChunks implements Store.CountJobChunks: engine → state → number
// of chunks, with only the states that occur. An unknown job gives an
// empty, non-nil map.
func (st *sqlStore) CountJobChunks(ctx context.Context, jobID string) (map[string]map[ChunkState]int64, error) {
	rows, err := st.b.reader().query(ctx, `SELECT engine, state, COUNT(*) FROM job_chunks
		WHERE job_id = $1 GROUP BY engine, state`, jobID)
	if err != nil {
		return nil, fmt.Errorf("count chunks of job %s: %w", jobID, err)
	}
	defer rows.Close()
	out := map[string]map[ChunkState]int64{}
	for rows.Next() {
		var engine string
		var state ChunkState
		var n int64
		if err := rows.Scan(&engine, &state, &n); err != nil {
			return nil, fmt.Errorf("count chunks of job %s: %w", jobID, err)
		}
		if out[engine] == nil {
			out[engine] = map[ChunkState]int64{}
		}
		out[engine][state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count chunks of job %s: %w", jobID, err)
	}
	return out, nil
}
