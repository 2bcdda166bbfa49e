package enginehost_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/enginehost"
	_ "github.com/weir-media/weir/internal/engines" // registers the probe engine
	"github.com/weir-media/weir/protocol"
)

func probeRegistration(t testing.TB) engine.Registration {
	t.Helper()
	reg, ok := engine.Default().Lookup("probe")
	if !ok {
		t.Fatal("the probe engine is not registered")
	}
	return reg
}

// serveChunk serves data over HTTP, as the job runner's cacheURI does,
// and counts the requests.
func serveChunk(t testing.TB, data []byte) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path != "/jobs/job-1/chunks/video/000000.ts" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/mp2t")
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/jobs/job-1/chunks/video/000000.ts", &n
}

// testProbeEndToEnd runs the probe engine in-process on a real MPEG-TS
// chunk fetched from its cacheURI, a chunk of a type it does not read and
// a chunk with options its spec refuses, over b.
func testProbeEndToEnd(t *testing.T, b bus.Bus) {
	reg := probeRegistration(t)
	proc, err := enginehost.NewInProcess(reg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	startHost(t, enginehost.Config{Spec: reg.Spec, Processor: proc, Bus: b, Concurrency: 2,
		InstanceID: "probe-test-1", HeartbeatInterval: 50 * time.Millisecond, TempDir: tmp})

	uri, fetches := serveChunk(t, mediaChunk(t))
	video := chunkFor("job-1", 0, "video/mp2t", nil)
	video.Content, video.ContentEncoding, video.CacheURI = "", "", uri
	image := chunkFor("job-1", 1, "image/jpeg", []byte{0xff, 0xd8})
	badOpts := chunkFor("job-1", 2, "video/mp2t", []byte("x"))
	badOpts.TaskPayload = mustJSON(t, map[string]any{"include": []string{"bogus"}})
	send(t, b, protocol.ChunkTopic("probe"), video, image, badOpts)

	r := waitResults(t, b, "job-1", statuses(3))

	st := r.status(t, video.ChunkUUID)
	if st.Status != protocol.ChunkSuccess || st.TaskID != video.TaskID || st.JobID != "job-1" || st.TDOID != "tdo-job-1" {
		t.Fatalf("video chunk: status %+v, want SUCCESS with the chunk's ids", st)
	}
	if fetches.Load() != 1 {
		t.Errorf("the cacheURI was fetched %d times, want 1", fetches.Load())
	}
	if len(r.outputs) != 1 {
		t.Fatalf("%d engine_output messages, want 1 (for the video chunk)", len(r.outputs))
	}
	out := r.outputs[0]
	if out.ChunkUUID != video.ChunkUUID || out.TaskID != video.TaskID || out.TDOID != video.TDOID ||
		out.OutputType != "tag" || out.MimeType != "application/json" || out.Rev != 0 ||
		out.StartOffsetMs != 10_000 || out.EndOffsetMs != 12_000 {
		t.Fatalf("engine_output %+v: want the chunk's ids and offsets, outputType tag", out)
	}
	doc, err := out.Document()
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Series) != 1 || doc.Series[0].StartTimeMs != 10_000 || doc.Series[0].StopTimeMs != 12_000 {
		t.Fatalf("series %+v: want one series on the TDO timeline, [10000, 12000]", doc.Series)
	}
	tags := tagsOf(doc.Series[0])
	if tags["format"] != "mpegts" || tags["video_codec"] != "h264" || tags["width"] != "320" || tags["audio_codec"] != "aac" {
		t.Fatalf("tags %v: want what ffprobe sees in the chunk", tags)
	}
	// The output comes before the chunk's status, both keyed by task.
	for i, rec := range r.records {
		if r.order[i] != protocol.TypeEngineHeartbeat && string(rec.Key) != video.TaskID {
			t.Errorf("%s keyed %q, want the taskId", r.order[i], rec.Key)
		}
	}
	if outAt, stAt := indexOf(r, protocol.TypeEngineOutput, 0), indexOfStatus(r, video.ChunkUUID); outAt > stAt {
		t.Errorf("the engine_output (#%d) came after the chunk's status (#%d)", outAt, stAt)
	}

	if st := r.status(t, image.ChunkUUID); st.Status != protocol.ChunkIgnored || !strings.Contains(st.InfoMsg, "image/jpeg") {
		t.Errorf("image chunk: %+v, want IGNORED naming the type", st)
	}
	if st := r.status(t, badOpts.ChunkUUID); st.Status != protocol.ChunkError ||
		!strings.HasPrefix(st.ErrorMsg, "options: ") || !strings.Contains(st.ErrorMsg, "bogus") {
		t.Errorf("chunk with bad options: %+v, want ERROR \"options: ...\" naming the value", st)
	}
	if len(r.beats) == 0 {
		t.Fatal("no engine_heartbeat on the results topic")
	}
	hb := r.beats[0]
	if hb.EngineInstanceID != "probe-test-1" || hb.EngineID != "probe" || hb.JobID != "job-1" ||
		hb.TaskID != video.TaskID || hb.Status != protocol.HeartbeatRunning || hb.Count < 1 {
		t.Errorf("heartbeat %+v: want instance probe-test-1 RUNNING for job-1's task", hb)
	}
	waitEmpty(t, tmp)
}

