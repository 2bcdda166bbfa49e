package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// MaxChunkSize is the largest chunkSize a stream_init may announce: larger
// raw_stream records would exceed Kafka's default 1 MiB message limit.
const MaxChunkSize = 1 << 20

// StreamInit opens a stream on a stream topic. It must be the first message
// of every stream; its key is "stream_init", optionally prefixed.
type StreamInit struct {
	Header
	// RelativeStartOffsetMS is where the stream starts on the TDO's
	// timeline; engines add it to the offsets of everything they output.
	RelativeStartOffsetMS int64 `json:"relativeStartOffsetMS"`
	// DurationMS is the expected duration, 0 when unknown (live streams).
	DurationMS int64 `json:"durationMS"`
	// ChunkSize is the most bytes one raw_stream of this stream carries.
	ChunkSize int64 `json:"chunkSize"`
	// MimeType is the content type of the bytes, a container
	// ("video/mp2t", "video/x-matroska") or an elementary stream
	// ("audio/aac").
	MimeType string `json:"mimeType"`
	// FFmpegFormat is the ffmpeg demuxer name for the bytes ("mpegts",
	// "matroska", "s16le"), empty when unknown.
	FFmpegFormat string `json:"ffmpegFormat"`

	// KeyPrefix is the part of the Kafka key before the type, empty or
	// ending in "_" ("cam1_" for key "cam1_stream_init"). Not in the JSON.
	KeyPrefix string `json:"-"`
}

// RawStream is a slice of a stream's bytes. On Kafka its value is Data
// itself, not JSON, and its key is "raw_stream", optionally prefixed; this
// is how a consumer tells it from the JSON messages on the same topic.
// len(Data) is at most the stream's chunkSize.
type RawStream struct {
	KeyPrefix string
	Data      []byte
}

// StreamEOF closes a stream. ContentLength and MD5Checksum, when set, let
// the consumer verify it received every byte; they are weir's additions and
// other producers may leave them out, so 0 and "" mean "not reported".
type StreamEOF struct {
	Header
	// ForcedEOF is true when the stream ended because its task was stopped,
	// not because the source ended.
	ForcedEOF     bool   `json:"forcedEOF"`
	ContentLength int64  `json:"contentLength,omitempty"` // total raw_stream bytes
	MD5Checksum   string `json:"md5Checksum,omitempty"`   // hex MD5 of the raw_stream bytes in order

	KeyPrefix string `json:"-"` // as in StreamInit
}

// HeartbeatStatus is an engine_heartbeat's status.
type HeartbeatStatus string

// Heartbeat statuses. DONE and FAILED are an instance's last heartbeat.
const (
	HeartbeatRunning HeartbeatStatus = "RUNNING"
	HeartbeatDone    HeartbeatStatus = "DONE"
	HeartbeatFailed  HeartbeatStatus = "FAILED"
)

// EngineHeartbeat tells the platform an engine instance is alive and what
// it has done so far. Its key is EngineInstanceID. An engine sends one
// every HeartbeatInterval or every HeartbeatEveryMessages messages,
// whichever comes first; the counters are cumulative.
type EngineHeartbeat struct {
	Header
	EngineID         string          `json:"engineId"`
	EngineInstanceID string          `json:"engineInstanceId"`
	Count            int64           `json:"count"`  // 1 for the instance's first heartbeat, then +1 each
	Status           HeartbeatStatus `json:"status"` // RUNNING, DONE or FAILED
	UpTime           int64           `json:"upTime"` // milliseconds since the instance started
	BytesRead        int64           `json:"bytesRead"`
	BytesWritten     int64           `json:"bytesWritten"`
	MessagesWritten  int64           `json:"messagesWritten"`
	ErrorMsg         string          `json:"errorMsg"` // why, when Status is FAILED

	// TimestampBoundMs is weir's extension to Veritone's heartbeat: a
	// promise that every engine_output this instance still writes for
	// TaskID has startOffsetMs >= *TimestampBoundMs (on the TDO timeline).
	// It lets an aggregator finish time T once every engine has passed T,
	// without waiting for the stream to end. nil makes no promise; a DONE
	// heartbeat promises everything.
	TimestampBoundMs *int64 `json:"timestampBoundMs,omitempty"`
}

