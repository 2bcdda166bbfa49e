package protocol

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the encoder's output")

// fixClock makes NowMillis return 1700000000123 for the test.
func fixClock(t *testing.T) {
	t.Helper()
	old := now
	now = func() time.Time { return time.UnixMilli(1700000000123) }
	t.Cleanup(func() { now = old })
}

func ptr[T any](v T) *T { return &v }

func mustDocument(t testing.TB, d *Document) json.RawMessage {
	t.Helper()
	var m EngineOutput
	if err := m.SetDocument(d); err != nil {
		t.Fatal(err)
	}
	return m.Content
}

var ids = Header{
	TaskID: "8cf4c75f-5f5e-45cf-9331-3877a6782955-2cd7faf5-4f60-4da3-be02-d2d391c6d176",
	TDOID:  "400002379",
	JobID:  "8cf4c75f-5f5e-45cf-9331-3877a6782955",
}

func withTime(h Header, ms int64) Header { h.TimestampUTC = ms; return h }

// transcript is a vtn-standard document that uses members this package
// has no field for, at every level.
var transcript = &Document{
	SourceEngineName: "weir-asr",
	Language:         "en-US",
	Series: []Series{
		{
			StartTimeMs: 1260, StopTimeMs: 1360,
			Words: []Word{
				{Word: "hello", Confidence: 0.91, BestPath: true},
				{Word: "yellow", Confidence: 0.09, Extra: map[string]json.RawMessage{"vendorScore": json.RawMessage(`17`)}},
			},
			Extra: map[string]json.RawMessage{"sentiment": json.RawMessage(`{"positiveValue":0.7}`)},
		},
		{StartTimeMs: 1360, StopTimeMs: 1700, Words: []Word{{Word: "world", Confidence: 0.88, BestPath: true, UtteranceLength: 1}}},
	},
	Extra: map[string]json.RawMessage{"vendor": json.RawMessage(`{"model":"small.en","beam":5}`)},
}

var detections = &Document{
	Series: []Series{{
		StartTimeMs: 0, StopTimeMs: 40,
		Tags: []Tag{{Key: "scene", Value: "cut", Score: 0.8}},
		Object: &Object{
			Type: "text", Text: "BREAKING NEWS", Confidence: 0.97,
			BoundingPoly: []Point{{0.1, 0.8}, {0.9, 0.8}, {0.9, 0.95}, {0.1, 0.95}},
			Extra:        map[string]json.RawMessage{"region": json.RawMessage(`"bottom"`)},
		},
	}},
	Object: []Object{{Type: "logo", Label: "weir", Confidence: 0.5}},
}

