package examples_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/chunker"
	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/protocol"
)

// These tests run the example engines end to end against a real `weir
// serve`: a job made with the CLI cuts a source into frames, the engines
// answer over Kafka (people) and over HTTP (faces), and the results are
// read back from the REST API and the job's results topic.

// kcatStreamTopic is the stream topic the third-party adapter writes, named
// as in Veritone's documentation.
const kcatStreamTopic = "stream_00000012"

// kcatPieceSize is the largest raw_stream record written with kcat, the
// stream_init's chunkSize. librdkafka (kcat) refuses messages over its
// message.max.bytes, 1,000,000 bytes by default, below the protocol's
// 1 MiB bound.
const kcatPieceSize = 256 << 10

// kcatStartMs puts the stream on the TDO timeline 20 s in
// (relativeStartOffsetMS), so results at the stream's own times are
// caught.
const kcatStartMs = 20000

// writeStreamWithKcat writes media to topic as a third-party adapter
// would, with kcat alone: a stream_init, the file's bytes as raw_stream
// records (each piece a file of its own, which kcat -P sends as one
// message, bytes untouched), and a stream_eof with the length and MD5 of
// the bytes. It returns the number of raw_stream records.
func writeStreamWithKcat(t *testing.T, ctx context.Context, conf, topic, media string, init map[string]any) int {
	t.Helper()
	requireTool(t, "kcat")
	data, err := os.ReadFile(media)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var pieces []string
	for i := 0; i*kcatPieceSize < len(data); i++ {
		p := filepath.Join(dir, fmt.Sprintf("piece-%04d", i))
		if err := os.WriteFile(p, data[i*kcatPieceSize:min((i+1)*kcatPieceSize, len(data))], 0o600); err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, p)
	}
	sum := md5.Sum(data)
	eof := map[string]any{"type": "stream_eof", "timestampUTC": time.Now().UnixMilli(),
		"contentLength": len(data), "md5Checksum": hex.EncodeToString(sum[:])}
	kcatProduce(t, ctx, conf, topic, "stream_init", writeJSON(t, dir, "init.json", init))
	kcatProduce(t, ctx, conf, topic, "raw_stream", pieces...)
	kcatProduce(t, ctx, conf, topic, "stream_eof", writeJSON(t, dir, "eof.json", eof))
	return len(pieces)
}

