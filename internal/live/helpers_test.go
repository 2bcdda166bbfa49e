package live

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/ingest/control"
	"github.com/weir-media/weir/internal/ingest/push"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// testLogger logs to the test at warn level and above (info with -v).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	if os.Getenv("WEIR_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// liveEnv is a complete live pipeline on loopback: an embedded broker, a
// SQLite metadata store, a file object store, RTMP and SRT servers, the
// packager and the controller, and an HTTP server for the HLS objects.
type liveEnv struct {
	t        testing.TB
	ctx      context.Context
	log      *slog.Logger
	opts     envOptions
	wg       sync.WaitGroup
	stopPkg  func()
	meta     *metastore.SQLite
	objects  *objstore.FS
	store    objstore.Store // objects, possibly wrapped
	client   *bus.Client
	rtmp     *push.RTMPServer
	srt      *push.SRTServer
	httpPush *push.HTTPServer // mounted on hls
	packager *Packager
	ctrl     *control.Controller
	reg      *prometheus.Registry
	hls      *httptest.Server
}

type envOptions struct {
	segment time.Duration
	// maxSegment is the longest segment (default 2 × segment).
	maxSegment time.Duration
	window     int
	timeout    time.Duration
	retention  time.Duration
	objects    func(objstore.Store) objstore.Store
	// persist keeps the broker's log in files, as weir serve does,
	// instead of in memory.
	persist bool
	// statusInterval is how often publishers' streams are checked for
	// having ended (default 200 ms, so tests end quickly).
	statusInterval time.Duration
}

