package ingest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// recorder is an in-memory bus that keeps every record.
type recorder struct{ *bustest.Bus }

func newRecorder() *recorder { return &recorder{bustest.New()} }

type recorded struct {
	rec *bus.Record
	msg protocol.Message
	err error
}

// stream returns the records of one topic, decoded.
func (r *recorder) stream(topic string) []recorded {
	var out []recorded
	for _, rec := range r.Records(topic) {
		msg, err := protocol.Decode(rec.Key, rec.Value)
		out = append(out, recorded{rec: rec, msg: msg, err: err})
	}
	return out
}

// rawBytes concatenates the raw_stream payloads of records.
func rawBytes(recs []recorded) []byte {
	var b []byte
	for _, r := range recs {
		if raw, ok := r.msg.(*protocol.RawStream); ok {
			b = append(b, raw.Data...)
		}
	}
	return b
}

// checkStream checks a finished session on the bus: stream_init (MPEG-TS)
// first, raw_stream records stamped with their receive time, stream_eof
// with the right length, a DONE heartbeat last.
func checkStream(t *testing.T, recs []recorded, forced bool) {
	t.Helper()
	if len(recs) < 4 {
		t.Fatalf("%d records on the stream topic, want a whole stream", len(recs))
	}
	init, ok := recs[0].msg.(*protocol.StreamInit)
	if !ok || init.MimeType != mpegts.MimeType || init.FFmpegFormat != mpegts.FFmpegFormat {
		t.Fatalf("first record: %#v, want stream_init of MPEG-TS", recs[0].msg)
	}
	var eof *protocol.StreamEOF
	var raws int64
	for _, r := range recs {
		if r.err != nil {
			t.Fatalf("record %s does not decode: %v", r.rec.Key, r.err)
		}
		switch m := r.msg.(type) {
		case *protocol.RawStream:
			raws += int64(len(m.Data))
			v, ok := r.rec.Header(protocol.HeaderReceivedAt)
			at, err := protocol.ParseReceivedAt(v)
			if !ok || err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
				t.Fatalf("raw_stream record without a sane %s header: %q", protocol.HeaderReceivedAt, v)
			}
		case *protocol.StreamEOF:
			eof = m
		}
	}
	if eof == nil || eof.ContentLength != raws || eof.ForcedEOF != forced {
		t.Fatalf("stream_eof %+v: want contentLength %d, forcedEOF %v", eof, raws, forced)
	}
	last, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
	if !ok || last.Status != protocol.HeartbeatDone {
		t.Fatalf("last record %#v, want a DONE heartbeat", recs[len(recs)-1].msg)
	}
}

