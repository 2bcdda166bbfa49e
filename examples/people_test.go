package examples_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

const (
	peopleJob      = "job-test"
	peopleTask     = "job-test-people"
	peopleTDO      = "stream-vtest"
	peopleInstance = "people-test-1"
	peopleToken    = "test-api-token"
	// peopleBaseMs puts the frames on a TDO timeline that does not start at
	// 0, so an engine that reports times from the frame's start is caught.
	peopleBaseMs = 20000
)

// peopleBus is an authenticating embedded broker, a client logged in as its
// superuser, and the librdkafka login file of the engine's own user.
type peopleBus struct {
	broker *bus.Broker
	su     *bus.Client
	conf   string
}

func startPeopleBus(t *testing.T, ctx context.Context) *peopleBus {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithAuthentication(), bus.WithLogger(quiet))
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Broker.Close: %v", err)
		}
	})
	su, err := bus.NewClient([]string{b.Addr()}, bus.WithSASL(b.Superuser()), bus.WithLogger(quiet))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(su.Close)
	// The engine gets exactly an engine's grants, as `weir bus users add
	// people-engine --engine people` gives them.
	creds := bus.Credentials{Mechanism: bus.MechanismSCRAMSHA256, User: "people-engine", Password: bus.RandomPassword()}
	if err := su.AddUser(ctx, creds, bus.EngineGrants("people")); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	if err := su.CreateTopic(ctx, protocol.ChunkTopic("people"), 1); err != nil {
		t.Fatal(err)
	}
	conf := writeTemp(t, "people-engine.conf", []byte("# written like `weir bus users add --output`\n"+bus.ClientProperties(creds, b.Addr())))
	return &peopleBus{broker: b, su: su, conf: conf}
}

// startPeople starts people_engine.py with the engine's login file.
func startPeople(t *testing.T, pb *peopleBus, python, instance string) *process {
	t.Helper()
	return startEngine(t, []string{"WEIR_API_TOKEN=" + peopleToken}, nil, python,
		filepath.Join("people-kafka", "people_engine.py"), "--config", pb.conf, "--instance-id", instance)
}

// produce writes records to the engine's work topic, in order.
func (pb *peopleBus) produce(t *testing.T, ctx context.Context, recs ...*bus.Record) {
	t.Helper()
	for _, r := range recs {
		r.Topic = protocol.ChunkTopic("people")
		if err := pb.su.Produce(ctx, r); err != nil {
			t.Fatalf("produce %s: %v", r.Key, err)
		}
	}
}

func frameChunk(index int64, at time.Duration) *protocol.MediaChunk {
	start := peopleBaseMs + at.Milliseconds()
	return &protocol.MediaChunk{
		Header:        protocol.Header{TaskID: peopleTask, TDOID: peopleTDO, JobID: peopleJob},
		MimeType:      "image/jpeg",
		ChunkIndex:    index,
		StartOffsetMs: start,
		EndOffsetMs:   start + 100, // one frame of vtest.avi's 10 fps
		Width:         768,
		Height:        576,
		ChunkUUID:     fmt.Sprintf("6f1d3c2a-0000-4000-8000-%012d", index),
	}
}

func inline(c *protocol.MediaChunk, data []byte) *protocol.MediaChunk {
	c.Content = base64.StdEncoding.EncodeToString(data)
	c.ContentEncoding = protocol.ContentBase64
	return c
}

func record(t *testing.T, msg protocol.Message) *bus.Record {
	t.Helper()
	key, value, err := protocol.Encode(msg)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return &bus.Record{Key: key, Value: value}
}

// results is what the engine wrote to the job's results topic, decoded.
type results struct {
	outputs    map[string]*protocol.EngineOutput         // by chunkUUID
	statuses   map[string]*protocol.ChunkProcessedStatus // by chunkUUID
	heartbeats []*protocol.EngineHeartbeat
}

