package cli

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
)

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestConsumeDescribesEachRecordOnOneLine(t *testing.T) {
	doc := `{"type":"engine_output","taskId":"t1","outputType":"object","startOffsetMs":0,"endOffsetMs":1000,"content":{"series":[{"startTimeMs":0,"stopTimeMs":1000}]}}`
	recs := []struct {
		partition int32
		key       string
		value     string
		want      string
	}{
		{0, "raw_stream", "early",
			`0 raw_stream ERROR key=raw_stream size=5 at=- problem="raw_stream: out of order: no stream_init yet (a stream topic must start with stream_init)"`},
		{0, "stream_init", `{"type":"stream_init","chunkSize":4,"mimeType":"audio/aac","ffmpegFormat":"aac","taskId":"t1","durationMS":60000}`,
			`1 stream_init key=stream_init mimeType=audio/aac ffmpegFormat=aac chunkSize=4 durationMS=60000 relativeStartOffsetMS=0 taskId=t1`},
		{0, "raw_stream", "abcd", `2 raw_stream key=raw_stream size=4 at=0`},
		{0, "w1", `{"type":"engine_heartbeat","engineId":"e","engineInstanceId":"w1","count":1,"status":"FAILED","upTime":5,"errorMsg":"disk full"}`,
			`3 engine_heartbeat key=w1 engineId=e engineInstanceId=w1 count=1 status=FAILED upTime=5 bytesRead=0 bytesWritten=0 messagesWritten=0 errorMsg="disk full"`},
		{0, "x y", "hello",
			`4 ERROR key="x y" value=5B problem="record with key \"x y\": value is not a JSON object: starts with \"hello\""`},
		{0, "raw_stream", "toolong",
			`5 raw_stream ERROR key=raw_stream size=7 at=4 problem="raw_stream: integrity: 7 bytes, more than the stream's chunkSize 4"`},
		{0, "raw_stream", "", `6 raw_stream key=raw_stream size=0 at=11`},
		{0, "cam1_stream_init", `{"type":"stream_init","chunkSize":10,"mimeType":"video/x-flv"}`,
			`7 stream_init key=cam1_stream_init mimeType=video/x-flv chunkSize=10 durationMS=0 relativeStartOffsetMS=0`},
		{0, "cam1_raw_stream", "xyz", `8 raw_stream key=cam1_raw_stream size=3 at=0`},
		{0, "raw_stream", "ef", `9 raw_stream key=raw_stream size=2 at=11`},
		{0, "stream_eof", fmt.Sprintf(`{"type":"stream_eof","contentLength":13,"md5Checksum":%q}`, md5Hex([]byte("abcdtoolongef"))),
			`10 stream_eof key=stream_eof forcedEOF=false contentLength=13 md5Checksum=` + md5Hex([]byte("abcdtoolongef")) + ` received=13 verified=ok`},
		{0, "stream_eof", `{"type":"stream_eof"}`,
			`11 stream_eof ERROR key=stream_eof forcedEOF=false contentLength=0 problem="stream_eof: out of order: the stream already ended"`},
		{0, "cam1_stream_eof", `{"type":"stream_eof","forcedEOF":true,"contentLength":4}`,
			`12 stream_eof ERROR key=cam1_stream_eof forcedEOF=true contentLength=4 received=3 verified=mismatch problem="stream_eof: integrity: contentLength is 4 but 3 bytes were received"`},
		{0, "stream_init", `{"type":"stream_init","chunkSize":-5,"mimeType":"a/b"}`,
			`13 stream_init ERROR key=stream_init mimeType=a/b chunkSize=-5 durationMS=0 relativeStartOffsetMS=0 problem="stream_init: field \"chunkSize\": must be positive, got -5"`},
		{0, "t1", doc, `14 engine_output key=t1 taskId=t1 outputType=object startOffsetMs=0 endOffsetMs=1000 contentBytes=48 series=1`},
		{0, "t1", `{"type":"media_chunk","taskId":"t1","chunkIndex":3,"startOffsetMs":30000,"endOffsetMs":40000,"mimeType":"image/jpeg","width":640,"height":360,"cacheURI":"file:///x/3.jpg","chunkUUID":"u3"}`,
			`15 media_chunk key=t1 taskId=t1 chunkIndex=3 startOffsetMs=30000 endOffsetMs=40000 mimeType=image/jpeg width=640 height=360 cacheURI=file:///x/3.jpg chunkUUID=u3`},
		{0, "t1", `{"type":"chunk_processed_status","taskId":"t1","chunkUUID":"u3","status":"ERROR","errorMsg":"bad jpeg"}`,
			`16 chunk_processed_status key=t1 chunkUUID=u3 status=ERROR errorMsg="bad jpeg" taskId=t1`},
		{0, "t1", `{"type":"control_task"}`,
			`17 ERROR key=t1 value=23B problem="record with key \"t1\": unknown message type \"control_task\""`},
		{2, "raw_stream", "zz",
			`2/18 raw_stream ERROR key=raw_stream size=2 at=- problem="raw_stream: out of order: no stream_init yet (a stream topic must start with stream_init)"`},
		{0, "\x00\xffkey\n", "{\"type\":\n", `19 ERROR key="\x00\xffkey\n" value=9B problem="record with key \"\\x00\\xffkey\\n\": invalid JSON: unexpected end of JSON input"`},
	}
	text, js := newRecordDumper(false), newRecordDumper(true)
	for i, r := range recs {
		rec := &bus.Record{Topic: "t", Partition: r.partition, Offset: int64(i), Key: []byte(r.key), Value: []byte(r.value)}
		if got := text.dump(rec).line; got != r.want {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, r.want)
		}
		line := js.dump(rec).line
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Errorf("record %d: --json line is not JSON: %v\n%s", i, err, line)
			continue
		}
		if obj["offset"] != float64(i) || obj["partition"] != float64(r.partition) || obj["key"] != strings.ToValidUTF8(r.key, "\uFFFD") {
			t.Errorf("record %d: --json line %s has the wrong offset, partition or key", i, line)
		}
		if _, hasErr := obj["error"]; hasErr != strings.Contains(r.want, " ERROR ") {
			t.Errorf("record %d: --json line %s: error member present %v, want %v", i, line, hasErr, !hasErr)
		}
	}
}

