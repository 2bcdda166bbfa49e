package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TaskPayload is the JSON document a task starts from, as Veritone hands it
// to an adapter:
//
//	{"jobId": "...", "taskId": "...", "recordingId": "400002379",
//	 "streamOutKafkaTopic": "stream_00000012",
//	 "taskPayload": {"url": "http://...", "isLiveStream": true, "recordDuration": "1m"}}
//
// Members this type does not know, at either level, are kept in Extra and
// written back, so an engine's own payload options (credentials, a
// sourceId, library ids) survive a trip through weir.
type TaskPayload struct {
	JobID               string  `json:"jobId"`
	TaskID              string  `json:"taskId"`
	RecordingID         string  `json:"recordingId"` // the TDO the results belong to
	StreamOutKafkaTopic string  `json:"streamOutKafkaTopic"`
	Payload             Payload `json:"taskPayload"`

	Extra map[string]json.RawMessage `json:"-"`
}

// Payload is the engine-specific part of a TaskPayload. The fields are the
// ones an ingest adapter reads; other engines find theirs in Extra.
type Payload struct {
	URL                 string `json:"url,omitempty"`
	IsLiveStream        bool   `json:"isLiveStream,omitempty"`
	RecordDuration      string `json:"recordDuration,omitempty"` // how long to record a live stream; see RecordLimit
	GenerateMediaAssets bool   `json:"generateMediaAssets,omitempty"`
	OutputChunkDuration string `json:"outputChunkDuration,omitempty"` // how long each output chunk is; see ChunkDuration

	Extra map[string]json.RawMessage `json:"-"`
}

const taskContext = "task payload"

// ParseTaskPayload decodes and validates a task payload. Errors name the
// field, as in
//
//	task payload: field "taskPayload.recordDuration": duration "1x": want Go syntax like "1m30s" or plain seconds like "90"
func ParseTaskPayload(data []byte) (*TaskPayload, error) {
	if v := bytes.TrimLeft(data, " \t\r\n"); len(v) == 0 || v[0] != '{' {
		return nil, fmt.Errorf("%s: want a JSON object, got %s", taskContext, describeJSON(data))
	}
	var p TaskPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, jsonError(taskContext, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that recordDuration and outputChunkDuration, when set,
// are positive durations. No member is required: weir fills in ids and
// topics it is not given.
func (p *TaskPayload) Validate() error {
	if _, err := p.Payload.RecordLimit(); err != nil {
		return &FieldError{Context: taskContext, Field: "taskPayload.recordDuration", Problem: err.Error()}
	}
	if _, err := p.Payload.ChunkDuration(); err != nil {
		return &FieldError{Context: taskContext, Field: "taskPayload.outputChunkDuration", Problem: err.Error()}
	}
	return nil
}

// RecordLimit parses RecordDuration with ParseDuration. It returns 0 and no
// error when RecordDuration is empty, meaning: record until the source
// ends.
func (p *Payload) RecordLimit() (time.Duration, error) {
	if p.RecordDuration == "" {
		return 0, nil
	}
	return ParseDuration(p.RecordDuration)
}

// ChunkDuration parses OutputChunkDuration with ParseDuration. It returns 0
// and no error when OutputChunkDuration is empty, meaning: the chunker's
// default.
func (p *Payload) ChunkDuration() (time.Duration, error) {
	if p.OutputChunkDuration == "" {
		return 0, nil
	}
	return ParseDuration(p.OutputChunkDuration)
}

// ParseDuration parses a payload duration: Go syntax ("1m", "10s",
// "1h30m", "250ms") or a plain number of seconds ("90", "2.5"), with
// surrounding space ignored. The result must be positive and fit in a
// time.Duration (about 292 years).
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("duration %q: is empty", s)
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(t, 64); err == nil {
		ns := math.Round(secs * float64(time.Second))
		if math.IsNaN(ns) || math.Abs(ns) >= 9.2e18 { // just under 2⁶³ ns
			return 0, fmt.Errorf("duration %q: out of range", s)
		}
		d = time.Duration(ns)
	} else {
		d, err = time.ParseDuration(t)
		if err != nil {
			if goDuration.MatchString(t) { // well formed, so too large
				return 0, fmt.Errorf("duration %q: out of range", s)
			}
			return 0, fmt.Errorf("duration %q: want Go syntax like \"1m30s\" or plain seconds like \"90\"", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q: must be positive", s)
	}
	return d, nil
}

// goDuration matches the syntax time.ParseDuration accepts.
var goDuration = regexp.MustCompile(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

func (p TaskPayload) MarshalJSON() ([]byte, error) {
	type plain TaskPayload
	return marshalObject(plain(p), p.Extra)
}

func (p *TaskPayload) UnmarshalJSON(b []byte) error {
	type plain TaskPayload
	return unmarshalObject(b, (*plain)(p), &p.Extra)
}

func (p Payload) MarshalJSON() ([]byte, error) {
	type plain Payload
	return marshalObject(plain(p), p.Extra)
}

func (p *Payload) UnmarshalJSON(b []byte) error {
	type plain Payload
	return unmarshalObject(b, (*plain)(p), &p.Extra)
}
