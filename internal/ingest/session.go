package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// SessionOptions configure OpenSession.
type SessionOptions struct {
	// StreamID is the live stream; the session writes to
	// protocol.StreamTopic(StreamID).
	StreamID string
	// EngineID names the source in heartbeats ("weir-rtmp", "weir-srt",
	// "weir-pull").
	EngineID string
	// ChunkSize is the most bytes per raw_stream record (default
	// protocol.DefaultChunkSize).
	ChunkSize int
	// QueueLength bounds the writes waiting for the bus (default 512);
	// Write blocks while it is full, slowing the publisher down instead of
	// dropping media.
	QueueLength int
	// Hold, when positive, lets a write wait up to this long after its
	// bytes were received for more bytes to share its record, instead of
	// being flushed as soon as the queue runs dry: a live source's audio
	// and video frames, a few milliseconds apart, then travel as one
	// raw_stream record instead of one each, which costs the bus, the
	// stream hash and the packager far less per byte. Bytes wait at most
	// Hold (capped at MaxHold) before they are on their way; bytes from
	// WriteNow do not wait, and start a record of their own. Zero
	// flushes at once.
	Hold time.Duration
	// Lease, when set, is the metadata-store lease the writer holds on the
	// stream (a publisher's "publish/{id}", a pull's "pull/{id}"): every
	// record the session writes carries its token in
	// protocol.HeaderPublishToken, and once the lease is lost (its
	// context ends with metastore.ErrLeaseLost) the session writes
	// nothing more: Write fails with an error wrapping
	// metastore.ErrLeaseLost and Close writes no stream_eof, since the
	// stream now belongs to the lease's new holder. A lease released or
	// cancelled on purpose does not stop the session.
	Lease *metastore.HeldLease
	// Logger receives produce failures; nil means slog.Default().
	Logger *slog.Logger
}

// Session is one publisher connection's stream on the bus: a stream_init
// when it opens, MPEG-TS bytes as raw_stream records while it lasts, and a
// stream_eof when it ends, with heartbeats (through StreamWriter).
//
// Write queues bytes and returns; a goroutine writes them to the bus,
// merging what queued up while the previous write was in flight (as long
// as it was received within mergeSpan of the first), and sends the partial
// chunk at once whenever the queue runs dry, so a live source's bytes never
// wait for a chunk to fill. Every raw_stream record carries
// protocol.HeaderReceivedAt: the receive time of its earliest bytes; with
// SessionOptions.Lease, every record carries the lease's fencing token.
//
// A Session is used by one goroutine (the connection's).
type Session struct {
	w     *StreamWriter
	stamp *stampingBus
	log   *slog.Logger
	done  chan struct{}
	ctx   context.Context
	hold  time.Duration
	span  time.Duration // the widest spread of receive times in one record
	err   atomic.Pointer[error]
	bytes atomic.Int64

	// The queue: Write appends under mu and wakes the writing goroutine
	// only when it may be waiting for that write (the queue was empty, or
	// the write is a WriteNow); bytes that arrive during a hold just join
	// the queue, so a publisher's frames cost no goroutine wake-up each.
	mu      sync.Mutex
	room    *sync.Cond // the queue has room, or the session ended
	pending []queued
	buf     []byte // the pending writes' bytes, in order; handed out, never reused
	lastLen int    // the size of the last batch, to size buf
	max     int    // SessionOptions.QueueLength
	closed  bool
	failed  bool          // the bus failed: the queue takes nothing more
	wake    chan struct{} // capacity 1
}

// queued is one write waiting in the queue: its bytes are buf[end-n:end]
// of the Session's buffer, where end is the sum of the sizes up to it.
type queued struct {
	n   int
	at  time.Time
	now bool // WriteNow: do not wait out the hold
}

