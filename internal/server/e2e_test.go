package server

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// The end-to-end test (issue #13, item 8): a generated clip whose every
// finding is known (e2e_clip_test.go) is uploaded to a real `weir serve`
// process (embedded broker, SQLite, file objects) and processed by one job,
// a task DAG with every built-in engine (those that read other engines'
// outputs routed from them), plus an external HTTP engine that holds one
// chunk so the test can kill the process mid-job at a known point. The process is killed with SIGKILL and started again on
// the same data directory; the new process's runner takes the job over
// once the dead one's lease has run out, and the job completes. Then:
// every engine's results are where the clip has them, search finds a
// spoken and a drawn word, the title's master playlist has a subtitles
// rendition ffprobe reads, and the aggregator's windows are each stored and
// produced once, contiguous, covering the clip, holding every result once.

// e2eWindowMs is the job's aggregation window.
const e2eWindowMs = 5000

// e2eGateMs is where the gate engine holds the job: its chunk holding
// this time is answered only after the kill.
const e2eGateMs = 12000

// e2eOptions are the options the test gives built-in engines: silence
// below -70 dBFS, so the clip's quiet noise is not silence.
var e2eOptions = map[string]map[string]any{
	"silence": {"threshold": -70},
}

func TestEndToEndEveryEngineOnAGeneratedClipThroughAKill9(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe", "espeak-ng", "tesseract", "pocketsphinx_batch", "fpcalc")
	began := time.Now()
	clip := makeE2EClip(t)
	s := newSolo(t)
	p := s.start("first")
	gate := newGateEngine(t, e2eGateMs)
	gate.register(t, p, "gate")
	ref := postFingerprint(t, p, clip.jingle, "station jingle")
	vod := upload(t, p, clip.path)
	engines := builtins(t, p)
	job := createE2EJob(t, p, vod, engines)
	t.Logf("job %s on %s with every built-in engine and gate (%v in)", job, vod, time.Since(began).Round(100*time.Millisecond))

	before, held := killAtTheGate(t, p, gate, job)
	p.kill9()
	gate.release()
	doneBefore := doneChunks(t, s.data, job, "gate")
	killedAt := time.Now()
	p = s.start("second")
	v := waitE2EJob(t, p, job, 4*time.Minute)
	t.Logf("job complete %v after the kill (%v in)", time.Since(killedAt).Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
	defer func() {
		if t.Failed() {
			logResultsTopic(t, s.dir, s.kafka, job)
		}
	}()
	var progress []string
	for _, e := range v.Engines {
		if e.Status != "complete" || e.Failed+e.Dropped+e.Queued+e.Sent != 0 || e.Done == 0 || e.Done != e.Total {
			t.Errorf("engine %s: %+v, want complete with every chunk done", e.Name, e)
		}
		progress = append(progress, fmt.Sprintf("%s %d/%d", e.Name, e.Done, e.Total))
	}
	t.Logf("chunks done: %s", strings.Join(progress, ", "))

	results := allResults(t, p, job)
	windows := allWindows(t, p, job)
	checkWindows(t, windows, before, results)
	checkWindowsTopic(t, s.dir, s.kafka, job, windows)
	checkGate(t, gate, results, doneBefore, held)
	byEngine := map[string][]e2eResult{}
	for _, r := range results {
		byEngine[r.Engine] = append(byEngine[r.Engine], r)
	}
	for _, e := range engines {
		check, ok := e2eChecks[e.Name]
		if !ok {
			t.Errorf("built-in engine %s has no check in the end-to-end test: add one to e2eChecks", e.Name)
			continue
		}
		check(t, clip, ref, byEngine[e.Name])
	}
	checkE2ESearch(t, p, vod, job, clip)
	checkE2ECaptions(t, p, vod, clip)
	t.Logf("end to end in %v", time.Since(began).Round(100*time.Millisecond))
}

// solo is one `weir serve` process with everything in it, started and
// started again on the same data directory and addresses.
type solo struct {
	t                            *testing.T
	bin, dir                     string
	http, kafka, rtmp, srt, data string
}

func newSolo(t *testing.T) *solo {
	dir := t.TempDir()
	return &solo{t: t, bin: testenv.WeirBinary(t), dir: dir, data: filepath.Join(dir, "data"),
		http: testenv.FreeAddr(t), kafka: testenv.FreeAddr(t), rtmp: testenv.FreeAddr(t), srt: testenv.FreeAddr(t)}
}

// start runs `weir serve` and waits until it is ready; the process's log
// is shown when the test fails.
func (s *solo) start(name string) *weirProc {
	t := s.t
	t.Helper()
	p := &weirProc{name: name, http: s.http, rtmp: s.rtmp, srt: s.srt,
		logPath: filepath.Join(s.dir, name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(s.bin, "serve", "--data", s.data, "--http", s.http, "--kafka-listen", s.kafka,
		"--rtmp", s.rtmp, "--srt", s.srt, "--vod-ladder", "360p=800k", "--vod-preset", "ultrafast",
		"--vod-segment-duration", "2s", "--log-level", "info")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- warnings and errors of %s\n%s", name, grepLog(p.logPath, "level=WARN", "level=ERROR"))
			t.Logf("--- log of %s (last 40 lines)\n%s", name, tail(p.logPath, 40))
		}
	})
	(&cluster{t: t}).waitReady(p)
	return p
}

