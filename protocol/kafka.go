package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// streamTypes are the types whose Kafka key is the type name itself.
var streamTypes = [...]Type{TypeRawStream, TypeStreamInit, TypeStreamEOF}

// SplitStreamKey reports whether key is a stream message key, the message
// type optionally preceded by a prefix that ends in "_" ("raw_stream",
// "cam1_raw_stream"), and returns the prefix and type. Any other key
// (a taskId, an engineInstanceId) returns ok false.
func SplitStreamKey(key []byte) (prefix string, t Type, ok bool) {
	for _, t := range streamTypes {
		p, found := bytes.CutSuffix(key, []byte(t))
		if found && (len(p) == 0 || p[len(p)-1] == '_') {
			return string(p), t, true
		}
	}
	return "", "", false
}

// KeyFor returns the Kafka key msg is produced under: the type, after the
// KeyPrefix, for stream_init, raw_stream and stream_eof; engineInstanceId
// for engine_heartbeat; taskId for media_chunk and engine_output; taskId,
// or chunkUUID when taskId is empty, for chunk_processed_status; taskId
// for timestamp_bound and jobId for result_window. Keying
// this way keeps a stream, an engine instance or a task on one partition,
// in order.
func KeyFor(msg Message) string {
	switch m := msg.(type) {
	case *StreamInit:
		return m.KeyPrefix + string(TypeStreamInit)
	case *RawStream:
		return m.KeyPrefix + string(TypeRawStream)
	case *StreamEOF:
		return m.KeyPrefix + string(TypeStreamEOF)
	case *EngineHeartbeat:
		return m.EngineInstanceID
	case *MediaChunk:
		return m.TaskID
	case *EngineOutput:
		return m.TaskID
	case *ChunkProcessedStatus:
		if m.TaskID == "" {
			return m.ChunkUUID
		}
		return m.TaskID
	case *TimestampBound:
		return m.TaskID
	case *ResultWindow:
		return m.JobID
	}
	return ""
}

// Decode turns a Kafka record into a Message.
//
// A key that SplitStreamKey recognizes as raw_stream makes a *RawStream
// whose Data is value itself (not copied); no other check is made, since
// only a StreamReader knows the stream's chunkSize. Every other value must
// be a JSON object whose "type" names the message. Under a stream_init or
// stream_eof key the type must match the key; stream_init and stream_eof
// must come under such a key, since the key is how consumers tell raw bytes
// from JSON. Under any other key the type alone decides, and the key itself
// is not checked against taskId or engineInstanceId.
//
// When the value decodes but fails Validate, Decode returns the message and
// the validation error, so a consumer can still log or route what it got; a
// nil Message means the record could not be decoded at all. An unknown type
// yields an error wrapping ErrUnknownType. Decode keeps no state: a bad
// record never affects the next one.
func Decode(key, value []byte) (Message, error) {
	prefix, keyType, isStreamKey := SplitStreamKey(key)
	if isStreamKey && keyType == TypeRawStream {
		return &RawStream{KeyPrefix: prefix, Data: value}, nil
	}
	ctx := fmt.Sprintf("record with key %s", quoteKey(key))
	if isStreamKey {
		ctx = string(keyType)
	}
	switch v := bytes.TrimLeft(value, " \t\r\n"); {
	case len(v) == 0:
		return nil, fmt.Errorf("%s: value is empty, want a JSON object", ctx)
	case v[0] != '{':
		return nil, fmt.Errorf("%s: value is not a JSON object: starts with %s", ctx, quoteKey(v[:min(len(v), 16)]))
	}
	var probe struct {
		Type json.RawMessage `json:"type"`
	}
	if err := json.Unmarshal(value, &probe); err != nil {
		return nil, jsonError(ctx, err)
	}
	if len(probe.Type) == 0 || string(probe.Type) == "null" {
		return nil, &FieldError{Context: ctx, Field: "type", Problem: "is required"}
	}
	var typeName string
	if err := json.Unmarshal(probe.Type, &typeName); err != nil {
		return nil, &FieldError{Context: ctx, Field: "type", Problem: "must be a string, got " + describeJSON(probe.Type)}
	}
	t := Type(typeName)
	if isStreamKey && t != keyType {
		return nil, &FieldError{Context: string(keyType), Field: "type",
			Problem: fmt.Sprintf("must be %q to match key %s, got %q", keyType, quoteKey(key), t)}
	}

	var msg Message
	switch t {
	case TypeStreamInit:
		msg = &StreamInit{KeyPrefix: prefix}
	case TypeStreamEOF:
		msg = &StreamEOF{KeyPrefix: prefix}
	case TypeEngineHeartbeat:
		msg = &EngineHeartbeat{}
	case TypeMediaChunk:
		msg = &MediaChunk{}
	case TypeEngineOutput:
		msg = &EngineOutput{}
	case TypeChunkProcessedStatus:
		msg = &ChunkProcessedStatus{}
	case TypeTimestampBound:
		msg = &TimestampBound{}
	case TypeResultWindow:
		msg = &ResultWindow{}
	case TypeRawStream:
		return nil, fmt.Errorf("raw_stream: a raw_stream value is the raw bytes under key \"raw_stream\", not JSON (key %s)", quoteKey(key))
	default:
		return nil, fmt.Errorf("%s: %w %q", ctx, ErrUnknownType, t)
	}
	if (t == TypeStreamInit || t == TypeStreamEOF) && !isStreamKey {
		return nil, fmt.Errorf("%s: key must be %q or end in %q, got %s", t, t, "_"+t, quoteKey(key))
	}
	if err := json.Unmarshal(value, msg); err != nil {
		return nil, jsonError(string(t), err)
	}
	if err := msg.Validate(); err != nil {
		return msg, err
	}
	return msg, nil
}

// Encode validates msg and returns the Kafka key and value to produce it
// with. It first sets, on msg itself, the Type to msg's type when empty and
// TimestampUTC to the current time when zero, so the caller sees what was
// sent. A *RawStream's value is its Data; every other value is JSON, with
// Extra members after the known ones. msg must not be a nil pointer.
func Encode(msg Message) (key, value []byte, err error) {
	if msg == nil {
		return nil, nil, errors.New("encode: nil message")
	}
	if h := msg.header(); h != nil {
		if h.Type == "" {
			h.Type = msg.MessageType()
		}
		if h.TimestampUTC == 0 {
			h.TimestampUTC = NowMillis()
		}
	}
	if err := msg.Validate(); err != nil {
		return nil, nil, err
	}
	key = []byte(KeyFor(msg))
	if raw, ok := msg.(*RawStream); ok {
		return key, raw.Data, nil
	}
	value, err = json.Marshal(msg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", msg.MessageType(), err)
	}
	return key, value, nil
}

// quoteKey quotes a key (or the start of a value) for an error message,
// shortening long ones.
func quoteKey(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return fmt.Sprintf("%q...", b[:limit])
	}
	return fmt.Sprintf("%q", b)
}
