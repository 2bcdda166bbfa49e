package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// slowEngine is an external engine over HTTP, as Veritone's engine toolkit
// defines one (GET /ready, POST /process with the chunk as multipart): it
// takes delay over every chunk, answers one tag naming the chunk's UUID
// across the whole chunk, and counts its calls per chunk.
type slowEngine struct {
	delay time.Duration
	srv   *httptest.Server

	mu        sync.Mutex
	calls     map[string]int
	busySince time.Time // start of the call in progress; zero when idle
	problems  []string
}

func newSlowEngine(t *testing.T, delay time.Duration) *slowEngine {
	t.Helper()
	e := &slowEngine{delay: delay, calls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /process", e.process)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *slowEngine) process(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(64 << 20); err != nil {
		e.problem(w, "multipart: %v", err)
		return
	}
	uuid := r.FormValue("chunkUUID")
	start, err1 := strconv.ParseInt(r.FormValue("startOffsetMS"), 10, 64)
	end, err2 := strconv.ParseInt(r.FormValue("endOffsetMS"), 10, 64)
	f, hdr, err3 := r.FormFile("chunk")
	switch {
	case uuid == "" || err1 != nil || err2 != nil || end <= start:
		e.problem(w, "bad chunk fields: uuid %q, offsets %q..%q", uuid, r.FormValue("startOffsetMS"), r.FormValue("endOffsetMS"))
		return
	case err3 != nil:
		e.problem(w, "chunk %s: no chunk part: %v", uuid, err3)
		return
	case r.FormValue("chunkMimeType") != "video/mp2t":
		e.problem(w, "chunk %s: chunkMimeType %q", uuid, r.FormValue("chunkMimeType"))
		return
	}
	n, _ := io.Copy(io.Discard, f)
	f.Close()
	if n == 0 || n != hdr.Size {
		e.problem(w, "chunk %s: %d bytes in the chunk part", uuid, n)
		return
	}
	e.mu.Lock()
	e.calls[uuid]++
	e.busySince = time.Now()
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.busySince = time.Time{}
		e.mu.Unlock()
	}()
	select {
	case <-time.After(e.delay):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"series":[{"startTimeMs":0,"stopTimeMs":%d,"tags":[{"key":"chunk","value":%q}]}]}`, end-start, uuid)
}

func (e *slowEngine) problem(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.problems = append(e.problems, msg)
	e.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

// callsOf returns a copy of the call counts and the requests the engine
// found malformed.
func (e *slowEngine) callsOf() (map[string]int, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.calls))
	for k, v := range e.calls {
		out[k] = v
	}
	return out, append([]string(nil), e.problems...)
}

// busyFor is how long the call in progress has run (0 when idle).
func (e *slowEngine) busyFor() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busySince.IsZero() {
		return 0
	}
	return time.Since(e.busySince)
}

// register registers the engine as "slowtag" with POST /engines on p.
func (e *slowEngine) register(t *testing.T, p *weirProc) {
	t.Helper()
	manifest := map[string]any{"name": "slowtag", "engineMode": "chunk", "summary": "Tags each chunk with its UUID, slowly",
		"inputs": []string{"video/*"}, "outputs": []string{"tag"}, "http": map[string]string{"url": e.srv.URL}}
	var out json.RawMessage
	if code := p.api(t, http.MethodPost, "/engines", manifest, &out); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("POST /engines: %d %s", code, out)
	}
}

// jobView is the part of GET /jobs/{id} the tests read.
type jobView struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Engines []struct {
		Name    string `json:"name"`
		Total   int64  `json:"total"`
		Queued  int64  `json:"queued"`
		Sent    int64  `json:"sent"`
		Done    int64  `json:"done"`
		Ignored int64  `json:"ignored"`
		Dropped int64  `json:"dropped"`
		Failed  int64  `json:"failed"`
	} `json:"engines"`
}

// getJob reads GET /jobs/{id}; ok is false when p did not answer 200.
func getJob(t *testing.T, p *weirProc, id string) (v jobView, ok bool) {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/jobs/" + id)
	if err != nil {
		return v, false
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &v) != nil || len(v.Engines) != 1 {
		return v, false
	}
	return v, true
}

// createJob posts req to /jobs and returns the job's id.
func createJob(t *testing.T, p *weirProc, req any) string {
	t.Helper()
	var v jobView
	if code := p.api(t, http.MethodPost, "/jobs", req, &v); code != http.StatusCreated || v.ID == "" {
		t.Fatalf("POST /jobs: %d %+v", code, v)
	}
	return v.ID
}

// waitJobDone waits for the job to end and returns its last view; it
// fails the test when the job ends other than complete.
func waitJobDone(t *testing.T, p *weirProc, id string, d time.Duration) jobView {
	t.Helper()
	var v jobView
	waitUntil(t, d, "job "+id+" to end", func() bool {
		var ok bool
		v, ok = getJob(t, p, id)
		return ok && metastore.JobStatus(v.Status).Terminal()
	})
	if v.Status != string(metastore.JobComplete) {
		t.Fatalf("job %s ended %s: %s (%+v)", id, v.Status, v.Error, v.Engines)
	}
	return v
}

// jobResult is one item of GET /jobs/{id}/results.
type jobResult struct {
	ChunkUUID string `json:"chunk_uuid"`
	StartMs   int64  `json:"start_ms"`
	EndMs     int64  `json:"end_ms"`
	Content   struct {
		Series []struct {
			StartTimeMs int64 `json:"startTimeMs"`
			StopTimeMs  int64 `json:"stopTimeMs"`
			Tags        []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"tags"`
		} `json:"series"`
	} `json:"content"`
}

