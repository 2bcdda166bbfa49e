package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	okInit  = `{"type":"stream_init","taskId":"t1","chunkSize":10240,"mimeType":"video/mp2t"}`
	okEOF   = `{"type":"stream_eof","taskId":"t1"}`
	okBeat  = `{"type":"engine_heartbeat","engineInstanceId":"e_1","count":1,"status":"RUNNING"}`
	okChunk = `{"type":"media_chunk","taskId":"t1","mimeType":"image/jpeg","startOffsetMs":0,"endOffsetMs":40,"cacheURI":"s3://b/k"}`
	okOut   = `{"type":"engine_output","taskId":"t1","startOffsetMs":0,"endOffsetMs":40}`
	okCPS   = `{"type":"chunk_processed_status","chunkUUID":"c1","status":"SUCCESS"}`
)

// with returns the JSON object base with the members of patch set (a null
// in patch deletes the member).
func with(base, patch string) string {
	var m, p map[string]json.RawMessage
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		panic(err)
	}
	if err := json.Unmarshal([]byte(patch), &p); err != nil {
		panic(err)
	}
	for k, v := range p {
		if string(v) == "null" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestDecodeRejectsWithFieldNamedErrors pins the exact text of every
// validation error: they are what an engine author sees in the logs.
func TestDecodeRejectsWithFieldNamedErrors(t *testing.T) {
	cases := []struct {
		name, key, value string
		want             string
		partial          bool // the message decoded and failed validation, so Decode returns it
	}{
		// Envelope.
		{"empty value", "t1", ``, `record with key "t1": value is empty, want a JSON object`, false},
		{"raw bytes under a task key", "t1", "\x47\x40\x00\x10", `record with key "t1": value is not a JSON object: starts with "G@\x00\x10"`, false},
		{"JSON array", "t1", `[1,2]`, `record with key "t1": value is not a JSON object: starts with "[1,2]"`, false},
		{"truncated JSON", "t1", `{"type":`, `record with key "t1": invalid JSON: unexpected end of JSON input`, false},
		{"missing type", "t1", `{"taskId":"t1"}`, `record with key "t1": field "type": is required`, false},
		{"null type", "t1", `{"type":null}`, `record with key "t1": field "type": is required`, false},
		{"numeric type", "t1", `{"type":7}`, `record with key "t1": field "type": must be a string, got a number`, false},
		{"unknown type", "t1", `{"type":"control_task"}`, `record with key "t1": unknown message type "control_task"`, false},
		{"raw_stream as JSON", "t1", `{"type":"raw_stream"}`, `raw_stream: a raw_stream value is the raw bytes under key "raw_stream", not JSON (key "t1")`, false},
		{"stream_init under a task key", "t1", okInit, `stream_init: key must be "stream_init" or end in "_stream_init", got "t1"`, false},
		{"stream_eof under a prefix without underscore", "cam1stream_eof", okEOF, `stream_eof: key must be "stream_eof" or end in "_stream_eof", got "cam1stream_eof"`, false},
		{"type contradicts key", "stream_init", okEOF, `stream_init: field "type": must be "stream_init" to match key "stream_init", got "stream_eof"`, false},
		{"type contradicts prefixed key", "cam1_stream_eof", okInit, `stream_eof: field "type": must be "stream_eof" to match key "cam1_stream_eof", got "stream_init"`, false},
		{"long key is shortened", strings.Repeat("k", 100), `{"type":"x"}`, `record with key "` + strings.Repeat("k", 64) + `"...: unknown message type "x"`, false},

		// stream_init.
		{"negative chunkSize", "stream_init", with(okInit, `{"chunkSize":-5}`), `stream_init: field "chunkSize": must be positive, got -5`, true},
		{"missing chunkSize", "stream_init", with(okInit, `{"chunkSize":null}`), `stream_init: field "chunkSize": must be positive, got 0`, true},
		{"huge chunkSize", "stream_init", with(okInit, `{"chunkSize":2000000}`), `stream_init: field "chunkSize": must be at most 1048576, got 2000000`, true},
		{"string chunkSize", "stream_init", with(okInit, `{"chunkSize":"10240"}`), `stream_init: field "chunkSize": must be an integer in range for int64, got string`, false},
		{"fractional chunkSize", "stream_init", with(okInit, `{"chunkSize":1.5}`), `stream_init: field "chunkSize": must be an integer in range for int64, got number 1.5`, false},
		{"missing mimeType", "stream_init", with(okInit, `{"mimeType":null}`), `stream_init: field "mimeType": is required`, true},
		{"negative start offset", "stream_init", with(okInit, `{"relativeStartOffsetMS":-1}`), `stream_init: field "relativeStartOffsetMS": must not be negative, got -1`, true},
		{"negative duration", "stream_init", with(okInit, `{"durationMS":-3}`), `stream_init: field "durationMS": must not be negative, got -3`, true},
		{"negative timestamp", "stream_init", with(okInit, `{"timestampUTC":-1}`), `stream_init: field "timestampUTC": must not be negative, got -1`, true},
		{"numeric taskId", "stream_init", with(okInit, `{"taskId":12}`), `stream_init: field "taskId": must be a string, got number`, false},

		// stream_eof.
		{"negative contentLength", "stream_eof", with(okEOF, `{"contentLength":-1}`), `stream_eof: field "contentLength": must not be negative, got -1`, true},
		{"short md5", "stream_eof", with(okEOF, `{"md5Checksum":"abc"}`), `stream_eof: field "md5Checksum": must be 32 hex digits, got "abc"`, true},
		{"non-hex md5", "stream_eof", with(okEOF, `{"md5Checksum":"zz0150983cd24fb0d6963f7d28e17f72"}`), `stream_eof: field "md5Checksum": must be 32 hex digits, got "zz0150983cd24fb0d6963f7d28e17f72"`, true},
		{"string forcedEOF", "stream_eof", with(okEOF, `{"forcedEOF":"yes"}`), `stream_eof: field "forcedEOF": must be a boolean, got string`, false},

		// engine_heartbeat.
		{"heartbeat count 0", "e_1", with(okBeat, `{"count":0}`), `engine_heartbeat: field "count": must be at least 1, got 0`, true},
		{"heartbeat unknown status", "e_1", with(okBeat, `{"status":"ALIVE"}`), `engine_heartbeat: field "status": must be RUNNING, DONE or FAILED, got "ALIVE"`, true},
		{"heartbeat lower-case status", "e_1", with(okBeat, `{"status":"running"}`), `engine_heartbeat: field "status": must be RUNNING, DONE or FAILED, got "running"`, true},
		{"heartbeat without instance", "e_1", with(okBeat, `{"engineInstanceId":null}`), `engine_heartbeat: field "engineInstanceId": is required`, true},
		{"heartbeat negative bytesRead", "e_1", with(okBeat, `{"bytesRead":-10}`), `engine_heartbeat: field "bytesRead": must not be negative, got -10`, true},
		{"heartbeat negative upTime", "e_1", with(okBeat, `{"upTime":-1}`), `engine_heartbeat: field "upTime": must not be negative, got -1`, true},
		{"heartbeat negative bound", "e_1", with(okBeat, `{"timestampBoundMs":-40}`), `engine_heartbeat: field "timestampBoundMs": must not be negative, got -40`, true},

		// media_chunk.
		{"chunk ends before it starts", "t1", with(okChunk, `{"startOffsetMs":1000,"endOffsetMs":960}`), `media_chunk: field "endOffsetMs": must not be before startOffsetMs (1000), got 960`, true},
		{"chunk negative start", "t1", with(okChunk, `{"startOffsetMs":-40}`), `media_chunk: field "startOffsetMs": must not be negative, got -40`, true},
		{"chunk with cacheURI and content", "t1", with(okChunk, `{"content":"hi"}`), `media_chunk: field "content": must be empty when cacheURI is set`, true},
		{"chunk with neither cacheURI nor content", "t1", with(okChunk, `{"cacheURI":null}`), `media_chunk: field "cacheURI": is required when content is empty`, true},
		{"chunk without taskId", "t1", with(okChunk, `{"taskId":null}`), `media_chunk: field "taskId": is required`, true},
		{"chunk without mimeType", "t1", with(okChunk, `{"mimeType":""}`), `media_chunk: field "mimeType": is required`, true},
		{"chunk negative index", "t1", with(okChunk, `{"chunkIndex":-1}`), `media_chunk: field "chunkIndex": must not be negative, got -1`, true},
		{"chunk negative width", "t1", with(okChunk, `{"width":-1280}`), `media_chunk: field "width": must not be negative, got -1280`, true},
		{"chunk array payload", "t1", with(okChunk, `{"taskPayload":[1]}`), `media_chunk: field "taskPayload": must be a JSON object, got an array`, true},

		// engine_output.
		{"output ends before it starts", "t1", with(okOut, `{"startOffsetMs":50}`), `engine_output: field "endOffsetMs": must not be before startOffsetMs (50), got 40`, true},
		{"output without taskId", "t1", with(okOut, `{"taskId":""}`), `engine_output: field "taskId": is required`, true},
		{"output negative rev", "t1", with(okOut, `{"rev":-2}`), `engine_output: field "rev": must not be negative, got -2`, true},
		{"output numeric content", "t1", with(okOut, `{"content":12}`), `engine_output: field "content": must be a JSON object or string, got a number`, true},
		{"output series backwards", "t1", with(okOut, `{"content":{"series":[{"startTimeMs":0,"stopTimeMs":1000},{"startTimeMs":2000,"stopTimeMs":1500}]}}`),
			`engine_output: field "content.series[1].stopTimeMs": must not be before startTimeMs (2000), got 1500`, true},
		{"output series negative", "t1", with(okOut, `{"content":{"series":[{"startTimeMs":-5,"stopTimeMs":10}]}}`),
			`engine_output: field "content.series[0].startTimeMs": must not be negative, got -5`, true},
		{"output series not an array", "t1", with(okOut, `{"content":{"series":{"startTimeMs":0}}}`),
			`engine_output: field "content.series": must be an array, got object`, true},
		{"output mistyped word confidence", "t1", with(okOut, `{"content":{"series":[{"startTimeMs":0,"stopTimeMs":1,"words":[{"word":"a","confidence":"high"}]}]}}`),
			`engine_output: field "content.series.words.confidence": must be a number, got string`, true},
		{"output object tag value", "t1", with(okOut, `{"content":{"tags":[{"key":"k","value":{"a":1}}]}}`),
			`engine_output: field "content.tags.value": must be a string, got object`, true},

		// chunk_processed_status.
		{"status in mixed case", "t1", with(okCPS, `{"status":"Success"}`), `chunk_processed_status: field "status": must be SUCCESS, ERROR or IGNORED, got "Success"`, true},
		{"status missing", "t1", with(okCPS, `{"status":null}`), `chunk_processed_status: field "status": must be SUCCESS, ERROR or IGNORED, got ""`, true},
		{"status without chunkUUID", "t1", with(okCPS, `{"chunkUUID":null}`), `chunk_processed_status: field "chunkUUID": is required`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := Decode([]byte(c.key), []byte(c.value))
			if err == nil {
				t.Fatalf("Decode(%q, %s) = %#v, want error %q", c.key, c.value, msg, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, c.want)
			}
			if c.partial != (msg != nil) {
				t.Errorf("message = %#v, want returned: %v", msg, c.partial)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	cases := []struct {
		name, key, value string
		want             Message
	}{
		{"minimal stream_init", "stream_init", okInit,
			&StreamInit{Header: Header{Type: TypeStreamInit, TaskID: "t1"}, ChunkSize: 10240, MimeType: "video/mp2t"}},
		{"prefixed stream_eof", "a_b_stream_eof", okEOF,
			&StreamEOF{Header: Header{Type: TypeStreamEOF, TaskID: "t1"}, KeyPrefix: "a_b_"}},
		{"stream_eof with upper-case md5", "stream_eof", with(okEOF, `{"md5Checksum":"900150983CD24FB0D6963F7D28E17F72"}`),
			&StreamEOF{Header: Header{Type: TypeStreamEOF, TaskID: "t1"}, MD5Checksum: "900150983CD24FB0D6963F7D28E17F72"}},
		{"raw_stream is never parsed", "raw_stream", `{"type":"stream_init"}`,
			&RawStream{Data: []byte(`{"type":"stream_init"}`)}},
		{"raw_stream under a bare underscore prefix", "_raw_stream", "\x00\x01",
			&RawStream{KeyPrefix: "_", Data: []byte{0, 1}}},
		{"empty raw_stream", "raw_stream", "", &RawStream{Data: []byte{}}},
		{"heartbeat under another key", "anything", okBeat,
			&EngineHeartbeat{Header: Header{Type: TypeEngineHeartbeat}, EngineInstanceID: "e_1", Count: 1, Status: HeartbeatRunning}},
		{"DONE heartbeat with bound 0", "e_1", with(okBeat, `{"status":"DONE","timestampBoundMs":0}`),
			&EngineHeartbeat{Header: Header{Type: TypeEngineHeartbeat}, EngineInstanceID: "e_1", Count: 1, Status: HeartbeatDone, TimestampBoundMs: ptr[int64](0)}},
		{"text chunk", "t1", with(okChunk, `{"cacheURI":"","content":"hi"}`),
			&MediaChunk{Header: Header{Type: TypeMediaChunk, TaskID: "t1"}, MimeType: "image/jpeg", EndOffsetMs: 40, Content: "hi"}},
		{"zero-length chunk", "t1", with(okChunk, `{"startOffsetMs":40}`),
			&MediaChunk{Header: Header{Type: TypeMediaChunk, TaskID: "t1"}, MimeType: "image/jpeg", StartOffsetMs: 40, EndOffsetMs: 40, CacheURI: "s3://b/k"}},
		{"output with TTML string content", "t1", with(okOut, `{"mimeType":"application/ttml+xml","content":"<tt/>"}`),
			&EngineOutput{Header: Header{Type: TypeEngineOutput, TaskID: "t1"}, MimeType: "application/ttml+xml", EndOffsetMs: 40, Content: json.RawMessage(`"\u003ctt/\u003e"`)}},
		{"output content formatting is normalized", "t1", with(okOut, `{"content":{ "series" : [ ] }}`),
			&EngineOutput{Header: Header{Type: TypeEngineOutput, TaskID: "t1"}, EndOffsetMs: 40, Content: json.RawMessage(`{"series":[]}`)}},
		{"output with null content", "t1", with(okOut, `{"content":null}`),
			&EngineOutput{Header: Header{Type: TypeEngineOutput, TaskID: "t1"}, EndOffsetMs: 40}},
		{"status keyed by chunkUUID as Veritone's docs do", "chunkprocessedstatus", okCPS,
			&ChunkProcessedStatus{Header: Header{Type: TypeChunkProcessedStatus}, ChunkUUID: "c1", Status: ChunkSuccess}},
		{"IGNORED status", "t1", with(okCPS, `{"status":"IGNORED","infoMsg":"audio only"}`),
			&ChunkProcessedStatus{Header: Header{Type: TypeChunkProcessedStatus}, ChunkUUID: "c1", Status: ChunkIgnored, InfoMsg: "audio only"}},
		{"member names match case-insensitively like encoding/json", "t1", `{"TYPE":"chunk_processed_status","ChunkUUID":"c1","Status":"ERROR","note":1}`,
			&ChunkProcessedStatus{Header: Header{Type: TypeChunkProcessedStatus, Extra: map[string]json.RawMessage{"note": json.RawMessage(`1`)}}, ChunkUUID: "c1", Status: ChunkError}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := Decode([]byte(c.key), []byte(c.value))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(msg, c.want) {
				t.Errorf("Decode:\n got: %#v\nwant: %#v", msg, c.want)
			}
		})
	}
}

func TestDecodeUnknownTypeIsDetectable(t *testing.T) {
	_, err := Decode([]byte("t1"), []byte(`{"type":"queue_metrics"}`))
	if !errors.Is(err, ErrUnknownType) {
		t.Errorf("error %v does not wrap ErrUnknownType", err)
	}
	var fe *FieldError
	_, err = Decode([]byte("stream_init"), []byte(with(okInit, `{"chunkSize":0}`)))
	if !errors.As(err, &fe) || fe.Field != "chunkSize" || fe.Context != "stream_init" {
		t.Errorf("error %#v is not a FieldError for stream_init.chunkSize", err)
	}
}

func TestSplitStreamKey(t *testing.T) {
	cases := []struct {
		key    string
		prefix string
		typ    Type
		ok     bool
	}{
		{"raw_stream", "", TypeRawStream, true},
		{"stream_init", "", TypeStreamInit, true},
		{"stream_eof", "", TypeStreamEOF, true},
		{"mystream_raw_stream", "mystream_", TypeRawStream, true},
		{"job_1_stream_eof", "job_1_", TypeStreamEOF, true},
		{"xraw_stream", "", "", false},
		{"raw_stream_", "", "", false},
		{"RAW_STREAM", "", "", false},
		{"engine_heartbeat", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		prefix, typ, ok := SplitStreamKey([]byte(c.key))
		if prefix != c.prefix || typ != c.typ || ok != c.ok {
			t.Errorf("SplitStreamKey(%q) = %q, %q, %v; want %q, %q, %v", c.key, prefix, typ, ok, c.prefix, c.typ, c.ok)
		}
	}
}

func TestKeyFor(t *testing.T) {
	cases := []struct {
		msg  Message
		want string
	}{
		{&StreamInit{KeyPrefix: "cam1_"}, "cam1_stream_init"},
		{&RawStream{}, "raw_stream"},
		{&StreamEOF{KeyPrefix: "x_"}, "x_stream_eof"},
		{&EngineHeartbeat{Header: Header{TaskID: "t"}, EngineInstanceID: "e_1"}, "e_1"},
		{&MediaChunk{Header: Header{TaskID: "t"}, ChunkUUID: "c"}, "t"},
		{&EngineOutput{Header: Header{TaskID: "t"}}, "t"},
		{&ChunkProcessedStatus{Header: Header{TaskID: "t"}, ChunkUUID: "c"}, "t"},
		{&ChunkProcessedStatus{ChunkUUID: "c"}, "c"},
	}
	for _, c := range cases {
		if got := KeyFor(c.msg); got != c.want {
			t.Errorf("KeyFor(%T) = %q, want %q", c.msg, got, c.want)
		}
	}
}

func TestEncode(t *testing.T) {
	t.Run("fills type and timestamp, keeps a set timestamp", func(t *testing.T) {
		fixClock(t)
		a := &StreamEOF{}
		b := &StreamEOF{Header: Header{TimestampUTC: 5}}
		for _, m := range []*StreamEOF{a, b} {
			if _, _, err := Encode(m); err != nil {
				t.Fatal(err)
			}
		}
		if a.Type != TypeStreamEOF || a.TimestampUTC != 1700000000123 || b.TimestampUTC != 5 {
			t.Errorf("after Encode: %+v, %+v", a.Header, b.Header)
		}
	})
	t.Run("rejects a contradicting type", func(t *testing.T) {
		_, _, err := Encode(&StreamEOF{Header: Header{Type: TypeStreamInit}})
		if want := `stream_eof: field "type": must be "stream_eof", got "stream_init"`; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
	t.Run("rejects an invalid message", func(t *testing.T) {
		_, _, err := Encode(&StreamInit{ChunkSize: -5, MimeType: "video/mp2t"})
		if want := `stream_init: field "chunkSize": must be positive, got -5`; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
	t.Run("rejects a key prefix without underscore", func(t *testing.T) {
		_, _, err := Encode(&RawStream{KeyPrefix: "cam1", Data: []byte{1}})
		if want := `raw_stream: field "key": prefix "cam1" must end in "_"`; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
	t.Run("raw_stream value is the bytes", func(t *testing.T) {
		data := []byte{0x47, 0, 1, 2}
		key, value, err := Encode(&RawStream{Data: data})
		if err != nil || string(key) != "raw_stream" || !bytes.Equal(value, data) {
			t.Errorf("Encode = %q, %x, %v", key, value, err)
		}
	})
	t.Run("extra members cannot shadow known ones", func(t *testing.T) {
		m := &ChunkProcessedStatus{Header: Header{TimestampUTC: 1, Extra: map[string]json.RawMessage{
			"Status": json.RawMessage(`"ERROR"`), "zeta": json.RawMessage(` [1, 2] `), "alpha": nil,
		}}, ChunkUUID: "c", Status: ChunkSuccess}
		_, value, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"type":"chunk_processed_status","timestampUTC":1,"taskId":"","tdoId":"","jobId":"","chunkUUID":"c","status":"SUCCESS","alpha":null,"zeta":[1,2]}`
		if string(value) != want {
			t.Errorf("value:\n got: %s\nwant: %s", value, want)
		}
	})
	t.Run("invalid extra JSON is an error", func(t *testing.T) {
		m := &StreamEOF{Header: Header{Extra: map[string]json.RawMessage{"bad": json.RawMessage(`{`)}}}
		if _, _, err := Encode(m); err == nil || !strings.Contains(err.Error(), `extra member "bad": invalid JSON value`) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("nil message", func(t *testing.T) {
		if _, _, err := Encode(nil); err == nil {
			t.Error("no error")
		}
	})
}

func TestEngineOutputDocument(t *testing.T) {
	t.Run("empty content", func(t *testing.T) {
		_, err := (&EngineOutput{}).Document()
		if want := `engine_output: field "content": is empty`; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
	t.Run("string content that is not JSON", func(t *testing.T) {
		_, err := (&EngineOutput{Content: json.RawMessage(`"<tt/>"`)}).Document()
		if err == nil || !strings.HasPrefix(err.Error(), "engine_output: invalid JSON: ") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("tag values of any scalar type", func(t *testing.T) {
		m := &EngineOutput{Content: json.RawMessage(`{"tags":[{"key":"silence","value":true},{"key":"loudness","value":-23.5},{"key":"speech"},{"key":"lang","value":"en"}]}`)}
		d, err := m.Document()
		if err != nil {
			t.Fatal(err)
		}
		want := []Tag{{Key: "silence", Value: "true"}, {Key: "loudness", Value: "-23.5"}, {Key: "speech"}, {Key: "lang", Value: "en"}}
		if !reflect.DeepEqual(d.Tags, want) {
			t.Errorf("tags = %#v, want %#v", d.Tags, want)
		}
	})
}
