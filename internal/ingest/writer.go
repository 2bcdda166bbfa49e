package ingest

import (
	"context"
	"crypto/md5"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// Producer is where a StreamWriter sends its records. Produce must return
// only once every record is acknowledged (or failed), and records of one
// Produce call, and of successive calls, must land in the order given.
// *bus.Client satisfies it.
type Producer interface {
	Produce(ctx context.Context, recs ...*bus.Record) error
}

// topicCreator is the optional side of a Producer that can create topics;
// *bus.Client has it. Init uses it to make sure the stream topic has a
// single partition.
type topicCreator interface {
	CreateTopic(ctx context.Context, topic string, partitions int32) error
}

// DefaultEngineID is the engineId of heartbeats when StreamOptions.EngineID
// is empty.
const DefaultEngineID = "weir-ingest"

// DefaultProduceTimeout bounds each Produce call of a StreamWriter when
// StreamOptions.ProduceTimeout is zero.
const DefaultProduceTimeout = 30 * time.Second

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

	// ProduceTimeout bounds each Produce call (default
	// DefaultProduceTimeout), so an unreachable broker fails the stream
	// instead of hanging it.
	ProduceTimeout time.Duration

	// Clock returns the current time, for timestampUTC, upTime and the
	// heartbeat cadence; default time.Now. Tests pass a fake one.
	Clock func() time.Time
}