// MediaChunk is a piece of media (a frame, a segment of audio or video, some
// text) for a chunk engine. Its key is TaskID. Large media lives in the
// object store and CacheURI points at it; small media travels in Content,
// as text, or base64 when ContentEncoding says so. Exactly one of the two
// is set; Data returns the bytes of inline content.
type MediaChunk struct {
	Header
	MimeType      string `json:"mimeType"`
	ChunkIndex    int64  `json:"chunkIndex"`    // position of the chunk in the TDO, from 0
	StartOffsetMs int64  `json:"startOffsetMs"` // on the TDO timeline
	EndOffsetMs   int64  `json:"endOffsetMs"`
	Width         int64  `json:"width"` // pixels, images and video only
	Height        int64  `json:"height"`
	CacheURI      string `json:"cacheURI"`
	Content       string `json:"content"`
	// ContentEncoding is weir's extension: "base64" when Content holds
	// binary media (a small JPEG frame) in standard base64, "" when it is
	// text.
	ContentEncoding string `json:"contentEncoding,omitempty"`
	// TaskPayload is the engine's task payload, a JSON object passed on
	// as is.
	TaskPayload json.RawMessage `json:"taskPayload,omitempty"`
	// ChunkUUID identifies the chunk in the chunk_processed_status that
	// answers it.
	ChunkUUID string `json:"chunkUUID"`
}

// EngineOutput carries an engine's results for a time range. Its key is
// TaskID. Content is usually a vtn-standard document (see Document); it may
// also be a JSON string, holding either vtn-standard JSON (as some
// producers send it) or another format named by MimeType.
type EngineOutput struct {
	Header
	OutputType    string          `json:"outputType"` // "transcript", "object", ...
	MimeType      string          `json:"mimeType"`   // of Content, usually "application/json"
	StartOffsetMs int64           `json:"startOffsetMs"`
	EndOffsetMs   int64           `json:"endOffsetMs"`
	Content       json.RawMessage `json:"content,omitempty"`
	Rev           int64           `json:"rev"` // revision, incremented when the output for this range is replaced
	TaskPayload   json.RawMessage `json:"taskPayload,omitempty"`
	ChunkUUID     string          `json:"chunkUUID"` // of the media_chunk this answers, if any
}

// ChunkStatus is a chunk_processed_status's status.
type ChunkStatus string

// Chunk statuses.
const (
	ChunkSuccess ChunkStatus = "SUCCESS"
	ChunkError   ChunkStatus = "ERROR"
	ChunkIgnored ChunkStatus = "IGNORED" // not attempted, for example an unsupported mime type
)

// ChunkProcessedStatus reports what became of a media_chunk. Its key is
// TaskID, or ChunkUUID when TaskID is empty.
type ChunkProcessedStatus struct {
	Header
	ChunkUUID string      `json:"chunkUUID"`
	Status    ChunkStatus `json:"status"`
	ErrorMsg  string      `json:"errorMsg,omitempty"`
	InfoMsg   string      `json:"infoMsg,omitempty"`
}

// MessageType implementations.

func (*StreamInit) MessageType() Type           { return TypeStreamInit }
func (*RawStream) MessageType() Type            { return TypeRawStream }
func (*StreamEOF) MessageType() Type            { return TypeStreamEOF }
func (*EngineHeartbeat) MessageType() Type      { return TypeEngineHeartbeat }
func (*MediaChunk) MessageType() Type           { return TypeMediaChunk }
func (*EngineOutput) MessageType() Type         { return TypeEngineOutput }
func (*ChunkProcessedStatus) MessageType() Type { return TypeChunkProcessedStatus }