// jobResults reads every result of a job (one page of up to 1000).
func jobResults(t *testing.T, p *weirProc, id string) []jobResult {
	t.Helper()
	var page struct {
		Items []jobResult `json:"items"`
		Next  string      `json:"next_cursor"`
	}
	if code := p.api(t, http.MethodGet, "/jobs/"+id+"/results?limit=1000", nil, &page); code != http.StatusOK {
		t.Fatalf("GET /jobs/%s/results: %d", id, code)
	}
	if page.Next != "" {
		t.Fatalf("GET /jobs/%s/results: more than 1000 results", id)
	}
	return page.Items
}

// checkResult checks that a result is the slow engine's answer to its
// chunk, on the source's timeline.
func checkResult(t *testing.T, r jobResult) {
	t.Helper()
	if len(r.Content.Series) != 1 || len(r.Content.Series[0].Tags) != 1 {
		t.Fatalf("result of chunk %s: %+v, want one series with one tag", r.ChunkUUID, r.Content)
	}
	s := r.Content.Series[0]
	if s.Tags[0].Value != r.ChunkUUID || s.StartTimeMs != r.StartMs || s.StopTimeMs != r.EndMs {
		t.Fatalf("result of chunk %s [%d, %d): series %+v, want the chunk's own UUID and times", r.ChunkUUID, r.StartMs, r.EndMs, s)
	}
}

// makeKeyframeClip writes a secs-long MPEG-TS clip with a key frame every
// second.
func makeKeyframeClip(t *testing.T, secs int) string {
	t.Helper()
	clip := filepath.Join(t.TempDir(), "clip.ts")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", strconv.Itoa(secs), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
		"-sc_threshold", "0", "-c:a", "aac", "-f", "mpegts", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return clip
}