func indexOf(r *results, typ protocol.Type, nth int) int {
	for i, o := range r.order {
		if o == typ {
			if nth == 0 {
				return i
			}
			nth--
		}
	}
	return -1
}

func indexOfStatus(r *results, uuid string) int {
	n := 0
	for i, o := range r.order {
		if o == protocol.TypeChunkProcessedStatus {
			if r.statuses[n].ChunkUUID == uuid {
				return i
			}
			n++
		}
	}
	return -1
}

// waitEmpty checks that the host removed every chunk file it made.
func waitEmpty(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d chunk files left in %s, e.g. %s", len(entries), dir, entries[0].Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProbeInProcessOverBustest(t *testing.T) {
	testProbeEndToEnd(t, bustest.New())
}

func TestProbeInProcessOverEmbeddedBroker(t *testing.T) {
	testProbeEndToEnd(t, startBroker(t))
}

// startBroker starts an embedded Kafka broker and a client for it, closed
// when the test ends.
func startBroker(t testing.TB) *bus.Client {
	t.Helper()
	b, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(t.TempDir()), bus.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := bus.NewClient([]string{b.Addr()}, bus.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// containedEngine fails in every way an engine can, by the chunk's index:
// 0 panics, 1 ignores its context and never returns, 2 returns an
// invalid document, 3 says ignored, 4 fails, 5 finds nothing, 6 works.
func containedEngine(release <-chan struct{}) processorFunc {
	return func(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
		switch c.Meta.ChunkIndex {
		case 0:
			panic("index out of range [3] with length 3")
		case 1:
			<-release
			return nil, nil
		case 2:
			return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 500, StopTimeMs: 100}}}, nil
		case 3:
			return nil, fmt.Errorf("no faces in a test pattern: %w", engine.ErrIgnored)
		case 4:
			return nil, errors.New("model file is corrupt")
		case 5:
			return nil, nil
		}
		return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(),
			Tags: []protocol.Tag{{Key: "level", Value: fmt.Sprint(opts.Int("level"))}}}}}, nil
	}
}

func testFailuresContained(t *testing.T, b bus.Bus) {
	release := make(chan struct{})
	defer close(release)
	spec := testSpec("contained")
	startHost(t, enginehost.Config{Spec: spec, Processor: containedEngine(release), Bus: b,
		Concurrency: 1, ChunkTimeout: time.Second})
	var chunks []*protocol.MediaChunk
	for i := range int64(7) {
		c := chunkFor("job-c", i, "audio/wav", []byte("RIFF"))
		c.TaskPayload = mustJSON(t, map[string]any{"level": 7})
		chunks = append(chunks, c)
	}
	send(t, b, protocol.ChunkTopic("contained"), chunks...)
	r := waitResults(t, b, "job-c", statuses(7))

	want := []struct {
		status protocol.ChunkStatus
		msg    string
	}{
		{protocol.ChunkError, "engine panicked: index out of range [3] with length 3"},
		{protocol.ChunkError, "engine timed out after 1s"},
		{protocol.ChunkError, `malformed output: vtn-standard: field "series[0].stopTimeMs"`},
		{protocol.ChunkIgnored, "no faces in a test pattern: chunk ignored"},
		{protocol.ChunkError, "model file is corrupt"},
		{protocol.ChunkSuccess, ""},
		{protocol.ChunkSuccess, ""},
	}
	for i, w := range want {
		st := r.status(t, chunks[i].ChunkUUID)
		msg := st.ErrorMsg + st.InfoMsg
		if st.Status != w.status || !strings.HasPrefix(msg, w.msg) || (w.msg == "" && msg != "") {
			t.Errorf("chunk %d: %s %q, want %s %q", i, st.Status, msg, w.status, w.msg)
		}
	}
	if len(r.outputs) != 1 || r.outputs[0].ChunkUUID != chunks[6].ChunkUUID {
		t.Fatalf("%d engine_output messages, want 1, for the chunk that worked", len(r.outputs))
	}
	doc, _ := r.outputs[0].Document()
	if s := doc.Series[0]; s.StartTimeMs != 22_000 || s.StopTimeMs != 24_000 || tagsOf(s)["level"] != "7" {
		t.Errorf("series %+v: want [22000, 24000] with the task's level 7", s)
	}
}