func (m *StreamInit) header() *Header           { return &m.Header }
func (*RawStream) header() *Header              { return nil }
func (m *StreamEOF) header() *Header            { return &m.Header }
func (m *EngineHeartbeat) header() *Header      { return &m.Header }
func (m *MediaChunk) header() *Header           { return &m.Header }
func (m *EngineOutput) header() *Header         { return &m.Header }
func (m *ChunkProcessedStatus) header() *Header { return &m.Header }

// check validates the common members for a message of type t.
func (h *Header) check(t Type) error {
	if h.Type != t {
		return fieldErr(t, "type", "must be %q, got %q", t, h.Type)
	}
	if h.TimestampUTC < 0 {
		return fieldErr(t, "timestampUTC", "must not be negative, got %d", h.TimestampUTC)
	}
	return nil
}

func checkPrefix(t Type, prefix string) error {
	if prefix != "" && !strings.HasSuffix(prefix, "_") {
		return fieldErr(t, "key", "prefix %q must end in \"_\"", prefix)
	}
	return nil
}

func notNegative(t Type, field string, v int64) error {
	if v < 0 {
		return fieldErr(t, field, "must not be negative, got %d", v)
	}
	return nil
}

func required(t Type, field, v string) error {
	if v == "" {
		return fieldErr(t, field, "is required")
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the type, that chunkSize is in (0, MaxChunkSize], that
// the offsets are not negative and that mimeType is set.
func (m *StreamInit) Validate() error {
	t := TypeStreamInit
	if err := firstErr(m.check(t), checkPrefix(t, m.KeyPrefix),
		notNegative(t, "relativeStartOffsetMS", m.RelativeStartOffsetMS),
		notNegative(t, "durationMS", m.DurationMS)); err != nil {
		return err
	}
	if m.ChunkSize <= 0 {
		return fieldErr(t, "chunkSize", "must be positive, got %d", m.ChunkSize)
	}
	if m.ChunkSize > MaxChunkSize {
		return fieldErr(t, "chunkSize", "must be at most %d, got %d", MaxChunkSize, m.ChunkSize)
	}
	return required(t, "mimeType", m.MimeType)
}

// Validate checks only the key prefix: the bytes are opaque, and their
// length is checked against chunkSize by StreamReader, which knows it.
func (m *RawStream) Validate() error {
	return checkPrefix(TypeRawStream, m.KeyPrefix)
}

// Validate checks the type, that contentLength is not negative and that
// md5Checksum, when set, is 32 hex digits.
func (m *StreamEOF) Validate() error {
	t := TypeStreamEOF
	if err := firstErr(m.check(t), checkPrefix(t, m.KeyPrefix),
		notNegative(t, "contentLength", m.ContentLength)); err != nil {
		return err
	}
	if m.MD5Checksum != "" {
		if b, err := hex.DecodeString(m.MD5Checksum); err != nil || len(b) != 16 {
			return fieldErr(t, "md5Checksum", "must be 32 hex digits, got %q", m.MD5Checksum)
		}
	}
	return nil
}

// Validate checks the type, that engineInstanceId (the key) is set, that
// count starts at 1, that status is RUNNING, DONE or FAILED and that the
// counters and the timestamp bound are not negative.
func (m *EngineHeartbeat) Validate() error {
	t := TypeEngineHeartbeat
	if err := firstErr(m.check(t), required(t, "engineInstanceId", m.EngineInstanceID)); err != nil {
		return err
	}
	if m.Count < 1 {
		return fieldErr(t, "count", "must be at least 1, got %d", m.Count)
	}
	switch m.Status {
	case HeartbeatRunning, HeartbeatDone, HeartbeatFailed:
	default:
		return fieldErr(t, "status", "must be RUNNING, DONE or FAILED, got %q", m.Status)
	}
	if err := firstErr(notNegative(t, "upTime", m.UpTime),
		notNegative(t, "bytesRead", m.BytesRead),
		notNegative(t, "bytesWritten", m.BytesWritten),
		notNegative(t, "messagesWritten", m.MessagesWritten)); err != nil {
		return err
	}
	if m.TimestampBoundMs != nil {
		return notNegative(t, "timestampBoundMs", *m.TimestampBoundMs)
	}
	return nil
}

func checkRange(t Type, start, end int64) error {
	if err := notNegative(t, "startOffsetMs", start); err != nil {
		return err
	}
	if end < start {
		return fieldErr(t, "endOffsetMs", "must not be before startOffsetMs (%d), got %d", start, end)
	}
	return nil
}

func checkPayload(t Type, raw json.RawMessage) error {
	if len(raw) > 0 && raw[0] != '{' {
		return fieldErr(t, "taskPayload", "must be a JSON object, got %s", describeJSON(raw))
	}
	return nil
}

// Validate checks the type, that taskId (the key) and mimeType are set,
// that the offsets form a range (endOffsetMs >= startOffsetMs >= 0), that
// index and dimensions are not negative, that exactly one of cacheURI and
// content is set and that taskPayload, when present, is an object.
func (m *MediaChunk) Validate() error {
	t := TypeMediaChunk
	if err := firstErr(m.check(t), required(t, "taskId", m.TaskID),
		required(t, "mimeType", m.MimeType),
		notNegative(t, "chunkIndex", m.ChunkIndex),
		checkRange(t, m.StartOffsetMs, m.EndOffsetMs),
		notNegative(t, "width", m.Width),
		notNegative(t, "height", m.Height),
		checkPayload(t, m.TaskPayload)); err != nil {
		return err
	}
	switch {
	case m.CacheURI != "" && m.Content != "":
		return fieldErr(t, "content", "must be empty when cacheURI is set")
	case m.CacheURI == "" && m.Content == "":
		return fieldErr(t, "cacheURI", "is required when content is empty")
	}
	switch m.ContentEncoding {
	case "":
	case ContentBase64:
		if _, err := base64.StdEncoding.DecodeString(m.Content); err != nil {
			return fieldErr(t, "content", "is not valid base64: %v", err)
		}
	default:
		return fieldErr(t, "contentEncoding", "must be %q or absent, got %q", ContentBase64, m.ContentEncoding)
	}
	return nil
}

// ContentBase64 is the contentEncoding of binary media carried inline.
const ContentBase64 = "base64"

// Data returns the chunk's inline content as bytes, decoding base64 when
// ContentEncoding says so. A chunk with a cacheURI has no inline content;
// its bytes are fetched from the URI.
func (m *MediaChunk) Data() ([]byte, error) {
	if m.ContentEncoding == ContentBase64 {
		b, err := base64.StdEncoding.DecodeString(m.Content)
		if err != nil {
			return nil, fmt.Errorf("media_chunk %s: content: %w", m.ChunkUUID, err)
		}
		return b, nil
	}
	return []byte(m.Content), nil
}

// Validate checks the type, that taskId (the key) is set, that the offsets
// form a range, that rev is not negative and that taskPayload, when
// present, is an object. Content must be a JSON object or string; an
// object must be a valid vtn-standard document (see Document.Validate).
func (m *EngineOutput) Validate() error {
	t := TypeEngineOutput
	if err := firstErr(m.check(t), required(t, "taskId", m.TaskID),
		checkRange(t, m.StartOffsetMs, m.EndOffsetMs),
		notNegative(t, "rev", m.Rev),
		checkPayload(t, m.TaskPayload)); err != nil {
		return err
	}
	if len(m.Content) == 0 {
		return nil
	}
	switch m.Content[0] {
	case '"':
		return nil
	case '{':
		var d Document
		if err := json.Unmarshal(m.Content, &d); err != nil {
			return prefixField(jsonError(string(t), err), "content")
		}
		return prefixField(d.validate(string(t)), "content")
	}
	return fieldErr(t, "content", "must be a JSON object or string, got %s", describeJSON(m.Content))
}

// Validate checks the type, that chunkUUID is set and that status is
// SUCCESS, ERROR or IGNORED.
func (m *ChunkProcessedStatus) Validate() error {
	t := TypeChunkProcessedStatus
	if err := firstErr(m.check(t), required(t, "chunkUUID", m.ChunkUUID)); err != nil {
		return err
	}
	switch m.Status {
	case ChunkSuccess, ChunkError, ChunkIgnored:
		return nil
	}
	return fieldErr(t, "status", "must be SUCCESS, ERROR or IGNORED, got %q", m.Status)
}

// Document parses Content as a vtn-standard document. Content may be the
// document itself or a JSON string holding it.
func (m *EngineOutput) Document() (*Document, error) {
	raw := m.Content
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, jsonError(string(TypeEngineOutput), err)
		}
		raw = []byte(s)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fieldErr(TypeEngineOutput, "content", "is empty")
	}
	var d Document
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, prefixField(jsonError(string(TypeEngineOutput), err), "content")
	}
	return &d, nil
}

