package live

import (
	"context"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// produceStream writes ts to stream id's topic as a publisher holding
// publish token tok would: stream_init, then raw_stream records, each with
// protocol.HeaderPublishToken.
func (e *liveEnv) produceStream(id string, tok int64, ts []byte) {
	e.t.Helper()
	header := []bus.Header{{Key: protocol.HeaderPublishToken, Value: protocol.FormatPublishToken(tok)}}
	topic := protocol.StreamTopic(id)
	key, value, err := protocol.Encode(&protocol.StreamInit{Header: protocol.Header{TaskID: id}, ChunkSize: 10240, MimeType: "video/mp2t", FFmpegFormat: "mpegts"})
	if err != nil {
		e.t.Fatal(err)
	}
	recs := []*bus.Record{{Topic: topic, Key: key, Value: value, Headers: header}}
	for len(ts) > 0 {
		n := min(10240, len(ts))
		key, value, err := protocol.Encode(&protocol.RawStream{Data: ts[:n]})
		if err != nil {
			e.t.Fatal(err)
		}
		recs = append(recs, &bus.Record{Topic: topic, Key: key, Value: value, Headers: header})
		ts = ts[n:]
	}
	if err := e.client.Produce(context.Background(), recs...); err != nil {
		e.t.Fatal(err)
	}
}

// A publisher that lost the stream's publish lease to another may still
// get records onto the topic before it notices; the packager drops them.
func TestRecordsOfAPublisherThatLostTheStreamAreDropped(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, timeout: time.Minute})
	st := e.newStream("")
	ctx := context.Background()
	// Two publishers held the stream one after the other: the second has
	// token 2, before the packager looks at the stream.
	first, err := e.meta.AcquireLease(ctx, metastore.PublishLeaseName(st.ID), "publisher-a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.meta.ReleaseLease(ctx, first); err != nil {
		t.Fatal(err)
	}
	second, err := e.meta.AcquireLease(ctx, metastore.PublishLeaseName(st.ID), "publisher-b", time.Hour)
	if err != nil || second.Token <= first.Token {
		t.Fatalf("second lease %+v, %v", second, err)
	}
	e.stopPackager()
	e.startPackager()

	ts := makeTS(t, 4, 25, "libx264", 0)
	e.produceStream(st.ID, first.Token, ts)
	waitFor(t, 20*time.Second, "the stale records to be dropped", func() bool {
		return counterValue(t, e.reg, "weir_live_stale_records_total") >= 2
	})
	if rows, _ := e.meta.ListSegments(ctx, st.ID, "", 0, 0); len(rows) != 0 {
		t.Fatalf("%d segments made of a stale publisher's records", len(rows))
	}
	e.produceStream(st.ID, second.Token, ts)
	waitFor(t, 20*time.Second, "segments of the current publisher", func() bool {
		rows, _ := e.meta.ListSegments(ctx, st.ID, "", 0, 0)
		return len(rows) >= 2
	})
}

// Packagers in several processes share the stream topics through their
// consumer group: each stream is packaged by exactly one of them, and when
// one stops, its streams move to the others.
func TestPackagersShareStreamsOnePackagerEach(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	first := e.packager
	second, err := NewPackager(first.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopSecond := context.WithCancel(e.ctx)
	secondDone := make(chan struct{})
	go func() { defer close(secondDone); second.Run(ctx) }()
	defer func() { stopSecond(); <-secondDone }()

	var ids []string
	for range 4 {
		ids = append(ids, e.newStream("").ID)
	}
	owners := func() (a, b []string) {
		for _, id := range ids {
			first.mu.Lock()
			inA := first.tasks[id] != nil
			first.mu.Unlock()
			second.mu.Lock()
			inB := second.tasks[id] != nil
			second.mu.Unlock()
			switch {
			case inA && inB:
				t.Fatalf("stream %s is packaged by both packagers", id)
			case inA:
				a = append(a, id)
			case inB:
				b = append(b, id)
			}
		}
		return a, b
	}
	waitFor(t, 30*time.Second, "every stream to be packaged, some by each packager", func() bool {
		a, b := owners()
		return len(a)+len(b) == len(ids) && len(a) > 0 && len(b) > 0
	})
	ts := makeTS(t, 6, 25, "libx264", 0)
	for _, id := range ids {
		e.produceStream(id, 1, ts[:len(ts)/2/188*188])
	}
	for _, id := range ids {
		waitFor(t, 30*time.Second, "segments of stream "+id, func() bool {
			rows, _ := e.meta.ListSegments(context.Background(), id, "", 0, 0)
			return len(rows) >= 1
		})
	}

	// The first packager stops (a rolling restart, a crash): the second
	// takes its streams and carries on packaging them.
	e.stopPackager()
	waitFor(t, 30*time.Second, "the second packager to own every stream", func() bool {
		second.mu.Lock()
		defer second.mu.Unlock()
		return len(second.tasks) == len(ids)
	})
	before := map[string]int{}
	for _, id := range ids {
		rows, _ := e.meta.ListSegments(context.Background(), id, "", 0, 0)
		before[id] = len(rows)
		e.produceStream(id, 1, ts[len(ts)/2/188*188:])
	}
	for _, id := range ids {
		waitFor(t, 30*time.Second, "more segments of stream "+id, func() bool {
			rows, _ := e.meta.ListSegments(context.Background(), id, "", 0, 0)
			return len(rows) > before[id]
		})
	}
}
