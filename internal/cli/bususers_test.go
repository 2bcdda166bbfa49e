package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// startAuthBroker starts the authenticating broker of data dir data on a
// free port, closed when the test ends, with a client logged in as weir.
func startAuthBroker(t *testing.T, data string) (*bus.Broker, *bus.Client) {
	t.Helper()
	b, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(filepath.Join(data, "kafka")),
		bus.WithAuthentication(), bus.WithLogger(discardLogger()))
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	c, err := bus.NewClient([]string{b.Addr()}, bus.WithSASL(b.Superuser()), bus.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		b.Close()
	})
	return b, c
}

// kcatOutcome runs kcat and reports whether it succeeded, with its output.
func kcatOutcome(t *testing.T, stdin string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", append([]string{"-m", "3", "-X", "message.timeout.ms=3000"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// weir bus users add on a data dir whose broker is not running starts it
// for the change; the engine user it prints reads its chunk topic and is
// refused the live control topic.
func TestBusUsersAddOnAStoppedDataDirGivesAnEngineOnlyItsGrants(t *testing.T) {
	requireKcat(t)
	data := t.TempDir()
	b, _ := startAuthBroker(t, data)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	kcatConf := filepath.Join(data, "kafka", bus.KcatConfigFileName)
	before, err := os.ReadFile(kcatConf)
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "ocr.conf")
	res := runWeir(testContext(t), "bus", "users", "add", "ocr-engine", "--engine", "ocr", "--data", data, "--output", out)
	if res.err != nil || !strings.Contains(res.stderr, "read chunk_ocr; write results_*; groups weir_engine_ocr") {
		t.Fatalf("bus users add: %v\n%s", res.err, res.stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("--output file: %v, want mode 0600", err)
	}
	if after, _ := os.ReadFile(kcatConf); string(after) != string(before) {
		t.Errorf("kcat.conf changed by the temporary broker:\n%s\nwas\n%s", after, before)
	}

	b, su := startAuthBroker(t, data)
	ctx := testContext(t)
	if err := su.Produce(ctx, &bus.Record{Topic: protocol.ChunkTopic("ocr"), Value: []byte("chunk-1")}); err != nil {
		t.Fatal(err)
	}
	if err := su.CreateTopic(ctx, protocol.TopicLiveControl, 1); err != nil {
		t.Fatal(err)
	}
	got, ok := kcatOutcome(t, "", "-F", out, "-b", b.Addr(), "-G", protocol.EngineGroup("ocr"), "-X", "auto.offset.reset=earliest",
		"-e", "-q", "-f", `%s\n`, protocol.ChunkTopic("ocr"))
	if !ok || !strings.HasSuffix(got, "chunk-1\n") {
		t.Errorf("engine reading chunk_ocr (ok %v):\n%s", ok, got)
	}
	if got, ok := kcatOutcome(t, "end\n", "-F", out, "-b", b.Addr(), "-P", "-t", protocol.TopicLiveControl); ok || !strings.Contains(got, "authorization failed") {
		t.Errorf("engine ending a stream on %s (ok %v):\n%s", protocol.TopicLiveControl, ok, got)
	}
}

// Against the running broker of the data dir, add prints a login with the
// broker's address, list shows the user's grants, remove deletes it.
func TestBusUsersAddListRemoveAgainstTheRunningBroker(t *testing.T) {
	data := t.TempDir()
	b, _ := startAuthBroker(t, data)
	ctx := testContext(t)

	res := runWeir(ctx, "bus", "users", "add", "dashboard", "--read", "results_*", "--group", "dashboard", "--data", data)
	if res.err != nil {
		t.Fatalf("add: %v\n%s", res.err, res.stderr)
	}
	creds, err := bus.ParseCredentials([]byte(res.stdout))
	if err != nil || creds.User != "dashboard" || !strings.Contains(res.stdout, "bootstrap.servers="+b.Addr()+"\n") {
		t.Fatalf("add printed %q (%v), want the user's login with bootstrap.servers=%s", res.stdout, err, b.Addr())
	}
	dash, err := bus.NewClient([]string{b.Addr()}, bus.WithSASL(creds), bus.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	if err := dash.Ping(ctx); err != nil {
		t.Errorf("the added user cannot log in: %v", err)
	}

	res = runWeir(ctx, "bus", "users", "list", "--data", data)
	if res.err != nil || !strings.Contains(res.stdout, "dashboard") || !strings.Contains(res.stdout, "results_*") || !strings.Contains(res.stdout, "(superuser)") {
		t.Errorf("list: %v\n%s", res.err, res.stdout)
	}
	if res = runWeir(ctx, "bus", "users", "remove", "dashboard", "--data", data); res.err != nil {
		t.Fatalf("remove: %v", res.err)
	}
	if res = runWeir(ctx, "bus", "users", "list", "--data", data); strings.Contains(res.stdout, "dashboard") {
		t.Errorf("list after remove:\n%s", res.stdout)
	}
}

func TestBusUsersRefusesWhatWouldBreakTheBus(t *testing.T) {
	data := t.TempDir()
	startAuthBroker(t, data)
	ctx := testContext(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"remove", "weir"}, "lock every weir process out"},
		{[]string{"add", "nobody"}, "grants nothing"},
		{[]string{"add", "u", "--read", "a*b"}, "* may only end a prefix"},
		{[]string{"add", "u", "--read", "x", "--mechanism", "PLAIN"}, "SCRAM"},
		{[]string{"list", "--data", filepath.Join(data, "missing")}, "no embedded broker credentials"},
	} {
		args := append([]string{"bus", "users"}, tc.args...)
		if !strings.Contains(strings.Join(args, " "), "--data") {
			args = append(args, "--data", data)
		}
		if res := runWeir(ctx, args...); res.err == nil || !strings.Contains(res.err.Error(), tc.want) {
			t.Errorf("weir %s: %v, want an error containing %q", strings.Join(args, " "), res.err, tc.want)
		}
	}
}

