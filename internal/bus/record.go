package bus

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one Kafka record, as produced or consumed.
//
// When producing, set Topic, Key, Value and optionally Headers and
// Timestamp (zero means "now", stamped by the client); Partition and Offset
// are filled in once the broker acknowledges the record. Records with the
// same non-nil Key always go to the same partition of a topic, with Kafka's
// murmur2 key hashing, the same placement the Java client gives the key.
// A nil Key spreads records over partitions.
//
// When consuming, every field is set from the broker. The byte slices belong
// to the record; a handler may keep them.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time

	// deferral links a consumed record to its consumer (Defer).
	deferral *deferral
	// onDefer, set by SetDefer, does Defer's work for a Bus other than
	// Client.
	onDefer func() (ack func())
}

// SetDefer makes Defer on r call onDefer, which marks r deferred with its
// consumer and returns its acknowledgement. It is for Bus implementations
// other than Client (bustest.Bus) that hand records to Consume handlers;
// Client links its records itself.
func SetDefer(r *Record, onDefer func() (ack func())) { r.onDefer = onDefer }

// Defer, called by a Consume handler on its record, lets the handler return
// at once while the record's work goes on elsewhere (a transcode, a call to
// a slow engine): Consume moves on to the next records and keeps the group
// responsive, but commits nothing of the record's partition from this
// record on until ack is called. Long work must never run inside a handler,
// because a handler that has not returned holds up every rebalance of the
// group.
//
// If the partition moves to another member (a rebalance, this process
// stopping) before ack, ack does nothing and the record is delivered again
// to the new owner: deferred work must be idempotent or claimed with a
// lease (metastore.Hold), and should stop when the Consume context ends.
// ack may be called from any goroutine, more than once. On a record that
// did not come from a group consumer, Defer does nothing and ack is a
// no-op.
func (r *Record) Defer() (ack func()) {
	if r.onDefer != nil {
		return r.onDefer()
	}
	d := r.deferral
	if d == nil {
		return func() {}
	}
	d.called = true
	var once sync.Once
	return func() { once.Do(d.ack) }
}

// Header is a Kafka record header. Keys need not be unique.
type Header struct {
	Key   string
	Value []byte
}

// Header returns the value of the first header named key and whether there
// was one.
func (r *Record) Header(key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

func (r *Record) toKgo() *kgo.Record {
	kr := &kgo.Record{
		Topic:     r.Topic,
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: r.Timestamp,
	}
	if len(r.Headers) > 0 {
		kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return kr
}

// fillFromKgo copies what the broker assigned back into r.
func (r *Record) fillFromKgo(kr *kgo.Record) {
	r.Partition = kr.Partition
	r.Offset = kr.Offset
	r.Timestamp = kr.Timestamp
}

func fromKgo(kr *kgo.Record) *Record {
	r := &Record{
		Topic:     kr.Topic,
		Partition: kr.Partition,
		Offset:    kr.Offset,
		Key:       kr.Key,
		Value:     kr.Value,
		Timestamp: kr.Timestamp,
	}
	if len(kr.Headers) > 0 {
		r.Headers = make([]Header, len(kr.Headers))
		for i, h := range kr.Headers {
			r.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// recordBytes is what the byte counters count: key, value and header
// bytes, before compression, without protocol framing.
func recordBytes(kr *kgo.Record) int {
	n := len(kr.Key) + len(kr.Value)
	for _, h := range kr.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
