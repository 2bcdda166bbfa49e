package enginehost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/protocol"
)

// received is one request an HTTP engine got.
type received struct {
	fields      map[string]string
	chunk       []byte
	chunkType   string
	contentLen  int64
	contentType string
}

// fakeEngine is an HTTP engine whose answer to attempt n (from 1) is
// answer(n, request). It checks the request's form on the server side.
type fakeEngine struct {
	t        testing.TB
	srv      *httptest.Server
	attempts atomic.Int64
	mu       sync.Mutex
	got      []received
}

func newFakeEngine(t testing.TB, answer func(n int64, w http.ResponseWriter, r *http.Request)) *fakeEngine {
	f := &fakeEngine{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/ready":
			w.WriteHeader(http.StatusOK)
			return
		case r.Method != http.MethodPost || r.URL.Path != "/process":
			http.Error(w, "no such webhook", http.StatusNotFound)
			return
		}
		n := f.attempts.Add(1)
		rec := received{fields: map[string]string{}, contentLen: r.ContentLength, contentType: r.Header.Get("Content-Type")}
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			t.Errorf("attempt %d: the request is not multipart/form-data: %v", n, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for k, v := range r.MultipartForm.Value {
			rec.fields[k] = v[0]
		}
		if file, hdr, err := r.FormFile("chunk"); err == nil {
			rec.chunk, _ = io.ReadAll(file)
			rec.chunkType = hdr.Header.Get("Content-Type")
			file.Close()
		}
		f.mu.Lock()
		f.got = append(f.got, rec)
		f.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEngine) endpoint() engine.HTTPEndpoint { return engine.HTTPEndpoint{URL: f.srv.URL + "/"} }

func (f *fakeEngine) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

const goodDoc = `{"schemaId":"https://docs.veritone.com/schemas/vtn-standard/object.json",
 "series":[{"startTimeMs":100,"stopTimeMs":900,"object":{"type":"face","confidence":0.9,
 "boundingPoly":[{"x":0.1,"y":0.1},{"x":0.5,"y":0.1},{"x":0.5,"y":0.6},{"x":0.1,"y":0.6}]}}]}`

func writeDoc(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, goodDoc)
}

// httpChunk is a chunk with inline bytes and options, as the host hands it
// to a processor.
func httpChunk(t testing.TB) (*engine.Chunk, engine.Options) {
	c := chunkFor("job-x", 3, "image/jpeg", []byte("\xff\xd8\xff\xe0 a small frame"))
	c.Width, c.Height = 640, 360
	opts, err := testSpec("faces").ParseOptions(map[string]any{"level": 4})
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Chunk{Meta: *c}, opts
}

// fast keeps retries quick in tests.
var fast = []enginehost.HTTPOption{enginehost.WithBackoff(5*time.Millisecond, 20*time.Millisecond)}

func process(t testing.TB, p *enginehost.HTTPProcessor) (*protocol.Document, error) {
	t.Helper()
	c, opts := httpChunk(t)
	return p.Process(testCtx(t), c, opts)
}

