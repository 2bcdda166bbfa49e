package control

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// feed is an endless live MPEG-TS source that counts its listeners.
type feed struct {
	*httptest.Server
	listeners, most, requests atomic.Int64
}

func newFeed(t *testing.T) *feed {
	f := &feed{}
	packet := make([]byte, mpegts.PacketSize)
	packet[0], packet[1], packet[2] = mpegts.SyncByte, 0x1f, 0xff // null packets
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		n := f.listeners.Add(1)
		defer f.listeners.Add(-1)
		for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
		}
		w.Header().Set("Content-Type", "video/mp2t")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := w.Write(append(packet, packet...)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// leaseStore is a metadata store whose lease renewals fail, as they would
// with the store out of reach, for the controllers cut off; taking one
// fails too.
type leaseStore struct {
	*metastore.SQLite
	mu  sync.Mutex
	cut map[string]bool // holder name prefix (Config.Holder) → renewals fail
}

func (s *leaseStore) cutOff(holder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut[holder] = true
}

// isCut reports whether holder's controller is cut off from the store.
func (s *leaseStore) isCut(holder string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.cut {
		if strings.HasPrefix(holder, h+"#") {
			return true
		}
	}
	return false
}

func (s *leaseStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (metastore.Lease, error) {
	if s.isCut(holder) {
		return metastore.Lease{}, errors.New("connection refused")
	}
	return s.SQLite.AcquireLease(ctx, name, holder, ttl)
}

func (s *leaseStore) RenewLease(ctx context.Context, l metastore.Lease, ttl time.Duration) (metastore.Lease, error) {
	if s.isCut(l.Holder) {
		return metastore.Lease{}, errors.New("connection refused")
	}
	return s.SQLite.RenewLease(ctx, l, ttl)
}

// controllers runs two controllers, "proc-a" and "proc-b", on one metadata
// store and one bus, as two ingest processes would.
type controllers struct {
	store *leaseStore
	bus   *bustest.Bus
	ctrl  map[string]*Controller
	stop  map[string]func()
}

func newControllers(t *testing.T) *controllers {
	t.Helper()
	meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	cs := &controllers{store: &leaseStore{SQLite: meta, cut: map[string]bool{}}, bus: bustest.New(),
		ctrl: map[string]*Controller{}, stop: map[string]func(){}}
	for _, name := range []string{"proc-a", "proc-b"} {
		c, err := New(Config{Meta: cs.store, Bus: cs.bus, Logger: testLogger(t), Holder: name,
			LeaseTTL: 600 * time.Millisecond, StatusInterval: 50 * time.Millisecond, PullRetryMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		var once sync.Once
		cs.ctrl[name], cs.stop[name] = c, func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(cs.stop[name])
	}
	return cs
}

// pulledStream creates a live stream pulled from src.
func (cs *controllers) pulledStream(t *testing.T, src string) metastore.Stream {
	t.Helper()
	st, err := cs.store.CreateStream(context.Background(), metastore.Stream{
		ID: "live-" + filepath.Base(t.Name()), Kind: metastore.KindLive, PublishKey: "key", SourceURL: src,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// holder returns which controller holds the stream's pull lease ("" when
// none does).
func (cs *controllers) holder(t *testing.T, id string) (string, metastore.Lease) {
	t.Helper()
	l, err := cs.store.GetLease(context.Background(), metastore.PullLeaseName(id))
	if errors.Is(err, metastore.ErrNotFound) || err == nil && !l.Held {
		return "", l
	}
	if err != nil {
		t.Fatal(err)
	}
	for name := range cs.ctrl {
		if strings.HasPrefix(l.Holder, name+"#") {
			return name, l
		}
	}
	t.Fatalf("pull lease held by %q, not by either controller", l.Holder)
	return "", l
}

// publishLease reads the stream's publish lease.
func (cs *controllers) publishLease(t *testing.T, id string) metastore.Lease {
	t.Helper()
	l, err := cs.store.GetLease(context.Background(), metastore.PublishLeaseName(id))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tokens returns the publish tokens of the stream's records, in order.
func (cs *controllers) tokens(t *testing.T, id string) []int64 {
	t.Helper()
	var out []int64
	for _, r := range cs.bus.Records(protocol.StreamTopic(id)) {
		if _, ok := r.Header(protocol.HeaderLiveEnd); ok {
			continue
		}
		v, ok := r.Header(protocol.HeaderPublishToken)
		tok, err := protocol.ParsePublishToken(v)
		if !ok || err != nil {
			t.Fatalf("pulled record %s without a valid %s: %q", r.Key, protocol.HeaderPublishToken, v)
		}
		out = append(out, tok)
	}
	return out
}

func other(name string) string {
	if name == "proc-a" {
		return "proc-b"
	}
	return "proc-a"
}

// TestOnePullerPerStreamAcrossControllers runs two controllers on one
// store: the stream is pulled once, by the lease holder. When the holder
// can no longer renew its lease it stops pulling, and the other controller
// takes the pull over, writing under a larger token.
func TestOnePullerPerStreamAcrossControllers(t *testing.T) {
	t.Parallel()
	src := newFeed(t)
	cs := newControllers(t)
	st := cs.pulledStream(t, src.URL+"/live.ts")

	var first string
	var lease metastore.Lease
	waitFor(t, 10*time.Second, "one controller to pull", func() bool {
		first, lease = cs.holder(t, st.ID)
		return first != "" && src.listeners.Load() == 1
	})
	// Several resume rounds of both controllers later, still one pull.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if h, _ := cs.holder(t, st.ID); h != first {
			t.Fatalf("the pull lease moved from %s to %q while %s was pulling", first, h, first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := src.most.Load(); n != 1 {
		t.Fatalf("the source had %d listeners at once, want 1", n)
	}
	if n := src.requests.Load(); n != 1 {
		t.Errorf("%d requests to the source, want the one pull's", n)
	}

	// The holder is cut off from the store: it must stop before its lease
	// lapses, and the other controller takes over.
	before := len(cs.bus.Records(protocol.StreamTopic(st.ID)))
	cs.store.cutOff(first)
	var next metastore.Lease
	waitFor(t, 10*time.Second, "the other controller to take the pull over", func() bool {
		var h string
		h, next = cs.holder(t, st.ID)
		return h == other(first) && src.requests.Load() == 2 && src.listeners.Load() == 1
	})
	if n := src.most.Load(); n != 1 {
		t.Errorf("the source had %d listeners at once during the takeover, want 1", n)
	}
	if next.Token <= lease.Token {
		t.Errorf("token after the takeover %d, want more than %d", next.Token, lease.Token)
	}
	// Records carry the token of the stream's publish lease, which the
	// puller holds as the stream's publisher: it grew at the takeover too.
	pub := cs.publishLease(t, st.ID)
	if !strings.HasPrefix(pub.Holder, other(first)+"#") {
		t.Fatalf("publish lease held by %q after the takeover, want %s", pub.Holder, other(first))
	}
	waitFor(t, 10*time.Second, "records of the new puller", func() bool {
		toks := cs.tokens(t, st.ID)
		return len(toks) > before && toks[len(toks)-1] == pub.Token
	})
	toks := cs.tokens(t, st.ID)
	for i, tok := range toks {
		if tok > pub.Token || i > 0 && tok < toks[i-1] {
			t.Fatalf("record tokens %v: want non-decreasing, ending at %d", toks, pub.Token)
		}
	}
	if toks[0] == pub.Token {
		t.Fatalf("record tokens %v: the first puller's records must carry an older token than %d", toks, pub.Token)
	}
}

// TestEndHandledElsewhereStopsThePull ends a stream through the controller
// that does not pull it: it writes the end marker, and the pull stops once
// the stream's status is terminal (the packager moves it to vod when it
// reaches the marker), its lease released.
func TestEndHandledElsewhereStopsThePull(t *testing.T) {
	t.Parallel()
	src := newFeed(t)
	cs := newControllers(t)
	st := cs.pulledStream(t, src.URL+"/live.ts")
	var puller string
	waitFor(t, 10*time.Second, "one controller to pull", func() bool {
		puller, _ = cs.holder(t, st.ID)
		return puller != "" && src.listeners.Load() == 1
	})
	if err := cs.ctrl[other(puller)].End(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	recs := cs.bus.Records(protocol.StreamTopic(st.ID))
	if _, ok := recs[len(recs)-1].Header(protocol.HeaderLiveEnd); !ok {
		t.Fatal("End wrote no end marker on the stream topic")
	}
	if _, err := cs.store.TransitionStatus(context.Background(), st.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pull to hang up", func() bool { return src.listeners.Load() == 0 })
	waitFor(t, 5*time.Second, "the pull lease to be released", func() bool {
		h, _ := cs.holder(t, st.ID)
		return h == ""
	})
	time.Sleep(1500 * time.Millisecond) // two resume rounds
	if n := src.requests.Load(); n != 1 {
		t.Errorf("%d requests to the source, want no pull of the ended stream", n)
	}
}

// TestEndStopsThePullAndKeepsItsLease ends a stream through the controller
// that pulls it: the pull stops at once, before the end marker, and keeps
// its lease until the stream has ended, so neither controller takes the
// pull up again meanwhile.
func TestEndStopsThePullAndKeepsItsLease(t *testing.T) {
	t.Parallel()
	src := newFeed(t)
	cs := newControllers(t)
	st := cs.pulledStream(t, src.URL+"/live.ts")
	var puller string
	waitFor(t, 10*time.Second, "one controller to pull", func() bool {
		puller, _ = cs.holder(t, st.ID)
		return puller != "" && src.listeners.Load() == 1
	})
	if err := cs.ctrl[puller].End(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	recs := cs.bus.Records(protocol.StreamTopic(st.ID))
	if _, ok := recs[len(recs)-1].Header(protocol.HeaderLiveEnd); !ok {
		t.Fatal("the end marker is not the last record: the pull wrote after it")
	}
	if _, ok := recs[len(recs)-2].Header(protocol.HeaderLiveEnd); ok {
		t.Fatal("two end markers")
	}
	waitFor(t, 5*time.Second, "the pull to hang up", func() bool { return src.listeners.Load() == 0 })
	time.Sleep(1500 * time.Millisecond) // two resume rounds, the stream still live
	if h, _ := cs.holder(t, st.ID); h != puller {
		t.Errorf("pull lease held by %q after End, want %s until the stream ends", h, puller)
	}
	if n := src.requests.Load(); n != 1 {
		t.Errorf("%d requests to the source, want none after End", n)
	}
	if _, err := cs.store.TransitionStatus(context.Background(), st.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pull lease to be released", func() bool {
		h, _ := cs.holder(t, st.ID)
		return h == ""
	})
}
