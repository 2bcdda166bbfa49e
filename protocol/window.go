package protocol

import (
	"encoding/json"
	"fmt"
)

// This file holds weir's two messages for aggregation, both extensions of
// Veritone's protocol that follow its conventions (a "type" member, the
// common header, camelCase members, times in milliseconds on the TDO
// timeline). A consumer that does not know them skips them, as it skips any
// unknown type (Decode's error wraps ErrUnknownType there).
//
//   - TimestampBound, on a job's results topic: a task's promise that it
//     will write no engine_output starting earlier.
//   - ResultWindow, on a job's windows topic: the merged results of every
//     engine of the job for one window of time, written by the aggregator.

// TimestampBound promises, for one task of a job, that every engine_output
// the task still writes has startOffsetMs >= TimestampBoundMs. It travels
// on the job's results topic, keyed by taskId, so it lands on the same
// partition as the task's engine_output records and after all of those it
// covers. The job runner sends it for every task it runs: a chunk task's
// bound is the end of the longest run of settled chunks from the first (a
// chunk that succeeded with or without output, was ignored, dropped or
// failed), a stream task's the bound of its engine's Emitter. Bounds of a
// task never move back; a lower one than already sent says nothing new.
type TimestampBound struct {
	Header
	// EngineID is the engine of the task.
	EngineID string `json:"engineId"`
	// TimestampBoundMs is the bound, on the TDO timeline.
	TimestampBoundMs int64 `json:"timestampBoundMs"`
	// Done says the task will write no engine_output at all any more (its
	// bound is past the end of time); TimestampBoundMs is then where its
	// output ended.
	Done bool `json:"done,omitempty"`
}

// WindowStatus is a result_window's status.
type WindowStatus string

// Window statuses.
const (
	// WindowComplete: every engine of the job had passed the window's end.
	WindowComplete WindowStatus = "complete"
	// WindowPartial: the engines named in Missing stalled and were timed
	// out; their results for the window that arrive later are late.
	WindowPartial WindowStatus = "partial"
)

// ResultWindow is the merged result of a job for one window of time
// [WindowStartMs, WindowEndMs): every engine's engine_output overlapping
// it. The aggregator writes one per window, in order, on the job's windows
// topic (WindowsTopic), keyed by jobId. Windows are numbered by Seq from 0,
// the job's first window.
type ResultWindow struct {
	Header
	WindowStartMs int64        `json:"windowStartMs"`
	WindowEndMs   int64        `json:"windowEndMs"`
	Seq           int64        `json:"seq"`
	Status        WindowStatus `json:"status"`
	// Missing names the engines timed out for a partial window, sorted.
	Missing []string `json:"missing,omitempty"`
	// Results are the outputs overlapping the window in time order
	// (start, end, engine, chunk); an output longer than a window is in
	// every window it overlaps.
	Results []WindowResult `json:"results"`
	// ContentOmitted says the results' contents were left out because the
	// window would not fit in one record (MaxWindowBytes); GET
	// /jobs/{id}/windows has them.
	ContentOmitted bool `json:"contentOmitted,omitempty"`
}

// MaxWindowBytes bounds a result_window record's value; a window whose
// results make it larger goes out without their contents.
const MaxWindowBytes = 768 << 10

// WindowResult is one engine_output in a result_window.
type WindowResult struct {
	EngineID      string          `json:"engineId"`
	TaskID        string          `json:"taskId"`
	OutputType    string          `json:"outputType"`
	StartOffsetMs int64           `json:"startOffsetMs"`
	EndOffsetMs   int64           `json:"endOffsetMs"`
	ChunkUUID     string          `json:"chunkUUID"`
	Rev           int64           `json:"rev"`
	Content       json.RawMessage `json:"content,omitempty"`
}

func (*TimestampBound) MessageType() Type { return TypeTimestampBound }
func (*ResultWindow) MessageType() Type   { return TypeResultWindow }

func (m *TimestampBound) header() *Header { return &m.Header }
func (m *ResultWindow) header() *Header   { return &m.Header }

// Validate checks the type, that taskId (the key) is set and that the
// bound is not negative.
func (m *TimestampBound) Validate() error {
	t := TypeTimestampBound
	return firstErr(m.check(t), required(t, "taskId", m.TaskID),
		notNegative(t, "timestampBoundMs", m.TimestampBoundMs))
}

// Validate checks the type, that jobId (the key) is set, that the window
// is a non-empty range from a non-negative start, that seq is not
// negative, that status is complete or partial with Missing set exactly
// for partial, and each result.
func (m *ResultWindow) Validate() error {
	t := TypeResultWindow
	if err := firstErr(m.check(t), required(t, "jobId", m.JobID),
		notNegative(t, "windowStartMs", m.WindowStartMs), notNegative(t, "seq", m.Seq)); err != nil {
		return err
	}
	if m.WindowEndMs <= m.WindowStartMs {
		return fieldErr(t, "windowEndMs", "must be after windowStartMs (%d), got %d", m.WindowStartMs, m.WindowEndMs)
	}
	if err := m.checkStatus(); err != nil {
		return err
	}
	for i := range m.Results {
		if err := m.Results[i].check(fmt.Sprintf("results[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (m *ResultWindow) checkStatus() error {
	t := TypeResultWindow
	switch m.Status {
	case WindowComplete:
		if len(m.Missing) > 0 {
			return fieldErr(t, "missing", "must be empty when status is complete, got %d engines", len(m.Missing))
		}
	case WindowPartial:
		if len(m.Missing) == 0 {
			return fieldErr(t, "missing", "must name the engines timed out when status is partial")
		}
	default:
		return fieldErr(t, "status", "must be complete or partial, got %q", m.Status)
	}
	for i, e := range m.Missing {
		if e == "" {
			return fieldErr(t, fmt.Sprintf("missing[%d]", i), "is empty")
		}
	}
	return nil
}

func (r *WindowResult) check(field string) error {
	t := TypeResultWindow
	if err := firstErr(required(t, field+".engineId", r.EngineID),
		notNegative(t, field+".startOffsetMs", r.StartOffsetMs),
		notNegative(t, field+".rev", r.Rev)); err != nil {
		return err
	}
	if r.EndOffsetMs < r.StartOffsetMs {
		return fieldErr(t, field+".endOffsetMs", "must not be before startOffsetMs (%d), got %d", r.StartOffsetMs, r.EndOffsetMs)
	}
	if len(r.Content) > 0 && r.Content[0] != '{' && r.Content[0] != '"' {
		return fieldErr(t, field+".content", "must be a JSON object or string, got %s", describeJSON(r.Content))
	}
	return nil
}

func (m TimestampBound) MarshalJSON() ([]byte, error) {
	type plain TimestampBound
	return marshalObject(plain(m), m.Extra)
}

func (m *TimestampBound) UnmarshalJSON(b []byte) error {
	type plain TimestampBound
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}

func (m ResultWindow) MarshalJSON() ([]byte, error) {
	type plain ResultWindow
	return marshalObject(plain(m), m.Extra)
}

// UnmarshalJSON decodes a result_window, compacting the results' contents
// and reading an empty missing list as none, so a window reads back equal
// to itself after Encode.
func (m *ResultWindow) UnmarshalJSON(b []byte) error {
	type plain ResultWindow
	if err := unmarshalObject(b, (*plain)(m), &m.Extra); err != nil {
		return err
	}
	if len(m.Missing) == 0 {
		m.Missing = nil
	}
	for i := range m.Results {
		m.Results[i].Content = compactRaw(m.Results[i].Content)
	}
	return nil
}
