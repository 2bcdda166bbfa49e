package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// gateEngine is an external chunk engine over HTTP (Veritone's engine
// toolkit webhooks: POST /process with the chunk as multipart) that
// answers every chunk at once with one tag naming the chunk, except the
// chunk holding gateMs: that one it holds until the gate opens (or the
// caller goes away). It lets a test stop a job at a known time: no window
// past the held chunk's start can be emitted while it is held.
type gateEngine struct {
	gateMs int64
	srv    *httptest.Server
	open   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	calls    map[string]int   // chunk UUID → calls
	starts   map[string]int64 // chunk UUID → its start
	held     int64            // start of the chunk held now; -1 when none
	problems []string
}

func newGateEngine(t *testing.T, gateMs int64) *gateEngine {
	t.Helper()
	g := &gateEngine{gateMs: gateMs, open: make(chan struct{}), calls: map[string]int{}, starts: map[string]int64{}, held: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /process", g.process)
	g.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		g.release()
		g.srv.Close()
	})
	return g
}

func (g *gateEngine) process(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(64 << 20); err != nil {
		g.problem(w, "multipart: %v", err)
		return
	}
	uuid := r.FormValue("chunkUUID")
	start, err1 := strconv.ParseInt(r.FormValue("startOffsetMS"), 10, 64)
	end, err2 := strconv.ParseInt(r.FormValue("endOffsetMS"), 10, 64)
	f, _, err3 := r.FormFile("chunk")
	if uuid == "" || err1 != nil || err2 != nil || end <= start || err3 != nil {
		g.problem(w, "bad chunk: uuid %q, offsets %q..%q, chunk part: %v", uuid, r.FormValue("startOffsetMS"), r.FormValue("endOffsetMS"), err3)
		return
	}
	n, _ := io.Copy(io.Discard, f)
	f.Close()
	if n == 0 {
		g.problem(w, "chunk %s: an empty chunk part", uuid)
		return
	}
	g.mu.Lock()
	g.calls[uuid]++
	g.starts[uuid] = start
	g.mu.Unlock()
	if start <= g.gateMs && g.gateMs < end {
		g.setHeld(start)
		select {
		case <-g.open:
		case <-r.Context().Done():
			g.setHeld(-1)
			return
		}
		g.setHeld(-1)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"series":[{"startTimeMs":0,"stopTimeMs":%d,"tags":[{"key":"chunk","value":%q}]}]}`, end-start, uuid)
}

func (g *gateEngine) setHeld(start int64) {
	g.mu.Lock()
	g.held = start
	g.mu.Unlock()
}

func (g *gateEngine) problem(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	g.mu.Lock()
	g.problems = append(g.problems, msg)
	g.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

// heldStart is the start of the chunk held now (-1: none).
func (g *gateEngine) heldStart() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// release opens the gate for good.
func (g *gateEngine) release() { g.once.Do(func() { close(g.open) }) }

// callsOf returns a copy of the calls per chunk and the malformed requests.
func (g *gateEngine) callsOf() (map[string]int, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.calls))
	for k, v := range g.calls {
		out[k] = v
	}
	return out, append([]string(nil), g.problems...)
}

// callsByStart returns the calls per chunk start, for messages.
func (g *gateEngine) callsByStart() map[int64]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[int64]int, len(g.calls))
	for k, v := range g.calls {
		out[g.starts[k]] = v
	}
	return out
}

// register registers the engine as name with POST /engines on p.
func (g *gateEngine) register(t *testing.T, p *weirProc, name string) {
	t.Helper()
	manifest := map[string]any{"name": name, "engineMode": "chunk", "summary": "Tags each chunk with its UUID; holds one chunk until the test lets it go",
		"inputs": []string{"video/*"}, "outputs": []string{"tag"}, "http": map[string]string{"url": g.srv.URL}}
	var out json.RawMessage
	if code := p.api(t, http.MethodPost, "/engines", manifest, &out); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("POST /engines: %d %s", code, out)
	}
}
