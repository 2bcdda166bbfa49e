package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// Control messages are weir's own messages on its control topics
// (KindControl): the REST API announces work on them and weir's
// components carry it out. They are not part of Veritone's protocol, so
// their members are snake_case like the REST API's, and they have no
// "type" member: the topic says what a record is. Each is a JSON object,
// keyed by the id of the entity it is about (the stream id), so messages
// about one entity stay on one partition, in order.
//
// Every control message follows one pattern:
//
//   - a struct in this file, with an Extra map that keeps the members it
//     does not know (written back on encode, so a newer sender's fields
//     survive an older relay) and time.Time fields for instants (RFC 3339
//     in JSON);
//   - a topic constant named by ControlTopic, in topics.go;
//   - Topic, Key and Validate methods, making it a ControlMessage;
//     Validate's errors are *FieldError values naming the member;
//   - a Decode function taking the record's key and value, built on
//     decodeControl; EncodeControl writes any of them;
//   - a golden file in testdata/golden, a round-trip test and a fuzz
//     target for the decoder.
//
// A message without its entity id takes it from the record key, so a
// hand-written record (kcat -K:) needs only the key.
type ControlMessage interface {
	// Topic is the control topic the message belongs on.
	Topic() string
	// Key is the message's Kafka key: the id of the entity it is about.
	Key() string
	// Validate checks required members and values; its errors are
	// *FieldError values.
	Validate() error
}

// EncodeControl validates m and returns its Kafka key and JSON value, to be
// produced on m.Topic().
func EncodeControl(m ControlMessage) (key, value []byte, err error) {
	if m == nil || reflect.ValueOf(m).Kind() == reflect.Pointer && reflect.ValueOf(m).IsNil() {
		return nil, nil, fmt.Errorf("encode control message: nil message")
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	value, err = json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s message: %w", m.Topic(), err)
	}
	return []byte(m.Key()), value, nil
}

// VODJob is published on TopicVODJobs, keyed by stream id, for every
// accepted upload (SourceKey set) or URL import (SourceURL set). A VOD
// worker moves the stream through processing → transcoding → ready (or
// failed); a job with neither source takes the stream's own from the
// metadata store.
type VODJob struct {
	StreamID    string    `json:"stream_id"`
	SourceKey   string    `json:"source_key,omitempty"` // object-store key of the upload
	SourceURL   string    `json:"source_url,omitempty"` // http(s) URL to import
	Title       string    `json:"title,omitempty"`
	SubmittedAt time.Time `json:"submitted_at,omitzero"` // when the API accepted it

	Extra map[string]json.RawMessage `json:"-"`
}

const vodJobContext = "vod job"

// Topic implements ControlMessage.
func (j *VODJob) Topic() string { return TopicVODJobs }

// Key implements ControlMessage: the stream id.
func (j *VODJob) Key() string { return j.StreamID }

// Validate checks that stream_id is set.
func (j *VODJob) Validate() error {
	if j.StreamID == "" {
		return &FieldError{Context: vodJobContext, Field: "stream_id", Problem: "is required (in the value or as the record key)"}
	}
	if err := ValidateStreamID(j.StreamID); err != nil {
		return &FieldError{Context: vodJobContext, Field: "stream_id", Problem: err.Error()}
	}
	if err := validateTitle(j.Title); err != nil {
		return &FieldError{Context: vodJobContext, Field: "title", Problem: err.Error()}
	}
	return nil
}

// Limits on what weir's control messages and REST API accept. Stream ids
// weir generates ("live-54390fa40812") are far shorter; the limits keep a
// hostile or broken writer from putting megabytes into a field that ends up
// in logs, topic names and object keys.
const (
	// MaxStreamIDLength is the longest stream id, in bytes.
	MaxStreamIDLength = 128
	// MaxTitleLength is the longest title, in characters.
	MaxTitleLength = 200
	// MaxControlMessageBytes bounds a control message record (key, value
	// and headers); weir's consumers dead-letter larger ones unread.
	MaxControlMessageBytes = 64 << 10
)

