package ingest

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// asyncFake is a bus that holds records until the test
// acknowledges them, in order, as kgo does for one partition; a failure
// fails the record and every one held behind it, as kgo's idempotent
// producer does. Records acknowledged are the topic's content.
type asyncFake struct {
	*fakeBus // for what the writer needs besides ProduceAsync

	mu       sync.Mutex
	held     []heldRecord
	landed   []*bus.Record
	heldCost int // recordCost of the held records
	maxCost  int // the most heldCost reached
	auto     bool
}

type heldRecord struct {
	rec  *bus.Record
	done func(*bus.Record, error)
}

func (f *asyncFake) ProduceAsync(rec *bus.Record, done func(*bus.Record, error)) {
	f.mu.Lock()
	if f.auto {
		f.landed = append(f.landed, rec)
		f.mu.Unlock()
		done(rec, nil)
		return
	}
	f.held = append(f.held, heldRecord{rec, done})
	f.heldCost += recordCost(rec)
	f.maxCost = max(f.maxCost, f.heldCost)
	f.mu.Unlock()
}

// ack acknowledges the first n held records (all of them when n < 0) and
// returns how many it acknowledged.
func (f *asyncFake) ack(n int) int {
	f.mu.Lock()
	if n < 0 || n > len(f.held) {
		n = len(f.held)
	}
	batch := f.held[:n:n]
	f.held = f.held[n:]
	for _, h := range batch {
		f.heldCost -= recordCost(h.rec)
		f.landed = append(f.landed, h.rec)
	}
	f.mu.Unlock()
	for _, h := range batch {
		h.done(h.rec, nil)
	}
	return n
}

// failAll fails every held record with err.
func (f *asyncFake) failAll(err error) {
	f.mu.Lock()
	batch := f.held
	f.held, f.heldCost = nil, 0
	f.mu.Unlock()
	for _, h := range batch {
		h.done(h.rec, err)
	}
}

// setAuto makes ProduceAsync acknowledge at once, after acknowledging
// what is held.
func (f *asyncFake) setAuto() {
	f.ack(-1)
	f.mu.Lock()
	f.auto = true
	f.mu.Unlock()
}

func (f *asyncFake) heldCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func (f *asyncFake) topic() []*bus.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*bus.Record(nil), f.landed...)
}

// ackInBackground acknowledges held records until stop is closed.
func (f *asyncFake) ackInBackground(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Millisecond):
		}
		f.ack(3)
	}
}

func TestStreamWriterWriteReturnsBeforeTheBusAcknowledges(t *testing.T) {
	p := &asyncFake{fakeBus: newFakeBus()}
	w := newTestWriter(t, p, StreamOptions{ChunkSize: 1000, MaxInFlightBytes: 64 << 10})
	initDone := make(chan error, 1)
	go func() { initDone <- w.Init(t.Context()) }()
	// Init waits for stream_init and the first heartbeat.
	waitFor(t, "stream_init handed over", func() bool { return p.heldCount() == 2 })
	p.ack(-1)
	if err := <-initDone; err != nil {
		t.Fatal(err)
	}
	data := randomBytes(30_500, 11)
	if n, err := w.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	// Nothing acknowledged yet: Write did not wait, and the counters wait
	// for the acknowledgements.
	if st := w.Stats(); st.BytesRead != 30_500 || st.Bytes != 0 || st.RawMessages != 0 {
		t.Errorf("Stats before the acknowledgements = %+v, want 30500 bytes read, none written", st)
	}
	p.ack(-1)
	if st := w.Stats(); st.Bytes != 30_000 || st.RawMessages != 30 || st.MD5 != md5hex(data[:30_000]) {
		t.Errorf("Stats after the acknowledgements = %+v, want 30 records of 30000 bytes", st)
	}
	closed := make(chan error, 1)
	go func() { closed <- w.Close(t.Context(), false) }()
	stop := make(chan struct{})
	defer close(stop)
	go p.ackInBackground(stop)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	d := decodeStream(t, p.topic())
	if string(d.bytes()) != string(data) || d.eof.ContentLength != int64(len(data)) || d.eof.MD5Checksum != md5hex(data) || d.eof.ForcedEOF {
		t.Errorf("stream_eof = %+v over %d bytes, want all %d bytes, md5 %s", d.eof, len(d.bytes()), len(data), md5hex(data))
	}
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
	if st := w.Stats(); !st.Closed || st.Bytes != int64(len(data)) || st.Messages != int64(len(d.raw)+2) || st.Heartbeats != int64(len(d.heartbeats)) {
		t.Errorf("final Stats = %+v", st)
	}
}

