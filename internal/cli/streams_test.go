package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/live"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// controlRecorder stands in for the bus: it keeps the live control
// messages the API publishes.
type controlRecorder struct{ *bustest.Bus }

func (r controlRecorder) last() protocol.LiveControl {
	recs := r.Records(protocol.TopicLiveControl)
	if len(recs) == 0 {
		return protocol.LiveControl{}
	}
	m, err := protocol.DecodeLiveControl(recs[len(recs)-1].Key, recs[len(recs)-1].Value)
	if err != nil {
		return protocol.LiveControl{}
	}
	return *m
}

// startStreamsServer runs the real REST API over real stores.
func startStreamsServer(t *testing.T) (*httptest.Server, metastore.Store, controlRecorder) {
	t.Helper()
	dir := t.TempDir()
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	rec := controlRecorder{bustest.New()}
	srv, err := api.New(api.Config{Meta: meta, Objects: objects, Bus: rec, Logger: discardLogger(),
		RTMPBase: "rtmp://media.example.com:1935", SRTBase: "srt://media.example.com:8890",
		RTMPSBase: "rtmps://media.example.com:1936"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		meta.Close()
	})
	return hs, meta, rec
}

var streamIDPattern = regexp.MustCompile(`live-[0-9a-f]{12}`)

func TestStreamsStartPrintsPublishAndPlaybackURLs(t *testing.T) {
	hs, meta, rec := startStreamsServer(t)
	res := runWeir(testContext(t), "streams", "start", "--title", "Match day", "--server", hs.URL)
	if res.err != nil {
		t.Fatalf("streams start: %v\n%s", res.err, res.stderr)
	}
	id := streamIDPattern.FindString(res.stdout)
	st, err := meta.GetStream(context.Background(), id)
	if err != nil {
		t.Fatalf("no stream %q from output:\n%s", id, res.stdout)
	}
	for _, want := range []string{
		"rtmp://media.example.com:1935/live/" + st.PublishKey,
		"server rtmp://media.example.com:1935/live, stream key " + st.PublishKey,
		"srt://media.example.com:8890?streamid=publish:" + st.PublishKey,
		hs.URL + "/hls/" + id + "/live.m3u8",
		"weir streams end " + id,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	if m := rec.last(); m.Action != protocol.LiveStart || m.StreamID != id || m.Title != "Match day" {
		t.Errorf("control message %+v", m)
	}

	res = runWeir(testContext(t), "streams", "start", "--source-url", "http://radio.example.com/live.aac", "--server", hs.URL, "--json")
	if res.err != nil {
		t.Fatalf("streams start --source-url: %v\n%s", res.err, res.stderr)
	}
	var started map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &started); err != nil || started["source_url"] != "http://radio.example.com/live.aac" {
		t.Fatalf("--json output %v (%v):\n%s", started, err, res.stdout)
	}
	if m := rec.last(); m.SourceURL != "http://radio.example.com/live.aac" {
		t.Errorf("control message %+v lacks the source URL", m)
	}
}