func newLiveEnv(t testing.TB, o envOptions) *liveEnv {
	t.Helper()
	if o.segment == 0 {
		o.segment = time.Second
	}
	if o.window == 0 {
		o.window = 3
	}
	if o.timeout == 0 {
		o.timeout = 3 * time.Second
	}
	dir := t.TempDir()
	log := testLogger(t)
	bopts := []bus.BrokerOption{bus.WithListenAddr("127.0.0.1:0"), bus.WithLogger(log)}
	if o.persist {
		bopts = append(bopts, bus.WithDataDir(filepath.Join(dir, "kafka")))
	}
	broker, err := bus.StartBroker(bopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	// In process, as weir serve's clients of its embedded broker are.
	client, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(log), broker.InProcess())
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	var objects objstore.Store = fs
	if o.objects != nil {
		objects = o.objects(fs)
	}
	reg := prometheus.NewRegistry()
	if o.statusInterval == 0 {
		o.statusInterval = 200 * time.Millisecond
	}
	pcfg := push.Config{Addr: "127.0.0.1:0", Streams: meta, Producer: client, Logger: log, Registry: reg,
		StatusInterval: o.statusInterval, ReadTimeout: 5 * time.Second}
	rtmp, err := push.NewRTMPServer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rtmp.Start(); err != nil {
		t.Fatal(err)
	}
	srt, err := push.NewSRTServer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srt.Start(); err != nil {
		t.Fatal(err)
	}
	httpPush, err := push.NewHTTPServer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	packager, err := NewPackager(Config{
		Meta: meta, Objects: objects, Bus: client, Logger: log, Registry: reg,
		SegmentDuration: o.segment, MaxSegmentDuration: o.maxSegment, Window: o.window, PublisherTimeout: o.timeout,
		Retention: o.retention,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := control.New(control.Config{Meta: meta, Bus: client, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &liveEnv{t: t, ctx: ctx, meta: meta, objects: fs, store: objects, client: client, rtmp: rtmp, srt: srt,
		httpPush: httpPush, packager: packager, ctrl: ctrl, reg: reg, log: log, opts: o}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); ctrl.Run(ctx) }()
	e.runPackager(packager)
	e.hls = httptest.NewServer(httpPush.Mount(objectHandler(objects)))
	t.Cleanup(func() {
		httpPush.Close()
		e.hls.Close()
		rtmp.Close()
		srt.Close()
		e.stopPackager()
		cancel()
		e.wg.Wait()
		client.Close()
		meta.Close()
		fs.Close()
	})
	return e
}

func (e *liveEnv) runPackager(p *Packager) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	e.packager = p
	e.stopPkg = func() { cancel(); <-done }
}

// stopPackager stops the packager as a crash or a rolling restart would:
// its streams are not finished.
func (e *liveEnv) stopPackager() {
	if e.stopPkg != nil {
		e.stopPkg()
		e.stopPkg = nil
	}
}

// startPackager starts a fresh packager, as another process taking over.
func (e *liveEnv) startPackager() {
	e.t.Helper()
	p, err := NewPackager(Config{
		Meta: e.meta, Objects: e.store, Bus: e.client, Logger: e.log, Registry: e.reg,
		SegmentDuration: e.opts.segment, MaxSegmentDuration: e.opts.maxSegment, Window: e.opts.window, PublisherTimeout: e.opts.timeout,
		Retention: e.opts.retention,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.runPackager(p)
}

// publishBytes writes MPEG-TS to a stream's topic as a publisher session
// would, as fast as the bus takes it. It returns the session, open.
func (e *liveEnv) openSession(id string) *ingest.Session {
	e.t.Helper()
	s, err := ingest.OpenSession(context.Background(), e.client, ingest.SessionOptions{StreamID: id, EngineID: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func writeAll(t testing.TB, s *ingest.Session, ts []byte) {
	t.Helper()
	for len(ts) > 0 {
		n := min(10240, len(ts))
		if err := s.Write(ts[:n], time.Now()); err != nil {
			t.Fatal(err)
		}
		ts = ts[n:]
	}
}

// objectHandler serves /{key} from the object store, as GET /hls/ does.
func objectHandler(objects objstore.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		rc, info, err := objects.Get(r.Context(), key)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", info.ContentType)
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		io.Copy(w, rc)
	})
}

// newStream creates a live stream and returns it with its publish key.
func (e *liveEnv) newStream(sourceURL string) metastore.Stream {
	e.t.Helper()
	return e.newStreamWith(func(st *metastore.Stream) { st.SourceURL = sourceURL })
}

// newStreamWith is newStream with the row set up by with before it is
// created. As POST /streams/start does, the row is complete before the
// topic exists: a packager takes a topic as soon as it is assigned and
// reads the row then.
func (e *liveEnv) newStreamWith(with func(*metastore.Stream)) metastore.Stream {
	e.t.Helper()
	var b [6]byte
	rand.Read(b[:])
	key := make([]byte, 16)
	rand.Read(key)
	row := metastore.Stream{ID: "live-" + hex.EncodeToString(b[:]), Kind: metastore.KindLive, PublishKey: hex.EncodeToString(key)}
	with(&row)
	st, err := e.meta.CreateStream(context.Background(), row)
	if err != nil {
		e.t.Fatal(err)
	}
	// As POST /streams/start does: the topic exists before any publisher.
	if err := e.client.CreateTopic(context.Background(), protocol.StreamTopic(st.ID), 1); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *liveEnv) rtmpURL(key string) string {
	return fmt.Sprintf("rtmp://%s/live/%s", e.rtmp.Addr().String(), key)
}

func (e *liveEnv) srtURL(key string) string {
	port := e.srt.Addr().(*net.UDPAddr).Port
	return fmt.Sprintf("srt://127.0.0.1:%d?streamid=publish:%s&pkt_size=1316", port, key)
}

// publishURL is where HTTP and WebSocket publishers push a stream.
func (e *liveEnv) publishURL(key string) string { return e.hls.URL + push.HTTPPublishPrefix + key }

func (e *liveEnv) playlistURL(id, name string) string {
	return e.hls.URL + "/" + id + "/" + name
}

// end asks for the stream's end as POST /streams/{id}/end does.
func (e *liveEnv) end(id string) {
	e.t.Helper()
	if err := e.ctrl.End(context.Background(), id); err != nil {
		e.t.Fatal(err)
	}
}

// control publishes a control message as the REST API does.
func (e *liveEnv) control(m protocol.LiveControl) {
	e.t.Helper()
	m.RequestedAt = time.Now().UTC()
	k, v, err := protocol.EncodeControl(&m)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.client.Produce(context.Background(), &bus.Record{Topic: m.Topic(), Key: k, Value: v}); err != nil {
		e.t.Fatal(err)
	}
}

// getObject reads an object, "" when missing.
func (e *liveEnv) getObject(key string) string {
	rc, _, err := e.objects.Get(context.Background(), key)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStatus waits for the stream to reach status.
func (e *liveEnv) waitStatus(id string, status metastore.Status, d time.Duration) metastore.Stream {
	e.t.Helper()
	var st metastore.Stream
	waitFor(e.t, d, "stream "+id+" to become "+string(status), func() bool {
		var err error
		st, err = e.meta.GetStream(context.Background(), id)
		return err == nil && st.Status == status
	})
	return st
}

func needTool(t testing.TB, name string) {
	t.Helper()
	testenv.RequireTool(t, name)
}

// ffmpegPublish starts ffmpeg publishing a test pattern with a tone for
// seconds to url in format (flv or mpegts), in real time. audioOnly drops
// the video.
type ffmpegRun struct {
	cmd  *exec.Cmd
	done chan error
	out  *strings.Builder
}

func startFFmpeg(t testing.TB, args ...string) *ffmpegRun {
	t.Helper()
	needTool(t, "ffmpeg")
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &ffmpegRun{cmd: cmd, done: make(chan error, 1), out: out}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.done
	})
	return r
}

// wait waits for ffmpeg to exit and fails the test if it failed.
func (r *ffmpegRun) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, r.out.String())
		}
	case <-time.After(d):
		t.Fatalf("ffmpeg still running after %v", d)
	}
}

