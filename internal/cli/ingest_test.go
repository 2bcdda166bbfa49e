package cli

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// TestIngestedFileReadsBackWithKcat: a file ingested through a server's
// brokers is, for kcat, stream_init, raw_stream records holding exactly the
// file's bytes, and stream_eof, with only heartbeats after it.
func TestIngestedFileReadsBackWithKcat(t *testing.T) {
	requireKcat(t)
	broker := startEmbeddedBroker(t)
	srv := fakeServer(t, broker.Addr())
	clip := makeTSClip(t)
	src, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}

	res := runWeir(testContext(t), "ingest", clip, "--server", srv.URL, "--topic", "stream_kcat")
	if res.err != nil {
		t.Fatalf("weir ingest: %v\n%s", res.err, res.stdout)
	}
	sum := md5.Sum(src)
	for _, want := range []string{"topic     stream_kcat\n", "md5       " + hex.EncodeToString(sum[:]) + "\n",
		fmt.Sprintf("bytes     %d in %d raw_stream records", len(src), (len(src)+protocol.DefaultChunkSize-1)/protocol.DefaultChunkSize),
		"format    video/mp2t (mpegts), 3", "ended     source ended (forcedEOF false)"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, res.stdout)
		}
	}

	// Keys and value sizes, then every value back to back: slicing the
	// second by the first gives each record's bytes, binary-safe.
	index := runKcat(t, nil, "-b", broker.Addr(), "-C", "-t", "stream_kcat", "-o", "beginning", "-e", "-q", "-f", `%k\t%S\n`)
	values := runKcat(t, nil, "-b", broker.Addr(), "-C", "-t", "stream_kcat", "-o", "beginning", "-e", "-q", "-f", `%s`)
	var raw []byte
	var keys []string
	var eofValue []byte
	off := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(index), "\n"), "\n") {
		key, size, ok := strings.Cut(line, "\t")
		n, err := strconv.Atoi(size)
		if !ok || err != nil || off+n > len(values) {
			t.Fatalf("kcat line %q does not fit the %d value bytes", line, len(values))
		}
		v := values[off : off+n]
		off += n
		keys = append(keys, key)
		switch key {
		case "raw_stream":
			raw = append(raw, v...)
		case "stream_eof":
			eofValue = v
		}
	}
	if off != len(values) {
		t.Errorf("kcat listed %d value bytes but printed %d", off, len(values))
	}
	if sha256.Sum256(raw) != sha256.Sum256(src) {
		t.Errorf("raw_stream values: %d bytes, not the file's %d bytes", len(raw), len(src))
	}
	if keys[0] != "stream_init" {
		t.Errorf("first key %q, want stream_init", keys[0])
	}
	lastStream := -1
	for i, k := range keys {
		if _, _, ok := protocol.SplitStreamKey([]byte(k)); ok {
			lastStream = i
		}
	}
	if keys[lastStream] != "stream_eof" {
		t.Errorf("last stream message %q, want stream_eof", keys[lastStream])
	}
	for _, k := range keys[lastStream+1:] {
		if !strings.HasPrefix(k, "weir-pull-adapter_") {
			t.Errorf("key %q after stream_eof; only the final heartbeat belongs there", k)
		}
	}
	msg, err := protocol.Decode([]byte("stream_eof"), eofValue)
	if err != nil {
		t.Fatal(err)
	}
	if eof := msg.(*protocol.StreamEOF); eof.MD5Checksum != hex.EncodeToString(sum[:]) || eof.ContentLength != int64(len(src)) || eof.ForcedEOF {
		t.Errorf("stream_eof %+v, want the file's length and md5, not forced", eof)
	}
}