// readResults reads the results topic and checks every record: it decodes
// and validates as a protocol message and is keyed as protocol.KeyFor says.
func readResults(t *testing.T, ctx context.Context, su *bus.Client) *results {
	t.Helper()
	res := &results{outputs: map[string]*protocol.EngineOutput{}, statuses: map[string]*protocol.ChunkProcessedStatus{}}
	recs, err := su.ReadAll(ctx, protocol.ResultsTopic(peopleJob), 0)
	if err != nil {
		return res // not created yet
	}
	for _, r := range recs {
		msg, err := protocol.Decode(r.Key, r.Value)
		if err != nil {
			t.Fatalf("results record %s@%d does not pass protocol.Decode: %v\n%s", r.Key, r.Offset, err, r.Value)
		}
		if key := protocol.KeyFor(msg); string(r.Key) != key {
			t.Errorf("%s keyed %q, want %q", msg.MessageType(), r.Key, key)
		}
		switch m := msg.(type) {
		case *protocol.EngineOutput:
			if _, dup := res.outputs[m.ChunkUUID]; dup {
				t.Errorf("two engine_outputs for chunk %s", m.ChunkUUID)
			}
			res.outputs[m.ChunkUUID] = m
		case *protocol.ChunkProcessedStatus:
			if _, dup := res.statuses[m.ChunkUUID]; dup {
				t.Errorf("two chunk_processed_status for chunk %s", m.ChunkUUID)
			}
			res.statuses[m.ChunkUUID] = m
		case *protocol.EngineHeartbeat:
			res.heartbeats = append(res.heartbeats, m)
		default:
			t.Errorf("unexpected %s on the results topic", msg.MessageType())
		}
	}
	return res
}

