package ingest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// DefaultEngineID is the engineId of heartbeats when StreamOptions.EngineID
// is empty.
const DefaultEngineID = "weir-ingest"

// DefaultProduceTimeout is StreamOptions.ProduceTimeout when it is zero.
const DefaultProduceTimeout = 30 * time.Second

// DefaultMaxInFlightBytes is StreamOptions.MaxInFlightBytes when it is
// zero: enough to keep an embedded or nearby broker busy (several of kgo's
// 1 MB batches) without holding much memory.
const DefaultMaxInFlightBytes = 8 << 20

// maxInFlightRecords bounds the records in flight whatever their size,
// well below kgo's default buffer of 50,000 records, so ProduceAsync never
// blocks inside kgo while the writer's lock is held.
const maxInFlightRecords = 8192

// recordOverhead is what a record costs in flight beyond its key and value,
// roughly, so tiny chunks also fill the window.
const recordOverhead = 64

// ErrClosed is returned by a StreamWriter used after Close or Abort.
var ErrClosed = errors.New("stream writer closed")

// StreamOptions describe the stream a StreamWriter writes. Zero values
// take the defaults given.
type StreamOptions struct {
	// TaskID, JobID and TdoID go into the common members of every message.
	TaskID, JobID, TdoID string

	// ChunkSize is the most bytes one raw_stream carries, announced in
	// stream_init; default protocol.DefaultChunkSize (10240), at most
	// protocol.MaxChunkSize.
	ChunkSize int
	// MimeType and FFmpegFormat describe the bytes (see
	// protocol.StreamInit). MimeType is required by Init.
	MimeType, FFmpegFormat string
	// RelativeStartOffsetMS and DurationMS go into stream_init as they
	// are; DurationMS 0 means unknown.
	RelativeStartOffsetMS, DurationMS int64

	// EngineID and EngineInstanceID identify the writer in heartbeats.
	// EngineID defaults to DefaultEngineID; EngineInstanceID, which is also
	// the heartbeats' Kafka key, defaults to EngineID + "_" + a random UUID.
	EngineID, EngineInstanceID string
	// KeyPrefix, empty or ending in "_", is put before the message type in
	// the keys of stream messages ("cam1_raw_stream"), so several streams
	// can share a topic.
	KeyPrefix string

	// HeartbeatTopic is where heartbeats go; default the stream topic, so
	// a consumer of the stream sees the adapter's health in line.
	HeartbeatTopic string
	// HeartbeatInterval and HeartbeatEvery set the heartbeat cadence: one
	// every HeartbeatInterval (default protocol.HeartbeatInterval, 5 s) or
	// every HeartbeatEvery stream messages (default
	// protocol.HeartbeatEveryMessages, 20), whichever comes first.
	HeartbeatInterval time.Duration
	HeartbeatEvery    int

	// ProduceTimeout (default DefaultProduceTimeout) bounds how long the
	// writer waits without any acknowledgement from the bus, so an
	// unreachable broker fails the stream instead of hanging it.
	ProduceTimeout time.Duration
	// MaxInFlightBytes bounds the records (keys and values) handed to the
	// bus and not yet acknowledged; default DefaultMaxInFlightBytes. Write
	// waits while it is reached, so memory stays bounded when the broker is
	// slower than the source.
	MaxInFlightBytes int
	// HashInline computes the stream's MD5 on the goroutine that writes,
	// record by record, instead of on a hasher goroutine of the writer's
	// own. A live source (Session) writes small records tens of
	// milliseconds apart: handing each to another goroutine, and waking
	// it, costs more than hashing the record. A file or pull at full
	// speed wants the hasher: hashing overlaps with producing.
	HashInline bool
	// NoMD5 skips the stream's MD5: stream_eof carries contentLength
	// without md5Checksum (the protocol lets a producer omit it), and
	// Stats.MD5 is empty. The MD5 is most of what a file ingest costs
	// (one core hashes about 700-850 MB/s, and one stream's MD5 cannot
	// be split), so this is for a trusted source whose consumers do not
	// need the end-to-end check; the bus still checks every record batch's
	// CRC.
	NoMD5 bool

	// Clock returns the current time, for timestampUTC, upTime and the
	// heartbeat cadence; default time.Now. Tests pass a fake one.
	Clock func() time.Time
}