// doneChunks reads, from the metadata store of a stopped process, the
// chunks of a job's engine that are done, with their starts (ms).
func doneChunks(t *testing.T, data, job, engine string) map[string]int64 {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	meta, err := metastore.Open(ctx, "sqlite:"+filepath.Join(data, "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	chunks, err := meta.ListJobChunks(ctx, job, engine)
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]int64{}
	for _, c := range chunks {
		if c.State == metastore.ChunkDone {
			done[c.ChunkUUID] = c.StartMs
		}
	}
	return done
}

// grepLog returns the lines of a log file holding any of words (the
// last 200).
func grepLog(path string, words ...string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) }) {
			out = append(out, line)
		}
	}
	return strings.Join(out[max(0, len(out)-200):], "\n")
}

// postFingerprint adds a reference clip to the fingerprint library and
// returns its id.
func postFingerprint(t *testing.T, p *weirProc, file, name string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("name", name)
	fw, err := mw.CreateFormFile("file", filepath.Base(file))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	var ref struct {
		ID string `json:"id"`
	}
	if code, raw := httpJSON(t, http.MethodPost, "http://"+p.http+"/fingerprints", mw.FormDataContentType(), &body, &ref); code != http.StatusCreated || ref.ID == "" {
		t.Fatalf("POST /fingerprints: %d %s", code, raw)
	}
	return ref.ID
}

// e2eEngine is a built-in engine as GET /engines lists it.
type e2eEngine struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Mode   string `json:"engineMode"`
	Status string `json:"status"`
	Spec   struct {
		Inputs []string `json:"inputs"`
	} `json:"spec"`
}

// readsMedia reports whether the engine reads the source (audio or video).
func (e e2eEngine) readsMedia() bool {
	return slices.ContainsFunc(e.Spec.Inputs, func(in string) bool {
		return strings.HasPrefix(in, "audio/") || strings.HasPrefix(in, "video/")
	})
}

// e2eRoutes names, for each built-in engine that reads another engine's
// output instead of the source, its parent in the job's task DAG, and its
// options.
var e2eRoutes = map[string]struct {
	parent  string
	options map[string]any
}{
	"ocr-frame": {parent: "scenes"},
	"keywords":  {parent: "stt", options: map[string]any{"keywords": e2eKeywords}},
}

// e2eKeywords are the phrases the keywords engine spots in stt's
// transcript: in the first and second sentences.
var e2eKeywords = []any{"tomorrow morning", "weather"}

// builtins lists the built-in engines of GET /engines, every one
// available, each either reading media or routed from a parent.
func builtins(t *testing.T, p *weirProc) []e2eEngine {
	t.Helper()
	var list struct {
		Items []e2eEngine `json:"items"`
	}
	if code := p.api(t, http.MethodGet, "/engines", nil, &list); code != http.StatusOK {
		t.Fatalf("GET /engines: %d", code)
	}
	var out []e2eEngine
	for _, e := range list.Items {
		if e.Kind != "builtin" {
			continue
		}
		if e.Status != "available" {
			t.Fatalf("built-in engine %s is %s: `make test` installs what every engine needs", e.Name, e.Status)
		}
		if _, routed := e2eRoutes[e.Name]; !e.readsMedia() && !routed {
			t.Fatalf("built-in engine %s reads %v, not media, and the end-to-end test has no route to it: add one to e2eRoutes", e.Name, e.Spec.Inputs)
		}
		out = append(out, e)
	}
	for name := range e2eChecks {
		if !slices.ContainsFunc(out, func(e e2eEngine) bool { return e.Name == name }) {
			t.Fatalf("GET /engines lists no built-in engine %s (it lists %v)", name, out)
		}
	}
	return out
}

