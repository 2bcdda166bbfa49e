package protocol_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"

	"github.com/weir-media/weir/protocol"
)

// An adapter writes a stream topic: stream_init, raw_stream records of at
// most chunkSize bytes, then stream_eof with the length and checksum.
func ExampleEncode() {
	media := []byte("0123456789abcdefghij") // stands in for an MPEG-TS byte stream
	const chunkSize = 8

	records := []protocol.Message{&protocol.StreamInit{
		Header:    protocol.Header{TaskID: "task-1", TDOID: "tdo-1", JobID: "job-1", TimestampUTC: 1},
		ChunkSize: chunkSize, MimeType: "video/mp2t", FFmpegFormat: "mpegts",
	}}
	for rest := media; len(rest) > 0; {
		n := min(len(rest), chunkSize)
		records = append(records, &protocol.RawStream{Data: rest[:n]})
		rest = rest[n:]
	}
	sum := md5.Sum(media)
	records = append(records, &protocol.StreamEOF{
		Header:        protocol.Header{TaskID: "task-1", TimestampUTC: 2},
		ContentLength: int64(len(media)), MD5Checksum: hex.EncodeToString(sum[:]),
	})

	for _, msg := range records {
		key, value, err := protocol.Encode(msg)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %q\n", key, value)
	}
	// Output:
	// stream_init "{\"type\":\"stream_init\",\"timestampUTC\":1,\"taskId\":\"task-1\",\"tdoId\":\"tdo-1\",\"jobId\":\"job-1\",\"relativeStartOffsetMS\":0,\"durationMS\":0,\"chunkSize\":8,\"mimeType\":\"video/mp2t\",\"ffmpegFormat\":\"mpegts\"}"
	// raw_stream "01234567"
	// raw_stream "89abcdef"
	// raw_stream "ghij"
	// stream_eof "{\"type\":\"stream_eof\",\"timestampUTC\":2,\"taskId\":\"task-1\",\"tdoId\":\"\",\"jobId\":\"\",\"forcedEOF\":false,\"contentLength\":20,\"md5Checksum\":\"644be06dfc54061fd1e67f5ebbabcd58\"}"
}

// A consumer of a stream topic checks order and integrity with a
// StreamReader and keeps going after a bad record.
func ExampleStreamReader() {
	records := []struct{ key, value string }{
		{"raw_stream", "early"}, // before stream_init: reported, dropped
		{"stream_init", `{"type":"stream_init","chunkSize":4,"mimeType":"audio/aac"}`},
		{"raw_stream", "abcd"},
		{"w1_1", `{"type":"engine_heartbeat","engineInstanceId":"w1_1","count":1,"status":"RUNNING"}`},
		{"raw_stream", "ef"},
		{"stream_eof", `{"type":"stream_eof","contentLength":7}`},
	}
	var r protocol.StreamReader
	for _, rec := range records {
		msg, err := r.Next([]byte(rec.key), []byte(rec.value))
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		if raw, ok := msg.(*protocol.RawStream); ok {
			fmt.Printf("bytes %q\n", raw.Data)
		} else {
			fmt.Println(msg.MessageType())
		}
	}
	fmt.Println(r.State(), r.Received())
	// Output:
	// error: raw_stream: out of order: no stream_init yet (a stream topic must start with stream_init)
	// stream_init
	// bytes "abcd"
	// engine_heartbeat
	// bytes "ef"
	// error: stream_eof: integrity: contentLength is 7 but 6 bytes were received
	// ended 6
}

// A chunk engine answers each media_chunk with an engine_output holding a
// vtn-standard document, then a chunk_processed_status.
func ExampleEngineOutput_SetDocument() {
	out := &protocol.EngineOutput{
		Header:     protocol.Header{TaskID: "task-9", TimestampUTC: 3},
		OutputType: "object", MimeType: "application/json",
		StartOffsetMs: 1000, EndOffsetMs: 1040, ChunkUUID: "c-25",
	}
	err := out.SetDocument(&protocol.Document{Series: []protocol.Series{{
		StartTimeMs: 1000, StopTimeMs: 1040,
		Object: &protocol.Object{Type: "text", Text: "BREAKING", Confidence: 0.9},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	key, value, err := protocol.Encode(out)
	fmt.Printf("%s %s %v\n", key, out.Content, err)
	key, _, err = protocol.Encode(&protocol.ChunkProcessedStatus{
		Header: protocol.Header{TaskID: "task-9"}, ChunkUUID: "c-25", Status: protocol.ChunkSuccess,
	})
	fmt.Printf("%s %v %v\n", key, len(value) > 0, err)
	// Output:
	// task-9 {"series":[{"startTimeMs":1000,"stopTimeMs":1040,"object":{"type":"text","text":"BREAKING","confidence":0.9}}]} <nil>
	// task-9 true <nil>
}