// Stats is what a StreamWriter has written so far.
type Stats struct {
	Topic            string
	EngineInstanceID string
	// BytesRead counts the bytes given to Write; Bytes the bytes of the
	// raw_stream records the producer acknowledged (the two differ by the
	// bytes waiting for a chunk to fill or still on their way, and are
	// equal after a Close that met no failure).
	BytesRead, Bytes int64
	// RawMessages counts acknowledged raw_stream records; Messages every
	// acknowledged stream message (stream_init, raw_stream, stream_eof);
	// Heartbeats the acknowledged engine_heartbeat records. After a
	// failure, records acknowledged behind the failed one are not counted
	// (stream_eof and the last heartbeat excepted).
	RawMessages, Messages, Heartbeats int64
	// MD5 is the hex MD5 of the Bytes acknowledged.
	MD5 string
	// Closed is set once stream_eof was acknowledged; ForcedEOF is its
	// flag.
	Closed, ForcedEOF bool
}

type writerState int

const (
	stateNew writerState = iota
	stateOpen
	stateClosed
)

// StreamWriter writes one stream to a topic: a stream_init, the bytes given
// to Write as raw_stream records of at most ChunkSize bytes, and a
// stream_eof with the stream's contentLength and md5Checksum, with
// engine_heartbeat records interleaved.
//
// Heartbeats count from 1. The first follows stream_init; then one comes
// after every HeartbeatEvery stream messages, or, when the source is slow,
// from a background timer once HeartbeatInterval has passed without one.
// Each heartbeat's counters (bytesRead, bytesWritten, messagesWritten,
// where messages are stream messages, not heartbeats) describe exactly the
// records produced before it. The last heartbeat follows stream_eof: DONE
// after Close, FAILED with errorMsg after Abort or a produce failure.
//
// Records of the stream are handed to the bus in order (ProduceAsync), so
// on a single-partition topic they are read back in order. Write hands
// records over and returns without waiting for the broker, keeping up to
// MaxInFlightBytes on their way; this pipelining is what makes ingest
// fast. Counters only advance when the bus acknowledges a record, and
// after a record fails nothing more of the stream is sent: the failure is
// returned by the Write or Flush that learns of it (or by Close), and the
// stream_eof
// that Close or Abort then sends describes exactly the raw_stream records
// that were acknowledged before the failure. Close and Abort wait for
// every record in flight before writing stream_eof.
//
// Init creates the topic with one partition; an existing topic is left as
// it is, and a stream on a topic with several partitions may be read out of
// order, because its keys differ.
//
// A StreamWriter is safe for concurrent use, though the stream's bytes make
// sense only when one goroutine writes them.
type StreamWriter struct {
	b      bus.Bus
	topic  string
	opts   StreamOptions
	rawKey []byte // shared by every raw_stream record; nothing writes to it

	mu         sync.Mutex
	state      writerState
	ctx        context.Context // from Init, for Write and timer heartbeats
	started    time.Time
	tail       []byte     // bytes of the next, incomplete chunk
	hq         *hashQueue // MD5 of the raw_stream records built so far; started by the first of them
	stats      Stats      // counters of the records built so far (not necessarily acknowledged)
	acks       *acks      // what the producer acknowledged
	lastBeat   time.Time
	sinceBeat  int
	err        error // the first produce failure; the stream is broken after it
	stopTicker chan struct{}
	tickerDone chan struct{}
}