// SetDocument stores d, encoded, in Content.
func (m *EngineOutput) SetDocument(d *Document) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	m.Content = b
	return nil
}

// prefixField puts prefix in front of a FieldError's field; other errors
// pass through.
func prefixField(err error, prefix string) error {
	if fe, ok := err.(*FieldError); ok {
		return &FieldError{Context: fe.Context, Field: prefix + "." + fe.Field, Problem: fe.Problem}
	}
	return err
}

// describeJSON names the kind of a JSON value for error messages.
func describeJSON(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// JSON methods: each goes through a method-less copy of its type so that
// encoding/json does the field work and unknown members land in Extra.

func (m StreamInit) MarshalJSON() ([]byte, error) {
	type plain StreamInit
	return marshalObject(plain(m), m.Extra)
}

func (m *StreamInit) UnmarshalJSON(b []byte) error {
	type plain StreamInit
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}

func (m StreamEOF) MarshalJSON() ([]byte, error) {
	type plain StreamEOF
	return marshalObject(plain(m), m.Extra)
}

func (m *StreamEOF) UnmarshalJSON(b []byte) error {
	type plain StreamEOF
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}

func (m EngineHeartbeat) MarshalJSON() ([]byte, error) {
	type plain EngineHeartbeat
	return marshalObject(plain(m), m.Extra)
}

func (m *EngineHeartbeat) UnmarshalJSON(b []byte) error {
	type plain EngineHeartbeat
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}

func (m MediaChunk) MarshalJSON() ([]byte, error) {
	type plain MediaChunk
	return marshalObject(plain(m), m.Extra)
}

func (m *MediaChunk) UnmarshalJSON(b []byte) error {
	type plain MediaChunk
	if err := unmarshalObject(b, (*plain)(m), &m.Extra); err != nil {
		return err
	}
	m.TaskPayload = compactRaw(m.TaskPayload)
	return nil
}

func (m EngineOutput) MarshalJSON() ([]byte, error) {
	type plain EngineOutput
	return marshalObject(plain(m), m.Extra)
}

func (m *EngineOutput) UnmarshalJSON(b []byte) error {
	type plain EngineOutput
	if err := unmarshalObject(b, (*plain)(m), &m.Extra); err != nil {
		return err
	}
	m.Content = compactRaw(m.Content)
	m.TaskPayload = compactRaw(m.TaskPayload)
	return nil
}

func (m ChunkProcessedStatus) MarshalJSON() ([]byte, error) {
	type plain ChunkProcessedStatus
	return marshalObject(plain(m), m.Extra)
}

func (m *ChunkProcessedStatus) UnmarshalJSON(b []byte) error {
	type plain ChunkProcessedStatus
	return unmarshalObject(b, (*plain)(m), &m.Extra)
}
