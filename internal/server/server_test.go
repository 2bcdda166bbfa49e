package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/protocol"
)

func testConfig(dir string) Config {
	return Config{
		Data:        dir,
		HTTP:        "127.0.0.1:0",
		KafkaListen: "127.0.0.1:0",
		RTMP:        "127.0.0.1:0",
		SRT:         "127.0.0.1:0",
		MaxUpload:   1 << 30,
	}
}

// running is a started Server whose Run loop is in a goroutine.
type running struct {
	*Server
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	return r
}

// stop asks the server to shut down the way SIGTERM does and waits.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run returned %v after a clean stop", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("server did not stop within 60s")
	}
}

// busLogin is the login of weir's processes of the data dir: its embedded
// broker's superuser.
func busLogin(t *testing.T, data string) bus.ClientOption {
	t.Helper()
	creds, err := bus.ReadCredentialsFile(filepath.Join(data, "kafka", bus.CredentialsFileName))
	if err != nil {
		t.Fatal(err)
	}
	return bus.WithSASL(creds)
}

func makeClip(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clip.ts")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// TestRestartKeepsMessagesOffsetsAndMetadata ingests a real clip through a
// running server's embedded broker, consumes part of it in a group, stops
// the server cleanly, starts a new one on the same data directory and checks
// that every message, the group's committed offset and the metadata rows are
// still there.
func TestRestartKeepsMessagesOffsetsAndMetadata(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	clip := makeClip(t)
	want, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}

	first := start(t, testConfig(dir))
	client, err := bus.NewClient(first.Brokers(), busLogin(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	const topic = "stream_restart-test"
	res, err := ingest.Pull(ctx, ingest.PullOptions{Source: clip, Topic: topic}, client)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	total := res.Stats.Messages + res.Stats.Heartbeats
	if total < 4 {
		t.Fatalf("ingest wrote %d messages, want stream_init, raw_stream..., stream_eof", total)
	}

	// A group handles the first 3 records, then stops cleanly.
	handled := 0
	gctx, gcancel := context.WithCancel(ctx)
	err = client.Consume(gctx, bus.ConsumeOptions{
		Topics: []string{topic}, Group: "restart-group", FromBeginning: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			handled++
			if handled == 3 {
				gcancel()
			}
			return nil
		},
	})
	gcancel()
	if err != nil {
		t.Fatalf("consume: %v", err)
	}

	// Metadata written through the API.
	resp, err := http.Post("http://"+first.HTTPAddr()+"/streams/start", "application/json", bytes.NewReader([]byte(`{"title":"survives restarts"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		StreamID string `json:"stream_id"`
	}
	json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /streams/start: %s", resp.Status)
	}
	client.Close()
	first.stop(t)

	second := start(t, testConfig(dir))
	defer second.stop(t)
	client2, err := bus.NewClient(second.Brokers(), busLogin(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer client2.Close()

	recs, err := client2.ReadAll(ctx, topic, 0)
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	var raw bytes.Buffer
	var sr protocol.StreamReader
	for i, rec := range recs {
		msg, err := sr.Next(rec.Key, rec.Value)
		if err != nil {
			t.Fatalf("record %d after restart: %v", i, err)
		}
		if r, ok := msg.(*protocol.RawStream); ok {
			raw.Write(r.Data)
		}
	}
	if sha256.Sum256(raw.Bytes()) != sha256.Sum256(want) {
		t.Fatalf("raw_stream bytes after restart differ from the source (%d vs %d bytes)", raw.Len(), len(want))
	}
	if int64(len(recs)) < total {
		t.Fatalf("after restart the topic has %d records, want at least %d", len(recs), total)
	}

	// The group resumes after its last committed offset.
	var firstOffset int64 = -1
	rctx, rcancel := context.WithCancel(ctx)
	err = client2.Consume(rctx, bus.ConsumeOptions{
		Topics: []string{topic}, Group: "restart-group", FromBeginning: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			firstOffset = rec.Offset
			rcancel()
			return nil
		},
	})
	rcancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if firstOffset != 3 {
		t.Fatalf("group resumed at offset %d after restart, want 3 (3 records were committed)", firstOffset)
	}

	resp, err = http.Get("http://" + second.HTTPAddr() + "/streams/" + started.StreamID + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("survives restarts")) {
		t.Fatalf("stream metadata after restart: %s %s", resp.Status, body)
	}
}

// A bad setting fails Start with an error naming it, releasing what was
// already started (the broker's port and data-dir lock), instead of
// crashing.
func TestStartFailsCleanlyOnBadSettings(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"unknown metadata scheme", func(c *Config) { c.Metadata = "mysql://x" }, "metadata store"},
		{"object store S3 bucket unreachable", func(c *Config) { c.Objects = "s3://media?endpoint=http://127.0.0.1:1&region=us-east-1" }, "object store"},
		{"invalid HTTP address", func(c *Config) { c.HTTP = "256.0.0.1:80" }, "http listener"},
		{"API token twice", func(c *Config) { c.APIToken, c.APITokenFile = "a", "/dev/null" }, "--api-token and --api-token-file are both set"},
		{"API token file missing", func(c *Config) { c.APITokenFile = filepath.Join(dir, "nope") }, "--api-token-file"},
		{"API token file empty", func(c *Config) { c.APITokenFile = "/dev/null" }, "want one line holding the token"},
		{"bad live ladder", func(c *Config) { c.LiveLadder = "360p=800k,480p=1400k" }, "--live-ladder: ladder rung"},
		{"part target too short", func(c *Config) { c.LivePartTarget = 10 * time.Millisecond }, "part target 10ms: want at least 50ms"},
		{"part target negative", func(c *Config) { c.LivePartTarget = -time.Second }, "part target -1s"},
		{"engines dir missing", func(c *Config) { c.EnginesDir = filepath.Join(dir, "no-engines") }, "--engines-dir: engines dir: open"},
		{"bad engine manifest", func(c *Config) { c.EnginesDir = enginesDir(t, "name: x\nengineMode: legacy\n") }, `bad.yaml: engine "x": engineMode: "legacy" is for engines that are not real-time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(dir)
			tt.mutate(&cfg)
			srv, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || srv != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, %v; want an error mentioning %q", srv, err, tt.want)
			}
		})
	}
	// Everything was released: a server starts on the same data directory.
	r := start(t, testConfig(dir))
	r.stop(t)
}

