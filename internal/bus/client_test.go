package bus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestProduceThenReadAllReturnsKeysHeadersAndTimestamps(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)

	ts := time.UnixMilli(1_700_000_000_123)
	recs := []*Record{
		{Topic: "roundtrip", Key: []byte("stream_init"), Value: []byte(`{"type":"stream_init"}`),
			Headers: []Header{{Key: "content-type", Value: []byte("application/json")}, {Key: "empty"}}, Timestamp: ts},
		{Topic: "roundtrip", Key: []byte("raw_stream"), Value: bytes.Repeat([]byte{0, 1, 2, 255}, 2560), Timestamp: ts.Add(time.Millisecond)},
		{Topic: "roundtrip", Key: nil, Value: nil},
	}
	if err := c.Produce(ctx, recs...); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	for i, r := range recs {
		if r.Offset != int64(i) || r.Partition != 0 {
			t.Errorf("record %d: produced at partition %d offset %d, want partition 0 offset %d", i, r.Partition, r.Offset, i)
		}
	}
	if recs[2].Timestamp.IsZero() {
		t.Errorf("record without timestamp was not stamped by the client")
	}

	got, err := c.ReadAll(ctx, "roundtrip", 0)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(got) != len(recs) {
		t.Fatalf("ReadAll returned %d records, want %d", len(got), len(recs))
	}
	for i, want := range recs {
		g := got[i]
		if g.Topic != want.Topic || g.Partition != want.Partition || g.Offset != want.Offset {
			t.Errorf("record %d at %s/%d@%d, want %s/%d@%d", i, g.Topic, g.Partition, g.Offset, want.Topic, want.Partition, want.Offset)
		}
		if !bytes.Equal(g.Key, want.Key) || !bytes.Equal(g.Value, want.Value) {
			t.Errorf("record %d key/value = %q/%d bytes, want %q/%d bytes", i, g.Key, len(g.Value), want.Key, len(want.Value))
		}
		if !g.Timestamp.Equal(want.Timestamp) {
			t.Errorf("record %d timestamp %v, want %v", i, g.Timestamp, want.Timestamp)
		}
		if len(g.Headers) != len(want.Headers) {
			t.Errorf("record %d has %d headers, want %d", i, len(g.Headers), len(want.Headers))
			continue
		}
		for j, h := range want.Headers {
			if g.Headers[j].Key != h.Key || !bytes.Equal(g.Headers[j].Value, h.Value) {
				t.Errorf("record %d header %d = %q:%q, want %q:%q", i, j, g.Headers[j].Key, g.Headers[j].Value, h.Key, h.Value)
			}
		}
	}
	if v, ok := got[0].Header("content-type"); !ok || string(v) != "application/json" {
		t.Errorf("Header(content-type) = %q, %v", v, ok)
	}
	if _, ok := got[1].Header("content-type"); ok {
		t.Errorf("Header found on a record without headers")
	}

	// Reading from an offset skips what came before.
	tail, err := c.ReadAll(ctx, "roundtrip", 2)
	if err != nil {
		t.Fatalf("ReadAll from 2: %v", err)
	}
	if !slices.Equal(offsets(tail), []int64{2}) {
		t.Errorf("ReadAll from offset 2 returned offsets %v, want [2]", offsets(tail))
	}
}

func TestProducerIsIdempotent(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "idem", nil, "a", "b")

	// The producer id is only visible on the wire: read the batch with a
	// raw kgo consumer.
	raw, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("idem"),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := testCtx(t)
	var got []*kgo.Record
	for len(got) < 2 && ctx.Err() == nil {
		got = append(got, raw.PollFetches(ctx).Records()...)
	}
	if len(got) < 2 {
		t.Fatalf("read %d records, want 2", len(got))
	}
	for _, r := range got {
		if r.ProducerID < 0 {
			t.Errorf("record %q has producer id %d: the producer is not idempotent", r.Value, r.ProducerID)
		}
	}
}

func TestCreateTopicSetsPartitionCountAndLeavesExistingTopicsAlone(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)

	if err := c.CreateTopic(ctx, "six", 6); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if err := c.CreateTopic(ctx, "six", 3); err != nil {
		t.Fatalf("CreateTopic on an existing topic: %v", err)
	}
	if err := c.CreateTopic(ctx, "default-count", -1); err != nil {
		t.Fatalf("CreateTopic with -1: %v", err)
	}
	details, err := c.Admin().ListTopics(ctx, "six", "default-count")
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if n := len(details["six"].Partitions); n != 6 {
		t.Errorf("topic six has %d partitions, want 6 (an existing topic must not change)", n)
	}
	if n := len(details["default-count"].Partitions); n != 1 {
		t.Errorf("topic created with -1 has %d partitions, want the broker default 1", n)
	}

	for _, tc := range []struct {
		name, topic string
		partitions  int32
	}{
		{"empty name", "", 1},
		{"illegal character", "a/b", 1},
		{"zero partitions", "zero", 0},
		{"negative partitions", "neg", -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.CreateTopic(ctx, tc.topic, tc.partitions); err == nil {
				t.Errorf("CreateTopic(%q, %d) succeeded, want an error", tc.topic, tc.partitions)
			}
		})
	}
}