func TestFailuresContainedOverBustest(t *testing.T) { testFailuresContained(t, bustest.New()) }

func TestFailuresContainedOverEmbeddedBroker(t *testing.T) {
	testFailuresContained(t, startBroker(t))
}

// deadLetters reads the dead letters of topic until there are n.
func deadLetters(t testing.TB, b bus.Bus, topic string, n int) []*bus.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []*bus.Record
	err := b.Consume(ctx, bus.ConsumeOptions{Topics: []string{protocol.DeadLetterTopic(topic)}, FromBeginning: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			got = append(got, rec)
			if len(got) >= n {
				cancel()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < n {
		t.Fatalf("%d dead letters on %s, want %d", len(got), protocol.DeadLetterTopic(topic), n)
	}
	return got
}

func testMalformedRecords(t *testing.T, b bus.Bus) {
	var processed atomic.Int64
	spec := testSpec("strict")
	startHost(t, enginehost.Config{Spec: spec, Bus: b,
		Processor: processorFunc(func(context.Context, *engine.Chunk, engine.Options) (*protocol.Document, error) {
			processed.Add(1)
			return nil, nil
		})})
	topic := protocol.ChunkTopic("strict")
	ctx := testCtx(t)
	// Not JSON; a heartbeat; a chunk with no mimeType but its ids; a
	// chunk with no jobId.
	noMime := `{"type":"media_chunk","taskId":"job-m-test","jobId":"job-m","chunkUUID":"u-1","content":"x"}`
	noJob := `{"type":"media_chunk","taskId":"t","mimeType":"audio/wav","chunkUUID":"u-2","content":"x"}`
	hb := `{"type":"engine_heartbeat","engineInstanceId":"i","count":1,"status":"RUNNING"}`
	for _, v := range []string{"\x00\x01garbage", hb, noMime, noJob} {
		if err := b.Produce(ctx, &bus.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	good := chunkFor("job-m", 0, "audio/wav", []byte("RIFF"))
	send(t, b, topic, good)

	r := waitResults(t, b, "job-m", statuses(2))
	if st := r.status(t, "u-1"); st.Status != protocol.ChunkError ||
		!strings.Contains(st.ErrorMsg, `malformed media_chunk: media_chunk: field "mimeType": is required`) {
		t.Errorf("chunk with no mimeType: %+v, want ERROR naming the field", st)
	}
	if st := r.status(t, good.ChunkUUID); st.Status != protocol.ChunkSuccess {
		t.Errorf("the good chunk after the bad ones: %+v, want SUCCESS", st)
	}
	if processed.Load() != 1 {
		t.Errorf("the engine saw %d chunks, want 1", processed.Load())
	}
	dls := deadLetters(t, b, topic, 4)
	wantReasons := []string{"value is not a JSON object", "engine_heartbeat on a chunk topic", `field "mimeType": is required`, `field "jobId": is required`}
	for i, dl := range dls[:4] {
		reason, _ := dl.Header(protocol.HeaderDeadLetterReason)
		if !strings.Contains(string(reason), wantReasons[i]) || !strings.Contains(string(reason), `engine "strict"`) {
			t.Errorf("dead letter %d: reason %q, want it to say %q", i, reason, wantReasons[i])
		}
	}
}

func TestMalformedRecordsDeadLetteredOverBustest(t *testing.T) {
	testMalformedRecords(t, bustest.New())
}

func TestMalformedRecordsDeadLetteredOverEmbeddedBroker(t *testing.T) {
	testMalformedRecords(t, startBroker(t))
}

func TestHeartbeatsWhileWorking(t *testing.T) {
	b := bustest.New()
	spec := testSpec("slow")
	startHost(t, enginehost.Config{Spec: spec, Bus: b, InstanceID: "slow-1", HeartbeatInterval: 40 * time.Millisecond,
		Processor: processorFunc(func(ctx context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
			select {
			case <-time.After(400 * time.Millisecond):
			case <-ctx.Done():
			}
			return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: 1}}}, nil
		})})
	c := chunkFor("job-h", 0, "audio/wav", []byte("RIFF"))
	send(t, b, protocol.ChunkTopic("slow"), c)
	r := waitResults(t, b, "job-h", statuses(1))
	// The first heartbeat goes out when the chunk is taken, then one per
	// interval: a 400 ms chunk gets several even on a loaded machine.
	if len(r.beats) < 3 {
		t.Fatalf("%d heartbeats during a 400 ms chunk with a 40 ms interval, want at least 3", len(r.beats))
	}
	for i, hb := range r.beats {
		if hb.JobID != "job-h" || hb.TaskID != c.TaskID || hb.TDOID != c.TDOID || hb.EngineInstanceID != "slow-1" ||
			string(r.records[indexOf(r, protocol.TypeEngineHeartbeat, i)].Key) != "slow-1" || hb.Count != int64(i+1) {
			t.Errorf("heartbeat %d: %+v, want job-h's ids, key slow-1, count %d", i, hb, i+1)
		}
		if i > 0 && hb.UpTime < r.beats[i-1].UpTime {
			t.Errorf("heartbeat %d: upTime went back", i)
		}
	}
	if r.beats[len(r.beats)-1].BytesRead < 4 {
		t.Errorf("bytesRead %d: want the chunk's 4 bytes counted", r.beats[len(r.beats)-1].BytesRead)
	}
	// Once the chunk is answered, heartbeats stop.
	n := len(b.Records(protocol.ResultsTopic("job-h")))
	time.Sleep(300 * time.Millisecond)
	if m := len(b.Records(protocol.ResultsTopic("job-h"))); m > n+1 {
		t.Errorf("%d more records on the results topic after the job's last chunk was answered", m-n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	p := processorFunc(func(context.Context, *engine.Chunk, engine.Options) (*protocol.Document, error) { return nil, nil })
	for name, cfg := range map[string]enginehost.Config{
		"bad spec":     {Spec: engine.Spec{Name: "Bad Name"}, Processor: p, Bus: bustest.New()},
		"no processor": {Spec: testSpec("x"), Bus: bustest.New()},
		"no bus":       {Spec: testSpec("x"), Processor: p},
		"bad topic":    {Spec: testSpec("x"), Processor: p, Bus: bustest.New(), Topic: "a topic"},
		"negative":     {Spec: testSpec("x"), Processor: p, Bus: bustest.New(), Concurrency: -1},
	} {
		if _, err := enginehost.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestFetchFailuresAndSizeCap(t *testing.T) {
	b := bustest.New()
	spec := testSpec("fetcher")
	var processed atomic.Int64
	startHost(t, enginehost.Config{Spec: spec, Bus: b, MaxChunkBytes: 1000,
		Processor: processorFunc(func(context.Context, *engine.Chunk, engine.Options) (*protocol.Document, error) {
			processed.Add(1)
			return nil, nil
		})})
	big, _ := serveChunk(t, make([]byte, 5000))
	missing := strings.Replace(big, "000000.ts", "000001.ts", 1)
	c0 := chunkFor("job-f", 0, "video/mp2t", nil)
	c0.Content, c0.ContentEncoding, c0.CacheURI = "", "", big
	c1 := chunkFor("job-f", 1, "video/mp2t", nil)
	c1.Content, c1.ContentEncoding, c1.CacheURI = "", "", missing
	c2 := chunkFor("job-f", 2, "video/mp2t", make([]byte, 2000))
	send(t, b, protocol.ChunkTopic("fetcher"), c0, c1, c2)
	r := waitResults(t, b, "job-f", statuses(3))
	for uuid, want := range map[string]string{
		c0.ChunkUUID: "larger than the 1000-byte cap",
		c1.ChunkUUID: "404 Not Found",
		c2.ChunkUUID: "inline content is 2000 bytes, more than the 1000-byte cap",
	} {
		if st := r.status(t, uuid); st.Status != protocol.ChunkError || !strings.Contains(st.ErrorMsg, want) {
			t.Errorf("chunk %s: %+v, want ERROR saying %q", uuid, st, want)
		}
	}
	if processed.Load() != 0 {
		t.Errorf("the engine saw %d chunks it should not have", processed.Load())
	}
}

// TestStopDoesNotAnswer: a chunk in hand when the host stops is neither
// answered nor committed, so the group delivers it again to the next host.
func TestStopRedeliversChunksInHand(t *testing.T) {
	b := bustest.New()
	spec := testSpec("stopper")
	started := make(chan struct{}, 1)
	blocking := processorFunc(func(ctx context.Context, _ *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	h, err := enginehost.New(enginehost.Config{Spec: spec, Bus: b, Processor: blocking, Log: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	send(t, b, protocol.ChunkTopic("stopper"), chunkFor("job-s", 0, "audio/wav", []byte("RIFF")))
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, rec := range b.Records(protocol.ResultsTopic("job-s")) {
		if msg, _ := protocol.Decode(rec.Key, rec.Value); msg.MessageType() == protocol.TypeChunkProcessedStatus {
			t.Fatalf("a chunk stopped by the host's shutdown was answered: %s", rec.Value)
		}
	}
	// The next host gets it.
	startHost(t, enginehost.Config{Spec: spec, Bus: b,
		Processor: processorFunc(func(context.Context, *engine.Chunk, engine.Options) (*protocol.Document, error) { return nil, nil })})
	r := waitResults(t, b, "job-s", statuses(1))
	if r.statuses[0].Status != protocol.ChunkSuccess {
		t.Fatalf("redelivered chunk: %+v", r.statuses[0])
	}
}