// NewStreamWriter returns a writer for a stream on topic, sending through b.
// It checks the options and sends nothing; Init starts the stream.
func NewStreamWriter(b bus.Bus, topic string, opts StreamOptions) (*StreamWriter, error) {
	if b == nil {
		return nil, errors.New("stream writer: nil bus")
	}
	if err := protocol.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("stream writer: %w", err)
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = protocol.DefaultChunkSize
	}
	if opts.ChunkSize < 0 || opts.ChunkSize > protocol.MaxChunkSize {
		return nil, fmt.Errorf("stream writer for topic %s: chunk size %d: must be from 1 to %d", topic, opts.ChunkSize, protocol.MaxChunkSize)
	}
	if opts.KeyPrefix != "" && opts.KeyPrefix[len(opts.KeyPrefix)-1] != '_' {
		return nil, fmt.Errorf("stream writer for topic %s: key prefix %q must end in \"_\"", topic, opts.KeyPrefix)
	}
	if opts.HeartbeatTopic == "" {
		opts.HeartbeatTopic = topic
	} else if err := protocol.ValidateTopic(opts.HeartbeatTopic); err != nil {
		return nil, fmt.Errorf("stream writer for topic %s: heartbeat %w", topic, err)
	}
	if opts.EngineID == "" {
		opts.EngineID = DefaultEngineID
	}
	if opts.EngineInstanceID == "" {
		opts.EngineInstanceID = opts.EngineID + "_" + uuid.NewString()
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = protocol.HeartbeatInterval
	}
	if opts.HeartbeatEvery <= 0 {
		opts.HeartbeatEvery = protocol.HeartbeatEveryMessages
	}
	if opts.ProduceTimeout <= 0 {
		opts.ProduceTimeout = DefaultProduceTimeout
	}
	if opts.MaxInFlightBytes <= 0 {
		opts.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	w := &StreamWriter{
		b:      b,
		topic:  topic,
		opts:   opts,
		rawKey: []byte(opts.KeyPrefix + string(protocol.TypeRawStream)),
		stats:  Stats{Topic: topic, EngineInstanceID: opts.EngineInstanceID},
		acks:   newAcks(opts.NoMD5),
	}
	return w, nil
}

// Topic returns the stream's topic.
func (w *StreamWriter) Topic() string { return w.topic }

// Options returns the writer's options with the defaults filled in (the
// generated EngineInstanceID, for one).
func (w *StreamWriter) Options() StreamOptions { return w.opts }

// Init starts the stream: it makes sure the topic exists with one
// partition, then produces stream_init and the
// first heartbeat, waits for their acknowledgement, and starts the
// heartbeat timer. ctx is kept: Write and the timer produce with it (each
// wait bounded by ProduceTimeout), so cancelling it fails the stream; pass
// context.WithoutCancel(ctx) to let a stopped source still close the stream
// cleanly. Init fails if called twice or if the options do not make a
// valid stream_init (a missing MimeType, say); then nothing was produced.
// After a produce failure Init may be called again.
func (w *StreamWriter) Init(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != stateNew {
		return fmt.Errorf("stream on topic %s: Init called twice", w.topic)
	}
	now := w.opts.Clock()
	init := &protocol.StreamInit{
		Header:                w.header(now),
		RelativeStartOffsetMS: w.opts.RelativeStartOffsetMS,
		DurationMS:            w.opts.DurationMS,
		ChunkSize:             int64(w.opts.ChunkSize),
		MimeType:              w.opts.MimeType,
		FFmpegFormat:          w.opts.FFmpegFormat,
		KeyPrefix:             w.opts.KeyPrefix,
	}
	rec, err := w.record(w.topic, init)
	if err != nil {
		return fmt.Errorf("stream on topic %s: %w", w.topic, err)
	}
	cctx, cancel := context.WithTimeout(ctx, w.opts.ProduceTimeout)
	err = w.b.CreateTopic(cctx, w.topic, 1)
	cancel()
	if err != nil {
		return fmt.Errorf("stream on topic %s: %w", w.topic, err)
	}
	w.ctx, w.started = ctx, now
	batch := []outRecord{{rec: rec, kind: kindStreamMessage}}
	w.stats.Messages++
	batch = w.maybeBeat(batch, now, protocol.HeartbeatRunning, "")
	err = w.send(ctx, batch)
	if err == nil {
		err = w.drain(ctx)
	}
	if err != nil {
		// Nothing was started: start again from scratch if asked. Records
		// still in flight report to the discarded acks.
		w.stats = Stats{Topic: w.topic, EngineInstanceID: w.opts.EngineInstanceID}
		w.acks, w.err = newAcks(w.opts.NoMD5), nil
		w.lastBeat, w.sinceBeat = time.Time{}, 0
		return err
	}
	w.state = stateOpen
	w.stopTicker, w.tickerDone = make(chan struct{}), make(chan struct{})
	go w.tick()
	return nil
}