// TestIngestThenConsumeRoundTrip: ingest without a topic prints the one it
// made up, and consume --until-eof reads that stream back and vouches for
// its checksum.
func TestIngestThenConsumeRoundTrip(t *testing.T) {
	broker := startEmbeddedBroker(t)
	clip := makeTSClip(t)
	res := runWeir(testContext(t), "ingest", clip, "--kafka", broker.Addr(), "--chunk-size", "50000")
	if res.err != nil {
		t.Fatalf("weir ingest: %v\n%s", res.err, res.stdout)
	}
	m := regexp.MustCompile(`(?m)^topic +(stream_[0-9a-f-]{36})$`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("no generated topic in:\n%s", res.stdout)
	}
	cons := runWeir(testContext(t), "consume", "--topic", m[1], "--kafka", broker.Addr(), "--from-beginning", "--until-eof")
	if cons.err != nil {
		t.Fatalf("weir consume: %v\n%s", cons.err, cons.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(cons.stdout, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "0 stream_init key=stream_init mimeType=video/mp2t ffmpegFormat=mpegts chunkSize=50000 ") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(lines[len(lines)-1], " stream_eof ") || !strings.Contains(lines[len(lines)-1], "verified=ok") {
		t.Errorf("last line %q, want a verified stream_eof (consume stops there)", lines[len(lines)-1])
	}
	if !strings.Contains(cons.stderr, "contentLength and md5Checksum match") {
		t.Errorf("stderr %q lacks the verdict", cons.stderr)
	}
	for _, l := range lines {
		if strings.Contains(l, "ERROR") {
			t.Errorf("error line %q", l)
		}
	}
}

// TestIngestWithoutMD5: --no-md5 sends the same stream with a stream_eof
// that has contentLength only; weir consume checks that and says so.
func TestIngestWithoutMD5(t *testing.T) {
	broker := startEmbeddedBroker(t)
	clip := makeTSClip(t)
	res := runWeir(testContext(t), "ingest", clip, "--kafka", broker.Addr(), "--topic", "stream_nomd5", "--no-md5")
	if res.err != nil {
		t.Fatalf("weir ingest --no-md5: %v\n%s", res.err, res.stdout)
	}
	if !regexp.MustCompile(`(?m)^md5 +not computed \(--no-md5\)$`).MatchString(res.stdout) {
		t.Errorf("stdout lacks the md5 line saying it was not computed:\n%s", res.stdout)
	}
	cons := runWeir(testContext(t), "consume", "--topic", "stream_nomd5", "--kafka", broker.Addr(), "--from-beginning", "--until-eof")
	if cons.err != nil {
		t.Fatalf("weir consume: %v\n%s", cons.err, cons.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(cons.stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, " stream_eof ") || !strings.Contains(last, "verified=ok") || strings.Contains(last, "md5Checksum") {
		t.Errorf("last line %q, want a stream_eof verified by its contentLength, with no md5Checksum", last)
	}
	if !strings.Contains(cons.stderr, "contentLength matches (stream_eof has no md5Checksum)") {
		t.Errorf("stderr %q lacks the verdict", cons.stderr)
	}
}

// TestIngestRecordsALiveStation: a live source is recorded for
// --record-duration and ends normally, with heartbeats counted from 1 and a
// final DONE.
func TestIngestRecordsALiveStation(t *testing.T) {
	broker := startEmbeddedBroker(t)
	radio, err := os.ReadFile(makeRadioClip(t))
	if err != nil {
		t.Fatal(err)
	}
	station := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/aac")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for off := 0; ; off = (off + 2048) % len(radio) {
			if _, err := w.Write(radio[off:min(off+2048, len(radio))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	t.Cleanup(station.Close)

	res := runWeir(testContext(t), "ingest", station.URL+"/stream.aac", "--live", "--record-duration", "2s",
		"--kafka", broker.Addr(), "--topic", "stream_radio")
	if res.err != nil {
		t.Fatalf("weir ingest: %v\n%s", res.err, res.stdout)
	}
	for _, want := range []string{"format    audio/aac (aac), 2s", "ended     record duration reached (forcedEOF false)"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, res.stdout)
		}
	}
	recs, err := newBusClient(t, broker.Addr()).ReadAll(testContext(t), "stream_radio", 0)
	if err != nil {
		t.Fatal(err)
	}
	var r protocol.StreamReader
	var beats []*protocol.EngineHeartbeat
	for _, rec := range recs {
		msg, err := r.Next(rec.Key, rec.Value)
		if err != nil {
			t.Fatalf("offset %d: %v", rec.Offset, err)
		}
		if hb, ok := msg.(*protocol.EngineHeartbeat); ok {
			beats = append(beats, hb)
		}
	}
	if r.State() != protocol.StreamEnded || r.Received() < 16<<10 {
		t.Errorf("stream %s with %d bytes, want ended with some", r.State(), r.Received())
	}
	for i, hb := range beats {
		want := protocol.HeartbeatRunning
		if i == len(beats)-1 {
			want = protocol.HeartbeatDone
		}
		if hb.Count != int64(i+1) || hb.Status != want {
			t.Errorf("heartbeat %d: count %d status %s, want count %d status %s", i, hb.Count, hb.Status, i+1, want)
		}
	}
}

// TestIngestFailsClearly: bad input fails with an error that says what is
// wrong and a non-zero exit; where the stream was never started, nothing is
// published.
func TestIngestFailsClearly(t *testing.T) {
	broker := startEmbeddedBroker(t)
	client := newBusClient(t, broker.Addr())
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte(strings.Repeat("not media at all\n", 500)), 0o644)
	payloads := map[string]string{
		"syntax.json":   "{\n  \"jobId\": \"j1\",\n  \"taskPayload\": {\"url\": \"http://x/a.ts\",}\n}",
		"type.json":     `{"jobId": "j1", "taskPayload": {"url": "http://x/a.ts", "isLiveStream": "yes"}}`,
		"duration.json": `{"jobId": "j1", "taskPayload": {"url": "http://x/a.ts", "isLiveStream": true, "recordDuration": "a while"}}`,
		"nourl.json":    `{"jobId": "j1", "streamOutKafkaTopic": "stream_p"}`,
	}
	for name, body := range payloads {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	clip, err := os.ReadFile(makeTSClip(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Write(clip[:100<<10])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	kafka := []string{"--kafka", broker.Addr()}
	cases := []struct {
		name      string
		args      []string
		topic     string   // checked afterwards, if set
		want      []string // in the error
		published bool     // a stream was started, and must end forced and FAILED
	}{
		{"a text file", []string{notes}, "stream_text", []string{"no video or audio stream found"}, false},
		{"HTTP 404", []string{web.URL + "/nothing-here.ts"}, "stream_404", []string{"HTTP 404 Not Found"}, false},
		{"an unreachable host", []string{"http://" + closed + "/live.aac"}, "stream_unreachable", []string{"connection refused"}, false},
		{"a stall after some data", []string{web.URL + "/stall", "--read-timeout", "500ms"}, "stream_stall", []string{"no data for 500ms", "source stalled"}, true},
		{"a payload that is not JSON", []string{"--payload", filepath.Join(dir, "syntax.json")}, "", []string{"line 3, column", "invalid JSON"}, false},
		{"a payload field of the wrong type", []string{"--payload", filepath.Join(dir, "type.json")}, "", []string{`field "taskPayload.isLiveStream"`}, false},
		{"a payload with a bad record duration", []string{"--payload", filepath.Join(dir, "duration.json")}, "", []string{`field "taskPayload.recordDuration"`}, false},
		{"a payload without a url", []string{"--payload", filepath.Join(dir, "nourl.json")}, "", []string{"nothing to ingest"}, false},
		{"no source", nil, "", []string{"nothing to ingest"}, false},
		{"a bad record duration flag", []string{notes, "--record-duration", "soon"}, "", []string{"--record-duration", `"soon"`}, false},
		{"a bad chunk size", []string{notes, "--chunk-size", "0"}, "", []string{"--chunk-size 0"}, false},
		{"a bad topic", []string{notes, "--topic", "a/b"}, "", []string{"topic name"}, false},
		{"a server that is not running", []string{notes, "--server", "http://" + closed}, "", []string{"is `weir serve` running?"}, false},
		{"bad --kafka", []string{notes, "--kafka", "host:notaport"}, "", []string{"--kafka", "notaport"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ingest"}, tc.args...)
			if tc.topic != "" {
				args = append(args, "--topic", tc.topic)
			}
			if !strings.Contains(strings.Join(tc.args, " "), "--server") && !strings.Contains(strings.Join(tc.args, " "), "--kafka") {
				args = append(args, kafka...)
			}
			res := runWeir(testContext(t), args...)
			if res.exitCode() == 0 {
				t.Fatalf("weir %s succeeded:\n%s", strings.Join(args, " "), res.stdout)
			}
			t.Logf("weir: %v", res.err)
			for _, w := range tc.want {
				if !strings.Contains(res.err.Error(), w) {
					t.Errorf("error %q does not say %q", res.err, w)
				}
			}
			if !tc.published && res.stdout != "" {
				t.Errorf("output for a stream never started:\n%s", res.stdout)
			}
			if tc.topic == "" {
				return
			}
			recs, err := client.ReadAll(testContext(t), tc.topic, 0)
			if !tc.published {
				if err == nil && len(recs) > 0 {
					t.Errorf("%d records published to %s", len(recs), tc.topic)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkFailedStream(t, recs)
			if !strings.Contains(res.stdout, "ended     failed (forcedEOF true)") {
				t.Errorf("summary does not say the stream failed:\n%s", res.stdout)
			}
		})
	}
}

// checkFailedStream checks that recs end a stream with forcedEOF true and a
// FAILED heartbeat with an errorMsg.
func checkFailedStream(t *testing.T, recs []*bus.Record) {
	t.Helper()
	var r protocol.StreamReader
	var last protocol.Message
	var eof *protocol.StreamEOF
	for _, rec := range recs {
		msg, err := r.Next(rec.Key, rec.Value)
		if err != nil {
			t.Fatalf("offset %d: %v", rec.Offset, err)
		}
		if e, ok := msg.(*protocol.StreamEOF); ok {
			eof = e
		}
		last = msg
	}
	if eof == nil || !eof.ForcedEOF {
		t.Errorf("stream_eof %+v, want forcedEOF true", eof)
	}
	if hb, ok := last.(*protocol.EngineHeartbeat); !ok || hb.Status != protocol.HeartbeatFailed || hb.ErrorMsg == "" {
		t.Errorf("last record %+v, want a FAILED heartbeat with errorMsg", last)
	}
}

func TestIngestHonoursAPayload(t *testing.T) {
	broker := startEmbeddedBroker(t)
	clip, err := os.ReadFile(makeTSClip(t))
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "clip.ts", time.Time{}, bytes.NewReader(clip))
	}))
	t.Cleanup(web.Close)
	task := filepath.Join(t.TempDir(), "task.json")
	os.WriteFile(task, []byte(`{
  "jobId": "8cf4c75f-5f5e-45cf-9331-3877a6782955",
  "taskId": "8cf4c75f-5f5e-45cf-9331-3877a6782955-2cd7faf5",
  "recordingId": "400002379",
  "streamOutKafkaTopic": "stream_00000015",
  "taskPayload": {"url": "`+web.URL+`/clip.ts"}
}`), 0o644)
	res := runWeir(testContext(t), "ingest", "--payload", task, "--kafka", broker.Addr())
	if res.err != nil {
		t.Fatalf("weir ingest: %v\n%s", res.err, res.stdout)
	}
	if !strings.Contains(res.stdout, "topic     stream_00000015\n") {
		t.Errorf("output does not name the payload's topic:\n%s", res.stdout)
	}
	recs, err := newBusClient(t, broker.Addr()).ReadAll(testContext(t), "stream_00000015", 0)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := protocol.Decode(recs[0].Key, recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	init := msg.(*protocol.StreamInit)
	if init.JobID != "8cf4c75f-5f5e-45cf-9331-3877a6782955" || init.TaskID != "8cf4c75f-5f5e-45cf-9331-3877a6782955-2cd7faf5" || init.TDOID != "400002379" {
		t.Errorf("stream_init ids %q %q %q, want the payload's jobId, taskId and recordingId", init.JobID, init.TaskID, init.TDOID)
	}
}