// Stats is what a StreamWriter has written so far.
type Stats struct {
	Topic            string
	EngineInstanceID string
	// BytesRead counts the bytes given to Write; Bytes the bytes sent in
	// raw_stream records (the two differ by the partial chunk not yet
	// sent, and are equal after Close).
	BytesRead, Bytes int64
	// RawMessages counts raw_stream records; Messages every stream
	// message (stream_init, raw_stream, stream_eof); Heartbeats the
	// engine_heartbeat records.
	RawMessages, Messages, Heartbeats int64
	// MD5 is the hex MD5 of the Bytes sent.
	MD5 string
	// Closed is set once stream_eof was written; ForcedEOF is its flag.
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
// after Close, FAILED with errorMsg after Abort.
//
// Records of the stream are produced in order by one Producer, so on a
// single-partition topic they are read back in order. Init creates the
// topic with one partition when the Producer can create topics (a
// *bus.Client can); an existing topic is left as it is, and a stream on a
// topic with several partitions may be read out of order, because its keys
// differ.
//
// A StreamWriter is safe for concurrent use, though the stream's bytes make
// sense only when one goroutine writes them.
type StreamWriter struct {
	p     Producer
	topic string
	opts  StreamOptions

	mu         sync.Mutex
	state      writerState
	ctx        context.Context // from Init, for Write and timer heartbeats
	started    time.Time
	tail       []byte // bytes of the next, incomplete chunk
	sum        hash.Hash
	stats      Stats
	lastBeat   time.Time
	sinceBeat  int
	err        error // the first produce failure; the stream is broken after it
	stopTicker chan struct{}
	tickerDone chan struct{}
}

// NewStreamWriter returns a writer for a stream on topic, sending through p.
// It checks the options and sends nothing; Init starts the stream.
func NewStreamWriter(p Producer, topic string, opts StreamOptions) (*StreamWriter, error) {
	if p == nil {
		return nil, errors.New("stream writer: nil producer")
	}
	if err := bus.ValidateTopic(topic); err != nil {
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
	} else if err := bus.ValidateTopic(opts.HeartbeatTopic); err != nil {
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
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &StreamWriter{
		p:     p,
		topic: topic,
		opts:  opts,
		sum:   md5.New(),
		stats: Stats{Topic: topic, EngineInstanceID: opts.EngineInstanceID},
	}, nil
}

// Topic returns the stream's topic.
func (w *StreamWriter) Topic() string { return w.topic }

// Options returns the writer's options with the defaults filled in (the
// generated EngineInstanceID, for one).
func (w *StreamWriter) Options() StreamOptions { return w.opts }

// Init starts the stream: it makes sure the topic exists with one partition
// (when the Producer can create topics), then produces stream_init and the
// first heartbeat, and starts the heartbeat timer. ctx is kept: Write and
// the timer produce with it (each call bounded by ProduceTimeout), so
// cancelling it fails the stream; pass context.WithoutCancel(ctx) to let a
// stopped source still close the stream cleanly. Init fails if called
// twice or if the options do not make a valid stream_init (a missing
// MimeType, say); then nothing was produced.
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
	if tc, ok := w.p.(topicCreator); ok {
		cctx, cancel := context.WithTimeout(ctx, w.opts.ProduceTimeout)
		err := tc.CreateTopic(cctx, w.topic, 1)
		cancel()
		if err != nil {
			return fmt.Errorf("stream on topic %s: %w", w.topic, err)
		}
	}
	w.ctx, w.started = ctx, now
	snap := w.snapshot()
	batch := []*bus.Record{rec}
	w.stats.Messages++
	batch = w.maybeBeat(batch, now, protocol.HeartbeatRunning, "")
	if err := w.send(ctx, batch, snap); err != nil {
		w.err = nil // nothing was started; Init may be tried again
		return err
	}
	w.state = stateOpen
	w.stopTicker, w.tickerDone = make(chan struct{}), make(chan struct{})
	go w.tick()
	return nil
}

// Write adds p to the stream. Every complete chunk is produced as a
// raw_stream record before Write returns; the remainder, less than
// ChunkSize bytes, waits for more bytes, Flush, Close or Abort. Write never
// keeps p. It returns len(p) and nil, or 0 and the error that broke the
// stream (a produce failure, ErrClosed); after an error the stream should
// be ended with Abort.
func (w *StreamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	total := len(p)
	snap := w.snapshot()
	w.stats.BytesRead += int64(total)
	size := w.opts.ChunkSize
	var batch []*bus.Record
	now := w.opts.Clock()
	for len(p) > 0 {
		n := min(size-len(w.tail), len(p))
		if len(w.tail) == 0 && n == size {
			batch = w.appendRaw(batch, p[:n], now) // a whole chunk straight from p
		} else {
			w.tail = append(w.tail, p[:n]...)
			if len(w.tail) == size {
				batch = w.appendRaw(batch, w.tail, now)
				w.tail = w.tail[:0]
			}
		}
		p = p[n:]
	}
	if err := w.send(w.ctx, batch, snap); err != nil {
		return 0, err
	}
	return total, nil
}

// Flush produces the bytes waiting for a complete chunk as a shorter
// raw_stream record, for sources that want their bytes on the bus now (a
// live source about to wait for more). It does nothing when none wait.
func (w *StreamWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if len(w.tail) == 0 {
		return nil
	}
	snap := w.snapshot()
	batch := w.appendRaw(nil, w.tail, w.opts.Clock())
	w.tail = w.tail[:0]
	return w.send(ctx, batch, snap)
}

// Close ends the stream: it produces the waiting bytes, then stream_eof
// with forcedEOF set to forced (true when the stream was stopped before its
// source ended, on purpose), contentLength and md5Checksum, then the last
// heartbeat, DONE. ctx bounds these last records (the Init context is not
// used, so a cancelled source can still be closed). Close after Close or
// Abort returns ErrClosed; Close before Init fails and produces nothing.
func (w *StreamWriter) Close(ctx context.Context, forced bool) error {
	return w.end(ctx, forced, nil, false)
}

// Abort ends a stream whose source broke: like Close with forcedEOF true,
// but the last heartbeat is FAILED with cause's text as errorMsg. Abort
// before Init produces nothing and returns nil: there is no stream to end.
// Abort after Close or Abort returns ErrClosed. It is worth calling after a
// produce failure too: the broker may be back.
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
	w.mu.Unlock()
	// The ticker may have been waiting for mu; it sees stopTicker closed
	// and returns without producing.
	<-w.tickerDone
	return err
}

// endLocked produces the last records. w.mu is held.
func (w *StreamWriter) endLocked(ctx context.Context, forced bool, cause error) error {
	now := w.opts.Clock()
	snap := w.snapshot()
	var batch []*bus.Record
	if len(w.tail) > 0 {
		batch = w.appendRaw(batch, w.tail, now)
		w.tail = nil
	}
	// The checksum and length cover the tail about to be sent.
	eof := &protocol.StreamEOF{
		Header:        w.header(now),
		ForcedEOF:     forced,
		ContentLength: w.stats.Bytes,
		MD5Checksum:   hex.EncodeToString(w.sum.Sum(nil)),
		KeyPrefix:     w.opts.KeyPrefix,
	}
	rec, err := w.record(w.topic, eof)
	if err != nil {
		return fmt.Errorf("stream on topic %s: %w", w.topic, err)
	}
	batch = append(batch, rec)
	w.stats.Messages++
	w.stats.Closed, w.stats.ForcedEOF = true, forced
	status, msg := protocol.HeartbeatDone, ""
	if cause != nil {
		status, msg = protocol.HeartbeatFailed, cause.Error()
	}
	batch = w.beat(batch, now, status, msg)
	w.err = nil // a last attempt, whatever failed before
	return w.send(ctx, batch, snap)
}