// The token can come from a file, so it need not sit in the process list
// the way a --api-token flag does.
func TestAPITokenFromAFileGuardsChanges(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.APITokenFile = tokenFile
	r := start(t, cfg)
	defer r.stop(t)
	post := func(token string) int {
		req, _ := http.NewRequest("POST", "http://"+r.HTTPAddr()+"/streams/start", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	if code := post("from-a-fil"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d, want 401", code)
	}
	if code := post("from-a-file"); code != http.StatusCreated {
		t.Errorf("with the token: %d, want 201", code)
	}
}

// The data dir holds the metadata database, the bus log and every upload:
// it is the owner's alone, also when an older weir left it open.
func TestDataDirAndMetadataAreOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "weir-data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	r := start(t, testConfig(dir))
	defer r.stop(t)
	for name, want := range map[string]os.FileMode{".": 0o700, "weir.db": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want %v", name, perm, want)
		}
	}
}

// The banner `make run` shows names the addresses actually bound, not the
// defaults it was once hard-coded with.
func TestBannerShowsTheBoundAddresses(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	defer r.stop(t)
	banner := r.Banner()
	for _, want := range []string{
		"http://" + r.HTTPAddr() + "/",
		r.Brokers()[0],
		"rtmp://" + r.rtmp.Addr().String() + "/live/{publish key}",
		"srt://" + r.srt.Addr().String() + "?streamid=publish:{publish key}",
		"kcat -F " + filepath.Join(r.cfg.Data, "kafka", "kcat.conf") + " -L",
		"weir bus users add NAME --engine ID",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, ":1935") || strings.Contains(banner, ":8080") {
		t.Errorf("banner shows a default port where the server bound port 0:\n%s", banner)
	}

	// A process without the ingest and api roles lists only what it runs.
	cfg := testConfig(t.TempDir())
	cfg.Roles = "broker"
	broker := start(t, cfg)
	defer broker.stop(t)
	banner = broker.Banner()
	if !strings.Contains(banner, "operations       http://"+broker.HTTPAddr()) || strings.Contains(banner, "RTMP") || strings.Contains(banner, "console") {
		t.Errorf("broker-only banner:\n%s", banner)
	}
}

// enginesDir writes one manifest, bad.yaml, into a fresh directory.
func enginesDir(t *testing.T, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// --engines-dir registers its manifests at start, in the metadata store,
// so GET /engines lists them next to the built-in engines.
func TestEnginesDirRegistersExternalEnginesAtStart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.EnginesDir = t.TempDir()
	manifest := "name: quiet\nengineMode: stream\nsummary: Finds silence\ninputs: [audio/*]\noutputs: [tag]\nkafka: {}\n"
	if err := os.WriteFile(filepath.Join(cfg.EnginesDir, "quiet.yaml"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	defer r.stop(t)
	resp, err := http.Get("http://" + r.HTTPAddr() + "/engines")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Items []struct{ Name, Kind, Source string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, e := range list.Items {
		kinds[e.Name] = e.Kind
	}
	if kinds["quiet"] != "external" || kinds["probe"] != "builtin" || kinds["silence"] != "builtin" {
		t.Fatalf("GET /engines = %+v", list.Items)
	}
}