// A VOD job runs on an HTTP engine, one chunk at a time; the process
// running the job and hosting the engine is killed with SIGKILL once some
// chunks are done. Another process takes the job over and completes it:
// one result per chunk, no chunk done before the kill processed again.
func TestClusterJobSurvivesKill9(t *testing.T) {
	c := newCluster(t)
	roles := []string{"--roles", "api,vod,chunker,engines"}
	a := c.start("a", roles...)
	c.waitReady(a)
	eng := newSlowEngine(t, 600*time.Millisecond)
	eng.register(t, a)

	id := upload(t, a, makeKeyframeClip(t, 12))
	job := createJob(t, a, map[string]any{"source": map[string]string{"vod": id},
		"engines":  []any{map[string]any{"name": "slowtag", "policy": map[string]int{"max_in_flight": 1}}},
		"chunking": map[string]string{"duration": "1s"}})

	meta, err := metastore.Open(context.Background(), c.metadata)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	ctx := ctxFor(t, 5*time.Minute)

	// Kill in the middle of a chunk's processing: the chunks done before
	// it were answered and their records acknowledged a while ago.
	waitUntil(t, 2*time.Minute, "3 chunks done and the engine busy on the next", func() bool {
		v, ok := getJob(t, a, job)
		return ok && v.Engines[0].Done >= 3 && eng.busyFor() >= 150*time.Millisecond
	})
	a.kill9()
	chunks, err := meta.ListJobChunks(ctx, job, "slowtag")
	if err != nil {
		t.Fatal(err)
	}
	var doneBefore []string
	for _, ch := range chunks {
		if ch.State == metastore.ChunkDone {
			doneBefore = append(doneBefore, ch.ChunkUUID)
		}
	}
	if len(doneBefore) < 3 || len(doneBefore) >= 12 {
		t.Fatalf("%d chunks done at the kill, want 3..11", len(doneBefore))
	}
	t.Logf("killed a with %d of the chunks done", len(doneBefore))

	b := c.start("b", roles...)
	c.waitReady(b)
	killedAt := time.Now()
	v := waitJobDone(t, b, job, 3*time.Minute)
	t.Logf("job complete %v after b started: %+v", time.Since(killedAt).Round(100*time.Millisecond), v.Engines[0])

	p := v.Engines[0]
	if p.Total != 12 || p.Done != p.Total || p.Failed+p.Dropped+p.Ignored+p.Queued+p.Sent != 0 {
		t.Fatalf("progress %+v, want 12 chunks, all done", p)
	}
	results := jobResults(t, b, job)
	if len(results) != 12 {
		t.Fatalf("%d results, want one per chunk (12)", len(results))
	}
	seen := map[string]bool{}
	for i, r := range results {
		checkResult(t, r)
		if seen[r.ChunkUUID] {
			t.Fatalf("two results for chunk %s", r.ChunkUUID)
		}
		seen[r.ChunkUUID] = true
		if i > 0 && r.StartMs != results[i-1].EndMs {
			t.Fatalf("result %d starts at %d ms, the one before ends at %d ms: not contiguous", i, r.StartMs, results[i-1].EndMs)
		}
	}
	if first, last := results[0].StartMs, results[11].EndMs; first > 100 || last-first < 11_500 || last-first > 12_500 {
		t.Fatalf("results cover [%d, %d) ms, want about [0, 12000)", first, last)
	}
	calls, problems := eng.callsOf()
	if len(problems) > 0 {
		t.Fatalf("the engine got malformed requests: %v", problems)
	}
	for _, u := range doneBefore {
		if calls[u] != 1 {
			t.Fatalf("chunk %s, done before the kill, was processed %d times", u, calls[u])
		}
	}
	for u := range seen {
		if calls[u] == 0 {
			t.Fatalf("chunk %s has a result but the engine never saw it", u)
		}
	}
}

// droppedInfo is how flow control explains a dropped chunk.
var droppedInfo = regexp.MustCompile(`^dropped: engine \d+\.\d s behind live$`)