// Stats returns what the writer has written so far.
func (w *StreamWriter) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.MD5 = hex.EncodeToString(w.sum.Sum(nil))
	return s
}

// usable reports why the stream cannot take bytes, if it cannot. w.mu is
// held.
func (w *StreamWriter) usable() error {
	switch {
	case w.state == stateNew:
		return fmt.Errorf("stream on topic %s: Write before Init", w.topic)
	case w.state == stateClosed:
		return ErrClosed
	}
	return w.err
}

// appendRaw adds a raw_stream record holding a copy of data, counts it, and
// adds a heartbeat if one is due. w.mu is held.
func (w *StreamWriter) appendRaw(batch []*bus.Record, data []byte, now time.Time) []*bus.Record {
	batch = append(batch, &bus.Record{
		Topic: w.topic,
		Key:   []byte(w.opts.KeyPrefix + string(protocol.TypeRawStream)),
		Value: append([]byte(nil), data...),
	})
	w.sum.Write(data)
	w.stats.Bytes += int64(len(data))
	w.stats.RawMessages++
	w.stats.Messages++
	return w.maybeBeat(batch, now, protocol.HeartbeatRunning, "")
}

// maybeBeat adds a heartbeat when one is due by count or by time. w.mu is
// held.
func (w *StreamWriter) maybeBeat(batch []*bus.Record, now time.Time, status protocol.HeartbeatStatus, msg string) []*bus.Record {
	w.sinceBeat++
	if !w.beatDue(now) {
		return batch
	}
	return w.beat(batch, now, status, msg)
}

func (w *StreamWriter) beatDue(now time.Time) bool {
	return w.lastBeat.IsZero() || w.sinceBeat >= w.opts.HeartbeatEvery || now.Sub(w.lastBeat) >= w.opts.HeartbeatInterval
}

// beat adds a heartbeat carrying the counters so far. w.mu is held.
func (w *StreamWriter) beat(batch []*bus.Record, now time.Time, status protocol.HeartbeatStatus, msg string) []*bus.Record {
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
	return append(batch, rec)
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

// counters is the part of a writer's state a failed batch rolls back.
type counters struct {
	stats     Stats
	sum       []byte // the MD5 state
	lastBeat  time.Time
	sinceBeat int
}

// snapshot saves the counters before a batch is built. w.mu is held.
func (w *StreamWriter) snapshot() counters {
	sum, err := w.sum.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("ingest: saving MD5 state: %v", err)) // crypto/md5 always can
	}
	return counters{stats: w.stats, sum: sum, lastBeat: w.lastBeat, sinceBeat: w.sinceBeat}
}

// send produces batch, bounded by ProduceTimeout. On failure it restores
// the counters to snap, so that stream_eof describes only what reached the
// topic, drops the bytes waiting for a chunk (sending them later would
// leave a hole before them), and remembers the failure: the stream is
// broken from then on. w.mu is held.
func (w *StreamWriter) send(ctx context.Context, batch []*bus.Record, snap counters) error {
	if len(batch) == 0 {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.ProduceTimeout)
	defer cancel()
	if err := w.p.Produce(ctx, batch...); err != nil {
		w.stats, w.lastBeat, w.sinceBeat = snap.stats, snap.lastBeat, snap.sinceBeat
		if err := w.sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(snap.sum); err != nil {
			panic(fmt.Sprintf("ingest: restoring MD5 state: %v", err))
		}
		w.tail = w.tail[:0]
		w.err = fmt.Errorf("stream on topic %s: %w", w.topic, err)
		return w.err
	}
	return nil
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
		if w.err == nil && now.Sub(w.lastBeat) >= w.opts.HeartbeatInterval {
			snap := w.snapshot()
			_ = w.send(w.ctx, w.beat(nil, now, protocol.HeartbeatRunning, ""), snap)
		}
		w.mu.Unlock()
	}
}
