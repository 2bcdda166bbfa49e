package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type record struct{ key, value string }

func initRec(chunkSize int) record {
	return record{"stream_init", fmt.Sprintf(`{"type":"stream_init","chunkSize":%d,"mimeType":"video/mp2t"}`, chunkSize)}
}

func rawRec(data string) record { return record{"raw_stream", data} }

func eofRec(length int, data string) record {
	sum := md5.Sum([]byte(data))
	return record{"stream_eof", fmt.Sprintf(`{"type":"stream_eof","contentLength":%d,"md5Checksum":%q}`, length, hex.EncodeToString(sum[:]))}
}

var (
	plainEOF = record{"stream_eof", `{"type":"stream_eof","forcedEOF":true}`}
	beat     = record{"e_1", okBeat}
)

// TestStreamReaderOrder feeds record sequences through a StreamReader and
// checks the error reported for each record ("" for none), the final state
// and the bytes counted for the last stream.
func TestStreamReaderOrder(t *testing.T) {
	cases := []struct {
		name     string
		records  []record
		errs     []string
		state    StreamState
		received int64
	}{
		{"a whole stream with heartbeats between",
			[]record{beat, initRec(4), rawRec("abcd"), beat, rawRec("ef"), eofRec(6, "abcdef"), beat},
			[]string{"", "", "", "", "", "", ""}, StreamEnded, 6},
		{"raw_stream first is an error and its bytes are not counted",
			[]record{rawRec("zz"), initRec(4), rawRec("ab"), eofRec(2, "ab")},
			[]string{"raw_stream: out of order: no stream_init yet (a stream topic must start with stream_init)", "", "", ""}, StreamEnded, 2},
		{"stream_eof first",
			[]record{plainEOF},
			[]string{"stream_eof: out of order: no stream_init yet (a stream topic must start with stream_init)"}, StreamIdle, 0},
		{"raw_stream after stream_eof, then a new stream",
			[]record{initRec(4), rawRec("ab"), eofRec(2, "ab"), rawRec("late"), initRec(8), rawRec("xyz"), eofRec(3, "xyz")},
			[]string{"", "", "", "raw_stream: out of order: after stream_eof (only a new stream_init may follow it)", "", "", ""}, StreamEnded, 3},
		{"a second stream_eof",
			[]record{initRec(4), eofRec(0, ""), plainEOF},
			[]string{"", "", "stream_eof: out of order: the stream already ended"}, StreamEnded, 0},
		{"stream_init while open abandons the stream",
			[]record{initRec(4), rawRec("ab"), rawRec("cd"), initRec(4), rawRec("x"), eofRec(1, "x")},
			[]string{"", "", "", "stream_init: out of order: the previous stream never got its stream_eof (2 raw_stream records, 4 bytes); starting a new stream", "", ""}, StreamEnded, 1},
		{"contentLength mismatch",
			[]record{initRec(4), rawRec("abc"), record{"stream_eof", `{"type":"stream_eof","contentLength":4}`}},
			[]string{"", "", "stream_eof: integrity: contentLength is 4 but 3 bytes were received"}, StreamEnded, 3},
		{"md5 mismatch",
			[]record{initRec(4), rawRec("abd"), eofRec(3, "abc")},
			[]string{"", "", "stream_eof: integrity: md5Checksum is 900150983cd24fb0d6963f7d28e17f72 but the received bytes hash to 4911e516e5aa21d327512e0c8b197616"}, StreamEnded, 3},
		{"upper-case md5 matches",
			[]record{initRec(4), rawRec("abc"), record{"stream_eof", `{"type":"stream_eof","md5Checksum":"900150983CD24FB0D6963F7D28E17F72"}`}},
			[]string{"", "", ""}, StreamEnded, 3},
		{"oversized raw_stream is reported but counted",
			[]record{initRec(4), rawRec("abcde"), eofRec(5, "abcde")},
			[]string{"", "raw_stream: integrity: 5 bytes, more than the stream's chunkSize 4", ""}, StreamEnded, 5},
		{"a chunk message does not belong",
			[]record{initRec(4), {"t1", okChunk}, rawRec("a")},
			[]string{"", "media_chunk: out of order: does not belong on a stream topic", ""}, StreamOpen, 1},
		{"an undecodable record changes nothing",
			[]record{initRec(4), rawRec("ab"), {"stream_eof", `{"type":`}, eofRec(2, "ab")},
			[]string{"", "", "stream_eof: invalid JSON: unexpected end of JSON input", ""}, StreamEnded, 2},
		{"an invalid stream_init still opens the stream",
			[]record{initRec(-5), rawRec("abcdefgh"), eofRec(8, "abcdefgh")},
			[]string{`stream_init: field "chunkSize": must be positive, got -5`, "", ""}, StreamEnded, 8},
		{"an invalid stream_eof still ends the stream",
			[]record{initRec(4), rawRec("ab"), record{"stream_eof", `{"type":"stream_eof","contentLength":-1}`}, rawRec("c")},
			[]string{"", "", `stream_eof: field "contentLength": must not be negative, got -1`, "raw_stream: out of order: after stream_eof (only a new stream_init may follow it)"}, StreamEnded, 2},
		{"a forced EOF without counts",
			[]record{initRec(4), rawRec("ab"), plainEOF},
			[]string{"", "", ""}, StreamEnded, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r StreamReader
			for i, rec := range c.records {
				msg, err := r.Next([]byte(rec.key), []byte(rec.value))
				got := ""
				if err != nil {
					got = err.Error()
				}
				if got != c.errs[i] {
					t.Errorf("record %d (%s):\n got error: %s\nwant error: %s", i, rec.key, got, c.errs[i])
				}
				if msg == nil && !strings.Contains(got, "invalid JSON") {
					t.Errorf("record %d: nil message", i)
				}
			}
			if r.State() != c.state || r.Received() != c.received {
				t.Errorf("end: state %v, received %d; want %v, %d", r.State(), r.Received(), c.state, c.received)
			}
		})
	}
}