// Write adds p to the stream. Every complete chunk becomes a raw_stream
// record handed to the bus before Write returns, on its way unless
// MaxInFlightBytes are, when Write waits for room. The remainder, less than
// ChunkSize bytes, waits for more bytes, Flush, Close or Abort. Write never
// keeps p. It returns len(p) and nil, or 0 and the error that broke the
// stream (a produce failure, possibly of an earlier Write's record, or
// ErrClosed); after an error the stream should be ended with Abort.
func (w *StreamWriter) Write(p []byte) (int, error) { return w.write(p, false) }

// writeOwned is Write for bytes the caller gives up: p must not change
// afterwards, and its whole chunks become raw_stream records as they are,
// without the copy Write makes. Pull reads a file into buffers it never
// reuses and hands them over this way.
func (w *StreamWriter) writeOwned(p []byte) (int, error) { return w.write(p, true) }

func (w *StreamWriter) write(p []byte, owned bool) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	total := len(p)
	w.stats.BytesRead += int64(total)
	size := w.opts.ChunkSize
	var batch []outRecord
	now := w.opts.Clock()
	for len(p) > 0 {
		n := min(size-len(w.tail), len(p))
		if len(w.tail) == 0 && n == size {
			chunk := p[:n:n] // a whole chunk straight from p
			if !owned {
				chunk = bytes.Clone(chunk)
			}
			batch = w.appendRaw(batch, chunk, now)
		} else {
			w.tail = append(w.tail, p[:n]...)
			if len(w.tail) == size {
				batch = w.appendRaw(batch, bytes.Clone(w.tail), now)
				w.tail = w.tail[:0]
			}
		}
		p = p[n:]
	}
	if err := w.send(w.ctx, batch); err != nil {
		return 0, err
	}
	return total, nil
}

// writeFlush is Write of p, which the writer keeps (nothing may change it
// afterwards), followed by Flush: p's bytes go out as records cut straight
// from p, without a copy, after those waiting for a complete chunk.
func (w *StreamWriter) writeFlush(ctx context.Context, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.stats.BytesRead += int64(len(p))
	size := w.opts.ChunkSize
	now := w.opts.Clock()
	var batch []outRecord
	if len(w.tail) > 0 {
		n := min(size-len(w.tail), len(p))
		w.tail = append(w.tail, p[:n]...)
		p = p[n:]
		batch = w.appendRaw(batch, bytes.Clone(w.tail), now)
		w.tail = w.tail[:0]
	}
	for len(p) > 0 {
		n := min(size, len(p))
		batch = w.appendRaw(batch, p[:n:n], now)
		p = p[n:]
	}
	return w.send(ctx, batch)
}

// Flush hands the bytes waiting for a complete chunk to the producer now,
// as a shorter raw_stream record, for sources that want their bytes on the
// bus (a live source about to wait for more). It does nothing when none
// wait. Like Write, it does not wait for the acknowledgement: the bus sends
// the record within its linger time (kgo: 10 ms).
func (w *StreamWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if len(w.tail) == 0 {
		return nil
	}
	batch := w.appendRaw(nil, bytes.Clone(w.tail), w.opts.Clock())
	w.tail = w.tail[:0]
	return w.send(ctx, batch)
}

// Close ends the stream: it produces the waiting bytes, waits for every
// record in flight, then produces stream_eof with forcedEOF set to forced
// (true when the stream was stopped before its source ended, on purpose),
// contentLength and md5Checksum, then the last heartbeat, DONE, and waits
// for both. If the stream broke (a record failed, now or earlier), Close
// ends it as Abort does, with forcedEOF true and a FAILED heartbeat, and
// returns the failure. ctx bounds the waiting and these last records (the
// Init context is not used, so a cancelled source can still be closed).
// Close after Close or Abort returns ErrClosed; Close before Init fails and
// produces nothing.
func (w *StreamWriter) Close(ctx context.Context, forced bool) error {
	return w.end(ctx, forced, nil, false)
}

// Abort ends a stream whose source broke: like Close with forcedEOF true,
// but the last heartbeat is FAILED with cause's text as errorMsg. Abort
// before Init produces nothing and returns nil: there is no stream to end.
// Abort after Close or Abort returns ErrClosed. It is worth calling after a
// produce failure too: the broker may be back. Abort returns only an error
// of producing the last records.
func (w *StreamWriter) Abort(ctx context.Context, cause error) error {
	if cause == nil {
		cause = errors.New("aborted")
	}
	return w.end(ctx, true, cause, true)
}