type goldenCase struct {
	file string // under testdata/golden
	key  string
	msg  func(t testing.TB) Message
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"stream_init.json", "stream_init", func(testing.TB) Message {
			return &StreamInit{Header: ids, DurationMS: 596000, ChunkSize: DefaultChunkSize,
				MimeType: "video/mp2t", FFmpegFormat: "mpegts"}
		}},
		{"stream_init_prefixed_unknown_fields.json", "cam1_stream_init", func(testing.TB) Message {
			h := withTime(ids, 1699999999000)
			h.Extra = map[string]json.RawMessage{
				"adapterVersion": json.RawMessage(`"1.2.0"`),
				"source":         json.RawMessage(`{"kind":"rtmp","app":"live"}`),
			}
			return &StreamInit{Header: h, RelativeStartOffsetMS: 30000, ChunkSize: 4096,
				MimeType: "video/x-flv", FFmpegFormat: "flv", KeyPrefix: "cam1_"}
		}},
		{"stream_eof.json", "stream_eof", func(testing.TB) Message {
			return &StreamEOF{Header: withTime(ids, 1700000000999), ContentLength: 3,
				MD5Checksum: "900150983cd24fb0d6963f7d28e17f72"}
		}},
		{"stream_eof_forced.json", "cam1_stream_eof", func(testing.TB) Message {
			return &StreamEOF{Header: ids, ForcedEOF: true, KeyPrefix: "cam1_"}
		}},
		{"engine_heartbeat.json", "weir-ingest-7f3a_1", func(testing.TB) Message {
			return &EngineHeartbeat{Header: ids, EngineID: "weir-ingest", EngineInstanceID: "weir-ingest-7f3a_1",
				Count: 12, Status: HeartbeatRunning, UpTime: 55000, BytesRead: 1 << 20, BytesWritten: 1 << 20,
				MessagesWritten: 103, TimestampBoundMs: ptr[int64](42000)}
		}},
		{"engine_heartbeat_failed.json", "ocr_2", func(testing.TB) Message {
			return &EngineHeartbeat{Header: ids, EngineID: "ocr", EngineInstanceID: "ocr_2",
				Count: 1, Status: HeartbeatFailed, UpTime: 812, ErrorMsg: "tesseract: language data for \"deu\" not found"}
		}},
		{"media_chunk_cache.json", ids.TaskID, func(testing.TB) Message {
			return &MediaChunk{Header: ids, MimeType: "image/jpeg", ChunkIndex: 25, StartOffsetMs: 1000,
				EndOffsetMs: 1040, Width: 1280, Height: 720,
				CacheURI:    "s3://weir-chunks/400002379/frames/000025.jpg",
				TaskPayload: json.RawMessage(`{"lang":"eng","psm":6}`),
				ChunkUUID:   "2c1ad3c4-0ee5-4c25-9dc5-7ef4c0b8a4f1"}
		}},
		{"media_chunk_inline_jpeg.json", ids.TaskID, func(testing.TB) Message {
			return &MediaChunk{Header: ids, MimeType: "image/jpeg", ChunkIndex: 3, StartOffsetMs: 3000,
				EndOffsetMs: 3040, Width: 2, Height: 2, Content: "/9j/4AAQSkZJRgABAQ==",
				ContentEncoding: ContentBase64, ChunkUUID: "5e0a4a53-1d2f-5b8e-9c1e-3f2d7a9b0c11"}
		}},
		{"media_chunk_text.json", ids.TaskID, func(testing.TB) Message {
			return &MediaChunk{Header: ids, MimeType: "text/plain", ChunkIndex: 0, StartOffsetMs: 0,
				EndOffsetMs: 10000, Content: "caption <b>one</b> & two", ChunkUUID: "a7e0"}
		}},
		{"engine_output_transcript.json", ids.TaskID, func(t testing.TB) Message {
			return &EngineOutput{Header: ids, OutputType: "transcript", MimeType: "application/json",
				StartOffsetMs: 1260, EndOffsetMs: 1700, Content: mustDocument(t, transcript), Rev: 2,
				ChunkUUID: "c-17"}
		}},
		{"engine_output_objects.json", ids.TaskID, func(t testing.TB) Message {
			return &EngineOutput{Header: ids, OutputType: "object", MimeType: "application/json",
				StartOffsetMs: 0, EndOffsetMs: 40, Content: mustDocument(t, detections),
				TaskPayload: json.RawMessage(`{"minConfidence":0.5}`)}
		}},
		{"engine_output_string_content.json", ids.TaskID, func(testing.TB) Message {
			// Content as a JSON string holding vtn-standard JSON, as Veritone's
			// own Go engines send it.
			return &EngineOutput{Header: ids, OutputType: "object", MimeType: "application/json",
				StartOffsetMs: 0, EndOffsetMs: 40,
				Content: json.RawMessage(`"{\"series\":[{\"startTimeMs\":0,\"stopTimeMs\":40,\"object\":{\"type\":\"logo\",\"label\":\"weir\"}}]}"`)}
		}},
		{"chunk_processed_status.json", ids.TaskID, func(testing.TB) Message {
			return &ChunkProcessedStatus{Header: ids, ChunkUUID: "2c1ad3c4-0ee5-4c25-9dc5-7ef4c0b8a4f1", Status: ChunkSuccess}
		}},
		{"chunk_processed_status_error.json", "2c1ad3c4", func(testing.TB) Message {
			return &ChunkProcessedStatus{ChunkUUID: "2c1ad3c4", Status: ChunkError,
				ErrorMsg: "decode jpeg: unexpected EOF", InfoMsg: "retry with cacheURI"}
		}},
		{"timestamp_bound.json", ids.TaskID, func(testing.TB) Message {
			return &TimestampBound{Header: ids, EngineID: "ocr", TimestampBoundMs: 42000}
		}},
		{"timestamp_bound_done.json", ids.TaskID, func(testing.TB) Message {
			return &TimestampBound{Header: withTime(ids, 1700000000999), EngineID: "loudness", TimestampBoundMs: 596000, Done: true}
		}},
		{"result_window.json", ids.JobID, func(t testing.TB) Message {
			return &ResultWindow{Header: ids, WindowStartMs: 5000, WindowEndMs: 10000, Seq: 1, Status: WindowComplete,
				Results: []WindowResult{
					{EngineID: "asr", TaskID: ids.TaskID, OutputType: "transcript", StartOffsetMs: 1260, EndOffsetMs: 5700,
						ChunkUUID: "c-17", Rev: 2, Content: mustDocument(t, transcript)},
					{EngineID: "ocr", TaskID: "ocr-task", OutputType: "object", StartOffsetMs: 6000, EndOffsetMs: 6040,
						ChunkUUID: "c-150", Content: mustDocument(t, detections)},
				}}
		}},
		{"result_window_partial.json", ids.JobID, func(testing.TB) Message {
			h := ids
			h.TaskID = ""
			return &ResultWindow{Header: h, WindowStartMs: 595000, WindowEndMs: 600000, Seq: 119, Status: WindowPartial,
				Missing: []string{"ocr"}, Results: []WindowResult{}}
		}},
		{"raw_stream.bin", "cam1_raw_stream", func(testing.TB) Message {
			data := make([]byte, 188*3)
			for i := range data {
				data[i] = byte(i * 7)
			}
			data[0], data[188], data[376] = 0x47, 0x47, 0x47 // MPEG-TS sync bytes
			return &RawStream{KeyPrefix: "cam1_", Data: data}
		}},
	}
}