// kcatStream is the input for `kcat -P -K '\t' -D '\x1e'`: records of
// key, tab, value, separated by 0x1e.
func kcatStream(recs [][2][]byte) []byte {
	var b bytes.Buffer
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(0x1e)
		}
		b.Write(r[0])
		b.WriteByte('\t')
		b.Write(r[1])
	}
	return b.Bytes()
}

// rawChunk returns n random bytes without kcat's record delimiter.
func rawChunk(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		for b[i] = byte(r.Uint32()); b[i] == 0x1e; b[i] = byte(r.Uint32()) {
		}
	}
	return b
}

// TestConsumeDecodesAStreamKcatProduced: kcat, a librdkafka producer,
// writes a stream with compressed batches; consume --until-eof decodes it,
// reports the sizes and byte offsets, prints a bad record in the middle as
// an error and goes on, and exits by the md5 verdict.
func TestConsumeDecodesAStreamKcatProduced(t *testing.T) {
	requireKcat(t)
	broker := startEmbeddedBroker(t)
	chunks := [][]byte{rawChunk(10240, 1), rawChunk(10240, 2), rawChunk(3000, 3)}
	all := bytes.Join(chunks, nil)
	for _, tc := range []struct {
		codec, md5 string
		json       bool
		wantExit   int
		verdict    string
	}{
		{"lz4", md5Hex(all), false, 0, "verified=ok"},
		{"zstd", md5Hex(all), false, 0, "verified=ok"},
		{"zstd", md5Hex(all), true, 0, `"verified":"ok"`},
		{"lz4", md5Hex([]byte("something else")), false, 1, "verified=mismatch"},
	} {
		name := fmt.Sprintf("%s md5 ok %v json %v", tc.codec, tc.md5 == md5Hex(all), tc.json)
		t.Run(name, func(t *testing.T) {
			topic := "stream_kcat_" + strings.NewReplacer(" ", "_").Replace(name)
			recs := [][2][]byte{
				{[]byte("stream_init"), []byte(`{"type":"stream_init","taskId":"kcat-task","chunkSize":10240,"mimeType":"video/mp2t","ffmpegFormat":"mpegts"}`)},
				{[]byte("raw_stream"), chunks[0]},
				{[]byte("kcat_1"), []byte(`{"type":"engine_heartbeat","engineId":"kcat","engineInstanceId":"kcat_1","count":1,"status":"RUNNING"}`)},
				{[]byte("raw_stream"), chunks[1]},
				{[]byte("junk"), []byte("{not json")},
				{[]byte("raw_stream"), chunks[2]},
				{[]byte("stream_eof"), []byte(fmt.Sprintf(`{"type":"stream_eof","contentLength":%d,"md5Checksum":%q}`, len(all), tc.md5))},
				{[]byte("kcat_1"), []byte(`{"type":"engine_heartbeat","engineId":"kcat","engineInstanceId":"kcat_1","count":2,"status":"DONE"}`)},
			}
			runKcat(t, kcatStream(recs), "-b", broker.Addr(), "-P", "-t", topic, "-K", `\t`, "-D", `\x1e`, "-z", tc.codec)

			args := []string{"consume", "--topic", topic, "--kafka", broker.Addr(), "--from-beginning", "--until-eof"}
			if tc.json {
				args = append(args, "--json")
			}
			res := runWeir(testContext(t), args...)
			if res.exitCode() != tc.wantExit {
				t.Fatalf("exit %d (%v), want %d\n%s", res.exitCode(), res.err, tc.wantExit, res.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
			if len(lines) != 7 {
				t.Fatalf("%d lines, want 7 (up to stream_eof):\n%s", len(lines), res.stdout)
			}
			want := []string{
				"0 stream_init key=stream_init mimeType=video/mp2t ffmpegFormat=mpegts chunkSize=10240",
				"1 raw_stream key=raw_stream size=10240 at=0",
				"2 engine_heartbeat key=kcat_1 engineId=kcat engineInstanceId=kcat_1 count=1 status=RUNNING",
				"3 raw_stream key=raw_stream size=10240 at=10240",
				`4 ERROR key=junk value=9B problem="record with key \"junk\": invalid JSON`,
				"5 raw_stream key=raw_stream size=3000 at=20480",
				fmt.Sprintf("key=stream_eof forcedEOF=false contentLength=%d md5Checksum=%s received=%d %s", len(all), tc.md5, len(all), tc.verdict),
			}
			if tc.json {
				want = []string{`"type":"stream_init"`, `"key":"raw_stream","type":"raw_stream","size":10240,"at":0`,
					`"type":"engine_heartbeat"`, `"size":10240,"at":10240`,
					`"key":"junk","valueBytes":9,"error":"record with key \"junk\": invalid JSON`,
					`"size":3000,"at":20480`, `"received":23480,` + tc.verdict}
			}
			for i, w := range want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d:\n%s\nwant it to contain\n%s", i, lines[i], w)
				}
			}
			if tc.wantExit != 0 && !strings.Contains(res.err.Error(), "md5Checksum is "+tc.md5) {
				t.Errorf("error %q does not explain the md5 mismatch", res.err)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConsumeFollowsATopicUntilStopped: without --from-beginning, consume
// shows what is produced after it starts, on a topic that does not exist
// yet, and runs until its context is cancelled (Ctrl-C), exiting 0.
func TestConsumeFollowsATopicUntilStopped(t *testing.T) {
	broker := startEmbeddedBroker(t)
	client := newBusClient(t, broker.Addr())
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	out := &syncBuffer{}
	root := NewRoot()
	root.SetArgs([]string{"consume", "--topic", "stream_follow", "--kafka", broker.Addr()})
	root.SetOut(out)
	root.SetErr(&bytes.Buffer{})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	// consume asks for records produced from its start on: wait until it
	// surely started, then produce.
	time.Sleep(200 * time.Millisecond)
	if err := client.Produce(ctx,
		&bus.Record{Topic: "stream_follow", Key: []byte("stream_init"), Value: []byte(`{"type":"stream_init","chunkSize":8,"mimeType":"audio/aac"}`)},
		&bus.Record{Topic: "stream_follow", Key: []byte("raw_stream"), Value: []byte("12345678")},
		&bus.Record{Topic: "stream_follow", Key: []byte("stream_eof"), Value: []byte(`{"type":"stream_eof","contentLength":8}`)},
	); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "stream_eof") {
		if time.Now().After(deadline) {
			t.Fatalf("consume printed only:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// It keeps running after stream_eof without --until-eof.
	select {
	case err := <-done:
		t.Fatalf("consume returned %v before it was stopped", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consume stopped with %v, want nil", err)
	}
	want := "0 stream_init key=stream_init mimeType=audio/aac chunkSize=8 durationMS=0 relativeStartOffsetMS=0\n" +
		"1 raw_stream key=raw_stream size=8 at=0\n" +
		"2 stream_eof key=stream_eof forcedEOF=false contentLength=8 received=8 verified=ok\n"
	if out.String() != want {
		t.Errorf("output\n%s\nwant\n%s", out.String(), want)
	}
}

// TestConsumeGroupResumesAfterItsCommit: with --group, a second consume
// starts after what the first one handled.
func TestConsumeGroupResumesAfterItsCommit(t *testing.T) {
	broker := startEmbeddedBroker(t)
	client := newBusClient(t, broker.Addr())
	stream := func(payload string) []*bus.Record {
		return []*bus.Record{
			{Topic: "stream_grouped", Key: []byte("stream_init"), Value: []byte(`{"type":"stream_init","chunkSize":100,"mimeType":"audio/aac"}`)},
			{Topic: "stream_grouped", Key: []byte("raw_stream"), Value: []byte(payload)},
			{Topic: "stream_grouped", Key: []byte("stream_eof"), Value: []byte(fmt.Sprintf(`{"type":"stream_eof","contentLength":%d}`, len(payload)))},
		}
	}
	if err := client.Produce(testContext(t), stream("first")...); err != nil {
		t.Fatal(err)
	}
	args := []string{"consume", "--topic", "stream_grouped", "--kafka", broker.Addr(), "--group", "weir_test_dump", "--from-beginning", "--until-eof"}
	first := runWeir(testContext(t), args...)
	if first.err != nil || !strings.HasPrefix(first.stdout, "0 stream_init") || !strings.Contains(first.stdout, "size=5 at=0") {
		t.Fatalf("first consume: %v\n%s", first.err, first.stdout)
	}
	if err := client.Produce(testContext(t), stream("second!")...); err != nil {
		t.Fatal(err)
	}
	second := runWeir(testContext(t), args...)
	if second.err != nil || !strings.HasPrefix(second.stdout, "3 stream_init") || !strings.Contains(second.stdout, "size=7 at=0") {
		t.Fatalf("second consume in the same group: %v\n%s", second.err, second.stdout)
	}
}

func TestConsumeRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "--kafka", "127.0.0.1:1"}, "--topic is required"},
		{[]string{"consume", "--topic", "a b", "--kafka", "127.0.0.1:1"}, "--topic: topic name"},
		{[]string{"consume", "--topic", "t", "--kafka", ""}, "is `weir serve` running?"},
	} {
		res := runWeir(testContext(t), append(tc.args, "--server", "http://127.0.0.1:1")...)
		if res.err == nil || !strings.Contains(res.err.Error(), tc.want) {
			t.Errorf("weir %s: %v, want an error saying %q", strings.Join(tc.args, " "), res.err, tc.want)
		}
	}
}

// FuzzConsumeFormat feeds arbitrary record pairs through the dumper in both
// formats: it must never panic, print exactly one line per record, and in
// --json mode print valid JSON.
func FuzzConsumeFormat(f *testing.F) {
	f.Add([]byte("stream_init"), []byte(`{"type":"stream_init","chunkSize":4,"mimeType":"a/b"}`), []byte("raw_stream"), []byte("abcdef"))
	f.Add([]byte("stream_eof"), []byte(`{"type":"stream_eof","md5Checksum":"zz"}`), []byte("w"), []byte(`{"type":"engine_heartbeat"}`))
	f.Add([]byte("t1"), []byte(`{"type":"engine_output","taskId":"t1","content":"{\"series\":[]}"}`), []byte("\n"), []byte("\x00"))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 []byte) {
		for _, jsonLines := range []bool{false, true} {
			d := newRecordDumper(jsonLines)
			for i, kv := range [][2][]byte{{k1, v1}, {k2, v2}, {k1, v1}} {
				line := d.dump(&bus.Record{Partition: int32(i % 2), Offset: int64(i), Key: kv[0], Value: kv[1]}).line
				if strings.ContainsAny(line, "\n\r") {
					t.Fatalf("line has a line break: %q", line)
				}
				if jsonLines && !json.Valid([]byte(line)) {
					t.Fatalf("--json line is not JSON: %s", line)
				}
			}
		}
	})
}