func TestSessionStampsAndChunksRecords(t *testing.T) {
	rec := newRecorder()
	s, err := OpenSession(context.Background(), rec, SessionOptions{StreamID: "live-s", EngineID: "test", ChunkSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Second)
	data := make([]byte, 2500)
	rand.Read(data)
	if err := s.Write(data, at); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	recs := rec.stream(protocol.StreamTopic("live-s"))
	var sizes []int
	for _, r := range recs {
		if raw, ok := r.msg.(*protocol.RawStream); ok {
			sizes = append(sizes, len(raw.Data))
			v, _ := r.rec.Header(protocol.HeaderReceivedAt)
			if got, _ := protocol.ParseReceivedAt(v); !got.Equal(at.Truncate(time.Microsecond)) {
				t.Errorf("raw_stream stamped %v, want %v", got, at)
			}
		}
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Errorf("raw_stream sizes %v, want [1000 1000 500]", sizes)
	}
	if got := rawBytes(recs); string(got) != string(data) {
		t.Error("raw_stream bytes differ from what was written")
	}
	checkStream(t, recs, true)
	if err := s.Write([]byte{1}, at); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

// gatedProducer holds every record handed over while its gate is closed,
// as a slow bus whose buffer is full would.
type gatedProducer struct {
	*recorder
	gate chan struct{}
}

func (g *gatedProducer) Produce(ctx context.Context, recs ...*bus.Record) error {
	<-g.gate
	return g.recorder.Produce(ctx, recs...)
}

func (g *gatedProducer) ProduceAsync(rec *bus.Record, done func(*bus.Record, error)) {
	<-g.gate
	g.recorder.ProduceAsync(rec, done)
}

// rawStamps returns the receive time and the first payload byte of every
// raw_stream record.
func rawStamps(t *testing.T, recs []recorded) (stamps []time.Time, first []byte) {
	t.Helper()
	for _, r := range recs {
		raw, ok := r.msg.(*protocol.RawStream)
		if !ok {
			continue
		}
		v, _ := r.rec.Header(protocol.HeaderReceivedAt)
		at, err := protocol.ParseReceivedAt(v)
		if err != nil {
			t.Fatalf("raw_stream record without %s: %v", protocol.HeaderReceivedAt, err)
		}
		stamps = append(stamps, at)
		first = append(first, raw.Data[0])
	}
	return stamps, first
}

// TestSessionBacklogKeepsReceiveTimes queues writes received 100 ms apart
// while the bus is stuck: once it moves, each write's bytes must go out
// stamped with their own receive time, not merged under the first one's.
func TestSessionBacklogKeepsReceiveTimes(t *testing.T) {
	p := &gatedProducer{recorder: newRecorder(), gate: make(chan struct{})}
	close(p.gate)
	s, err := OpenSession(context.Background(), p, SessionOptions{StreamID: "live-b", EngineID: "test", ChunkSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	p.gate = make(chan struct{}) // Produce reads the gate only after Init returned
	t0 := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	const writes = 10
	for i := range writes {
		data := make([]byte, 300)
		for j := range data {
			data[j] = byte(i)
		}
		if err := s.Write(data, t0.Add(time.Duration(i)*100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	close(p.gate)
	if err := s.Close(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	recs := p.stream(protocol.StreamTopic("live-b"))
	if got := rawBytes(recs); len(got) != writes*300 {
		t.Fatalf("%d bytes reached the bus, want %d", len(got), writes*300)
	}
	stamps, first := rawStamps(t, recs)
	seen := map[byte]bool{}
	for i, at := range stamps {
		want := t0.Add(time.Duration(first[i]) * 100 * time.Millisecond)
		if !at.Equal(want) {
			t.Errorf("record %d starts with write %d's bytes but is stamped %v after the first write, want %v",
				i, first[i], at.Sub(t0), want.Sub(t0))
		}
		seen[first[i]] = true
	}
	if len(seen) != writes {
		t.Errorf("records start with the bytes of %d writes, want all %d: writes received apart were merged", len(seen), writes)
	}
}

// takenOver is a metadata store on which another holder takes every lease
// over once taken is set, so the next renewal finds it gone.
type takenOver struct {
	*metastore.SQLite
	taken atomic.Bool
}

func (s *takenOver) RenewLease(ctx context.Context, l metastore.Lease, ttl time.Duration) (metastore.Lease, error) {
	if s.taken.Load() {
		return metastore.Lease{}, fmt.Errorf("renew lease %s: lost to another holder: %w", l.Name, metastore.ErrConflict)
	}
	return s.SQLite.RenewLease(ctx, l, ttl)
}

// TestSessionUnderALeaseIsFenced: every record of a session under a lease
// carries the lease's token; once the lease is lost the session writes
// nothing more, not even its stream_eof, and Write says why.
func TestSessionUnderALeaseIsFenced(t *testing.T) {
	meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	store := &takenOver{SQLite: meta}
	held, err := metastore.Hold(context.Background(), store, metastore.PublishLeaseName("live-f"), "test#1", 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	s, err := OpenSession(context.Background(), rec, SessionOptions{StreamID: "live-f", EngineID: "test", Lease: held})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(make([]byte, 3000), time.Now()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the bytes on the bus", func() bool { return len(rawBytes(rec.stream(protocol.StreamTopic("live-f")))) == 3000 })
	store.taken.Store(true)
	<-held.Context().Done()
	n := len(rec.Records(protocol.StreamTopic("live-f")))
	var werr error
	for werr == nil {
		werr = s.Write(make([]byte, 100), time.Now())
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(werr, metastore.ErrLeaseLost) {
		t.Errorf("Write after the lease was lost: %v, want an error wrapping metastore.ErrLeaseLost", werr)
	}
	if err := s.Close(context.Background(), false); err == nil {
		t.Error("Close after the lease was lost ended the stream without an error")
	}
	recs := rec.stream(protocol.StreamTopic("live-f"))
	if len(recs) != n {
		t.Errorf("%d records after the lease was lost, want none", len(recs)-n)
	}
	want := held.Token()
	for i, r := range recs {
		v, _ := r.rec.Header(protocol.HeaderPublishToken)
		if tok, err := protocol.ParsePublishToken(v); err != nil || tok != want {
			t.Errorf("record %d (%s): token %q, want %d", i, r.rec.Key, v, want)
		}
		if _, ok := r.msg.(*protocol.StreamEOF); ok {
			t.Error("a stream_eof was written after the lease was lost")
		}
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionHoldLetsLaterBytesShareARecord: with a hold, bytes written
// while the session waits for more (here, after it took the first write
// off its queue) join the first write's record, stamped with its receive
// time, if they were received within the hold (or 20 ms, when longer) of
// it; without one, the first write goes out alone as soon as the queue
// runs dry. The receive time lies ahead so that the hold cannot run out
// before the second write, however slow the machine.
func TestSessionHoldLetsLaterBytesShareARecord(t *testing.T) {
	for _, c := range []struct {
		hold, gap time.Duration
		records   int
	}{
		{0, time.Millisecond, 2},
		{20 * time.Millisecond, time.Millisecond, 1},
		{200 * time.Millisecond, 150 * time.Millisecond, 1},
		{20 * time.Millisecond, 150 * time.Millisecond, 2}, // too far apart to share a receive time
		{time.Hour, 240 * time.Millisecond, 1},             // capped at MaxHold
		{time.Hour, 260 * time.Millisecond, 2},
	} {
		t.Run(fmt.Sprint("hold=", c.hold, ",gap=", c.gap), func(t *testing.T) {
			rec := newRecorder()
			s, err := OpenSession(context.Background(), rec, SessionOptions{StreamID: "live-h", EngineID: "test", Hold: c.hold})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
			if err := s.Write([]byte("first "), at); err != nil {
				t.Fatal(err)
			}
			waitQueued(s) // the session has seen the first write
			if c.hold == 0 {
				// Without a hold the first write is flushed on its own.
				waitRaw(t, rec, "live-h", 1)
			}
			if err := s.Write([]byte("second"), at.Add(c.gap)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			recs := rec.stream(protocol.StreamTopic("live-h"))
			stamps, _ := rawStamps(t, recs)
			if string(rawBytes(recs)) != "first second" {
				t.Fatalf("bytes on the bus %q, want %q", rawBytes(recs), "first second")
			}
			if len(stamps) != c.records {
				t.Fatalf("%d raw_stream records, want %d", len(stamps), c.records)
			}
			if !stamps[0].Equal(at) {
				t.Errorf("first record stamped %v, want the first write's receive time %v", stamps[0], at)
			}
			if c.records == 2 && !stamps[1].Equal(at.Add(c.gap)) {
				t.Errorf("second record stamped %v, want the second write's receive time %v", stamps[1], at.Add(c.gap))
			}
		})
	}
}

// waitRaw waits until topic's stream has n raw_stream records.
func waitRaw(t *testing.T, rec *recorder, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got int
		for _, r := range rec.stream(protocol.StreamTopic(id)) {
			if _, ok := r.msg.(*protocol.RawStream); ok {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d raw_stream records after 10 s, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSessionWriteNowEndsTheHold: bytes written with WriteNow go out at
// once, without waiting out the hold (here an hour: the first write's
// receive time lies ahead), and so does what waited before them, in a
// record of its own: the WriteNow bytes' record carries their own receive
// time, and the bytes queued behind them join it.
func TestSessionWriteNowEndsTheHold(t *testing.T) {
	rec := newRecorder()
	s, err := OpenSession(context.Background(), rec, SessionOptions{StreamID: "live-n", EngineID: "test", Hold: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), true)
	at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if err := s.Write([]byte("audio "), at); err != nil {
		t.Fatal(err)
	}
	waitQueued(s) // the session holds the first write
	if err := s.WriteNow([]byte("key frame"), at.Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitRaw(t, rec, "live-n", 2) // before Close: the hold did not run out
	recs := rec.stream(protocol.StreamTopic("live-n"))
	if got := string(rawBytes(recs)); got != "audio key frame" {
		t.Fatalf("bytes on the bus %q, want %q", got, "audio key frame")
	}
	stamps, _ := rawStamps(t, recs)
	if len(stamps) != 2 || !stamps[0].Equal(at) || !stamps[1].Equal(at.Add(100*time.Millisecond)) {
		t.Fatalf("raw_stream stamps %v, want %v then %v", stamps, at, at.Add(100*time.Millisecond))
	}
}

// waitQueued waits until the session's writer has looked at its queue
// since the last write (it took the write's wake-up), so that a write
// after this one finds it waiting out the hold, not idle.
func waitQueued(s *Session) {
	for len(s.wake) > 0 {
		time.Sleep(time.Millisecond)
	}
}

// TestWriteFlushCutsRecordsFromTheBytesGiven: bytes waiting for a whole
// chunk go first, completed from the new ones; the rest go out as records
// of at most a chunk, the last one short, and the stream's length and MD5
// cover every byte once.
func TestWriteFlushCutsRecordsFromTheBytesGiven(t *testing.T) {
	rec := newRecorder()
	w, err := NewStreamWriter(rec, "stream_wf", StreamOptions{ChunkSize: 10, MimeType: "video/mp2t", HashInline: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	p := []byte("0123456789ABCDEFGHIJKLMNO") // 25 bytes
	if err := w.writeFlush(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range rec.stream("stream_wf") {
		if raw, ok := r.msg.(*protocol.RawStream); ok {
			sizes = append(sizes, len(raw.Data))
		}
	}
	if want := []int{10, 10, 8}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("raw_stream sizes %v, want %v", sizes, want)
	}
	if got := string(rawBytes(rec.stream("stream_wf"))); got != "abc"+string(p) {
		t.Fatalf("bytes %q, want %q", got, "abc"+string(p))
	}
	if st := w.Stats(); st.Bytes != 28 || st.BytesRead != 28 {
		t.Fatalf("stats %+v, want 28 bytes read and written", st)
	}
}