func TestHTTP200IsTheResultAndTheFormFollowsTheToolkit(t *testing.T) {
	f := newFakeEngine(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { writeDoc(w) })
	p := enginehost.NewHTTP(f.endpoint(), fast...)
	doc, err := process(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Series) != 1 || doc.Series[0].StartTimeMs != 100 || doc.Series[0].Object == nil || doc.Series[0].Object.Type != "face" {
		t.Fatalf("document %+v: want the engine's series as it sent them", doc)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	want := map[string]string{
		"chunkMimeType": "image/jpeg", "startOffsetMS": "16000", "endOffsetMS": "18000",
		"width": "640", "height": "360", "chunkIndex": "3", "chunkUUID": "job-x-chunk-d",
		"taskId": "job-x-test", "jobId": "job-x", "tdoId": "tdo-job-x",
	}
	for k, v := range want {
		if r.fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, r.fields[k], v)
		}
	}
	if _, ok := r.fields["cacheURI"]; ok {
		t.Errorf("field cacheURI sent for an inline chunk")
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(r.fields["payload"]), &payload); err != nil || payload["level"] != float64(4) {
		t.Errorf("field payload %q: want the options as a JSON object with level 4 (%v)", r.fields["payload"], err)
	}
	if string(r.chunk) != "\xff\xd8\xff\xe0 a small frame" || r.chunkType != "image/jpeg" {
		t.Errorf("file chunk: %q of type %q, want the decoded bytes as image/jpeg", r.chunk, r.chunkType)
	}
	if r.contentLen <= 0 || !strings.HasPrefix(r.contentType, "multipart/form-data; boundary=") {
		t.Errorf("Content-Length %d, Content-Type %q: want a sized multipart/form-data body", r.contentLen, r.contentType)
	}
	if err := p.Ready(testCtx(t)); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestHTTPCacheURIFieldAndFileChunk(t *testing.T) {
	f := newFakeEngine(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	c, opts := httpChunk(t)
	c.Meta.Content, c.Meta.ContentEncoding, c.Meta.CacheURI = "", "", "http://weir.example/jobs/job-x/chunks/frame/000003.jpg"
	c.Path = t.TempDir() + "/chunk"
	if err := writeFile(c.Path, "bytes from the file"); err != nil {
		t.Fatal(err)
	}
	_, err := enginehost.NewHTTP(f.endpoint(), fast...).Process(testCtx(t), c, opts)
	if !errors.Is(err, engine.ErrIgnored) {
		t.Fatalf("204: err %v, want one wrapping engine.ErrIgnored", err)
	}
	r := f.requests()[0]
	if r.fields["cacheURI"] != c.Meta.CacheURI || string(r.chunk) != "bytes from the file" {
		t.Errorf("cacheURI %q, chunk %q: want the URI and the file's bytes", r.fields["cacheURI"], r.chunk)
	}
}

func TestHTTPRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(n int64, w http.ResponseWriter, r *http.Request)
		opts     []enginehost.HTTPOption
		attempts int64
		err      string // "" for success
	}{
		{"500 then 200", func(n int64, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				http.Error(w, "warming up", http.StatusInternalServerError)
				return
			}
			writeDoc(w)
		}, nil, 2, ""},
		{"429 then 200", func(n int64, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
			writeDoc(w)
		}, nil, 2, ""},
		{"always 500", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "CUDA out of memory", http.StatusInternalServerError)
		}, []enginehost.HTTPOption{enginehost.WithAttempts(4)}, 4,
			`engine failed 4 attempts: engine answered 500 Internal Server Error: "CUDA out of memory"`},
		{"400 is not retried", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "payload: unknown option", http.StatusBadRequest)
		}, nil, 1, `engine answered 400 Bad Request: "payload: unknown option"`},
		{"timeout then 200", func(n int64, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				<-r.Context().Done()
				return
			}
			writeDoc(w)
		}, []enginehost.HTTPOption{enginehost.WithAttemptTimeout(time.Second)}, 2, ""},
		{"always too slow", func(_ int64, _ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, []enginehost.HTTPOption{enginehost.WithAttemptTimeout(100 * time.Millisecond), enginehost.WithAttempts(2)}, 2,
			"engine failed 2 attempts: POST "},
		{"malformed JSON is not retried", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"series":[{"startTimeMs":0,`)
		}, nil, 1, "malformed output: invalid JSON: unexpected end of JSON input"},
		{"invalid document", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"series":[{"startTimeMs":500,"stopTimeMs":100}]}`)
		}, nil, 1, `malformed output: vtn-standard: field "series[0].stopTimeMs": must not be before startTimeMs (500), got 100`},
		{"not an object", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `[{"startTimeMs":0}]`)
		}, nil, 1, "malformed output: want a JSON object (a vtn-standard document), got an array"},
		{"answer too long", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"tags":[`+strings.Repeat(`{"key":"x"},`, 100)+`{"key":"y"}]}`)
		}, []enginehost.HTTPOption{enginehost.WithMaxResponseBytes(512)}, 1, "malformed output: the answer is longer than 512 bytes"},
		{"201 is not the contract", func(_ int64, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusCreated)
		}, nil, 1, "engine answered 201 Created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEngine(t, tc.answer)
			p := enginehost.NewHTTP(f.endpoint(), append(append([]enginehost.HTTPOption{}, fast...), tc.opts...)...)
			doc, err := process(t, p)
			if got := f.attempts.Load(); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
			if tc.err == "" {
				if err != nil || doc == nil || len(doc.Series) != 1 {
					t.Fatalf("got %+v, %v; want the document", doc, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want it to contain %q", err, tc.err)
			}
		})
	}
}

func TestHTTPConnectionRefusedIsRetriedThenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := enginehost.NewHTTP(engine.HTTPEndpoint{URL: "http://" + addr}, append(fast, enginehost.WithAttempts(3))...)
	_, err = process(t, p)
	if err == nil || !strings.Contains(err.Error(), "engine failed 3 attempts: POST http://"+addr+"/process") ||
		!strings.Contains(err.Error(), "refused") {
		t.Fatalf("err %v, want 3 attempts naming the URL and the refused connection", err)
	}
	if err := p.Ready(testCtx(t)); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("Ready: %v, want not ready", err)
	}
}

func TestHTTPBackoffGrows(t *testing.T) {
	var times []time.Time
	var mu sync.Mutex
	f := newFakeEngine(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	p := enginehost.NewHTTP(f.endpoint(), enginehost.WithAttempts(4), enginehost.WithBackoff(40*time.Millisecond, time.Second))
	if _, err := process(t, p); err == nil {
		t.Fatal("no error after 4 failed attempts")
	}
	// Waits are at least half of 40, 80, 160 ms: floors only, so a
	// loaded machine cannot fail this.
	for i, floor := range []time.Duration{20, 40, 80} {
		if gap := times[i+1].Sub(times[i]); gap < floor*time.Millisecond {
			t.Errorf("wait before attempt %d: %v, want at least %v ms", i+2, gap, floor)
		}
	}
}

func TestHTTPStopsRetryingWhenTheChunkTimesOut(t *testing.T) {
	f := newFakeEngine(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	p := enginehost.NewHTTP(f.endpoint(), enginehost.WithAttempts(100), enginehost.WithBackoff(50*time.Millisecond, 50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, opts := httpChunk(t)
	_, err := p.Process(ctx, c, opts)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Fatalf("err %v: want the deadline and the last answer", err)
	}
	if n := f.attempts.Load(); n >= 100 {
		t.Fatalf("%d attempts after the chunk's time ran out", n)
	}
}

// TestHTTPEngineThroughTheHost runs an HTTP engine behind a host: the
// series it answers relative to the chunk land on the TDO timeline, a 204
// is IGNORED, a 500 ERROR with the engine's words.
func TestHTTPEngineThroughTheHost(t *testing.T) {
	f := newFakeEngine(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		switch r.FormValue("chunkIndex") {
		case "0":
			writeDoc(w)
		case "1":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "model crashed", http.StatusInternalServerError)
		}
	})
	b := bustest.New()
	spec := testSpec("faces")
	spec.Inputs = []string{"image/jpeg"}
	spec.Outputs = []string{"object"}
	startHost(t, enginehost.Config{Spec: spec, Bus: b, Concurrency: 2,
		Processor: enginehost.NewHTTP(f.endpoint(), append(fast, enginehost.WithAttempts(2))...)})
	var chunks []*protocol.MediaChunk
	for i := range int64(3) {
		chunks = append(chunks, chunkFor("job-w", i, "image/jpeg", []byte(fmt.Sprintf("frame %d", i))))
	}
	send(t, b, protocol.ChunkTopic("faces"), chunks...)
	r := waitResults(t, b, "job-w", statuses(3))
	if st := r.status(t, chunks[0].ChunkUUID); st.Status != protocol.ChunkSuccess {
		t.Errorf("chunk 0: %+v", st)
	}
	if len(r.outputs) != 1 || r.outputs[0].OutputType != "object" {
		t.Fatalf("%d outputs, want 1 of type object", len(r.outputs))
	}
	doc, _ := r.outputs[0].Document()
	if s := doc.Series[0]; s.StartTimeMs != 10_100 || s.StopTimeMs != 10_900 || len(s.Object.BoundingPoly) != 4 {
		t.Errorf("series %+v: want [10100, 10900] with the face's box", s)
	}
	if st := r.status(t, chunks[1].ChunkUUID); st.Status != protocol.ChunkIgnored || !strings.Contains(st.InfoMsg, "204") {
		t.Errorf("chunk 1: %+v, want IGNORED saying 204", st)
	}
	if st := r.status(t, chunks[2].ChunkUUID); st.Status != protocol.ChunkError || !strings.Contains(st.ErrorMsg, `500 Internal Server Error: "model crashed"`) {
		t.Errorf("chunk 2: %+v, want ERROR quoting the engine", st)
	}
}