func (w *StreamWriter) end(ctx context.Context, forced bool, cause error, abort bool) error {
	w.mu.Lock()
	switch w.state {
	case stateNew:
		w.mu.Unlock()
		if abort {
			return nil
		}
		return fmt.Errorf("stream on topic %s: Close before Init", w.topic)
	case stateClosed:
		w.mu.Unlock()
		return ErrClosed
	}
	w.state = stateClosed
	close(w.stopTicker)
	err := w.endLocked(ctx, forced, cause)
	if w.hq != nil {
		w.hq.stop() // no raw_stream follows; what is queued still gets hashed
	}
	w.mu.Unlock()
	// The ticker may have been waiting for mu; it sees stopTicker closed
	// and returns without producing.
	<-w.tickerDone
	return err
}

// endLocked produces the last records. w.mu is held.
func (w *StreamWriter) endLocked(ctx context.Context, forced bool, cause error) error {
	if len(w.tail) > 0 && w.failure() == nil {
		w.send(ctx, w.appendRaw(nil, bytes.Clone(w.tail), w.opts.Clock())) // a failure shows up below
	}
	w.tail = nil
	// stream_eof must describe what reached the topic: wait for it all.
	if err := w.drain(ctx); err != nil {
		w.broke(err)
	}
	broken := w.failure()
	closeOfBroken := broken != nil && cause == nil
	if broken != nil {
		forced = true
		if cause == nil {
			cause = broken
		}
	}

	now := w.opts.Clock()
	a := w.acks
	a.mu.Lock()
	acked, md5sum := a.counts, a.md5()
	a.mu.Unlock()
	eof := &protocol.StreamEOF{
		Header:        w.header(now),
		ForcedEOF:     forced,
		ContentLength: acked.bytes,
		MD5Checksum:   md5sum,
		KeyPrefix:     w.opts.KeyPrefix,
	}
	rec, err := w.record(w.topic, eof)
	if err != nil {
		return fmt.Errorf("stream on topic %s: %w", w.topic, err)
	}
	kind := kindEOF
	if forced {
		kind = kindForcedEOF
	}
	batch := []outRecord{{rec: rec, kind: kind}}
	// The last heartbeat describes the records before it: what was
	// acknowledged, and stream_eof.
	w.stats.Bytes, w.stats.RawMessages, w.stats.Messages = acked.bytes, acked.raw, acked.messages+1
	w.stats.Heartbeats = acked.heartbeats // its count follows the last one that landed
	status, msg := protocol.HeartbeatDone, ""
	if cause != nil {
		status, msg = protocol.HeartbeatFailed, cause.Error()
	}
	batch = w.beat(batch, now, status, msg)
	batch[len(batch)-1].kind = kindLastBeat
	if err := w.sendLast(ctx, batch); err != nil {
		return err
	}
	if closeOfBroken {
		return broken // the stream is ended, and the failure reported
	}
	return nil
}

// Stats returns what the writer has written so far.
func (w *StreamWriter) Stats() Stats {
	w.mu.Lock()
	s := Stats{Topic: w.stats.Topic, EngineInstanceID: w.stats.EngineInstanceID, BytesRead: w.stats.BytesRead}
	a := w.acks
	w.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	s.Bytes, s.RawMessages, s.Messages, s.Heartbeats = a.counts.bytes, a.counts.raw, a.counts.messages, a.counts.heartbeats
	s.MD5 = a.md5()
	s.Closed, s.ForcedEOF = a.closed, a.forced
	return s
}

// rawBuilt returns how many raw_stream records were built so far, sent or
// not: Pull uses it to see whether bytes went out since it last looked.
func (w *StreamWriter) rawBuilt() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats.RawMessages
}

// usable reports why the stream cannot take bytes, if it cannot: not
// started, ended, or broken by a failure (seen now, if the producer
// reported it since). w.mu is held.
func (w *StreamWriter) usable() error {
	switch {
	case w.state == stateNew:
		return fmt.Errorf("stream on topic %s: Write before Init", w.topic)
	case w.state == stateClosed:
		return ErrClosed
	}
	return w.failure()
}