// createE2EJob starts the job, in the task DAG form of POST /jobs: the
// title as the adapter's stream; every stream engine on it; 5 s chunks
// for the chunk engines that read media and for the gate; each routed
// engine on its parent's output; 5 s windows and a stall timeout long
// enough that nothing is timed out while the job waits for the gate and
// for the lease.
func createE2EJob(t *testing.T, p *weirProc, vod string, engines []e2eEngine) string {
	t.Helper()
	folder := func(id, mode, typ string) map[string]string {
		return map[string]string{"referenceId": id, "mode": mode, "type": typ}
	}
	var routes []any
	route := func(from, to string) {
		routes = append(routes, map[string]string{"parentIoFolderReferenceId": from, "childIoFolderReferenceId": to})
	}
	tasks := []any{
		map[string]any{"engineId": "adapter", "payload": map[string]string{"vod": vod}, "ioFolders": []any{folder("src", "stream", "output")}},
		map[string]any{"engineId": "chunker", "payload": map[string]string{"duration": "5s"},
			"ioFolders": []any{folder("chunkerIn", "stream", "input"), folder("chunks", "chunk", "output")}},
		map[string]any{"engineId": "aggregator", "payload": map[string]string{"window": "5s", "stall_timeout": "10m"}},
	}
	route("src", "chunkerIn")
	parents := map[string]bool{}
	for _, r := range e2eRoutes {
		parents[r.parent] = true
	}
	add := func(name, mode string, options map[string]any, from string) {
		folders := []any{folder(name+"In", mode, "input")}
		if parents[name] {
			folders = append(folders, folder(name+"Out", "chunk", "output"))
		}
		task := map[string]any{"engineId": name, "ioFolders": folders}
		if options != nil {
			task["payload"] = options
		}
		tasks = append(tasks, task)
		route(from, name+"In")
	}
	for _, e := range engines {
		r, routed := e2eRoutes[e.Name]
		switch {
		case routed:
			add(e.Name, "chunk", r.options, r.parent+"Out")
		case e.Mode == "stream":
			add(e.Name, "stream", e2eOptions[e.Name], "src")
		default:
			add(e.Name, "chunk", e2eOptions[e.Name], "chunks")
		}
	}
	add("gate", "chunk", nil, "chunks")
	return createJob(t, p, map[string]any{"title": "end to end", "tasks": tasks, "routes": routes})
}

// killAtTheGate waits until the gate holds its chunk and every window
// before that chunk is out (and no later one can be), and returns the
// windows stored then and the held chunk's start.
func killAtTheGate(t *testing.T, p *weirProc, gate *gateEngine, job string) ([]e2eWindow, int64) {
	t.Helper()
	var windows []e2eWindow
	var held int64
	waitUntil(t, 3*time.Minute, "the gate to hold a chunk and the windows before it to be out", func() bool {
		if held = gate.heldStart(); held < 0 {
			return false
		}
		windows = allWindows(t, p, job)
		return int64(len(windows)) >= held/e2eWindowMs
	})
	if int64(len(windows)) != held/e2eWindowMs || held/e2eWindowMs < 1 {
		t.Fatalf("%d windows out while the gate holds its chunk from %d ms; want the %d before it", len(windows), held, held/e2eWindowMs)
	}
	if v, _ := getE2EJob(t, p, job); v.Status != "running" {
		t.Fatalf("job %s is %s at the kill, want running", job, v.Status)
	}
	t.Logf("killing %s (pid %d) with the gate holding its chunk from %d ms and %d windows out", p.name, p.pid(), held, len(windows))
	return windows, held
}

// e2eJobView is the part of GET /jobs/{id} the test reads.
type e2eJobView struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Engines []struct {
		Name    string `json:"name"`
		Status  string `json:"status"`
		Total   int64  `json:"total"`
		Queued  int64  `json:"queued"`
		Sent    int64  `json:"sent"`
		Done    int64  `json:"done"`
		Dropped int64  `json:"dropped"`
		Failed  int64  `json:"failed"`
	} `json:"engines"`
}

func getE2EJob(t *testing.T, p *weirProc, id string) (e2eJobView, bool) {
	t.Helper()
	var v e2eJobView
	code, _ := httpJSON(t, http.MethodGet, "http://"+p.http+"/jobs/"+id, "", nil, &v)
	return v, code == http.StatusOK
}