// ValidateStreamID checks a stream id: 1 to MaxStreamIDLength bytes from
// [A-Za-z0-9._-], so it is safe in topic names, object keys and URLs as is.
func ValidateStreamID(id string) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > MaxStreamIDLength:
		return fmt.Errorf("is %d bytes long, more than %d", len(id), MaxStreamIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("has %q at byte %d; stream ids use [A-Za-z0-9._-]", c, i)
		}
	}
	return nil
}

func validateTitle(title string) error {
	if n := utf8.RuneCountInString(title); n > MaxTitleLength {
		return fmt.Errorf("is %d characters long, more than %d", n, MaxTitleLength)
	}
	return nil
}

// DecodeVODJob decodes and validates a record of TopicVODJobs. A job
// without stream_id takes the record key as its stream id. Unknown members
// are kept in Extra.
func DecodeVODJob(key, value []byte) (*VODJob, error) {
	j := &VODJob{}
	if err := decodeControl(vodJobContext, value, j); err != nil {
		return nil, err
	}
	if j.StreamID == "" {
		j.StreamID = keyID(key)
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return j, nil
}

// Live control actions.
const (
	// LiveStart announces a new live stream: the controllers get ready for
	// its publisher, or pull its SourceURL.
	LiveStart = "start"
	// LiveEnd asks for a live stream to end: its playlist gets
	// EXT-X-ENDLIST and the stream becomes a VOD.
	LiveEnd = "end"
)

// LiveControl is published on TopicLiveControl, keyed by stream id, when a
// live stream is started or asked to end. The publish key is never on the
// bus: ingest servers look it up in the metadata store.
type LiveControl struct {
	Action      string    `json:"action"` // LiveStart or LiveEnd
	StreamID    string    `json:"stream_id"`
	Title       string    `json:"title,omitempty"`
	SourceURL   string    `json:"source_url,omitempty"`  // start: the http(s) source to pull, if any
	RequestedAt time.Time `json:"requested_at,omitzero"` // when the API was asked

	Extra map[string]json.RawMessage `json:"-"`
}

const liveControlContext = "live control"

// Topic implements ControlMessage.
func (m *LiveControl) Topic() string { return TopicLiveControl }

// Key implements ControlMessage: the stream id.
func (m *LiveControl) Key() string { return m.StreamID }

// Validate checks that action is LiveStart or LiveEnd and stream_id is set.
func (m *LiveControl) Validate() error {
	switch m.Action {
	case LiveStart, LiveEnd:
	case "":
		return &FieldError{Context: liveControlContext, Field: "action", Problem: fmt.Sprintf("is required: %q or %q", LiveStart, LiveEnd)}
	default:
		return &FieldError{Context: liveControlContext, Field: "action", Problem: fmt.Sprintf("must be %q or %q, got %q", LiveStart, LiveEnd, m.Action)}
	}
	if m.StreamID == "" {
		return &FieldError{Context: liveControlContext, Field: "stream_id", Problem: "is required (in the value or as the record key)"}
	}
	if err := ValidateStreamID(m.StreamID); err != nil {
		return &FieldError{Context: liveControlContext, Field: "stream_id", Problem: err.Error()}
	}
	if err := validateTitle(m.Title); err != nil {
		return &FieldError{Context: liveControlContext, Field: "title", Problem: err.Error()}
	}
	return nil
}

// DecodeLiveControl decodes and validates a record of TopicLiveControl. A
// message without stream_id takes the record key as its stream id.
// Unknown members are kept in Extra.
func DecodeLiveControl(key, value []byte) (*LiveControl, error) {
	m := &LiveControl{}
	if err := decodeControl(liveControlContext, value, m); err != nil {
		return nil, err
	}
	if m.StreamID == "" {
		m.StreamID = keyID(key)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// JobRun is published on TopicJobs, keyed by job id, when the API accepts
// a job (POST /jobs). A job runner takes it, holds the job's lease in the
// metadata store and runs the job (chunker, dispatch to engines, results)
// to its end; the job's definition is read from the metadata store, so the
// message only names it. A runner that dies mid-job leaves the record
// unacknowledged and another runner takes it over.
type JobRun struct {
	JobID       string    `json:"job_id"`
	SubmittedAt time.Time `json:"submitted_at,omitzero"` // when the API accepted it

	Extra map[string]json.RawMessage `json:"-"`
}

const jobRunContext = "job run"

// Topic implements ControlMessage.
func (m *JobRun) Topic() string { return TopicJobs }

// Key implements ControlMessage: the job id.
func (m *JobRun) Key() string { return m.JobID }

// Validate checks that job_id is set and is a legal id (the rules of
// stream ids: it names topics and object keys).
func (m *JobRun) Validate() error {
	if m.JobID == "" {
		return &FieldError{Context: jobRunContext, Field: "job_id", Problem: "is required (in the value or as the record key)"}
	}
	if err := ValidateStreamID(m.JobID); err != nil {
		return &FieldError{Context: jobRunContext, Field: "job_id", Problem: strings.Replace(err.Error(), "stream ids", "job ids", 1)}
	}
	return nil
}

// DecodeJobRun decodes and validates a record of TopicJobs. A message
// without job_id takes the record key as its job id. Unknown members are
// kept in Extra.
func DecodeJobRun(key, value []byte) (*JobRun, error) {
	m := &JobRun{}
	if err := decodeControl(jobRunContext, value, m); err != nil {
		return nil, err
	}
	if m.JobID == "" {
		m.JobID = keyID(key)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// keyID returns the record key as an entity id, or "" when it is not
// UTF-8 text (JSON could not carry it back unchanged).
func keyID(key []byte) string {
	if !utf8.Valid(key) {
		return ""
	}
	return string(key)
}

// decodeControl decodes value, which must be a JSON object, into msg (a
// pointer to a control message struct), naming the member at fault in its
// errors: encoding/json names a mistyped member but not a malformed time.
func decodeControl(ctx string, value []byte, msg any) error {
	if v := bytes.TrimLeft(value, " \t\r\n"); len(v) == 0 || v[0] != '{' {
		return fmt.Errorf("%s: value is not a JSON object: got %s", ctx, describeJSON(value))
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(value, &members); err != nil {
		return jsonError(ctx, err)
	}
	if err := checkTimes(ctx, members, reflect.TypeOf(msg).Elem()); err != nil {
		return err
	}
	if err := json.Unmarshal(value, msg); err != nil {
		return jsonError(ctx, err)
	}
	return nil
}

var timeType = reflect.TypeFor[time.Time]()

// checkTimes checks the members that fill time.Time fields of struct type
// t: each must be null or an RFC 3339 string.
func checkTimes(ctx string, members map[string]json.RawMessage, t reflect.Type) error {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type != timeType {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		for k, raw := range members {
			if !strings.EqualFold(k, name) || string(raw) == "null" {
				continue
			}
			var at time.Time
			if err := at.UnmarshalJSON(raw); err != nil {
				return &FieldError{Context: ctx, Field: name,
					Problem: fmt.Sprintf("must be an RFC 3339 time like \"2024-05-01T12:00:00Z\", got %s", quoteKey(raw))}
			}
		}
	}
	return nil
}

// JSON methods: each goes through a method-less copy of its type so that
// encoding/json does the field work and unknown members land in Extra.

func (j VODJob) MarshalJSON() ([]byte, error) {
	type plain VODJob
	return marshalObject(plain(j), j.Extra)
}

func (j *VODJob) UnmarshalJSON(b []byte) error {
	type plain VODJob
	return unmarshalObject(b, (*plain)(j), &j.Extra)
}

func (m LiveControl) MarshalJSON() ([]byte, error) {
	type plain LiveControl
	return marshalObject(plain(m), m.Extra)
}

func (m *LiveControl) UnmarshalJSON(b []byte) error {
	type plain LiveControl
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}

func (m JobRun) MarshalJSON() ([]byte, error) {
	type plain JobRun
	return marshalObject(plain(m), m.Extra)
}

func (m *JobRun) UnmarshalJSON(b []byte) error {
	type plain JobRun
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}
