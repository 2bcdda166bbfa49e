package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-media/weir/protocol"
)

// Limits of the dead-letter path.
const (
	// DefaultMaxRecordBytes is ConsumeOptions.MaxRecordBytes's default.
	DefaultMaxRecordBytes = 1 << 20
	// maxDeadLetterValue caps the value copied into a dead letter: a
	// record dead-lettered for its size must fit on the dead-letter topic.
	maxDeadLetterValue = 64 << 10
	// maxDeadLetterReason caps the error text kept with a dead letter and
	// logged.
	maxDeadLetterReason = 1 << 10
)

// permanentError marks a handler error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that no retry can mend: a malformed
// record, a field out of range, an id that does not exist. A group consumer
// whose handler returns it dead-letters the record (see
// ConsumeOptions.MaxRecordBytes) and goes on with the next one, instead of
// stopping on it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// recordSize is what a record weighs against MaxRecordBytes.
func recordSize(kr *kgo.Record) int {
	n := len(kr.Key) + len(kr.Value)
	for _, h := range kr.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// deadLetter writes kr to its dead-letter topic (protocol.DeadLetterTopic)
// with the reason, counts and logs it, so the partition can move on. The
// value is kept as is up to 64 KiB (cut beyond, with the original size in
// a header), so a dead letter can be inspected and replayed.
func (k *consumer) deadLetter(ctx context.Context, kr *kgo.Record, reason error) error {
	msg := truncateText(reason.Error(), maxDeadLetterReason)
	rec := &Record{
		Topic: protocol.DeadLetterTopic(kr.Topic),
		Key:   kr.Key,
		Value: kr.Value,
	}
	for _, h := range kr.Headers {
		rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
	}
	if len(rec.Value) > maxDeadLetterValue {
		rec.Value = rec.Value[:maxDeadLetterValue]
		rec.Headers = append(rec.Headers, Header{Key: protocol.HeaderDeadLetterSize, Value: strconv.AppendInt(nil, int64(len(kr.Value)), 10)})
	}
	rec.Headers = append(rec.Headers,
		Header{Key: protocol.HeaderDeadLetterTopic, Value: []byte(kr.Topic)},
		Header{Key: protocol.HeaderDeadLetterPartition, Value: strconv.AppendInt(nil, int64(kr.Partition), 10)},
		Header{Key: protocol.HeaderDeadLetterOffset, Value: strconv.AppendInt(nil, kr.Offset, 10)},
		Header{Key: protocol.HeaderDeadLetterGroup, Value: []byte(k.opts.Group)},
		Header{Key: protocol.HeaderDeadLetterReason, Value: []byte(msg)},
	)
	if err := k.c.Produce(ctx, rec); err != nil {
		return fmt.Errorf("dead-letter record at offset %d of %s to %s: %w", kr.Offset, kr.Topic, rec.Topic, err)
	}
	k.metrics.deadLetter(kr.Topic)
	k.log.Warn("record dead-lettered", "topic", kr.Topic, "partition", kr.Partition, "offset", kr.Offset,
		"dead_letter_topic", rec.Topic, "reason", msg)
	return nil
}

// truncateText cuts s to at most n bytes, marking the cut.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes more)", len(s)-n)
}