// waitE2EJob waits for the job to end and fails the test unless it
// completed.
func waitE2EJob(t *testing.T, p *weirProc, id string, d time.Duration) e2eJobView {
	t.Helper()
	var v e2eJobView
	waitUntil(t, d, "job "+id+" to end", func() bool {
		var ok bool
		v, ok = getE2EJob(t, p, id)
		return ok && (v.Status == "complete" || v.Status == "failed" || v.Status == "cancelled")
	})
	if v.Status != "complete" {
		t.Fatalf("job %s ended %s: %s", id, v.Status, v.Error)
	}
	return v
}

// e2eTag, e2eSeries, e2eResult and e2eWindow are what the test reads of
// results (vtn-standard documents) and windows.
type e2eTag struct {
	Key   string  `json:"key"`
	Value string  `json:"value"`
	Score float64 `json:"score"`
}

type e2eSeries struct {
	StartTimeMs int64    `json:"startTimeMs"`
	StopTimeMs  int64    `json:"stopTimeMs"`
	Tags        []e2eTag `json:"tags"`
	Words       []struct {
		Word string `json:"word"`
	} `json:"words"`
	Object *struct {
		Type       string  `json:"type"`
		Text       string  `json:"text"`
		Label      string  `json:"label"`
		EntityID   string  `json:"entityId"`
		URI        string  `json:"uri"`
		Confidence float64 `json:"confidence"`
	} `json:"object"`
}