// TestGoldenMessages encodes each message and compares the value with its
// golden file, then decodes the golden file and compares with the message.
// Run with -update to rewrite the files after a deliberate change.
func TestGoldenMessages(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.file, func(t *testing.T) {
			fixClock(t)
			msg := c.msg(t)
			key, value, err := Encode(msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(key) != c.key {
				t.Errorf("key = %q, want %q", key, c.key)
			}
			if h := msg.header(); h != nil {
				if h.Type != msg.MessageType() {
					t.Errorf("Encode left Type %q", h.Type)
				}
				if h.TimestampUTC == 0 {
					t.Errorf("Encode left TimestampUTC zero")
				}
			}
			path := filepath.Join("testdata", "golden", c.file)
			got := value
			if _, raw := msg.(*RawStream); !raw {
				got = indent(t, value)
			}
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded value differs from %s:\n got: %s\nwant: %s", path, got, want)
			}

			decoded, err := Decode([]byte(c.key), want)
			if err != nil {
				t.Fatalf("Decode golden: %v", err)
			}
			if !reflect.DeepEqual(decoded, msg) {
				t.Errorf("Decode golden:\n got: %#v\nwant: %#v", decoded, msg)
			}
		})
	}
}

// TestGoldenDocumentsRoundTrip checks that vtn-standard content, unknown
// members included, comes back from the golden files as it was built.
func TestGoldenDocumentsRoundTrip(t *testing.T) {
	for file, want := range map[string]*Document{
		"engine_output_transcript.json":     transcript,
		"engine_output_objects.json":        detections,
		"engine_output_string_content.json": {Series: []Series{{StartTimeMs: 0, StopTimeMs: 40, Object: &Object{Type: "logo", Label: "weir"}}}},
	} {
		t.Run(file, func(t *testing.T) {
			value, err := os.ReadFile(filepath.Join("testdata", "golden", file))
			if err != nil {
				t.Fatal(err)
			}
			msg, err := Decode([]byte("task"), value)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := msg.(*EngineOutput).Document()
			if err != nil {
				t.Fatalf("Document: %v", err)
			}
			if !reflect.DeepEqual(doc, want) {
				t.Errorf("Document:\n got: %#v\nwant: %#v", doc, want)
			}
		})
	}
}

func TestGoldenTaskPayloads(t *testing.T) {
	cases := []struct {
		file string
		want *TaskPayload
	}{
		{"task_payload_file.json", &TaskPayload{
			JobID: "8cf4c75f-5f5e-45cf-9331-3877a6782955", TaskID: ids.TaskID, RecordingID: "400002379",
			StreamOutKafkaTopic: "stream_00000015",
			Payload:             Payload{URL: "https://inspirent.s3.amazonaws.com/assets/62505002/4f4f520b-9d0d-4754-9c5d-608411082435.mp4"},
		}},
		{"task_payload_live_chunks.json", &TaskPayload{
			JobID:               "89259689-966d-4e03-91b7-fb1509050a7e",
			TaskID:              "89259689-966d-4e03-91b7-fb1509050a7e-2357fa3b-da3b-481f-afbc-8cde95ac193a",
			RecordingID:         "400002379",
			StreamOutKafkaTopic: "stream_00000012",
			Payload: Payload{URL: "http://18763.live.streamtheworld.com/WWWQFMAAC", IsLiveStream: true,
				RecordDuration: "1m", GenerateMediaAssets: true, OutputChunkDuration: "10s"},
		}},
		{"task_payload_custom_fields.json", &TaskPayload{
			JobID: "j1", TaskID: "t1", RecordingID: "r1", StreamOutKafkaTopic: "stream_r1",
			Payload: Payload{URL: "rtmp://127.0.0.1:1935/live/cam1", IsLiveStream: true, RecordDuration: "3600",
				Extra: map[string]json.RawMessage{
					"sourceId":    json.RawMessage(`"src-77"`),
					"credentials": json.RawMessage(`{"user":"u","password":"p"}`),
				}},
			Extra: map[string]json.RawMessage{"applicationId": json.RawMessage(`"app-1"`), "priority": json.RawMessage(`-10`)},
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", c.file)
			value, err := json.Marshal(c.want)
			if err != nil {
				t.Fatal(err)
			}
			got := indent(t, value)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded payload differs from %s:\n got: %s\nwant: %s", path, got, want)
			}
			p, err := ParseTaskPayload(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, c.want) {
				t.Errorf("ParseTaskPayload:\n got: %#v\nwant: %#v", p, c.want)
			}
		})
	}
}

func indent(t *testing.T, value []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, value, "", "  "); err != nil {
		t.Fatalf("encoder wrote invalid JSON %s: %v", value, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}
