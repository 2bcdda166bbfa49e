package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// StreamState is where a StreamReader is in a stream topic.
type StreamState int

const (
	// StreamIdle: no stream_init seen yet.
	StreamIdle StreamState = iota
	// StreamOpen: a stream_init was seen and its stream_eof was not.
	StreamOpen
	// StreamEnded: the last stream got its stream_eof.
	StreamEnded
)

func (s StreamState) String() string {
	switch s {
	case StreamIdle:
		return "idle"
	case StreamOpen:
		return "open"
	case StreamEnded:
		return "ended"
	}
	return fmt.Sprintf("StreamState(%d)", int(s))
}

// StreamReader checks the records of one stream topic, in topic order,
// against the stream rules:
//
//   - stream_init comes first; anything else first is an error.
//   - raw_stream comes only between stream_init and stream_eof, each at most
//     the stream's chunkSize bytes.
//   - after stream_eof only a new stream_init may come, which starts the
//     next stream.
//   - stream_eof's contentLength and md5Checksum, when present, match the
//     raw bytes received since stream_init.
//   - engine_heartbeat may come anywhere; other types do not belong.
//
// A violation is reported as an error wrapping ErrOutOfOrder or
// ErrIntegrity, and the reader moves on so the consumer can keep going:
// bytes of a raw_stream out of order are not counted (the consumer should
// drop them too), an oversized raw_stream is counted (its bytes are part of
// the stream), a stream_init while a stream is open abandons that stream
// and starts the new one, and a stream_eof always ends the open stream,
// even when its checks fail.
//
// The zero value is ready to use. A StreamReader is not safe for concurrent
// use.
type StreamReader struct {
	state    StreamState
	init     *StreamInit
	received int64
	records  int64
	sum      hash.Hash
}

// Next decodes a record with Decode and checks it with Check. The message is
// nil only when the record could not be decoded; the reader's state is then
// unchanged. A message that fails validation is still checked, so a
// stream_init with a bad field still opens a stream, but the validation
// error is the one returned.
func (r *StreamReader) Next(key, value []byte) (Message, error) {
	msg, err := Decode(key, value)
	if msg == nil {
		return nil, err
	}
	if cerr := r.Check(msg); err == nil {
		err = cerr
	}
	return msg, err
}

// Check applies msg, already decoded, to the stream rules and advances the
// reader.
func (r *StreamReader) Check(msg Message) error {
	if msg == nil {
		return errors.New("stream: nil message")
	}
	switch m := msg.(type) {
	case *StreamInit:
		var err error
		if r.state == StreamOpen {
			err = fmt.Errorf("stream_init: %w: the previous stream never got its stream_eof (%d raw_stream records, %d bytes); starting a new stream",
				ErrOutOfOrder, r.records, r.received)
		}
		r.state, r.init, r.received, r.records = StreamOpen, m, 0, 0
		r.sum = md5.New()
		return err

	case *RawStream:
		switch r.state {
		case StreamIdle:
			return fmt.Errorf("raw_stream: %w: no stream_init yet (a stream topic must start with stream_init)", ErrOutOfOrder)
		case StreamEnded:
			return fmt.Errorf("raw_stream: %w: after stream_eof (only a new stream_init may follow it)", ErrOutOfOrder)
		}
		r.records++
		r.received += int64(len(m.Data))
		r.sum.Write(m.Data)
		if size := r.init.ChunkSize; size > 0 && int64(len(m.Data)) > size {
			return fmt.Errorf("raw_stream: %w: %d bytes, more than the stream's chunkSize %d", ErrIntegrity, len(m.Data), size)
		}
		return nil

	case *StreamEOF:
		switch r.state {
		case StreamIdle:
			return fmt.Errorf("stream_eof: %w: no stream_init yet (a stream topic must start with stream_init)", ErrOutOfOrder)
		case StreamEnded:
			return fmt.Errorf("stream_eof: %w: the stream already ended", ErrOutOfOrder)
		}
		r.state = StreamEnded
		if m.ContentLength != 0 && m.ContentLength != r.received {
			return fmt.Errorf("stream_eof: %w: contentLength is %d but %d bytes were received", ErrIntegrity, m.ContentLength, r.received)
		}
		if got := hex.EncodeToString(r.sum.Sum(nil)); m.MD5Checksum != "" && !strings.EqualFold(m.MD5Checksum, got) {
			return fmt.Errorf("stream_eof: %w: md5Checksum is %s but the received bytes hash to %s", ErrIntegrity, m.MD5Checksum, got)
		}
		return nil

	case *EngineHeartbeat:
		return nil
	}
	return fmt.Errorf("%s: %w: does not belong on a stream topic", msg.MessageType(), ErrOutOfOrder)
}

// State reports where the reader is.
func (r *StreamReader) State() StreamState { return r.state }

// Init returns the stream_init of the open or last ended stream, nil before
// the first.
func (r *StreamReader) Init() *StreamInit { return r.init }

// Received returns the raw bytes counted for the open or last ended stream.
func (r *StreamReader) Received() int64 { return r.received }