func TestStreamsStartWithSRTPassphrase(t *testing.T) {
	hs, meta, _ := startStreamsServer(t)
	const pass = "from-the-environment"
	t.Setenv("WEIR_SRT_PASSPHRASE", pass)
	res := runWeir(testContext(t), "streams", "start", "--server", hs.URL)
	if res.err != nil {
		t.Fatalf("streams start: %v\n%s", res.err, res.stderr)
	}
	id := streamIDPattern.FindString(res.stdout)
	st, err := meta.GetStream(context.Background(), id)
	if err != nil || st.SRTPassphrase != pass {
		t.Fatalf("stream %q: passphrase %q, %v\n%s", id, st.SRTPassphrase, err, res.stdout)
	}
	for _, want := range []string{"&passphrase=" + pass, "SRT encrypted with passphrase " + pass, "Publish with RTMPS rtmps://media.example.com:1936/live/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	// A bad passphrase is the server's 422, passed on.
	res = runWeir(testContext(t), "streams", "start", "--server", hs.URL, "--srt-passphrase", "short")
	if res.err == nil || !strings.Contains(res.stderr+res.err.Error(), "srt_passphrase: has 5 characters, want 10 to 79") {
		t.Fatalf("short passphrase: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
}

func TestStreamsStartWithLadder(t *testing.T) {
	hs, meta, _ := startStreamsServer(t)
	res := runWeir(testContext(t), "streams", "start", "--server", hs.URL, "--ladder", "480p=1400k, 360p=800k")
	if res.err != nil {
		t.Fatalf("streams start --ladder: %v\n%s", res.err, res.stderr)
	}
	id := streamIDPattern.FindString(res.stdout)
	st, err := meta.GetStream(context.Background(), id)
	if err != nil || strings.Join(st.VariantsGenerated, ",") != "480p=1400k,360p=800k" {
		t.Fatalf("stream %q: ladder %q, %v\n%s", id, st.VariantsGenerated, err, res.stdout)
	}
	if want := hs.URL + "/hls/" + id + "/master.m3u8 (480p=1400k, 360p=800k)"; !strings.Contains(res.stdout, want) {
		t.Errorf("output lacks %q:\n%s", want, res.stdout)
	}
	res = runWeir(testContext(t), "streams", "show", id, "--server", hs.URL)
	if want := "480p=1400k, 360p=800k (master.m3u8"; res.err != nil || !strings.Contains(res.stdout, want) {
		t.Errorf("streams show lacks %q (%v):\n%s", want, res.err, res.stdout)
	}
	res = runWeir(testContext(t), "streams", "start", "--server", hs.URL, "--ladder", "360p=800k,480p=1400k")
	if res.err == nil || !strings.Contains(res.stderr+res.err.Error(), "highest to the lowest") {
		t.Fatalf("rungs out of order: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
}

func TestStreamsStartWithLLHLS(t *testing.T) {
	hs, meta, _ := startStreamsServer(t)
	for _, c := range []struct {
		args []string
		want bool
	}{{[]string{"--ll-hls"}, true}, {[]string{"--ll-hls=false"}, false}, {nil, false}} {
		res := runWeir(testContext(t), append([]string{"streams", "start", "--server", hs.URL}, c.args...)...)
		if res.err != nil {
			t.Fatalf("streams start %v: %v\n%s", c.args, res.err, res.stderr)
		}
		id := streamIDPattern.FindString(res.stdout)
		st, err := meta.GetStream(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(st.Details), `"ll_hls":true`); got != c.want {
			t.Errorf("streams start %v: details %s, want ll_hls %v", c.args, st.Details, c.want)
		}
	}
}

func TestStreamsListShowAndEnd(t *testing.T) {
	hs, meta, rec := startStreamsServer(t)
	ctx := context.Background()
	idle, err := meta.CreateStream(ctx, metastore.Stream{ID: "live-00000000000a", Kind: metastore.KindLive, Title: "Idle", PublishKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	onAir, err := meta.CreateStream(ctx, metastore.Stream{ID: "live-00000000000b", Kind: metastore.KindLive, Title: "On air", PublishKey: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	details, _ := json.Marshal(live.Details{
		Window:                live.WindowDetails{FirstSequence: 5, LastSequence: 14, Segments: 10, DurationSeconds: 20},
		TargetDurationSeconds: 2,
		Latency:               live.LatencyDetails{P50: 12.5, P99: 31.25, Samples: 15},
		LastSegmentAt:         time.Now(),
	})
	if _, err := meta.TransitionStatus(ctx, onAir.ID, metastore.StatusLive, func(s *metastore.Stream) {
		s.Gaps, s.Details = 1, details
	}); err != nil {
		t.Fatal(err)
	}

	res := runWeir(testContext(t), "streams", "list", "--server", hs.URL)
	if res.err != nil || !regexp.MustCompile(`live-00000000000a\s+created`).MatchString(res.stdout) ||
		!regexp.MustCompile(`live-00000000000b\s+live`).MatchString(res.stdout) {
		t.Fatalf("streams list (%v):\n%s%s", res.err, res.stdout, res.stderr)
	}
	res = runWeir(testContext(t), "streams", "list", "--status", "live", "--server", hs.URL)
	if res.err != nil || strings.Contains(res.stdout, idle.ID) || !strings.Contains(res.stdout, onAir.ID) {
		t.Fatalf("streams list --status live (%v):\n%s", res.err, res.stdout)
	}

	res = runWeir(testContext(t), "streams", "show", onAir.ID, "--server", hs.URL)
	for _, want := range []string{"Status", "live", "gaps 1", "segments 5–14 (10, 20.0 s)", "p50 12.5 ms, p99 31.2 ms", "/hls/" + onAir.ID + "/live.m3u8"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("streams show lacks %q (%v):\n%s", want, res.err, res.stdout)
		}
	}

	res = runWeir(testContext(t), "streams", "end", idle.ID, "--server", hs.URL)
	if res.err != nil || !strings.Contains(res.stdout, "ended; it is now VOD") {
		t.Fatalf("streams end of a stream that never went live (%v):\n%s%s", res.err, res.stdout, res.stderr)
	}
	res = runWeir(testContext(t), "streams", "end", onAir.ID, "--server", hs.URL)
	if res.err != nil || !strings.Contains(res.stdout, "is ending (status live)") {
		t.Fatalf("streams end of a live stream (%v):\n%s%s", res.err, res.stdout, res.stderr)
	}
	if m := rec.last(); m.Action != protocol.LiveEnd || m.StreamID != onAir.ID {
		t.Errorf("control message %+v", m)
	}
	res = runWeir(testContext(t), "streams", "end", idle.ID, "--server", hs.URL)
	if res.err == nil || !strings.Contains(res.err.Error(), "already ended") {
		t.Fatalf("ending an ended stream: %v", res.err)
	}
	res = runWeir(testContext(t), "streams", "show", "live-ffffffffffff", "--server", hs.URL)
	if res.err == nil || !strings.Contains(res.err.Error(), "404") {
		t.Fatalf("show of an unknown stream: %v", res.err)
	}
}

func TestStreamsWithoutAServer(t *testing.T) {
	res := runWeir(testContext(t), "streams", "list", "--server", "http://127.0.0.1:1")
	if res.err == nil || !strings.Contains(res.err.Error(), "is `weir serve` running?") {
		t.Fatalf("list without a server: %v", res.err)
	}
	res = runWeir(testContext(t), "streams", "list", "--server", "ftp://x")
	if res.err == nil || !strings.Contains(res.err.Error(), "want an http(s) URL") {
		t.Fatalf("list with a bad --server: %v", res.err)
	}
}
