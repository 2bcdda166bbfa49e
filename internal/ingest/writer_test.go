package ingest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/protocol"
)

// fakeBus is the in-memory bus, noting the topics created.
type fakeBus struct {
	*bustest.Bus
	mu      sync.Mutex
	created map[string]int32
}

func newFakeBus() *fakeBus { return &fakeBus{Bus: bustest.New(), created: map[string]int32{}} }

func (f *fakeBus) CreateTopic(ctx context.Context, topic string, partitions int32) error {
	f.mu.Lock()
	f.created[topic] = partitions
	f.mu.Unlock()
	return f.Bus.CreateTopic(ctx, topic, partitions)
}

// records returns what was produced, across topics, in order.
func (f *fakeBus) records() []*bus.Record { return f.All() }

// setFailing makes producing fail with err; nil mends it.
func (f *fakeBus) setFailing(err error) { f.FailProduce(err) }

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// decodedStream is a stream topic's records, decoded and checked.
type decodedStream struct {
	msgs       []protocol.Message
	keys       []string
	init       *protocol.StreamInit
	raw        [][]byte
	eof        *protocol.StreamEOF
	heartbeats []*protocol.EngineHeartbeat
}

func (d *decodedStream) bytes() []byte { return bytes.Join(d.raw, nil) }

// decodeStream decodes recs with a StreamReader, failing the test on any
// order, integrity or validation error.
func decodeStream(t testing.TB, recs []*bus.Record) *decodedStream {
	t.Helper()
	var r protocol.StreamReader
	d := &decodedStream{}
	for i, rec := range recs {
		msg, err := r.Next(rec.Key, rec.Value)
		if err != nil {
			t.Fatalf("record %d (key %q): %v", i, rec.Key, err)
		}
		d.msgs = append(d.msgs, msg)
		d.keys = append(d.keys, string(rec.Key))
		switch m := msg.(type) {
		case *protocol.StreamInit:
			d.init = m
		case *protocol.RawStream:
			d.raw = append(d.raw, m.Data)
		case *protocol.StreamEOF:
			d.eof = m
		case *protocol.EngineHeartbeat:
			d.heartbeats = append(d.heartbeats, m)
		}
	}
	return d
}