// A live RTMP stream runs through an engine that takes 2.5 s over each 1 s
// chunk, with a backlog of 2: chunks are dropped, each reported with how
// far behind live the engine was, the engine keeps up with the live edge
// instead of falling ever further behind, and the job completes when the
// stream ends.
func TestClusterSlowEngineOnALiveStreamStaysBounded(t *testing.T) {
	c := newCluster(t)
	p := c.start("all", "--roles", "api,ingest,packager,vod,chunker,engines")
	c.waitReady(p)
	eng := newSlowEngine(t, 2500*time.Millisecond)
	eng.register(t, p)

	var started struct {
		ID         string `json:"stream_id"`
		PublishKey string `json:"publish_key"`
	}
	if code := p.api(t, http.MethodPost, "/streams/start", map[string]string{"title": "slow engine"}, &started); code >= 300 {
		t.Fatalf("POST /streams/start: %d", code)
	}
	job := createJob(t, p, map[string]any{"source": map[string]string{"live": started.ID},
		"engines":  []any{map[string]any{"name": "slowtag", "policy": map[string]int{"max_in_flight": 1, "max_backlog": 2}}},
		"chunking": map[string]string{"duration": "1s"}})

	const streamSecs = 20
	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", strconv.Itoa(streamSecs), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
		"-sc_threshold", "0", "-c:a", "aac", "-f", "flv", "rtmp://"+p.rtmp+"/live/"+started.PublishKey)
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	// The stream ends when its publisher leaves; end it over the API too
	// in case it waits for the publisher to come back.
	time.Sleep(2 * time.Second)
	if v, ok := getJob(t, p, job); !ok || !metastore.JobStatus(v.Status).Terminal() {
		p.api(t, http.MethodPost, "/streams/"+started.ID+"/end", nil, nil)
	}
	v := waitJobDone(t, p, job, 2*time.Minute)
	prog := v.Engines[0]
	t.Logf("progress: %+v", prog)
	if prog.Dropped == 0 || prog.Done == 0 || prog.Done+prog.Dropped != prog.Total || prog.Total < streamSecs-3 {
		t.Fatalf("progress %+v: want about %d chunks, each done or dropped, some of each", prog, streamSecs)
	}

	meta, err := metastore.Open(context.Background(), c.metadata)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	chunks, err := meta.ListJobChunks(ctxFor(t, time.Minute), job, "slowtag")
	if err != nil {
		t.Fatal(err)
	}
	var lastDoneStart, streamEnd int64
	droppedUUIDs := map[string]bool{}
	for _, ch := range chunks {
		streamEnd = max(streamEnd, ch.EndMs)
		switch ch.State {
		case metastore.ChunkDone:
			lastDoneStart = max(lastDoneStart, ch.StartMs)
		case metastore.ChunkDropped:
			if !droppedInfo.MatchString(ch.Info) {
				t.Fatalf("chunk %d dropped with reason %q, want %s", ch.ChunkIndex, ch.Info, droppedInfo)
			}
			droppedUUIDs[ch.ChunkUUID] = true
		}
	}
	t.Logf("the last chunk done starts at %d ms of %d ms; %d dropped", lastDoneStart, streamEnd, len(droppedUUIDs))
	// An engine 2.5x slower than real time that fell ever further behind
	// would have done the chunks of the first 40% of the stream when it
	// ended; bounded, it is at most a backlog behind the live edge.
	if lastDoneStart < streamEnd*6/10 {
		t.Fatalf("the last chunk done starts at %d ms of a %d ms stream: the engine fell behind", lastDoneStart, streamEnd)
	}
	results := jobResults(t, p, job)
	if int64(len(results)) != prog.Done {
		t.Fatalf("%d results for %d chunks done", len(results), prog.Done)
	}
	for _, r := range results {
		checkResult(t, r)
	}

	// Whoever reads the results topic sees every drop as IGNORED, with
	// its reason.
	ignored := readDropped(t, c, job)
	for u := range droppedUUIDs {
		info, ok := ignored[u]
		if !ok || !droppedInfo.MatchString(info) {
			t.Fatalf("dropped chunk %s on the results topic: %q (found %v), want IGNORED with a reason matching %s", u, info, ok, droppedInfo)
		}
	}
	if _, problems := eng.callsOf(); len(problems) > 0 {
		t.Fatalf("the engine got malformed requests: %v", problems)
	}
}

// readDropped reads a job's results topic to its end and returns the
// infoMsg of every chunk_processed_status IGNORED, by chunk UUID.
func readDropped(t *testing.T, c *cluster, job string) map[string]string {
	t.Helper()
	creds, err := bus.ReadCredentialsFile(filepath.Join(c.dir, "broker", "kafka", "credentials"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := bus.NewClient([]string{c.kafka}, bus.WithSASL(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	out := map[string]string{}
	err = client.Consume(ctxFor(t, time.Minute), bus.ConsumeOptions{Topics: []string{protocol.ResultsTopic(job)},
		FromBeginning: true, UntilEOF: true, MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
		Handler: func(_ context.Context, rec *bus.Record) error {
			msg, err := protocol.Decode(rec.Key, rec.Value)
			if st, ok := msg.(*protocol.ChunkProcessedStatus); err == nil && ok && st.Status == protocol.ChunkIgnored {
				out[st.ChunkUUID] = st.InfoMsg
			}
			return nil
		}})
	if err != nil {
		t.Fatalf("read %s: %v", protocol.ResultsTopic(job), err)
	}
	return out
}
