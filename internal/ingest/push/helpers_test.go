package push

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

// recorder is an in-memory bus that keeps every record.
type recorder struct{ *bustest.Bus }

func newRecorder() *recorder { return &recorder{bustest.New()} }

// stream returns the records of one topic, decoded.
func (r *recorder) stream(topic string) []recorded {
	var out []recorded
	for _, rec := range r.Records(topic) {
		msg, err := protocol.Decode(rec.Key, rec.Value)
		out = append(out, recorded{rec: rec, msg: msg, err: err})
	}
	return out
}

func (r *recorder) count() int { return len(r.All()) }

type recorded struct {
	rec *bus.Record
	msg protocol.Message
	err error
}

// rawBytes concatenates the raw_stream payloads of records.
func rawBytes(recs []recorded) []byte {
	var b []byte
	for _, r := range recs {
		if raw, ok := r.msg.(*protocol.RawStream); ok {
			b = append(b, raw.Data...)
		}
	}
	return b
}

// pushEnv runs both ingest servers over a SQLite store and a recorder.
type pushEnv struct {
	t    testing.TB
	meta *metastore.SQLite
	rec  *recorder
	reg  *prometheus.Registry
	rtmp *RTMPServer
	srt  *SRTServer
}

func newPushEnv(t testing.TB) *pushEnv { return newPushEnvWith(t, nil) }

// newPushEnvWith is newPushEnv with the server configuration adjusted by
// adjust.
func newPushEnvWith(t testing.TB, adjust func(*Config)) *pushEnv {
	t.Helper()
	meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	e := &pushEnv{t: t, meta: meta, rec: newRecorder()}
	e.start(meta, adjust)
	return e
}

// otherProcess starts a second pair of servers, as another ingest process
// would run them: the same metadata store and bus, its own holder name and
// metrics.
func (e *pushEnv) otherProcess(adjust func(*Config)) *pushEnv {
	e.t.Helper()
	o := &pushEnv{t: e.t, meta: e.meta, rec: e.rec}
	o.start(e.meta, func(c *Config) {
		c.Holder = "other-process"
		if adjust != nil {
			adjust(c)
		}
	})
	return o
}

// start runs the servers on streams.
func (e *pushEnv) start(streams StreamLookup, adjust func(*Config)) {
	t := e.t
	e.reg = prometheus.NewRegistry()
	cfg := Config{Addr: "127.0.0.1:0", Streams: streams, Producer: e.rec, Logger: testLogger(t), Registry: e.reg,
		StatusInterval: 100 * time.Millisecond, ReadTimeout: 3 * time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
	var err error
	if e.rtmp, err = NewRTMPServer(cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.rtmp.Start(); err != nil {
		t.Fatal(err)
	}
	if e.srt, err = NewSRTServer(cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.srt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.rtmp.Close()
		e.srt.Close()
	})
}

// newStream creates a live stream and returns it with its publish key.
func (e *pushEnv) newStream() metastore.Stream {
	e.t.Helper()
	id := make([]byte, 6)
	key := make([]byte, 16)
	rand.Read(id)
	rand.Read(key)
	st, err := e.meta.CreateStream(context.Background(), metastore.Stream{
		ID: "live-" + hex.EncodeToString(id), Kind: metastore.KindLive, PublishKey: hex.EncodeToString(key),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *pushEnv) rtmpURL(key string) string {
	return fmt.Sprintf("rtmp://%s/live/%s", e.rtmp.Addr().String(), key)
}

func (e *pushEnv) srtAddr() string {
	return fmt.Sprintf("127.0.0.1:%d", e.srt.Addr().(*net.UDPAddr).Port)
}

// connections reads weir_push_connections_total for a protocol and result.
func (e *pushEnv) connections(protocol, result string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weir_push_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var p, r string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "protocol":
					p = l.GetValue()
				case "result":
					r = l.GetValue()
				}
			}
			if p == protocol && r == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func needTool(t testing.TB, name string) {
	t.Helper()
	testenv.RequireTool(t, name)
}

// ffmpeg runs ffmpeg to completion and returns its error and output.
func ffmpeg(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	needTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)...).CombinedOutput()
	return string(out), err
}

// testPattern are ffmpeg input and codec arguments for seconds of a
// 320x240 test pattern with a tone, in real time.
func testPattern(seconds float64) []string {
	d := strconv.FormatFloat(seconds, 'f', -1, 64)
	return []string{
		"-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + d,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
	}
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