// kcatProduce sends each file as one message with key to partition 0 of
// topic: kcat -F CONF -P -t TOPIC -p 0 -k KEY FILE....
func kcatProduce(t *testing.T, ctx context.Context, conf, topic, key string, files ...string) {
	t.Helper()
	args := append([]string{"-F", conf, "-P", "-t", topic, "-p", "0", "-k", key}, files...)
	if out, err := exec.CommandContext(ctx, "kcat", args...).CombinedOutput(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kcatRecord is a record as kcat -C -J prints it.
type kcatRecord struct {
	Offset  int64   `json:"offset"`
	Key     *string `json:"key"`
	Payload *string `json:"payload"`
}

// kcatConsume reads every record of topic with kcat -C -J -e.
func kcatConsume(t *testing.T, ctx context.Context, conf, topic string) []kcatRecord {
	t.Helper()
	out, err := exec.CommandContext(ctx, "kcat", "-F", conf, "-C", "-J", "-e", "-q", "-t", topic).Output()
	if err != nil {
		t.Fatalf("kcat -C -t %s: %v", topic, err)
	}
	var recs []kcatRecord
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat -J line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkKcatStream checks that the topic holds exactly the stream written:
// keys in order, and raw_stream values that concatenate to the file.
func checkKcatStream(t *testing.T, ctx context.Context, conf, topic, media string, pieces int) {
	t.Helper()
	want, err := os.ReadFile(media)
	if err != nil {
		t.Fatal(err)
	}
	// The raw_stream values, printed back to back by kcat -f %s.
	raw, err := exec.CommandContext(ctx, "kcat", "-F", conf, "-C", "-e", "-q", "-t", topic,
		"-o", "1", "-c", fmt.Sprint(pieces), "-f", "%s").Output()
	if err != nil {
		t.Fatalf("kcat -C %s: %v", topic, err)
	}
	if md5.Sum(raw) != md5.Sum(want) {
		t.Fatalf("the raw_stream records of %s hold %d bytes that differ from %s's %d", topic, len(raw), media, len(want))
	}
	recs := kcatConsume(t, ctx, conf, topic)
	if len(recs) != pieces+2 {
		t.Fatalf("%s holds %d records, want stream_init, %d raw_stream and stream_eof", topic, len(recs), pieces)
	}
	for i, r := range recs {
		want := "raw_stream"
		switch i {
		case 0:
			want = "stream_init"
		case len(recs) - 1:
			want = "stream_eof"
		}
		if r.Key == nil || *r.Key != want {
			t.Fatalf("%s record %d has key %v, want %s", topic, i, r.Key, want)
		}
	}
}

// jobAnswers is what the engines wrote to a job's results topic.
type jobAnswers struct {
	outputs    map[string]*protocol.EngineOutput           // by chunkUUID
	statuses   map[string][]*protocol.ChunkProcessedStatus // by chunkUUID
	heartbeats int
}

// readJobAnswers reads results_<jobID> with kcat and decodes every record
// with weir's protocol package.
func readJobAnswers(t *testing.T, ctx context.Context, conf, jobID string) *jobAnswers {
	t.Helper()
	a := &jobAnswers{outputs: map[string]*protocol.EngineOutput{}, statuses: map[string][]*protocol.ChunkProcessedStatus{}}
	bounds := map[string]*protocol.TimestampBound{}
	for _, r := range kcatConsume(t, ctx, conf, protocol.ResultsTopic(jobID)) {
		if r.Key == nil || r.Payload == nil {
			t.Fatalf("results record @%d has no key or no value", r.Offset)
		}
		msg, err := protocol.Decode([]byte(*r.Key), []byte(*r.Payload))
		if err != nil {
			t.Fatalf("results record %s@%d: %v\n%s", *r.Key, r.Offset, err, *r.Payload)
		}
		switch m := msg.(type) {
		case *protocol.EngineOutput:
			if _, dup := a.outputs[m.ChunkUUID]; dup {
				t.Errorf("two engine_outputs for chunk %s", m.ChunkUUID)
			}
			a.outputs[m.ChunkUUID] = m
		case *protocol.ChunkProcessedStatus:
			a.statuses[m.ChunkUUID] = append(a.statuses[m.ChunkUUID], m)
		case *protocol.EngineHeartbeat:
			a.heartbeats++
		case *protocol.TimestampBound:
			checkBound(t, bounds, m)
		default:
			t.Errorf("unexpected %s on %s", msg.MessageType(), protocol.ResultsTopic(jobID))
		}
	}
	for task, b := range bounds {
		if !b.Done {
			t.Errorf("task %s: the last timestamp_bound (%d ms) is not done, though the job ended", task, b.TimestampBoundMs)
		}
	}
	return a
}

// checkBound checks that a task's timestamp bounds never move back and
// that nothing follows its done bound, and keeps the last one.
func checkBound(t *testing.T, last map[string]*protocol.TimestampBound, m *protocol.TimestampBound) {
	t.Helper()
	if prev := last[m.TaskID]; prev != nil && (prev.Done || m.TimestampBoundMs < prev.TimestampBoundMs) {
		t.Errorf("task %s: timestamp_bound %d ms (done %v) after %d ms (done %v)", m.TaskID, m.TimestampBoundMs, m.Done, prev.TimestampBoundMs, prev.Done)
	}
	last[m.TaskID] = m
}

// checkProgress checks a finished job's view: complete, and every chunk
// of its one engine done.
func checkProgress(t *testing.T, v jobs.View, engine string, chunks int) {
	t.Helper()
	if v.Status != "complete" || len(v.Engines) != 1 {
		t.Fatalf("job %s: status %s (%s), %d engines; want complete with %s", v.ID, v.Status, v.Error, len(v.Engines), engine)
	}
	e := v.Engines[0]
	if e.Name != engine || e.Total != int64(chunks) || e.Done != e.Total || e.Queued+e.Sent+e.Ignored+e.Dropped+e.Failed != 0 {
		t.Errorf("job %s: progress %+v, want %d of %d chunks done and none queued, sent, ignored, dropped or failed",
			v.ID, e, chunks, chunks)
	}
	if e.LastHeartbeat == nil || len(e.Instances) == 0 {
		t.Errorf("job %s: no heartbeat or instance recorded for %s: %+v", v.ID, engine, e)
	}
}

// TestPeopleEngineThroughAJobOnAKcatStream runs the people engine (Python
// over Kafka) on a stream that a third party wrote to a topic with kcat
// alone: OpenCV's sample video vtest.avi, as AVI bytes.
func TestPeopleEngineThroughAJobOnAKcatStream(t *testing.T) {
	python := requirePython(t, "cv2", "numpy", "confluent_kafka")
	vtest := opencvSample(t, "vtest.avi")
	frames := framesAtRate(videoFrames(t, vtest), 1)
	ctx := testCtx(t, 3*time.Minute)
	w := startWeir(t)

	last := frames[len(frames)-1]
	pieces := writeStreamWithKcat(t, ctx, w.kcatConf(), kcatStreamTopic, vtest, map[string]any{
		"type": "stream_init", "timestampUTC": time.Now().UnixMilli(), "tdoId": "00000012",
		"relativeStartOffsetMS": kcatStartMs, "durationMS": last.ptsMs + last.durMs,
		"chunkSize": kcatPieceSize, "mimeType": "video/x-msvideo", "ffmpegFormat": "avi"})
	checkKcatStream(t, ctx, w.kcatConf(), kcatStreamTopic, vtest, pieces)

	manifest, err := os.ReadFile(filepath.Join("people-kafka", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w.registerEngine(t, manifest)
	conf := filepath.Join(t.TempDir(), "people.conf")
	w.mustCLI(t, ctx, "bus", "users", "add", "people", "--engine", "people", "--data", w.data, "--output", conf)
	startEngine(t, nil, nil, python, filepath.Join("people-kafka", "people_engine.py"), "--config", conf)

	out := w.mustCLI(t, ctx, "jobs", "create", "--server", w.url, "--topic", kcatStreamTopic,
		"--engine", "people", "--frame-rate", "1", "--wait")
	id := createdJob(t, out)
	if !strings.Contains(out, "complete") {
		t.Errorf("weir jobs create --wait does not say the job completed:\n%s", out)
	}
	checkProgress(t, w.job(t, id), "people", len(frames))

	// The REST API serves one stored output per frame, in time order,
	// at the frame's time on the TDO timeline.
	task := id + "-people"
	res := w.results(t, id)
	if len(res) != len(frames) {
		t.Fatalf("GET /jobs/%s/results: %d results, want one per frame (%d)", id, len(res), len(frames))
	}
	docs := make([]*protocol.Document, len(res))
	for i, r := range res {
		uuid := chunker.UUID(id, chunker.KindFrame, int64(i))
		if r.Engine != "people" || r.TaskID != task || r.ChunkIndex != int64(i) || r.ChunkUUID != uuid || r.OutputType != "object" {
			t.Errorf("result %d: %s %s chunk %d %s %s, want people %s chunk %d %s object",
				i, r.Engine, r.TaskID, r.ChunkIndex, r.ChunkUUID, r.OutputType, task, i, uuid)
		}
		checkFrameTimes(t, fmt.Sprintf("result %d", i), r, kcatStartMs+frames[i].ptsMs, 1)
		docs[i] = resultDoc(t, i, r)
		for j, s := range docs[i].Series {
			if s.StartTimeMs != r.StartMs || s.StopTimeMs != r.EndMs || s.Object == nil || s.Object.Label != "person" {
				t.Errorf("result %d series %d: %+v, want a person at %d..%d ms", i, j, s, r.StartMs, r.EndMs)
				continue
			}
			checkPoly(t, fmt.Sprintf("result %d series %d", i, j), s.Object.BoundingPoly)
		}
	}

	// On the results topic, every frame was answered SUCCESS once, after
	// an engine_output of people at those times, the one the API serves.
	answers := readJobAnswers(t, ctx, w.kcatConf(), id)
	for i, r := range res {
		what := fmt.Sprintf("frame %d (%d ms)", i, frames[i].ptsMs)
		st := answers.statuses[r.ChunkUUID]
		if len(st) != 1 || st[0].Status != protocol.ChunkSuccess || st[0].TaskID != task {
			t.Errorf("%s: chunk_processed_status %v, want one SUCCESS of task %s", what, st, task)
		}
		c := &protocol.MediaChunk{Header: protocol.Header{TaskID: task, JobID: id, TDOID: id},
			StartOffsetMs: r.StartMs, EndOffsetMs: r.EndMs, Width: 768, Height: 576}
		out := answers.outputs[r.ChunkUUID]
		checkPeopleOutput(t, what, c, out)
		if out == nil {
			continue
		}
		if doc, err := out.Document(); err != nil || len(doc.Series) != len(docs[i].Series) {
			t.Errorf("%s: the engine_output has %d series (%v), the API's result %d", what, len(doc.Series), err, len(docs[i].Series))
		}
	}
	if len(answers.statuses) != len(frames) || len(answers.outputs) != len(frames) {
		t.Errorf("results topic: statuses for %d chunks and %d engine_outputs, want %d of each",
			len(answers.statuses), len(answers.outputs), len(frames))
	}
	if answers.heartbeats == 0 {
		t.Errorf("the people engine sent no engine_heartbeat to the results topic")
	}
}

// checkFrameTimes checks a frame result's times: it starts at the frame's
// presentation time on the TDO timeline, start, and ends after it, at the
// latest when the next frame at rate frames per second starts.
func checkFrameTimes(t *testing.T, what string, r jobResult, start int64, rate float64) {
	t.Helper()
	if r.StartMs != start || r.EndMs <= start || float64(r.EndMs-start) > 1000/rate {
		t.Errorf("%s: %d..%d ms, want the frame's %d ms to at most %.0f ms later", what, r.StartMs, r.EndMs, start, 1000/rate)
	}
}

func resultDoc(t *testing.T, i int, r jobResult) *protocol.Document {
	t.Helper()
	var doc protocol.Document
	if err := json.Unmarshal(r.Content, &doc); err != nil {
		t.Fatalf("result %d: content: %v", i, err)
	}
	return &doc
}

// TestFacesEngineThroughAJobOnAVOD runs the faces engine (Python over
// HTTP, hosted by weir's engines role) on a VOD upload: messi5.jpg looped
// into a 4 s H.264 clip.
func TestFacesEngineThroughAJobOnAVOD(t *testing.T) {
	base := startFaces(t)
	messi := opencvSample(t, "messi5.jpg")
	ctx := testCtx(t, 2*time.Minute)
	w := startWeir(t)

	// An ordinary MP4, its index (moov) at the end: the runner chunks a
	// VOD's original as a file.
	clip := filepath.Join(t.TempDir(), "messi.mp4")
	if out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-loop", "1", "-i", messi,
		"-t", "4", "-r", "25", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	frames := framesAtRate(videoFrames(t, clip), 1)

	manifest, err := os.ReadFile(filepath.Join("faces-http", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "url: http://127.0.0.1:8891"
	if !strings.Contains(string(manifest), shipped) {
		t.Fatalf("faces-http/manifest.yaml has no %q to point at the engine", shipped)
	}
	w.registerEngine(t, []byte(strings.Replace(string(manifest), shipped, "url: "+base, 1)))
	waitEngineAvailable(t, w, "faces")

	out := w.mustCLI(t, ctx, "vod", "upload", clip, "--server", w.url)
	vod := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "vod-") {
			vod = f
			break
		}
	}
	if vod == "" {
		t.Fatalf("no VOD id in the output of weir vod upload:\n%s", out)
	}

	out = w.mustCLI(t, ctx, "jobs", "create", "--server", w.url, "--vod", vod,
		"--engine", "faces", "--frame-rate", "1", "--wait")
	id := createdJob(t, out)
	checkProgress(t, w.job(t, id), "faces", len(frames))

	res := w.results(t, id)
	if len(res) != len(frames) {
		t.Fatalf("GET /jobs/%s/results: %d results, want one per frame (%d): a face in each", id, len(res), len(frames))
	}
	for i, r := range res {
		if r.Engine != "faces" || r.ChunkIndex != int64(i) || r.OutputType != "face" {
			t.Errorf("result %d: %s chunk %d %s, want faces chunk %d face", i, r.Engine, r.ChunkIndex, r.OutputType, i)
		}
		// Times on the recording's timeline: the frame's own.
		checkFrameTimes(t, fmt.Sprintf("result %d", i), r, frames[i].ptsMs, 1)
		doc := resultDoc(t, i, r)
		best := 0.0
		for j, s := range doc.Series {
			what := fmt.Sprintf("result %d series %d", i, j)
			if s.StartTimeMs != r.StartMs || s.StopTimeMs != r.EndMs || s.Object == nil || s.Object.Type != "face" {
				t.Errorf("%s: %+v, want a face at %d..%d ms", what, s, r.StartMs, r.EndMs)
				continue
			}
			x0, y0, x1, y1 := checkPoly(t, what, s.Object.BoundingPoly)
			best = max(best, overlap([4]float64{x0, y0, x1, y1}, messiFace))
		}
		if best < 0.5 {
			t.Errorf("result %d (%d ms): no face overlaps messi's %v by half (best %.2f): %s", i, r.StartMs, messiFace, best, r.Content)
		}
	}
}

// waitEngineAvailable waits until GET /engines/{name} says the engine is
// available (an HTTP engine whose /ready answered 200).
func waitEngineAvailable(t *testing.T, w *weirServer, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var e struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		}
		code, body := w.api(t, http.MethodGet, "/engines/"+name, "", nil, &e)
		if code == http.StatusOK && e.Status == "available" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine %s not available within 30 s: %d %s", name, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestJobWithBadEnginesOrOptionsIsRefused checks that `weir jobs create`
// fails, showing the server's 422 and the member at fault, for an unknown
// engine, an option out of range and an option the engine does not have.
func TestJobWithBadEnginesOrOptionsIsRefused(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	w := startWeir(t)
	manifest, err := os.ReadFile(filepath.Join("people-kafka", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w.registerEngine(t, manifest)
	cases := []struct{ engine, field, problem string }{
		{"nosuch", "engines[0].name", "no engine is called nosuch"},
		{"people,scale=5", "engines[0].options.scale", "at most 2"},
		{"people,bogus=1", "engines[0].options.bogus", "no such option"},
	}
	for _, c := range cases {
		out, errOut, ok := w.cli(t, ctx, "jobs", "create", "--server", w.url, "--topic", kcatStreamTopic, "--engine", c.engine)
		if ok {
			t.Errorf("--engine %s: exit status 0, want a failure\n%s", c.engine, out)
			continue
		}
		for _, want := range []string{"422", c.field, c.problem} {
			if !strings.Contains(errOut, want) {
				t.Errorf("--engine %s: the error does not say %q:\n%s", c.engine, want, errOut)
			}
		}
	}
	var list struct {
		Items []jobs.View `json:"items"`
	}
	if code, body := w.api(t, http.MethodGet, "/jobs", "", nil, &list); code != http.StatusOK || len(list.Items) != 0 {
		t.Errorf("GET /jobs after refused requests: %d %s, want no job", code, body)
	}
}
