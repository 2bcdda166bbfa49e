package push

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// sessionTokens returns the publish token of every record on a stream's
// topic, failing the test for a record without a valid one.
func sessionTokens(t *testing.T, recs []recorded) []int64 {
	t.Helper()
	var tokens []int64
	for i, r := range recs {
		v, ok := r.rec.Header(protocol.HeaderPublishToken)
		tok, err := protocol.ParsePublishToken(v)
		if !ok || err != nil {
			t.Fatalf("record %d (%s) has no valid %s header: %q, %v", i, r.rec.Key, protocol.HeaderPublishToken, v, err)
		}
		tokens = append(tokens, tok)
	}
	return tokens
}

// TestOnePublisherPerStreamAcrossProcesses races two RTMP publishers of one
// stream against the servers of two ingest processes sharing the metadata
// store: exactly one gets the stream, the other is refused, and so is an
// SRT publisher while the first is connected. Once it leaves, its lease is
// released and the next publisher gets in at once, long before the lease
// would have lapsed.
func TestOnePublisherPerStreamAcrossProcesses(t *testing.T) {
	t.Parallel()
	longLease := func(c *Config) { c.LeaseTTL = time.Minute }
	a := newPushEnvWith(t, longLease)
	b := a.otherProcess(longLease)
	st := a.newStream()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []*pushEnv{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ffmpeg(t, time.Minute, append(testPattern(4), "-f", "flv", e.rtmpURL(st.PublishKey))...)
		}()
	}
	waitFor(t, 20*time.Second, "one publisher accepted and one refused", func() bool {
		return a.connections("rtmp", "accepted")+b.connections("rtmp", "accepted") == 1 &&
			a.connections("rtmp", "refused")+b.connections("rtmp", "refused") == 1
	})
	if conn, err := srtDial(b.srtAddr(), "publish:"+st.PublishKey); err == nil {
		conn.Close()
		t.Error("an SRT publisher was accepted while the stream had an RTMP publisher")
	}
	waitFor(t, 5*time.Second, "the SRT publisher's refusal", func() bool { return b.connections("srt", "refused") == 1 })
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("ffmpeg publishers ended with %v and %v, want exactly one refused", errs[0], errs[1])
	}
	waitFor(t, 10*time.Second, "the winner's stream_eof", func() bool {
		recs := a.rec.stream(protocol.StreamTopic(st.ID))
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return ok && hb.Status == protocol.HeartbeatDone
	})
	first := a.rec.stream(protocol.StreamTopic(st.ID))
	checkStream(t, first, false)
	firstTokens := sessionTokens(t, first)

	// The loser's process gets the stream now, at once.
	if out, err := ffmpeg(t, time.Minute, append(testPattern(3), "-f", "flv", b.rtmpURL(st.PublishKey))...); err != nil {
		t.Fatalf("publishing again after the first publisher left: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the second session's stream_eof", func() bool {
		recs := a.rec.stream(protocol.StreamTopic(st.ID))
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return len(recs) > len(first) && ok && hb.Status == protocol.HeartbeatDone
	})
	second := a.rec.stream(protocol.StreamTopic(st.ID))[len(first):]
	checkStream(t, second, false)
	secondTokens := sessionTokens(t, second)
	if firstTokens[0] != firstTokens[len(firstTokens)-1] || secondTokens[0] <= firstTokens[0] {
		t.Errorf("tokens of the first session %v, of the second %v: want one token per session, growing", firstTokens, secondTokens)
	}
	l, err := a.meta.GetLease(context.Background(), metastore.PublishLeaseName(st.ID))
	if err != nil || l.Held {
		t.Errorf("publish lease after both publishers left: %+v, %v; want released", l, err)
	}
}

// unreachableLeases is a metadata store whose lease renewals fail, as they
// would with the store out of reach, once cut is set.
type unreachableLeases struct {
	*metastore.SQLite
	cut atomic.Bool
}

func (u *unreachableLeases) RenewLease(ctx context.Context, l metastore.Lease, ttl time.Duration) (metastore.Lease, error) {
	if u.cut.Load() {
		return metastore.Lease{}, fmt.Errorf("renew lease %s: %w", l.Name, errors.New("connection refused"))
	}
	return u.SQLite.RenewLease(ctx, l, ttl)
}

// TestLostPublishLeaseDropsThePublisher cuts a publisher's lease renewals:
// before the lease can lapse (and another process take the stream over),
// the session stops writing, without a stream_eof since the stream is no
// longer its own, and the publisher is disconnected. Every record it wrote
// carries its lease's token.
func TestLostPublishLeaseDropsThePublisher(t *testing.T) {
	t.Parallel()
	meta, err := metastore.OpenSQLite(t.TempDir() + "/meta.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	store := &unreachableLeases{SQLite: meta}
	e := &pushEnv{t: t, meta: meta, rec: newRecorder()}
	e.start(store, func(c *Config) { c.LeaseTTL = 600 * time.Millisecond })
	st := e.newStream()

	done := make(chan error, 1)
	go func() {
		_, err := ffmpeg(t, time.Minute, append(testPattern(30), "-f", "flv", e.rtmpURL(st.PublishKey))...)
		done <- err
	}()
	waitFor(t, 15*time.Second, "media on the bus", func() bool {
		return len(rawBytes(e.rec.stream(protocol.StreamTopic(st.ID)))) > 0
	})
	lease, err := meta.GetLease(context.Background(), metastore.PublishLeaseName(st.ID))
	if err != nil || !lease.Held {
		t.Fatalf("publish lease while publishing: %+v, %v", lease, err)
	}
	store.cut.Store(true)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher is still connected after its lease was lost")
	}
	n := e.rec.count()
	time.Sleep(300 * time.Millisecond)
	recs := e.rec.stream(protocol.StreamTopic(st.ID))
	if e.rec.count() != n {
		t.Errorf("records kept coming after the publisher was dropped: %d, then %d", n, e.rec.count())
	}
	for _, r := range recs {
		switch r.msg.(type) {
		case *protocol.StreamEOF:
			t.Error("the session wrote a stream_eof after losing its lease")
		}
	}
	for i, tok := range sessionTokens(t, recs) {
		if tok != lease.Token {
			t.Fatalf("record %d carries token %d, want the lease's %d", i, tok, lease.Token)
		}
	}
	// Whoever takes the stream over gets a larger token.
	store.cut.Store(false)
	var next metastore.Lease
	waitFor(t, 5*time.Second, "another process to take the lease", func() bool {
		next, err = meta.AcquireLease(context.Background(), metastore.PublishLeaseName(st.ID), "proc-b", time.Minute)
		return err == nil
	})
	if next.Token <= lease.Token {
		t.Errorf("token after the takeover %d, want more than %d", next.Token, lease.Token)
	}
}