func TestProducingToAMissingTopicCreatesItWithTheDefaultPartitions(t *testing.T) {
	b := startTestBroker(t, WithDefaultPartitions(3))
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "born-on-produce", nil, "x")
	details, err := c.Admin().ListTopics(testCtx(t), "born-on-produce")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["born-on-produce"].Partitions); n != 3 {
		t.Errorf("auto-created topic has %d partitions, want 3", n)
	}
}

// kafkaMurmur2 is the Java client's key hash (Utils.murmur2), written out
// independently so the test checks compatibility rather than kgo against
// itself.
func kafkaMurmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	n := len(data) / 4
	for i := 0; i < n; i++ {
		k := binary.LittleEndian.Uint32(data[i*4:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n*4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

func TestRecordsWithTheSameKeyLandOnTheJavaClientsPartition(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)
	const parts = 8
	if err := c.CreateTopic(ctx, "keyed", parts); err != nil {
		t.Fatal(err)
	}
	keys := []string{"stream-a", "stream-b", "3f2c9d8e-0000-4000-8000-000000000001", "x", "a-much-longer-stream-identifier"}
	var recs []*Record
	for round := 0; round < 10; round++ {
		for _, k := range keys {
			recs = append(recs, &Record{Topic: "keyed", Key: []byte(k), Value: []byte(fmt.Sprint(round))})
		}
	}
	if err := c.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	used := map[int32]bool{}
	for _, r := range recs {
		want := (kafkaMurmur2(r.Key) & 0x7fffffff) % parts
		if r.Partition != want {
			t.Errorf("key %q went to partition %d, the Java client's murmur2 puts it on %d", r.Key, r.Partition, want)
		}
		used[r.Partition] = true
	}
	if len(used) < 2 {
		t.Errorf("5 keys over 8 partitions all landed on one partition: keys are not spread")
	}
}

func TestProduceAsyncReportsEveryRecordAndFlushWaitsForThem(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	const n = 200
	var (
		mu      sync.Mutex
		done    int
		offsets = map[int64]bool{}
	)
	for i := 0; i < n; i++ {
		c.ProduceAsync(&Record{Topic: "async", Value: []byte(fmt.Sprint(i))}, func(r *Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			done++
			if err != nil {
				t.Errorf("record %s: %v", r.Value, err)
				return
			}
			offsets[r.Offset] = true
		})
	}
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if done != n || len(offsets) != n {
		t.Errorf("after Flush: %d callbacks with %d distinct offsets, want %d", done, len(offsets), n)
	}
}

func TestClientAfterCloseRefusesWork(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	c.Close()
	c.Close() // idempotent
	if err := c.Produce(context.Background(), &Record{Topic: "t", Value: []byte("v")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Produce after Close = %v, want ErrClosed", err)
	}
	var asyncErr error
	c.ProduceAsync(&Record{Topic: "t"}, func(_ *Record, err error) { asyncErr = err })
	if !errors.Is(asyncErr, ErrClosed) {
		t.Errorf("ProduceAsync after Close reported %v, want ErrClosed", asyncErr)
	}
	err := c.Consume(context.Background(), ConsumeOptions{Topics: []string{"t"}, Handler: func(context.Context, *Record) error { return nil }})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Consume after Close = %v, want ErrClosed", err)
	}
}

func TestNewClientWithoutBrokersFails(t *testing.T) {
	if _, err := NewClient(nil); err == nil {
		t.Error("NewClient(nil) succeeded")
	}
}

func TestPingReachesTheBroker(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	if err := c.Ping(testCtx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestCompressedBatchesAreStoredAndConsumed(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	for _, tc := range []struct {
		name  string
		codec kgo.CompressionCodec
		want  uint8 // batch attribute codec number
	}{
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			topic := "compressed-" + tc.name
			prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation(),
				kgo.ProducerBatchCompression(tc.codec))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			var sent []string
			var krs []*kgo.Record
			for i := 0; i < 50; i++ {
				v := fmt.Sprintf("%s record %d %s", tc.name, i, bytes.Repeat([]byte("compressible "), 40))
				sent = append(sent, v)
				krs = append(krs, &kgo.Record{Topic: topic, Value: []byte(v)})
			}
			if err := prod.ProduceSync(ctx, krs...).FirstErr(); err != nil {
				t.Fatalf("produce %s batch: %v", tc.name, err)
			}

			got, err := c.ReadAll(ctx, topic, 0)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if !slices.Equal(values(got), sent) {
				t.Errorf("read %d records back, want the %d sent, in order", len(got), len(sent))
			}

			// The broker keeps the producer's compression: a raw
			// reader sees the codec in the batch attributes.
			raw, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic),
				kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			recs := raw.PollFetches(ctx).Records()
			if len(recs) == 0 {
				t.Fatal("raw reader got no records")
			}
			if got := recs[0].Attrs.CompressionType(); got != tc.want {
				t.Errorf("stored batch codec %d, want %d (%s)", got, tc.want, tc.name)
			}
		})
	}
}