// OpenSession starts a stream on protocol.StreamTopic(opts.StreamID): it
// produces stream_init (MPEG-TS) and the first heartbeat before returning.
// ctx bounds the session's produce calls; cancel it only to abandon the
// stream.
func OpenSession(ctx context.Context, b bus.Bus, opts SessionOptions) (*Session, error) {
	if opts.QueueLength <= 0 {
		opts.QueueLength = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	stamp := &stampingBus{Bus: b, lease: opts.Lease}
	if opts.Lease != nil {
		stamp.token = protocol.FormatPublishToken(opts.Lease.Token())
	}
	w, err := NewStreamWriter(stamp, protocol.StreamTopic(opts.StreamID), StreamOptions{
		TaskID:       opts.StreamID,
		TdoID:        opts.StreamID,
		ChunkSize:    opts.ChunkSize,
		MimeType:     mpegts.MimeType,
		FFmpegFormat: mpegts.FFmpegFormat,
		EngineID:     opts.EngineID,
		// A live source's records are small and far apart: hashing
		// each on the session's goroutine costs less than waking a
		// hasher for it.
		HashInline: true,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", opts.StreamID, err)
	}
	if err := w.Init(ctx); err != nil {
		return nil, fmt.Errorf("stream %s: %w", opts.StreamID, err)
	}
	s := &Session{
		w:     w,
		stamp: stamp,
		log:   opts.Logger.With("stream", opts.StreamID),
		done:  make(chan struct{}),
		ctx:   ctx,
		hold:  min(max(opts.Hold, 0), MaxHold),
		max:   opts.QueueLength,
		wake:  make(chan struct{}, 1),
	}
	s.span = max(s.hold, mergeSpan)
	s.room = sync.NewCond(&s.mu)
	go s.run()
	return s, nil
}

// Write queues a copy of data, received from the publisher at recvAt. It
// blocks while the queue is full and returns the error that broke the
// stream, if the bus failed. The bytes may wait up to SessionOptions.Hold
// for more to share their record.
func (s *Session) Write(data []byte, recvAt time.Time) error {
	return s.queue(data, recvAt, false)
}

// WriteNow is Write for bytes a viewer waits on, such as the key frame that
// closes a segment: what waits for the hold goes to the bus at once, then
// these bytes, in a record of their own (which carries their receive time,
// not that of bytes held before them), with whatever queued behind them.
func (s *Session) WriteNow(data []byte, recvAt time.Time) error {
	return s.queue(data, recvAt, true)
}

func (s *Session) queue(data []byte, recvAt time.Time, now bool) error {
	if err := s.Err(); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	s.mu.Lock()
	for len(s.pending) >= s.max && !s.closed && !s.failed {
		s.room.Wait()
	}
	if s.failed {
		s.mu.Unlock()
		return s.Err()
	}
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	wake := len(s.pending) == 0 || now
	if s.buf == nil {
		s.buf = make([]byte, 0, max(s.lastLen+s.lastLen/4, len(data), 4<<10))
	}
	s.buf = append(s.buf, data...)
	s.pending = append(s.pending, queued{n: len(data), at: recvAt, now: now})
	s.mu.Unlock()
	if wake {
		s.signal()
	}
	return nil
}

// signal wakes the writing goroutine if it waits.
func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Bytes returns how many bytes were written to the bus so far.
func (s *Session) Bytes() int64 { return s.bytes.Load() }

// Err returns the error that broke the stream, if any.
func (s *Session) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close writes what is queued, then ends the stream with stream_eof.
// forced says the stream was stopped on purpose (it ended) rather than the
// publisher going away. A session whose bus writes failed is aborted
// instead. ctx bounds the last records.
func (s *Session) Close(ctx context.Context, forced bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.room.Broadcast()
	s.mu.Unlock()
	s.signal()
	<-s.done
	if err := s.Err(); err != nil {
		return s.w.Abort(ctx, err)
	}
	return s.w.Close(ctx, forced)
}

// mergeSpan bounds how far apart the receive times of writes merged into
// one bus write may be (or the hold, when longer): the merged bytes carry
// the earliest one, so a backlog (a bus that was slow, or an RTMP track
// probe handing over two seconds of media at once) is written in pieces
// that each keep their own receive time, within mergeSpan.
const mergeSpan = 20 * time.Millisecond

// MaxHold caps SessionOptions.Hold: bytes never wait longer for company.
const MaxHold = 250 * time.Millisecond

func (s *Session) run() {
	defer close(s.done)
	for {
		batch, at, ok := s.next()
		if !ok {
			return
		}
		s.stamp.set(at)
		// Flushed at once (the hold is over, or the queue ran dry, or
		// what is left was received too late to share these bytes'
		// record and receive time), from the batch itself.
		if err := s.w.writeFlush(s.ctx, batch); err != nil {
			s.fail(err)
			return
		}
		s.bytes.Add(int64(len(batch)))
	}
}

func (s *Session) fail(err error) {
	if errors.Is(err, metastore.ErrLeaseLost) {
		s.log.Warn("live stream: the source lost its lease; it writes nothing more", "err", err)
	} else {
		s.log.Error("live stream: writing to the bus failed; the publisher will be dropped", "err", err)
	}
	s.err.Store(&err)
	// Let a blocked Write return, and drop what is queued.
	s.mu.Lock()
	s.failed, s.pending, s.buf = true, nil, nil
	s.room.Broadcast()
	s.mu.Unlock()
}

// next waits for the next batch to write: the queued writes received
// within s.span of the first, once the first has waited out the hold
// (s.hold after its receive time), or at once when a WriteNow write is
// queued, a write too late to join is, or the session is closing. A
// WriteNow write behind the first ends the batch unless the batch has one
// already, so it starts a record of its own. It returns the batch, the
// receive time of its first bytes, and false once the session is closed
// and its queue empty.
func (s *Session) next() (batch []byte, at time.Time, ok bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			closed := s.closed || s.failed
			s.mu.Unlock()
			if closed {
				return nil, time.Time{}, false
			}
			<-s.wake
			continue
		}
		first := s.pending[0]
		wait := s.hold - time.Since(first.at)
		if s.hold <= 0 || wait <= 0 || s.closed || s.due() {
			batch, at = s.take()
			s.mu.Unlock()
			return batch, at, true
		}
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// due reports whether the queue holds a write that ends the hold: a
// WriteNow one, or one received too late to share the first's record. s.mu
// is held.
func (s *Session) due() bool {
	at := s.pending[0].at
	for _, q := range s.pending {
		if q.now || q.at.Sub(at) > s.span {
			return true
		}
	}
	return false
}

// take removes the next batch from the queue (see next). s.mu is held. The
// batch is the front of s.buf, handed over for good: the bytes queued
// behind it, if any, move to a new buffer.
func (s *Session) take() (batch []byte, at time.Time) {
	first := s.pending[0]
	at = first.at
	now, n, size := first.now, 1, first.n
	for _, q := range s.pending[1:] {
		if q.at.Sub(at) > s.span || (q.now && !now) {
			break
		}
		now = now || q.now
		size += q.n
		n++
	}
	batch = s.buf[:size:size]
	if rest := s.buf[size:]; len(rest) > 0 {
		s.buf = append(make([]byte, 0, max(cap(s.buf)-size, len(rest))), rest...)
	} else {
		s.buf = nil
	}
	s.lastLen = size
	clear(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.room.Broadcast()
	return batch, at
}

// stampingBus adds protocol.HeaderReceivedAt to the raw_stream records it
// is given while a receive time is set (the stream writer hands records
// over within the Write or Flush that follows set), and the lease's token
// to every record. Once the lease is lost it refuses every record.
type stampingBus struct {
	bus.Bus
	at    atomic.Int64 // microseconds since the epoch; 0: unknown
	lease *metastore.HeldLease
	token []byte // FormatPublishToken of the lease's token
}

func (s *stampingBus) set(at time.Time) {
	if at.IsZero() {
		s.at.Store(0)
		return
	}
	s.at.Store(at.UnixMicro())
}

// fenced returns the loss of the lease, once it is lost.
func (s *stampingBus) fenced() error {
	if s.lease == nil {
		return nil
	}
	if cause := context.Cause(s.lease.Context()); errors.Is(cause, metastore.ErrLeaseLost) {
		return fmt.Errorf("lease %s (token %d): %w", s.lease.Lease().Name, s.lease.Token(), cause)
	}
	return nil
}

func (s *stampingBus) stamp(r *bus.Record) {
	if s.token != nil {
		r.Headers = append(r.Headers, bus.Header{Key: protocol.HeaderPublishToken, Value: s.token})
	}
	at := s.at.Load()
	if at == 0 {
		return
	}
	if _, t, ok := protocol.SplitStreamKey(r.Key); ok && t == protocol.TypeRawStream {
		r.Headers = append(r.Headers, bus.Header{Key: protocol.HeaderReceivedAt, Value: protocol.FormatReceivedAt(time.UnixMicro(at))})
	}
}

// Produce implements bus.Bus, stamping the records, or refusing them once
// the lease is lost.
func (s *stampingBus) Produce(ctx context.Context, recs ...*bus.Record) error {
	if err := s.fenced(); err != nil {
		return err
	}
	for _, r := range recs {
		s.stamp(r)
	}
	return s.Bus.Produce(ctx, recs...)
}

// ProduceAsync implements bus.Bus, stamping the record, or refusing it once
// the lease is lost.
func (s *stampingBus) ProduceAsync(rec *bus.Record, done func(*bus.Record, error)) {
	if err := s.fenced(); err != nil {
		done(rec, err)
		return
	}
	s.stamp(rec)
	s.Bus.ProduceAsync(rec, done)
}