// failure returns the failure that broke the stream, if any, taking note
// of one the producer reported since the last look. w.mu is held.
func (w *StreamWriter) failure() error {
	if w.err == nil {
		if err := w.acks.failure(); err != nil {
			w.broke(err)
		}
	}
	return w.err
}

// broke records the failure that broke the stream and drops the bytes
// waiting for a chunk: sending them later would leave a hole before them.
// w.mu is held.
func (w *StreamWriter) broke(err error) {
	if w.err == nil {
		w.err = fmt.Errorf("stream on topic %s: %w", w.topic, err)
	}
	w.tail = w.tail[:0]
}

// recordKind says what a record is to the acknowledgement counters.
type recordKind uint8

const (
	kindStreamMessage recordKind = iota // stream_init
	kindRaw
	kindBeat
	kindEOF       // stream_eof, forcedEOF false
	kindForcedEOF // stream_eof, forcedEOF true
	kindLastBeat
)

// outRecord is a record to produce and what it is.
type outRecord struct {
	rec  *bus.Record
	kind recordKind
	// sum is, for a raw_stream record, its place in the stream's MD5:
	// the state after its bytes is the stream's checksum once it is
	// acknowledged.
	sum *hashSlot
}

// appendRaw adds a raw_stream record holding data, which it keeps (nothing
// may change it afterwards), counts it, and adds a heartbeat if one is due.
// w.mu is held.
func (w *StreamWriter) appendRaw(batch []outRecord, data []byte, now time.Time) []outRecord {
	// The MD5 is computed on the hash queue's goroutine, in record order,
	// while the records are on their way: it is the costliest step of
	// ingest (about 750 MB/s), and neither this goroutine, which builds
	// the records, nor the producer's single callback goroutine should
	// carry it. With HashInline, push hashes on this goroutine.
	var slot *hashSlot
	if !w.opts.NoMD5 {
		if w.hq == nil {
			w.hq = newHashQueue(w.opts.ChunkSize, w.opts.HashInline)
		}
		slot = w.hq.push(data)
	}
	batch = append(batch, outRecord{&bus.Record{
		Topic: w.topic,
		Key:   w.rawKey,
		Value: data,
	}, kindRaw, slot})
	w.stats.Bytes += int64(len(data))
	w.stats.RawMessages++
	w.stats.Messages++
	return w.maybeBeat(batch, now, protocol.HeartbeatRunning, "")
}

// maybeBeat adds a heartbeat when one is due by count or by time. w.mu is
// held.
func (w *StreamWriter) maybeBeat(batch []outRecord, now time.Time, status protocol.HeartbeatStatus, msg string) []outRecord {
	w.sinceBeat++
	if !w.beatDue(now) {
		return batch
	}
	return w.beat(batch, now, status, msg)
}

func (w *StreamWriter) beatDue(now time.Time) bool {
	return w.lastBeat.IsZero() || w.sinceBeat >= w.opts.HeartbeatEvery || now.Sub(w.lastBeat) >= w.opts.HeartbeatInterval
}

// beat adds a heartbeat carrying the counters of the records built before
// it. Records reach the topic in order and none follows a failed one, so if
// the heartbeat lands, so did they. w.mu is held.
func (w *StreamWriter) beat(batch []outRecord, now time.Time, status protocol.HeartbeatStatus, msg string) []outRecord {
	w.stats.Heartbeats++
	hb := &protocol.EngineHeartbeat{
		Header:           w.header(now),
		EngineID:         w.opts.EngineID,
		EngineInstanceID: w.opts.EngineInstanceID,
		Count:            w.stats.Heartbeats,
		Status:           status,
		UpTime:           max(now.Sub(w.started).Milliseconds(), 0),
		BytesRead:        w.stats.BytesRead,
		BytesWritten:     w.stats.Bytes,
		MessagesWritten:  w.stats.Messages,
		ErrorMsg:         msg,
	}
	rec, err := w.record(w.opts.HeartbeatTopic, hb)
	if err != nil {
		// Every field is ours and valid; an error here is a bug.
		panic(fmt.Sprintf("ingest: encoding heartbeat: %v", err))
	}
	w.lastBeat, w.sinceBeat = now, 0
	return append(batch, outRecord{rec: rec, kind: kindBeat})
}