func TestStreamWriterKeepsAtMostMaxInFlightBytesOnTheirWay(t *testing.T) {
	const limit = 50_000
	p := &asyncFake{fakeBus: newFakeBus()}
	p.setAuto()
	w := newTestWriter(t, p, StreamOptions{ChunkSize: 1000, MaxInFlightBytes: limit})
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.auto = false
	p.mu.Unlock()

	data := randomBytes(1_000_000, 12)
	wrote := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += 100_000 {
			if _, err := w.Write(data[off : off+100_000]); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	// Acknowledge a few records at a time, slowly, so the writer keeps
	// running into the window.
	stop := make(chan struct{})
	go p.ackInBackground(stop)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	close(stop)
	p.mu.Lock()
	maxCost := p.maxCost
	p.mu.Unlock()
	if maxCost > limit {
		t.Errorf("%d bytes were in flight at once, want at most MaxInFlightBytes %d", maxCost, limit)
	}
	if maxCost < limit/2 {
		t.Errorf("at most %d bytes were in flight: the writer did not keep the window busy", maxCost)
	}
	d := decodeStream(t, p.topic())
	if string(d.bytes()) != string(data) || d.eof.MD5Checksum != md5hex(data) {
		t.Errorf("the stream's bytes or checksum differ from what was written")
	}
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
}

func TestStreamWriterAsyncFailureEndsTheStreamWithWhatWasAcknowledged(t *testing.T) {
	cases := []struct {
		name     string
		end      func(w *StreamWriter, ctx context.Context) error
		wantErr  bool   // from the ending call
		errorMsg string // of the FAILED heartbeat
	}{
		{"Abort after the failure", func(w *StreamWriter, ctx context.Context) error {
			return w.Abort(ctx, errors.New("write failed"))
		}, false, "write failed"},
		{"Close after the failure reports it", func(w *StreamWriter, ctx context.Context) error {
			return w.Close(ctx, false)
		}, true, "broker gone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &asyncFake{fakeBus: newFakeBus()}
			p.setAuto()
			w := newTestWriter(t, p, StreamOptions{ChunkSize: 100, HeartbeatEvery: 4})
			if err := w.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			p.mu.Lock()
			p.auto = false
			p.mu.Unlock()
			data := randomBytes(1000, 13)
			if _, err := w.Write(data); err != nil { // 10 raw_stream records and heartbeats
				t.Fatal(err)
			}
			// The first 5 records land (4 raw_stream, 1 heartbeat); the
			// rest fail, as kgo fails everything behind a failed batch.
			p.ack(5)
			broker := errors.New("broker gone")
			p.failAll(broker)
			if n, err := w.Write(data[:10]); !errors.Is(err, broker) || n != 0 {
				t.Fatalf("Write after the failure = %d, %v; want 0 and the failure", n, err)
			}
			if err := w.Flush(t.Context()); !errors.Is(err, broker) {
				t.Fatalf("Flush after the failure = %v", err)
			}
			p.setAuto() // the broker is back for the last records
			err := tc.end(w, t.Context())
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, broker)) {
				t.Fatalf("ending the stream = %v, want error %v", err, tc.wantErr)
			}
			d := decodeStream(t, p.topic())
			if len(d.raw) != 4 || string(d.bytes()) != string(data[:400]) {
				t.Fatalf("topic holds %d raw_stream records, want the 4 acknowledged", len(d.raw))
			}
			if !d.eof.ForcedEOF || d.eof.ContentLength != 400 || d.eof.MD5Checksum != md5hex(data[:400]) {
				t.Errorf("stream_eof = %+v, want forced, 400 bytes, md5 %s", d.eof, md5hex(data[:400]))
			}
			checkHeartbeats(t, d, 4, protocol.HeartbeatFailed)
			last := d.heartbeats[len(d.heartbeats)-1]
			if !strings.Contains(last.ErrorMsg, tc.errorMsg) || last.BytesRead != 1000 || last.BytesWritten != 400 {
				t.Errorf("FAILED heartbeat = %+v, want errorMsg with %q, 1000 bytes read, 400 written", last, tc.errorMsg)
			}
			if st := w.Stats(); st.Bytes != 400 || st.RawMessages != 4 || !st.Closed || !st.ForcedEOF {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestStreamWriterGivesUpWhenNothingIsAcknowledgedForProduceTimeout(t *testing.T) {
	p := &asyncFake{fakeBus: newFakeBus()}
	p.setAuto()
	w := newTestWriter(t, p, StreamOptions{ChunkSize: 1000, MaxInFlightBytes: 10_000, ProduceTimeout: 200 * time.Millisecond})
	if err := w.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.auto = false
	p.mu.Unlock()
	data := randomBytes(50_000, 14)
	_, err := w.Write(data) // the broker is stuck: the window fills and stays full
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Fatalf("Write to a stuck broker = %v, want a timeout", err)
	}
	// The broker comes back: what was in flight lands, and stream_eof
	// counts it, since nothing failed.
	held := p.heldCount()
	p.setAuto()
	if err := w.Abort(t.Context(), err); err != nil {
		t.Fatal(err)
	}
	d := decodeStream(t, p.topic())
	raws := 0
	for _, r := range p.topic()[2 : held+2] {
		if string(r.Key) == "raw_stream" {
			raws++
		}
	}
	if len(d.raw) != raws || d.eof.ContentLength != int64(raws*1000) || d.eof.MD5Checksum != md5hex(data[:raws*1000]) || !d.eof.ForcedEOF {
		t.Errorf("stream_eof = %+v after %d raw_stream records landed late, want them counted", d.eof, raws)
	}
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatFailed)
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPullOfAFileKeepsTheFileWindowInFlight checks that Pull of a file
// keeps more than DefaultMaxInFlightBytes on their way (its window is
// DefaultFileMaxInFlightBytes): the bus acknowledges what it holds only
// once that is more than DefaultMaxInFlightBytes, or when nothing new came
// for a second (stream_init, the end of the stream, or a writer stuck at a
// smaller window).
func TestPullOfAFileKeepsTheFileWindowInFlight(t *testing.T) {
	clip := readFile(t, testMedia(t, "av.ts"))
	data := []byte(strings.Repeat(string(clip), (DefaultMaxInFlightBytes*3/2)/len(clip)+1))
	path := t.TempDir() + "/long.ts"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &asyncFake{fakeBus: newFakeBus()}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		last, since := -1, time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			p.mu.Lock()
			n, cost := len(p.held), p.heldCost
			p.mu.Unlock()
			if n != last {
				last, since = n, time.Now()
			}
			if cost > DefaultMaxInFlightBytes || (n > 0 && time.Since(since) > time.Second) {
				p.ack(-1)
				last = -1
			}
		}
	}()
	res, err := Pull(testCtx(t), PullOptions{Source: path, Topic: "stream_window", Logger: quietLogger()}, p)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if res.Stats.Bytes != int64(len(data)) || res.Stats.MD5 != md5hex(data) {
		t.Errorf("Pull sent %d bytes, md5 %s; want %d, %s", res.Stats.Bytes, res.Stats.MD5, len(data), md5hex(data))
	}
	p.mu.Lock()
	maxCost := p.maxCost
	p.mu.Unlock()
	if maxCost <= DefaultMaxInFlightBytes || maxCost > DefaultFileMaxInFlightBytes {
		t.Errorf("at most %d bytes were in flight, want more than DefaultMaxInFlightBytes %d and at most DefaultFileMaxInFlightBytes %d",
			maxCost, DefaultMaxInFlightBytes, DefaultFileMaxInFlightBytes)
	}
}