// tag is the value of the series' tag key; ok is false without one.
func (s e2eSeries) tag(key string) (string, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

func (s e2eSeries) text() string {
	var words []string
	for _, w := range s.Words {
		words = append(words, w.Word)
	}
	return strings.Join(words, " ")
}

type e2eResult struct {
	Engine    string `json:"engine"`
	ChunkUUID string `json:"chunk_uuid"`
	StartMs   int64  `json:"start_ms"`
	EndMs     int64  `json:"end_ms"`
	Rev       int64  `json:"rev"`
	Content   struct {
		Series []e2eSeries `json:"series"`
		Tags   []e2eTag    `json:"tags"`
	} `json:"content"`
}

// key names one stored result: an engine's output for one chunk and time.
func (r e2eResult) key() string {
	return fmt.Sprintf("%s %s %d-%d rev %d", r.Engine, r.ChunkUUID, r.StartMs, r.EndMs, r.Rev)
}

type e2eWindow struct {
	StartMs   int64       `json:"start_ms"`
	EndMs     int64       `json:"end_ms"`
	Seq       int64       `json:"seq"`
	Status    string      `json:"status"`
	Missing   []string    `json:"missing"`
	Results   []e2eResult `json:"results"`
	Late      []e2eResult `json:"late"`
	EmittedAt string      `json:"emitted_at"`
}

// allResults reads every result of the job, page by page.
func allResults(t *testing.T, p *weirProc, job string) []e2eResult {
	t.Helper()
	return allPages[e2eResult](t, p, "/jobs/"+job+"/results?limit=1000")
}

// allWindows reads every stored window of the job, page by page.
func allWindows(t *testing.T, p *weirProc, job string) []e2eWindow {
	t.Helper()
	return allPages[e2eWindow](t, p, "/jobs/"+job+"/windows?limit=1000")
}

func allPages[T any](t *testing.T, p *weirProc, path string) []T {
	t.Helper()
	var all []T
	cursor := ""
	for range 100 {
		var page struct {
			Items []T    `json:"items"`
			Next  string `json:"next_cursor"`
		}
		target := path
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		if code := p.api(t, http.MethodGet, target, nil, &page); code != http.StatusOK {
			t.Fatalf("GET %s: %d", target, code)
		}
		all = append(all, page.Items...)
		if cursor = page.Next; cursor == "" {
			return all
		}
	}
	t.Fatalf("GET %s: more than 100 pages", path)
	return nil
}

// checkWindows checks the stored windows: seq 0..n-1 in order, each
// [seq·w, (seq+1)·w), complete, from the clip's start past its end; those
// stored before the kill unchanged; every result once in each window it
// overlaps and nothing else; no late results.
func checkWindows(t *testing.T, windows, before []e2eWindow, results []e2eResult) {
	t.Helper()
	for i, w := range windows {
		if w.Seq != int64(i) || w.StartMs != int64(i)*e2eWindowMs || w.EndMs != w.StartMs+e2eWindowMs {
			t.Fatalf("window %d is seq %d [%d, %d), want seq %d [%d, %d)", i, w.Seq, w.StartMs, w.EndMs, i, int64(i)*e2eWindowMs, int64(i+1)*e2eWindowMs)
		}
		if w.Status != "complete" || len(w.Missing) > 0 || len(w.Late) > 0 {
			t.Errorf("window %d: %s, missing %v, %d late results; want complete, none late", i, w.Status, w.Missing, len(w.Late))
		}
	}
	if n := len(windows); n == 0 || windows[n-1].EndMs < e2eClipMs || windows[n-1].StartMs > e2eClipMs {
		t.Fatalf("%d windows, want [0, %d) covered and nothing past its end's window", n, e2eClipMs)
	}
	for i, b := range before {
		if w := windows[i]; w.EmittedAt != b.EmittedAt || len(w.Results) != len(b.Results) {
			t.Errorf("window %d stored before the kill changed: emitted %s with %d results, now %s with %d", i, b.EmittedAt, len(b.Results), w.EmittedAt, len(w.Results))
		}
	}
	stored := map[string]e2eResult{}
	for _, r := range results {
		k := r.key()
		if _, dup := stored[k]; dup {
			t.Errorf("result %s stored twice", k)
		}
		stored[k] = r
	}
	checkNoTwin(t, results)
	for _, w := range windows {
		in := map[string]int{}
		for _, r := range w.Results {
			in[r.key()]++
			if _, ok := stored[r.key()]; !ok {
				t.Errorf("window %d holds %s, which is not a stored result", w.Seq, r.key())
			}
		}
		for k, r := range stored {
			want := 0
			if overlaps(r, w) {
				want = 1
			}
			if in[k] != want {
				t.Errorf("window %d [%d, %d) holds %s %d times, want %d", w.Seq, w.StartMs, w.EndMs, k, in[k], want)
			}
		}
	}
	t.Logf("%d windows, %d results, %d windows stored before the kill", len(windows), len(results), len(before))
}

// checkNoTwin fails when an engine has two results over the same time:
// a stream engine run again after the kill must not add its findings
// twice under another name.
func checkNoTwin(t *testing.T, results []e2eResult) {
	t.Helper()
	seen := map[string]string{}
	for _, r := range results {
		k := fmt.Sprintf("%s %d-%d", r.Engine, r.StartMs, r.EndMs)
		if other, ok := seen[k]; ok {
			t.Errorf("engine %s has two results over [%d, %d]: %s and %s", r.Engine, r.StartMs, r.EndMs, other, r.key())
		}
		seen[k] = r.key()
	}
}

// overlaps is the aggregator's rule: an output overlaps a window when it
// starts before the window's end and ends after its start; a zero-length
// output belongs to the window holding it.
func overlaps(r e2eResult, w e2eWindow) bool {
	if r.StartMs == r.EndMs {
		return w.StartMs <= r.StartMs && r.StartMs < w.EndMs
	}
	return r.StartMs < w.EndMs && r.EndMs > w.StartMs
}

// checkWindowsTopic reads windows_<job> to its end: every stored window
// was produced once, in order.
func checkWindowsTopic(t *testing.T, dir, kafka, job string, stored []e2eWindow) {
	t.Helper()
	client, err := bus.NewClient([]string{kafka}, busLogin(t, filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var seqs []int64
	err = client.Consume(ctxFor(t, time.Minute), bus.ConsumeOptions{Topics: []string{protocol.WindowsTopic(job)},
		FromBeginning: true, UntilEOF: true, MaxRecordBytes: protocol.MaxWindowBytes + 64<<10,
		Handler: func(_ context.Context, rec *bus.Record) error {
			msg, err := protocol.Decode(rec.Key, rec.Value)
			if err != nil {
				return fmt.Errorf("a record of %s: %w", protocol.WindowsTopic(job), err)
			}
			if w, ok := msg.(*protocol.ResultWindow); ok {
				if w.WindowStartMs != w.Seq*e2eWindowMs || w.Status != protocol.WindowComplete {
					return fmt.Errorf("window seq %d at %d ms, %s", w.Seq, w.WindowStartMs, w.Status)
				}
				seqs = append(seqs, w.Seq)
			}
			return nil
		}})
	if err != nil {
		t.Fatalf("read %s: %v", protocol.WindowsTopic(job), err)
	}
	if len(seqs) != len(stored) {
		t.Fatalf("%s holds %d windows (seq %v), %d are stored", protocol.WindowsTopic(job), len(seqs), seqs, len(stored))
	}
	for i, s := range seqs {
		if s != int64(i) {
			t.Fatalf("%s holds the windows seq %v, want 0..%d once each, in order", protocol.WindowsTopic(job), seqs, len(stored)-1)
		}
	}
}

// checkGate checks the gate engine's results: one per chunk, each its own
// chunk's, contiguous over the clip; no malformed request; no chunk before
// the held one that was done before the kill was sent to it again. (The
// chunks after it were answered too, but the engine host's consumer
// commits a partition's offsets only up to its first unanswered record,
// the held chunk: after a crash the group delivers them again, as
// internal/bus documents, and their results are stored once.)
func checkGate(t *testing.T, gate *gateEngine, results []e2eResult, doneBefore map[string]int64, held int64) {
	t.Helper()
	calls, problems := gate.callsOf()
	if len(problems) > 0 {
		t.Fatalf("the gate engine got malformed requests: %v", problems)
	}
	if len(doneBefore) < int(held/5000) {
		t.Errorf("%d gate chunks done at the kill, want at least the %d before the held one", len(doneBefore), held/5000)
	}
	for u, start := range doneBefore {
		if start < held && calls[u] != 1 {
			t.Errorf("gate chunk %s, done before the kill, was sent to the engine %d times (calls by chunk start: %v)", u, calls[u], gate.callsByStart())
		}
	}
	var end int64
	n := 0
	for _, r := range results {
		if r.Engine != "gate" {
			continue
		}
		n++
		if len(r.Content.Series) != 1 || r.Content.Series[0].Tags[0].Value != r.ChunkUUID || r.StartMs != end {
			t.Fatalf("gate result %d [%d, %d) of chunk %s: %+v; want its own chunk's tag, starting at %d", n, r.StartMs, r.EndMs, r.ChunkUUID, r.Content, end)
		}
		end = r.EndMs
		if calls[r.ChunkUUID] == 0 {
			t.Fatalf("gate chunk %s has a result but the engine never saw it", r.ChunkUUID)
		}
	}
	if end < e2eClipMs-100 || n != e2eClipMs/5000 {
		t.Fatalf("%d gate results up to %d ms, want %d chunks of 5 s over the clip", n, end, e2eClipMs/5000)
	}
	t.Logf("gate engine calls per chunk start (ms): %v", gate.callsByStart())
}

// logResultsTopic logs the job's results topic as a timeline (seconds from
// its first record): each task's bounds, heartbeats, outputs and chunk
// answers, so a failure shows which engine held the job up and when.
func logResultsTopic(t *testing.T, dir, kafka, job string) {
	t.Helper()
	client, err := bus.NewClient([]string{kafka}, busLogin(t, filepath.Join(dir, "data")))
	if err != nil {
		t.Logf("the results topic: %v", err)
		return
	}
	defer client.Close()
	var b strings.Builder
	var first int64
	err = client.Consume(ctxFor(t, time.Minute), bus.ConsumeOptions{Topics: []string{protocol.ResultsTopic(job)},
		FromBeginning: true, UntilEOF: true, MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
		Handler: func(_ context.Context, rec *bus.Record) error {
			msg, err := protocol.Decode(rec.Key, rec.Value)
			if err != nil {
				return nil
			}
			at := rec.Timestamp.UnixMilli()
			if first == 0 {
				first = at
			}
			fmt.Fprintf(&b, "%7.2f %s: %s\n", float64(at-first)/1000, rec.Key, describeRecord(msg))
			return nil
		}})
	if err != nil {
		t.Logf("the results topic: %v", err)
	}
	t.Logf("the results topic of %s:\n%s", job, b.String())
}

func describeRecord(msg protocol.Message) string {
	switch m := msg.(type) {
	case *protocol.TimestampBound:
		return fmt.Sprintf("bound %d done %v", m.TimestampBoundMs, m.Done)
	case *protocol.EngineHeartbeat:
		bound := "-"
		if m.TimestampBoundMs != nil {
			bound = fmt.Sprint(*m.TimestampBoundMs)
		}
		return fmt.Sprintf("heartbeat %s %s bound %s", m.EngineInstanceID, m.Status, bound)
	case *protocol.EngineOutput:
		return fmt.Sprintf("output [%d, %d] of %s", m.StartOffsetMs, m.EndOffsetMs, m.ChunkUUID)
	case *protocol.ChunkProcessedStatus:
		return fmt.Sprintf("chunk %s %s %s%s", m.ChunkUUID, m.Status, m.ErrorMsg, m.InfoMsg)
	}
	return fmt.Sprintf("%T", msg)
}