func (w *StreamWriter) header(now time.Time) protocol.Header {
	return protocol.Header{
		TimestampUTC: max(now.UnixMilli(), 1),
		TaskID:       w.opts.TaskID,
		TDOID:        w.opts.TdoID,
		JobID:        w.opts.JobID,
	}
}

func (w *StreamWriter) record(topic string, msg protocol.Message) (*bus.Record, error) {
	key, value, err := protocol.Encode(msg)
	if err != nil {
		return nil, err
	}
	return &bus.Record{Topic: topic, Key: key, Value: value}, nil
}

// send hands batch to the bus record by record, waiting for room in the
// window when it is full. It stops at the first failure it learns of, by
// the time the batch is handed over, and the stream is broken from then
// on. w.mu is held.
func (w *StreamWriter) send(ctx context.Context, batch []outRecord) error {
	if len(batch) == 0 {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	a := w.acks
	limit := w.opts.MaxInFlightBytes
	for _, out := range batch {
		cost := recordCost(out.rec)
		a.mu.Lock()
		if a.failed == nil && a.inflight > 0 && (a.inflightBytes+cost > limit || a.inflight >= maxInFlightRecords) {
			// The window is full: wait until half of it is acknowledged,
			// so the writer and the acknowledgements do not take turns
			// record by record.
			a.mu.Unlock()
			err := w.waitAcks(ctx, func(a *acks) bool {
				return a.failed != nil || (a.inflightBytes <= limit/2 && a.inflight <= maxInFlightRecords/2)
			})
			if err != nil {
				w.broke(err)
				return w.err
			}
			a.mu.Lock()
		}
		if a.failed != nil {
			err := a.failed
			a.mu.Unlock()
			w.broke(err)
			return w.err
		}
		a.handOver(cost)
		a.mu.Unlock()
		w.b.ProduceAsync(out.rec, a.callback(out, cost))
	}
	if err := a.failure(); err != nil {
		w.broke(err)
		return w.err
	}
	return nil
}

// sendLast produces stream_eof and the last heartbeat and waits for them,
// whatever failed before: the broker may be back. w.mu is held.
func (w *StreamWriter) sendLast(ctx context.Context, batch []outRecord) error {
	a := w.acks
	for _, out := range batch {
		cost := recordCost(out.rec)
		a.mu.Lock()
		a.handOver(cost)
		a.mu.Unlock()
		w.b.ProduceAsync(out.rec, a.callback(out, cost))
	}
	if err := w.drain(ctx); err != nil {
		return fmt.Errorf("stream on topic %s: %w", w.topic, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr != nil {
		return fmt.Errorf("stream on topic %s: %w", w.topic, a.lastErr)
	}
	return nil
}

// drain waits until every record handed to the producer is acknowledged or
// failed; it returns only an error of waiting. w.mu is held.
func (w *StreamWriter) drain(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Send what the bus holds back for its linger time (kgo: 10 ms), which
	// would otherwise add to every wait. A Flush of a shared client waits
	// for every stream's records, which under load may never all be in at
	// once, so it runs only while this stream's records are awaited. Its
	// outcome shows in the acknowledgements.
	fctx, stopFlush := context.WithCancel(ctx)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		w.b.Flush(fctx)
	}()
	err := w.waitAcks(ctx, func(a *acks) bool { return a.inflight == 0 })
	stopFlush()
	<-flushed
	return err
}

// waitAcks waits until ready, called with the acks' mutex held, says so,
// or until ctx ends or ProduceTimeout passes without any acknowledgement,
// which it returns as an error. w.mu is held.
func (w *StreamWriter) waitAcks(ctx context.Context, ready func(*acks) bool) error {
	a := w.acks
	timeout := w.opts.ProduceTimeout
	var timer *time.Timer
	for {
		a.mu.Lock()
		if ready(a) {
			a.waiting = nil
			a.mu.Unlock()
			return nil
		}
		a.waiting = ready
		last := a.lastAck
		a.mu.Unlock()
		wait := timeout - time.Since(last)
		if wait <= 0 {
			a.mu.Lock()
			a.waiting = nil
			a.mu.Unlock()
			return fmt.Errorf("no acknowledgement from the broker for %s: %w", timeout, context.DeadlineExceeded)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-a.wake:
		case <-timer.C:
		case <-ctx.Done():
			a.mu.Lock()
			a.waiting = nil
			a.mu.Unlock()
			return ctx.Err()
		}
	}
}

func recordCost(r *bus.Record) int { return len(r.Key) + len(r.Value) + recordOverhead }

// ackCounts are the acknowledged records of a stream.
type ackCounts struct {
	bytes, raw, messages, heartbeats int64
}

// acks is what the producer has acknowledged of a stream. It has its own
// mutex, not the writer's, because acknowledgements arrive on producer
// goroutines while a Write holding the writer's mutex waits for them.
type acks struct {
	mu            sync.Mutex
	inflight      int // records handed over and not yet acknowledged or failed
	inflightBytes int // their recordCost
	counts        ackCounts
	sum           *hashSlot // the last acknowledged raw_stream record; nil before any
	noMD5         bool      // StreamOptions.NoMD5: md5 returns ""
	failed        error     // the first record that failed: later ones are not counted
	lastErr       error     // the first failure of stream_eof or the last heartbeat
	closed        bool      // stream_eof acknowledged
	forced        bool      // its forcedEOF
	lastAck       time.Time // when a record was last acknowledged or failed, or handed over with none in flight
	waiting       func(*acks) bool
	wake          chan struct{} // signalled when waiting says it is ready, or on a failure
}

func newAcks(noMD5 bool) *acks {
	return &acks{lastAck: time.Now(), wake: make(chan struct{}, 1), noMD5: noMD5}
}

// md5 returns the hex MD5 of the acknowledged raw_stream bytes, waiting
// for the hasher to reach the last of them, or "" with NoMD5. a.mu is held.
func (a *acks) md5() string {
	if a.noMD5 {
		return ""
	}
	h := md5.New()
	if a.sum != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(a.sum.q.state(a.sum)); err != nil {
			panic(fmt.Sprintf("ingest: restoring MD5 state: %v", err))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// handOver counts a record of cost handed to the producer. The wait for
// its acknowledgement starts now if nothing else was in flight. a.mu is
// held.
func (a *acks) handOver(cost int) {
	if a.inflight == 0 {
		a.lastAck = time.Now()
	}
	a.inflight++
	a.inflightBytes += cost
}

// failure returns the first failure of a stream record, if any.
func (a *acks) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

// callback returns the done function for out.
func (a *acks) callback(out outRecord, cost int) func(*bus.Record, error) {
	kind, sum := out.kind, out.sum
	return func(rec *bus.Record, err error) { a.done(kind, sum, cost, rec, err) }
}

// done accounts for one record acknowledged (err nil) or failed; sum is a
// raw_stream record's MD5 state.
func (a *acks) done(kind recordKind, sum *hashSlot, cost int, rec *bus.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	a.inflightBytes -= cost
	a.lastAck = time.Now()
	last := kind == kindEOF || kind == kindForcedEOF || kind == kindLastBeat
	switch {
	case err != nil && last:
		if a.lastErr == nil {
			a.lastErr = err
		}
	case err != nil:
		if a.failed == nil {
			a.failed = err
		}
	case a.failed != nil && !last:
		// Behind a failed record: not part of the stream's prefix.
	default:
		switch kind {
		case kindRaw:
			a.sum = sum
			a.counts.bytes += int64(len(rec.Value))
			a.counts.raw++
			a.counts.messages++
		case kindStreamMessage:
			a.counts.messages++
		case kindEOF, kindForcedEOF:
			a.counts.messages++
			a.closed, a.forced = true, kind == kindForcedEOF
		case kindBeat, kindLastBeat:
			a.counts.heartbeats++
		}
	}
	if a.waiting != nil && a.waiting(a) {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// tick sends time-based heartbeats while the stream is open, so a source
// that goes quiet still shows its writer alive.
func (w *StreamWriter) tick() {
	defer close(w.tickerDone)
	period := min(max(w.opts.HeartbeatInterval/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-w.stopTicker:
			return
		case <-t.C:
		}
		w.mu.Lock()
		select {
		case <-w.stopTicker:
			w.mu.Unlock()
			return
		default:
		}
		now := w.opts.Clock()
		if w.usable() == nil && now.Sub(w.lastBeat) >= w.opts.HeartbeatInterval {
			_ = w.send(w.ctx, w.beat(nil, now, protocol.HeartbeatRunning, ""))
		}
		w.mu.Unlock()
	}
}