func TestStreamReaderErrorKinds(t *testing.T) {
	var r StreamReader
	if err := r.Check(&RawStream{Data: []byte("x")}); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("raw_stream first: %v does not wrap ErrOutOfOrder", err)
	}
	r.Check(&StreamInit{ChunkSize: 1})
	if err := r.Check(&RawStream{Data: []byte("xy")}); !errors.Is(err, ErrIntegrity) {
		t.Errorf("oversized raw_stream: %v does not wrap ErrIntegrity", err)
	}
	if r.Init().ChunkSize != 1 {
		t.Errorf("Init() = %+v", r.Init())
	}
	if err := r.Check(nil); err == nil {
		t.Error("Check(nil): no error")
	}
}

func TestHeartbeatDue(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	cases := []struct {
		name          string
		last, now     time.Time
		messagesSince int
		want          bool
	}{
		{"first heartbeat at once", time.Time{}, at(0), 0, true},
		{"quiet for less than 5 s", at(1000), at(5999), 3, false},
		{"quiet for 5 s", at(1000), at(6000), 0, true},
		{"20 messages before 5 s", at(1000), at(1001), 20, true},
		{"19 messages", at(1000), at(1001), 19, false},
	}
	for _, c := range cases {
		if got := HeartbeatDue(c.last, c.now, c.messagesSince); got != c.want {
			t.Errorf("%s: HeartbeatDue = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMediaChunkInlineContent(t *testing.T) {
	c := &MediaChunk{Header: Header{Type: TypeMediaChunk, TaskID: "t"}, MimeType: "image/jpeg",
		Content: "AAEC/w==", ContentEncoding: ContentBase64, ChunkUUID: "u"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if b, err := c.Data(); err != nil || string(b) != "\x00\x01\x02\xff" {
		t.Fatalf("Data = %q, %v", b, err)
	}
	c.Content = "not base64!"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `field "content": is not valid base64`) {
		t.Errorf("Validate(bad base64) = %v", err)
	}
	c.Content, c.ContentEncoding = "AA==", "gzip"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `field "contentEncoding"`) {
		t.Errorf("Validate(gzip) = %v", err)
	}
	text := &MediaChunk{Content: "caption"}
	if b, _ := text.Data(); string(b) != "caption" {
		t.Errorf("text Data = %q", b)
	}
}
