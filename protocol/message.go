package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Type is a message type, the value of the "type" member of a JSON message
// and, for stream messages, the (suffix of the) Kafka key.
type Type string

// The message types of the protocol.
const (
	TypeStreamInit           Type = "stream_init"
	TypeRawStream            Type = "raw_stream"
	TypeStreamEOF            Type = "stream_eof"
	TypeEngineHeartbeat      Type = "engine_heartbeat"
	TypeMediaChunk           Type = "media_chunk"
	TypeEngineOutput         Type = "engine_output"
	TypeChunkProcessedStatus Type = "chunk_processed_status"
	// weir's extensions (window.go).
	TypeTimestampBound Type = "timestamp_bound"
	TypeResultWindow   Type = "result_window"
)

// DefaultChunkSize is the raw_stream payload size, in bytes, that adapters
// use unless they announce another one in stream_init's chunkSize.
const DefaultChunkSize = 10240

// Heartbeat cadence: an engine sends an engine_heartbeat every
// HeartbeatInterval or every HeartbeatEveryMessages messages it writes,
// whichever comes first.
const (
	HeartbeatInterval      = 5 * time.Second
	HeartbeatEveryMessages = 20
)

// HeartbeatDue reports whether an engine that last sent a heartbeat at last
// and has written messagesSince messages since then owes the next one at
// now. A zero last means no heartbeat was sent yet, so one is due at once.
func HeartbeatDue(last, now time.Time, messagesSince int) bool {
	return last.IsZero() || messagesSince >= HeartbeatEveryMessages || now.Sub(last) >= HeartbeatInterval
}

// Message is one decoded protocol message: *StreamInit, *RawStream,
// *StreamEOF, *EngineHeartbeat, *MediaChunk, *EngineOutput,
// *ChunkProcessedStatus, or one of weir's extensions *TimestampBound and
// *ResultWindow. The set is closed; use a type switch.
type Message interface {
	// MessageType reports the message's type, whatever its Type field says.
	MessageType() Type
	// Validate checks required fields and value ranges. Its errors are
	// *FieldError values naming the offending field.
	Validate() error

	header() *Header
}

// Header holds the members every JSON message shares. Extra keeps the
// members of the message that no field of its Go type matches (compared
// case-insensitively, as encoding/json does), with their raw JSON values;
// Encode writes them back after the known members, sorted by name.
type Header struct {
	Type         Type   `json:"type"`
	TimestampUTC int64  `json:"timestampUTC"` // milliseconds since the Unix epoch, when the message was created
	TaskID       string `json:"taskId"`
	TDOID        string `json:"tdoId"`
	JobID        string `json:"jobId"`

	Extra map[string]json.RawMessage `json:"-"`
}

// NowMillis returns the current time as a timestampUTC value.
func NowMillis() int64 { return now().UnixMilli() }

// now is replaced in tests.
var now = time.Now

// FieldError is a validation failure of one field. Its text has the form
//
//	stream_init: field "chunkSize": must be positive, got -5
//
// Field is a JSON member name, dotted for nested members
// ("taskPayload.recordDuration", "content.series[2].stopTimeMs").
type FieldError struct {
	Context string // the message type, or "task payload"
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: field %q: %s", e.Context, e.Field, e.Problem)
}

// ErrUnknownType is wrapped by Decode's error for a JSON message whose type
// this package does not know (Veritone has more, such as control_task). A
// consumer can skip such records with errors.Is.
var ErrUnknownType = errors.New("unknown message type")

// Sequence errors reported by StreamReader; test them with errors.Is.
var (
	// ErrOutOfOrder: a message arrived where the stream order forbids it.
	ErrOutOfOrder = errors.New("out of order")
	// ErrIntegrity: stream_eof's contentLength or md5Checksum does not match
	// the raw bytes received, or a raw_stream exceeds chunkSize.
	ErrIntegrity = errors.New("integrity")
)

func fieldErr(ctx Type, field, format string, args ...any) *FieldError {
	return &FieldError{Context: string(ctx), Field: field, Problem: fmt.Sprintf(format, args...)}
}