// checkHeartbeats checks the heartbeat rules over a decoded stream: counts
// from 1 with no gaps, the counters match the stream messages before each
// heartbeat, no more than every messages between two, and the last one has
// status last.
func checkHeartbeats(t testing.TB, d *decodedStream, every int, last protocol.HeartbeatStatus) {
	t.Helper()
	if len(d.heartbeats) == 0 {
		t.Fatal("no heartbeat")
	}
	var messages, rawBytes int64
	since := 0
	n := int64(0)
	for i, msg := range d.msgs {
		hb, ok := msg.(*protocol.EngineHeartbeat)
		if !ok {
			messages++
			since++
			if raw, ok := msg.(*protocol.RawStream); ok {
				rawBytes += int64(len(raw.Data))
			}
			if since > every {
				t.Fatalf("record %d: %d stream messages since the last heartbeat, want at most %d", i, since, every)
			}
			continue
		}
		n++
		if hb.Count != n {
			t.Errorf("heartbeat %d has count %d", n, hb.Count)
		}
		if hb.MessagesWritten != messages || hb.BytesWritten != rawBytes {
			t.Errorf("heartbeat %d says %d messages, %d bytes; %d and %d came before it", n, hb.MessagesWritten, hb.BytesWritten, messages, rawBytes)
		}
		if d.keys[i] != hb.EngineInstanceID {
			t.Errorf("heartbeat %d keyed %q, want its engineInstanceId %q", n, d.keys[i], hb.EngineInstanceID)
		}
		want := protocol.HeartbeatRunning
		if i == len(d.msgs)-1 {
			want = last
		}
		if hb.Status != want {
			t.Errorf("heartbeat %d status %s, want %s", n, hb.Status, want)
		}
		since = 0
	}
	if _, ok := d.msgs[len(d.msgs)-1].(*protocol.EngineHeartbeat); !ok {
		t.Errorf("last record is %T, want the final heartbeat", d.msgs[len(d.msgs)-1])
	}
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newTestWriter(t *testing.T, p bus.Bus, opts StreamOptions) *StreamWriter {
	t.Helper()
	if opts.MimeType == "" {
		opts.MimeType = "video/mp2t"
	}
	w, err := NewStreamWriter(p, "stream_test", opts)
	if err != nil {
		t.Fatalf("NewStreamWriter: %v", err)
	}
	return w
}

func TestStreamWriterSplitsBytesIntoChunksOfAtMostChunkSize(t *testing.T) {
	data := randomBytes(100_000, 7)
	cases := []struct {
		name      string
		chunkSize int
		writes    []int // sizes of successive writes; the data is cut in these pieces
	}{
		{"one big write, default chunk size", 0, []int{100_000}},
		{"small writes that straddle chunks", 0, repeat(333, 300)},
		{"writes of exactly the chunk size", 1000, repeat(1000, 100)},
		{"chunk size 1", 1, []int{50}},
		{"odd chunk size and odd writes", 7777, []int{1, 7776, 7778, 15553, 2}},
		{"empty stream", 0, nil},
		{"empty writes in between", 4096, []int{0, 5000, 0, 0, 100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeBus()
			w := newTestWriter(t, p, StreamOptions{ChunkSize: tc.chunkSize, TaskID: "task-1", JobID: "job-1", TdoID: "tdo-1"})
			if err := w.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			var sent []byte
			off := 0
			for _, n := range tc.writes {
				got, err := w.Write(data[off : off+n])
				if err != nil || got != n {
					t.Fatalf("Write(%d bytes) = %d, %v", n, got, err)
				}
				sent = append(sent, data[off:off+n]...)
				off += n
			}
			if err := w.Close(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			d := decodeStream(t, p.records())
			size := tc.chunkSize
			if size == 0 {
				size = protocol.DefaultChunkSize
			}
			if _, ok := d.msgs[0].(*protocol.StreamInit); !ok {
				t.Fatalf("first record is %T, want stream_init", d.msgs[0])
			}
			if d.init.ChunkSize != int64(size) || d.init.MimeType != "video/mp2t" || d.init.TaskID != "task-1" || d.init.JobID != "job-1" || d.init.TDOID != "tdo-1" {
				t.Errorf("stream_init = %+v", d.init)
			}
			for i, r := range d.raw {
				if len(r) > size || (i < len(d.raw)-1 && len(r) != size) || len(r) == 0 {
					t.Errorf("raw_stream %d has %d bytes; want %d except a shorter, non-empty last one", i, len(r), size)
				}
			}
			if !bytes.Equal(d.bytes(), sent) {
				t.Errorf("raw_stream bytes (%d) differ from the %d bytes written", len(d.bytes()), len(sent))
			}
			if d.eof == nil || d.eof.ForcedEOF || d.eof.ContentLength != int64(len(sent)) || d.eof.MD5Checksum != md5hex(sent) {
				t.Errorf("stream_eof = %+v, want contentLength %d md5 %s, not forced", d.eof, len(sent), md5hex(sent))
			}
			checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
			st := w.Stats()
			if st.Bytes != int64(len(sent)) || st.BytesRead != int64(len(sent)) || st.RawMessages != int64(len(d.raw)) ||
				st.Messages != int64(len(d.raw)+2) || st.Heartbeats != int64(len(d.heartbeats)) || st.MD5 != md5hex(sent) || !st.Closed {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

// TestStreamWriterNoMD5LeavesTheChecksumOut: with NoMD5 the stream is the
// same records, and stream_eof carries contentLength without md5Checksum.
func TestStreamWriterNoMD5LeavesTheChecksumOut(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("HashInline=%v", inline), func(t *testing.T) {
			p := newFakeBus()
			w := newTestWriter(t, p, StreamOptions{ChunkSize: 1000, NoMD5: true, HashInline: inline})
			if err := w.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			data := randomBytes(25_500, 3)
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			d := decodeStream(t, p.records())
			if !bytes.Equal(d.bytes(), data) || len(d.raw) != 26 {
				t.Fatalf("%d raw_stream records with %d bytes, want 26 with the %d written", len(d.raw), len(d.bytes()), len(data))
			}
			if d.eof == nil || d.eof.ContentLength != int64(len(data)) || d.eof.MD5Checksum != "" || d.eof.ForcedEOF {
				t.Fatalf("stream_eof = %+v, want contentLength %d and no md5Checksum", d.eof, len(data))
			}
			last := p.records()
			for _, rec := range last {
				if string(rec.Key) == "stream_eof" && bytes.Contains(rec.Value, []byte("md5Checksum")) {
					t.Errorf("stream_eof JSON %s names md5Checksum", rec.Value)
				}
			}
			if st := w.Stats(); st.MD5 != "" || st.Bytes != int64(len(data)) || !st.Closed {
				t.Errorf("Stats = %+v, want no MD5", st)
			}
			checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
		})
	}
}

func repeat(n, times int) []int {
	s := make([]int, times)
	for i := range s {
		s[i] = n
	}
	return s
}

func TestStreamWriterHeartbeatsEveryNMessages(t *testing.T) {
	for _, every := range []int{1, 3, 20} {
		t.Run(strings.Repeat("x", every), func(t *testing.T) {
			p := newFakeBus()
			clock := newFakeClock()
			w := newTestWriter(t, p, StreamOptions{ChunkSize: 10, HeartbeatEvery: every, Clock: clock.Now, EngineID: "eng", EngineInstanceID: "eng_1"})
			if err := w.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			for range 50 {
				clock.Advance(10 * time.Millisecond)
				if _, err := w.Write(make([]byte, 10)); err != nil {
					t.Fatal(err)
				}
			}
			clock.Advance(time.Second)
			if err := w.Close(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			d := decodeStream(t, p.records())
			checkHeartbeats(t, d, every, protocol.HeartbeatDone)
			if _, ok := d.msgs[1].(*protocol.EngineHeartbeat); !ok {
				t.Errorf("record after stream_init is %T, want the first heartbeat", d.msgs[1])
			}
			last := d.heartbeats[len(d.heartbeats)-1]
			if last.EngineID != "eng" || last.UpTime != 1500 || last.BytesRead != 500 || last.BytesWritten != 500 || last.MessagesWritten != 52 {
				t.Errorf("final heartbeat = %+v, want engineId eng, upTime 1500, 500 bytes read and written, 52 messages", last)
			}
			if want := clock.Now().UnixMilli(); last.TimestampUTC != want || d.eof.TimestampUTC != want {
				t.Errorf("final timestamps %d, %d; want the clock's %d", d.eof.TimestampUTC, last.TimestampUTC, want)
			}
		})
	}
}

func TestStreamWriterHeartbeatsOnTimeWhenTheSourceIsQuiet(t *testing.T) {
	p := newFakeBus()
	clock := newFakeClock()
	w := newTestWriter(t, p, StreamOptions{Clock: clock.Now, HeartbeatInterval: time.Second})
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("less than a chunk")); err != nil {
		t.Fatal(err)
	}
	countBeats := func() int {
		n := 0
		for _, r := range p.records() {
			if string(r.Key) == w.Options().EngineInstanceID {
				n++
			}
		}
		return n
	}
	// The real ticker runs, but the fake clock has not moved: no beat.
	time.Sleep(300 * time.Millisecond)
	if n := countBeats(); n != 1 {
		t.Fatalf("%d heartbeats before the interval passed, want 1", n)
	}
	clock.Advance(time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for countBeats() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat after the interval passed on a quiet stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.Close(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	d := decodeStream(t, p.records())
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
	if d.heartbeats[1].UpTime != 1000 || d.heartbeats[1].BytesRead != 17 || d.heartbeats[1].BytesWritten != 0 {
		t.Errorf("timer heartbeat = %+v, want upTime 1000, 17 bytes read, none written yet", d.heartbeats[1])
	}
}

func TestStreamWriterEndings(t *testing.T) {
	cases := []struct {
		name       string
		end        func(w *StreamWriter, ctx context.Context) error
		forced     bool
		status     protocol.HeartbeatStatus
		errorMsg   string
		wantClosed bool
	}{
		{"Close: the source ended", func(w *StreamWriter, ctx context.Context) error { return w.Close(ctx, false) }, false, protocol.HeartbeatDone, "", true},
		{"Close forced: stopped on purpose", func(w *StreamWriter, ctx context.Context) error { return w.Close(ctx, true) }, true, protocol.HeartbeatDone, "", true},
		{"Abort: the source broke", func(w *StreamWriter, ctx context.Context) error {
			return w.Abort(ctx, errors.New("read http://x: connection reset by peer"))
		}, true, protocol.HeartbeatFailed, "read http://x: connection reset by peer", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeBus()
			w := newTestWriter(t, p, StreamOptions{ChunkSize: 4})
			if err := w.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("abcdefghij")); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(w, t.Context()); err != nil {
				t.Fatal(err)
			}
			d := decodeStream(t, p.records())
			if string(d.bytes()) != "abcdefghij" {
				t.Errorf("stream bytes %q: the tail was not sent before stream_eof", d.bytes())
			}
			if d.eof.ForcedEOF != tc.forced || d.eof.ContentLength != 10 || d.eof.MD5Checksum != md5hex([]byte("abcdefghij")) {
				t.Errorf("stream_eof = %+v, want forcedEOF %v, 10 bytes", d.eof, tc.forced)
			}
			checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, tc.status)
			if last := d.heartbeats[len(d.heartbeats)-1]; last.ErrorMsg != tc.errorMsg {
				t.Errorf("final errorMsg %q, want %q", last.ErrorMsg, tc.errorMsg)
			}
			if st := w.Stats(); st.ForcedEOF != tc.forced || !st.Closed {
				t.Errorf("Stats = %+v", st)
			}
			// A closed stream takes nothing more.
			if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after the end = %v, want ErrClosed", err)
			}
			if err := w.Close(t.Context(), false); !errors.Is(err, ErrClosed) {
				t.Errorf("second Close = %v, want ErrClosed", err)
			}
			if err := w.Abort(t.Context(), nil); !errors.Is(err, ErrClosed) {
				t.Errorf("Abort after the end = %v, want ErrClosed", err)
			}
			if n := len(p.records()); n != len(d.msgs) {
				t.Errorf("%d records after the end, want %d", n, len(d.msgs))
			}
		})
	}
}

func TestStreamWriterKeysAndTopics(t *testing.T) {
	p := newFakeBus()
	w, err := NewStreamWriter(p, "stream_cams", StreamOptions{MimeType: "video/x-flv", KeyPrefix: "cam1_", HeartbeatTopic: "weir_heartbeats", EngineInstanceID: "rtmp_7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 20000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range p.records() {
		keys = append(keys, r.Topic+"/"+string(r.Key))
	}
	want := []string{"stream_cams/cam1_stream_init", "weir_heartbeats/rtmp_7", "stream_cams/cam1_raw_stream", "stream_cams/cam1_raw_stream",
		"stream_cams/cam1_stream_eof", "weir_heartbeats/rtmp_7"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("records\n%v\nwant\n%v", keys, want)
	}
	if p.created["stream_cams"] != 1 {
		t.Errorf("topics created %v, want stream_cams with 1 partition", p.created)
	}
}

func TestStreamWriterRejectsBadOptionsBeforeProducing(t *testing.T) {
	cases := []struct {
		name  string
		topic string
		opts  StreamOptions
		want  string // in the error of NewStreamWriter, or of Init
	}{
		{"negative chunk size", "s", StreamOptions{MimeType: "a/b", ChunkSize: -1}, "chunk size -1"},
		{"chunk size over the protocol maximum", "s", StreamOptions{MimeType: "a/b", ChunkSize: protocol.MaxChunkSize + 1}, "chunk size 1048577"},
		{"key prefix without underscore", "s", StreamOptions{MimeType: "a/b", KeyPrefix: "cam1"}, `key prefix "cam1"`},
		{"illegal topic", "a topic", StreamOptions{MimeType: "a/b"}, "topic name"},
		{"illegal heartbeat topic", "s", StreamOptions{MimeType: "a/b", HeartbeatTopic: "x/y"}, "heartbeat topic name"},
		{"no mime type", "s", StreamOptions{}, `field "mimeType": is required`},
		{"negative duration", "s", StreamOptions{MimeType: "a/b", DurationMS: -5}, `field "durationMS"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeBus()
			w, err := NewStreamWriter(p, tc.topic, tc.opts)
			if err == nil {
				err = w.Init(t.Context())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if n := len(p.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
		})
	}
}

func TestStreamWriterMisuse(t *testing.T) {
	p := newFakeBus()
	w := newTestWriter(t, p, StreamOptions{})
	if _, err := w.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "Write before Init") {
		t.Errorf("Write before Init = %v", err)
	}
	if err := w.Close(t.Context(), false); err == nil || !strings.Contains(err.Error(), "Close before Init") {
		t.Errorf("Close before Init = %v", err)
	}
	if err := w.Abort(t.Context(), errors.New("source unreachable")); err != nil {
		t.Errorf("Abort before Init = %v, want nil: there is no stream to end", err)
	}
	if n := len(p.records()); n != 0 {
		t.Errorf("%d records produced without Init", n)
	}
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Init(t.Context()); err == nil {
		t.Error("second Init succeeded")
	}
	if err := w.Close(t.Context(), false); err != nil {
		t.Fatal(err)
	}
}

func TestStreamWriterProduceFailureBreaksTheStream(t *testing.T) {
	p := newFakeBus()
	w := newTestWriter(t, p, StreamOptions{ChunkSize: 4})
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abcd")); err != nil {
		t.Fatal(err)
	}
	broker := errors.New("broker gone")
	p.setFailing(broker)
	if n, err := w.Write([]byte("efgh")); !errors.Is(err, broker) || n != 0 {
		t.Fatalf("Write while the producer fails = %d, %v", n, err)
	}
	p.setFailing(nil)
	// The stream is broken: writing more would leave a hole in it.
	if _, err := w.Write([]byte("ijkl")); !errors.Is(err, broker) {
		t.Fatalf("Write after a failure = %v, want the failure again", err)
	}
	if err := w.Flush(t.Context()); !errors.Is(err, broker) {
		t.Fatalf("Flush after a failure = %v", err)
	}
	// Abort still tries to end the stream, and reports what it sent.
	if err := w.Abort(t.Context(), broker); err != nil {
		t.Fatal(err)
	}
	recs := p.records()
	var last protocol.Message
	var eof *protocol.StreamEOF
	for _, r := range recs {
		m, err := protocol.Decode(r.Key, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := m.(*protocol.StreamEOF); ok {
			eof = e
		}
		last = m
	}
	if eof == nil || !eof.ForcedEOF || eof.ContentLength != 4 {
		t.Errorf("stream_eof = %+v, want forced with the 4 bytes that were produced", eof)
	}
	if hb, ok := last.(*protocol.EngineHeartbeat); !ok || hb.Status != protocol.HeartbeatFailed || hb.ErrorMsg != "broker gone" {
		t.Errorf("last record %+v, want a FAILED heartbeat saying broker gone", last)
	}
}

func TestStreamWriterFlushSendsAShortChunk(t *testing.T) {
	p := newFakeBus()
	w := newTestWriter(t, p, StreamOptions{ChunkSize: 100})
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(" world")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	d := decodeStream(t, p.records())
	if len(d.raw) != 2 || string(d.raw[0]) != "hello" || string(d.raw[1]) != " world" {
		t.Errorf("raw_stream records %q, want [hello, \" world\"]", d.raw)
	}
}