// waitResults polls the results topic until done says it holds enough.
func waitResults(t *testing.T, ctx context.Context, su *bus.Client, engine *process, what string, done func(*results) bool) *results {
	t.Helper()
	for {
		res := readResults(t, ctx, su)
		if done(res) {
			return res
		}
		if !engine.alive() {
			t.Fatalf("the engine exited (%v) before %s", engine.err, what)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s before the deadline: %d outputs, %d statuses %v, %d heartbeats",
				what, len(res.outputs), len(res.statuses), statusList(res), len(res.heartbeats))
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func statusList(res *results) []string {
	var out []string
	for u, s := range res.statuses {
		out = append(out, u[len(u)-2:]+"="+string(s.Status))
	}
	slices.Sort(out)
	return out
}

// chunkServer serves frames as the API serves chunk bytes to engines,
// requiring the bearer token.
func chunkServer(t *testing.T, frames map[string][]byte) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+peopleToken {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		data, ok := frames[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPeopleKafkaEngineAnswersEveryChunkOnTheJobsResultsTopic(t *testing.T) {
	python := requirePython(t, "cv2", "numpy", "confluent_kafka")
	vtest := opencvSample(t, "vtest.avi")
	ctx := testCtx(t, 90*time.Second)
	pb := startPeopleBus(t, ctx)

	frameTimes := []time.Duration{1 * time.Second, 3 * time.Second, 5 * time.Second, 7 * time.Second, 9 * time.Second}
	frames := make([][]byte, len(frameTimes))
	for i, at := range frameTimes {
		frames[i] = frameAt(t, vtest, at)
	}
	srv := chunkServer(t, map[string][]byte{"/jobs/job-test/chunks/frame/000003.jpg": frames[3]})

	var chunks []*protocol.MediaChunk // the ones the engine must answer, in order
	var recs []*bus.Record
	add := func(c *protocol.MediaChunk) {
		chunks = append(chunks, c)
		recs = append(recs, record(t, c))
	}
	for i := range 3 {
		add(inline(frameChunk(int64(i), frameTimes[i]), frames[i]))
	}
	cached := frameChunk(3, frameTimes[3])
	cached.CacheURI = srv.URL + "/jobs/job-test/chunks/frame/000003.jpg"
	cached.TaskPayload = json.RawMessage(`{"hit_threshold":0,"scale":1.05,"win_stride":8}`)
	add(cached)
	wav := frameChunk(4, 11*time.Second)
	wav.MimeType = "audio/wav"
	add(inline(wav, []byte("RIFF\x24\x00\x00\x00WAVEfmt ")))
	// Malformed records: not JSON, and a media_chunk without a jobId
	// (nowhere to answer): skipped. A chunk whose content is not base64
	// and one whose cacheURI is missing: answered ERROR.
	recs = append(recs, &bus.Record{Key: []byte("garbage"), Value: []byte("{not json")})
	recs = append(recs, &bus.Record{Key: []byte(peopleTask), Value: []byte(`{"type":"media_chunk","chunkUUID":"no-job","mimeType":"image/jpeg","content":"x"}`)})
	badB64 := record(t, inline(frameChunk(5, 12*time.Second), frames[0]))
	var m map[string]any
	if err := json.Unmarshal(badB64.Value, &m); err != nil {
		t.Fatal(err)
	}
	m["content"] = "@@@ not base64 @@@"
	badB64.Value, _ = json.Marshal(m)
	chunks = append(chunks, frameChunk(5, 12*time.Second))
	recs = append(recs, badB64)
	missing := frameChunk(6, 13*time.Second)
	missing.CacheURI = srv.URL + "/jobs/job-test/chunks/frame/000099.jpg"
	add(missing)
	// The engine is still there for the next chunk.
	add(inline(frameChunk(7, frameTimes[4]), frames[4]))
	pb.produce(t, ctx, recs...)

	engine := startPeople(t, pb, python, peopleInstance)
	res := waitResults(t, ctx, pb.su, engine, "a status for every chunk and a heartbeat", func(r *results) bool {
		return len(r.statuses) >= len(chunks) && len(r.heartbeats) > 0
	})

	wantStatus := map[int64]protocol.ChunkStatus{0: "SUCCESS", 1: "SUCCESS", 2: "SUCCESS", 3: "SUCCESS",
		4: "IGNORED", 5: "ERROR", 6: "ERROR", 7: "SUCCESS"}
	wantMsg := map[int64]string{4: "audio/wav", 5: "base64", 6: "404"}
	for _, c := range chunks {
		st := res.statuses[c.ChunkUUID]
		what := fmt.Sprintf("chunk %d", c.ChunkIndex)
		if st == nil {
			t.Errorf("%s: no chunk_processed_status", what)
			continue
		}
		if st.Status != wantStatus[c.ChunkIndex] || st.TaskID != peopleTask || st.JobID != peopleJob || st.TDOID != peopleTDO {
			t.Errorf("%s: status %+v, want %s for task %s job %s tdo %s", what, st, wantStatus[c.ChunkIndex], peopleTask, peopleJob, peopleTDO)
		}
		if want := wantMsg[c.ChunkIndex]; want != "" && !containsFold(st.ErrorMsg+st.InfoMsg, want) {
			t.Errorf("%s: %s with errorMsg %q infoMsg %q, want a reason naming %q", what, st.Status, st.ErrorMsg, st.InfoMsg, want)
		}
		out := res.outputs[c.ChunkUUID]
		if st.Status != protocol.ChunkSuccess {
			if out != nil {
				t.Errorf("%s: %s, yet an engine_output", what, st.Status)
			}
			continue
		}
		checkPeopleOutput(t, what, c, out)
	}
	if len(res.statuses) != len(chunks) {
		t.Errorf("%d statuses %v, want %d (the records without a jobId cannot be answered)", len(res.statuses), statusList(res), len(chunks))
	}

	hb := res.heartbeats[0]
	if hb.EngineID != "people" || hb.EngineInstanceID != peopleInstance || hb.Count != 1 || hb.Status != protocol.HeartbeatRunning ||
		hb.JobID != peopleJob || hb.TaskID != peopleTask || hb.TDOID != peopleTDO {
		t.Errorf("first heartbeat %+v, want count 1, RUNNING, engine people instance %s, job %s task %s tdo %s",
			hb, peopleInstance, peopleJob, peopleTask, peopleTDO)
	}

	// The offsets are committed once the answers are written: the group's
	// committed offset reaches the end of the work topic.
	committed := func() int64 {
		offs, err := pb.su.Admin().FetchOffsets(ctx, protocol.EngineGroup("people"))
		if err != nil {
			return -1
		}
		return offs[protocol.ChunkTopic("people")][0].At
	}
	for committed() != int64(len(recs)) {
		if ctx.Err() != nil {
			t.Fatalf("group %s committed offset %d, want %d", protocol.EngineGroup("people"), committed(), len(recs))
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("heartbeats every 5 s count up", func(t *testing.T) {
		var sent, written int64 // what every chunk's answers add up to, at least
		for _, f := range frames {
			sent += int64(len(f))
		}
		written = int64(len(chunks) + len(res.outputs))
		// Heartbeats go on for a while after the last chunk, so one comes
		// after the engine has read and written everything.
		res := waitResults(t, ctx, pb.su, engine, "a heartbeat after every answer", func(r *results) bool {
			n := len(r.heartbeats)
			return n >= 2 && r.heartbeats[n-1].BytesRead >= sent && r.heartbeats[n-1].MessagesWritten >= written
		})
		for i := 1; i < len(res.heartbeats); i++ {
			a, b := res.heartbeats[i-1], res.heartbeats[i]
			if b.EngineInstanceID != peopleInstance || b.Count != a.Count+1 || b.UpTime-a.UpTime < 4000 ||
				b.BytesRead < a.BytesRead || b.MessagesWritten < a.MessagesWritten || b.BytesWritten < a.BytesWritten {
				t.Errorf("heartbeats %+v then %+v: want count +1, upTime at least 4 s later, counters not going back", a, b)
			}
		}
		if last := res.heartbeats[len(res.heartbeats)-1]; last.BytesWritten <= 0 || last.Status != protocol.HeartbeatRunning {
			t.Errorf("last heartbeat %+v: want RUNNING with bytesWritten counted", last)
		}
	})

	t.Run("a restarted engine answers only new chunks", func(t *testing.T) {
		engine.stop(t)
		if engine.err != nil {
			t.Errorf("engine exited with %v after SIGTERM, want 0", engine.err)
		}
		next := inline(frameChunk(8, 15*time.Second), frames[2])
		pb.produce(t, ctx, record(t, next))
		again := startPeople(t, pb, python, "people-test-2")
		res := waitResults(t, ctx, pb.su, again, "the new chunk's status", func(r *results) bool { return r.statuses[next.ChunkUUID] != nil })
		if st := res.statuses[next.ChunkUUID]; st.Status != protocol.ChunkSuccess {
			t.Errorf("new chunk: %+v, want SUCCESS", st)
		}
		checkPeopleOutput(t, "new chunk", next, res.outputs[next.ChunkUUID])
		// readResults already failed the test on a second status for any
		// chunk; wait for the new instance's heartbeat to be sure it did
		// not go on to answer old chunks after this one.
		waitResults(t, ctx, pb.su, again, "the new instance's heartbeat", func(r *results) bool {
			return slices.ContainsFunc(r.heartbeats, func(h *protocol.EngineHeartbeat) bool { return h.EngineInstanceID == "people-test-2" })
		})
	})
}

// checkPeopleOutput checks the engine_output answering a frame of
// vtest.avi: people, in boxes within the frame that stand upright, at the
// chunk's times on the TDO timeline.
func checkPeopleOutput(t *testing.T, what string, c *protocol.MediaChunk, out *protocol.EngineOutput) {
	t.Helper()
	if out == nil {
		t.Errorf("%s: SUCCESS but no engine_output; vtest.avi's frames all have people walking", what)
		return
	}
	if out.TaskID != c.TaskID || out.JobID != c.JobID || out.TDOID != c.TDOID || out.OutputType != "object" ||
		out.MimeType != "application/json" || out.StartOffsetMs != c.StartOffsetMs || out.EndOffsetMs != c.EndOffsetMs || out.Rev != 0 {
		t.Errorf("%s: engine_output %+v, want the chunk's ids and times (%d..%d), outputType object, application/json, rev 0",
			what, out.Header, c.StartOffsetMs, c.EndOffsetMs)
	}
	doc, err := out.Document()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(doc.Series) == 0 {
		t.Errorf("%s: engine_output with no series", what)
	}
	for i, s := range doc.Series {
		sw := fmt.Sprintf("%s series[%d]", what, i)
		if s.StartTimeMs != c.StartOffsetMs || s.StopTimeMs != c.EndOffsetMs {
			t.Errorf("%s: %d..%d ms, want the chunk's %d..%d on the TDO timeline", sw, s.StartTimeMs, s.StopTimeMs, c.StartOffsetMs, c.EndOffsetMs)
		}
		o := s.Object
		if o == nil || o.Type != "object" || o.Label != "person" || o.Confidence <= 0 || o.Confidence > 1 {
			t.Errorf("%s: object %+v, want a person with a confidence in (0, 1]", sw, o)
			continue
		}
		x0, y0, x1, y1 := checkPoly(t, sw, o.BoundingPoly)
		// The HOG window is 64x128: a person's box is twice as tall as wide.
		if h, w := (y1-y0)*float64(c.Height), (x1-x0)*float64(c.Width); h < 1.5*w {
			t.Errorf("%s: box %.0fx%.0f px is not upright", sw, w, h)
		}
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func TestPeopleKafkaEngineRetriesAnswersItCouldNotWriteAndCommitsOnlyAfter(t *testing.T) {
	python := requirePython(t, "cv2", "numpy", "confluent_kafka")
	vtest := opencvSample(t, "vtest.avi")
	ctx := testCtx(t, 90*time.Second)
	pb := startPeopleBus(t, ctx)
	// A user that may read its chunks but not yet write results.
	creds := bus.Credentials{Mechanism: bus.MechanismSCRAMSHA256, User: "people-mute", Password: bus.RandomPassword()}
	grants := bus.EngineGrants("people")
	if err := pb.su.AddUser(ctx, creds, bus.Grants{Read: grants.Read, Groups: grants.Groups}); err != nil {
		t.Fatal(err)
	}
	pb.conf = writeTemp(t, "people-mute.conf", []byte(bus.ClientProperties(creds, pb.broker.Addr())))
	c := inline(frameChunk(0, 2*time.Second), frameAt(t, vtest, 2*time.Second))
	pb.produce(t, ctx, record(t, c))
	engine := startPeople(t, pb, python, peopleInstance)

	committed := func() int64 {
		offs, err := pb.su.Admin().FetchOffsets(ctx, protocol.EngineGroup("people"))
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := offs[protocol.ChunkTopic("people")][0]; ok {
			return o.At
		}
		return -1
	}
	// Wait until the engine has tried (its log says so), then check that
	// nothing was committed.
	deadline := time.Now().Add(45 * time.Second)
	for !strings.Contains(engine.output(), "not written") {
		if time.Now().After(deadline) || !engine.alive() {
			t.Fatalf("the engine did not report a failed write within 45 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if at := committed(); at > 0 {
		t.Fatalf("committed offset %d although the answer was never written", at)
	}
	// Granted the write, it answers the same chunk.
	if err := pb.su.AddUser(ctx, creds, bus.Grants{Write: grants.Write}); err != nil {
		t.Fatal(err)
	}
	res := waitResults(t, ctx, pb.su, engine, "the chunk's status once writing is allowed", func(r *results) bool { return r.statuses[c.ChunkUUID] != nil })
	if st := res.statuses[c.ChunkUUID]; st.Status != protocol.ChunkSuccess {
		t.Errorf("status %+v, want SUCCESS", st)
	}
	checkPeopleOutput(t, "chunk", c, res.outputs[c.ChunkUUID])
	for committed() != 1 {
		if ctx.Err() != nil {
			t.Fatalf("committed offset %d, want 1 once the answer is written", committed())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPeopleKafkaEngineNamesResultsTopicsAsProtocolDoes checks the
// engine's copy of protocol.ResultsTopic on job ids that need cleaning up.
func TestPeopleKafkaEngineNamesResultsTopicsAsProtocolDoes(t *testing.T) {
	python := requirePython(t, "cv2", "numpy", "confluent_kafka")
	ids := []string{"job-test", "job-0123456789ab", "a/b c", "jöb:1", strings.Repeat("x", 300), strings.Repeat("é", 200)}
	in, _ := json.Marshal(ids)
	script := "import json, sys; sys.path.insert(0, 'people-kafka'); import people_engine as p; " +
		"print(json.dumps([p.results_topic(i) for i in json.loads(sys.argv[1])]))"
	// -B: importing the engine leaves no __pycache__ in the tree.
	out, err := exec.Command(python, "-B", "-c", script, string(in)).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i, id := range ids {
		if want := protocol.ResultsTopic(id); i >= len(got) || got[i] != want {
			t.Errorf("results topic of %.20q: engine %q, protocol %q", id, got[min(i, len(got)-1)], want)
		}
	}
}
