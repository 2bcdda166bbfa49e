package alerts

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/netguard"
	"github.com/weir-media/weir/protocol"
)

func testLog() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker runs the embedded broker and returns a client of it.
func startBroker(t testing.TB) *bus.Client {
	t.Helper()
	quiet := testLog()
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(t.TempDir()), bus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	client, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

func openStore(t testing.TB) metastore.Store {
	t.Helper()
	s, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// loopback is the webhook policy of the tests: the receivers listen on
// loopback, which weir refuses unless allowed.
var loopback = netguard.Outbound{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}

// newService makes a Service with quick retries.
func newService(t testing.TB, store metastore.Store, b bus.Bus, reg prometheus.Registerer, tune func(*Config)) *Service {
	t.Helper()
	cfg := Config{Store: store, Bus: b, Webhooks: loopback, RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Poll: 50 * time.Millisecond, WebhookTimeout: 2 * time.Second, Registry: reg, Log: testLog()}
	if tune != nil {
		tune(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs s until the returned stop is called (or the test ends).
func run(t testing.TB, s *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("the alerts service did not stop within 30 s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// testJob stores a running job with one task per engine ("<job>-<engine>")
// and announces it on control_jobs.
func testJob(t testing.TB, store metastore.Store, b bus.Bus, id, streamID string, engines ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := store.CreateJob(ctx, metastore.Job{ID: id, Kind: "engines", StreamID: streamID, Status: metastore.JobRunning}); err != nil {
		t.Fatal(err)
	}
	for _, e := range engines {
		if err := store.UpsertTask(ctx, metastore.Task{ID: id + "-" + e, JobID: id, Name: e, Engine: e, Status: metastore.JobRunning}); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range []string{protocol.TopicJobs, protocol.ResultsTopic(id)} {
		if err := b.CreateTopic(ctx, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	key, value, err := protocol.EncodeControl(&protocol.JobRun{JobID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Produce(ctx, &bus.Record{Topic: protocol.TopicJobs, Key: key, Value: value}); err != nil {
		t.Fatal(err)
	}
}

// put produces protocol messages on a job's results topic.
func put(t testing.TB, b bus.Bus, jobID string, msgs ...protocol.Message) {
	t.Helper()
	for _, m := range msgs {
		key, value, err := protocol.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Produce(context.Background(), &bus.Record{Topic: protocol.ResultsTopic(jobID), Key: key, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
}

func boundOf(jobID, engine string, ms int64, done bool) *protocol.TimestampBound {
	return &protocol.TimestampBound{Header: protocol.Header{TaskID: jobID + "-" + engine, JobID: jobID}, EngineID: engine,
		TimestampBoundMs: ms, Done: done}
}

func outputOf(t testing.TB, jobID, engine string, start, end int64, d *protocol.Document) *protocol.EngineOutput {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return &protocol.EngineOutput{Header: protocol.Header{TaskID: jobID + "-" + engine, JobID: jobID}, OutputType: "transcript",
		StartOffsetMs: start, EndOffsetMs: end, ChunkUUID: "-", Content: b}
}

// receiver is a webhook receiver: it verifies every request's signature,
// answers as its script says, and keeps every event it accepted, by
// event id.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret func() string

	mu       sync.Mutex
	requests map[string]int // event id → requests
	events   map[string][]*protocol.Alert
	// answer says what to answer the n-th request (from 1) of an event:
	// a status, and whether to take the event.
	answer  func(eventID string, n int) (status int, take bool, delay time.Duration)
	badSigs int
}

func newReceiver(t testing.TB, secret func() string) *receiver {
	r := &receiver{t: t, secret: secret, requests: map[string]int{}, events: map[string][]*protocol.Alert{},
		answer: func(string, int) (int, bool, time.Duration) { return http.StatusNoContent, true, 0 }}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := Verify(r.secret(), req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		r.mu.Lock()
		r.badSigs++
		r.mu.Unlock()
		r.t.Errorf("webhook request with a bad signature: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	m, err := protocol.DecodeAlert(nil, body)
	if err != nil {
		r.t.Errorf("webhook body is not an alert: %v\n%s", err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if got := req.Header.Get(HeaderEventID); got != m.EventID {
		r.t.Errorf("header %s %q, body's event_id %q", HeaderEventID, got, m.EventID)
	}
	r.mu.Lock()
	r.requests[m.EventID]++
	status, take, delay := r.answer(m.EventID, r.requests[m.EventID])
	if take {
		r.events[m.EventID] = append(r.events[m.EventID], m)
	}
	r.mu.Unlock()
	time.Sleep(delay)
	w.WriteHeader(status)
}

// deduped returns the events taken, one per event id (the first).
func (r *receiver) deduped() map[string]*protocol.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*protocol.Alert{}
	for id, ms := range r.events {
		out[id] = ms[0]
	}
	return out
}

func (r *receiver) count(eventID string) (requests, taken int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[eventID], len(r.events[eventID])
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