// publishArgs are the ffmpeg arguments of a 320x240 test pattern at 25 fps
// with a 1 s GOP and a sine tone, for seconds, in real time.
func publishArgs(seconds float64, format, url string) []string {
	d := strconv.FormatFloat(seconds, 'f', -1, 64)
	return []string{
		"-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + d,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
		"-f", format, url,
	}
}

// probe runs ffprobe with args and returns its output.
func probe(t testing.TB, args ...string) string {
	t.Helper()
	needTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// playlistEntries parses a media playlist into its segment URIs and tags.
type mediaPlaylist struct {
	mediaSequence, discSequence int64
	targetDuration              int
	segments                    []playlistSegment
	ended, independent          bool
	hasPDT                      bool
}

type playlistSegment struct {
	uri           string
	duration      float64
	discontinuity bool
	pdt           time.Time // its EXT-X-PROGRAM-DATE-TIME, if any
}

func parsePlaylist(t testing.TB, text string) mediaPlaylist {
	t.Helper()
	var p mediaPlaylist
	sc := bufio.NewScanner(strings.NewReader(text))
	var cur playlistSegment
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			p.mediaSequence, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(line, "#EXT-X-DISCONTINUITY-SEQUENCE:"):
			p.discSequence, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			p.targetDuration, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"))
		case line == "#EXT-X-ENDLIST":
			p.ended = true
		case line == "#EXT-X-INDEPENDENT-SEGMENTS":
			p.independent = true
		case line == "#EXT-X-DISCONTINUITY":
			cur.discontinuity = true
		case strings.HasPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:"):
			p.hasPDT = true
			cur.pdt, _ = time.Parse(time.RFC3339Nano, strings.TrimPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:"))
		case strings.HasPrefix(line, "#EXTINF:"):
			v := strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ",")
			cur.duration, _ = strconv.ParseFloat(strings.Split(v, ",")[0], 64)
		case line != "" && !strings.HasPrefix(line, "#"):
			cur.uri = line
			p.segments = append(p.segments, cur)
			cur = playlistSegment{}
		}
	}
	return p
}

// histogramCount reads a histogram's sample count and sum from the registry.
func histogramStats(t testing.TB, reg *prometheus.Registry, name string) (count uint64, sum float64, buckets map[float64]uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			buckets = map[float64]uint64{}
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			return h.GetSampleCount(), h.GetSampleSum(), buckets
		}
	}
	return 0, 0, nil
}

// counterValue reads a counter (the sum over its series) from the registry.
func counterValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// makeMedia runs ffmpeg with args (inputs and codecs, no output) and
// returns what it wrote in format.
func makeMedia(t testing.TB, format string, args ...string) []byte {
	t.Helper()
	needTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "out."+format)
	full := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	full = append(full, "-f", format, out)
	if msg, err := exec.Command("ffmpeg", full...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", full, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeTS makes seconds of a 160x120 test pattern at 25 fps with a key frame
// every gop frames and a tone, as MPEG-TS, its timestamps starting at
// offset seconds. codec is libx264 or libx265.
func makeTS(t testing.TB, seconds, gop int, codec string, offset float64) []byte {
	t.Helper()
	return makeTSSized(t, "160x120", seconds, gop, codec, offset)
}

// makeTSSized is makeTS with a picture size other than 160x120.
func makeTSSized(t testing.TB, size string, seconds, gop int, codec string, offset float64) []byte {
	t.Helper()
	d := itoa(seconds)
	args := []string{
		"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + d,
		"-c:v", codec, "-g", itoa(gop), "-keyint_min", itoa(gop), "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k", "-output_ts_offset", ftoa(offset),
	}
	switch codec {
	case "libx264":
		args = append(args, "-preset", "ultrafast", "-sc_threshold", "0")
	case "libx265":
		args = append(args, "-preset", "ultrafast", "-x265-params", "log-level=error:scenecut=0")
	}
	return makeMedia(t, "mpegts", args...)
}

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