// weir consume reaches an authenticating broker with --kafka-credentials,
// with --kafka-user and a password file, or, with neither, through
// ./weir-data/kafka/credentials; without any login it says what is missing.
func TestConsumeLogsInToAnAuthenticatingBroker(t *testing.T) {
	work := t.TempDir()
	data := filepath.Join(work, "weir-data")
	b, su := startAuthBroker(t, data)
	ctx := testContext(t)
	const topic = "stream_auth"
	if err := su.Produce(ctx,
		&bus.Record{Topic: topic, Key: []byte("stream_init"), Value: []byte(`{"type":"stream_init","chunkSize":4,"mimeType":"audio/aac"}`)},
		&bus.Record{Topic: topic, Key: []byte("raw_stream"), Value: []byte("abc")},
		&bus.Record{Topic: topic, Key: []byte("stream_eof"), Value: []byte(`{"type":"stream_eof","contentLength":3}`)},
	); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(work, "pw")
	if err := os.WriteFile(pwFile, []byte(b.Superuser().Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	consume := []string{"consume", "--topic", topic, "--kafka", b.Addr(), "--from-beginning", "--until-eof"}

	if res := runWeir(ctx, consume...); res.err == nil || !strings.Contains(res.err.Error(), "without a login") {
		t.Errorf("consume without a login: %v", res.err)
	}
	for name, extra := range map[string][]string{
		"credentials file": {"--kafka-credentials", filepath.Join(data, "kafka", bus.CredentialsFileName)},
		"user":             {"--kafka-user", "weir", "--kafka-password-file", pwFile},
	} {
		if res := runWeir(ctx, append(consume, extra...)...); res.err != nil || strings.Count(res.stdout, "\n") != 3 {
			t.Errorf("consume with a %s: %v\n%s", name, res.err, res.stdout)
		}
	}
	t.Chdir(work)
	if res := runWeir(ctx, consume...); res.err != nil || strings.Count(res.stdout, "\n") != 3 {
		t.Errorf("consume next to weir-data: %v\n%s", res.err, res.stdout)
	}
}
