package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// kcatRun runs kcat, giving up on metadata after 3 s.
func kcatRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "kcat", append([]string{"-m", "3"}, args...)...).CombinedOutput()
	return string(out), err
}

// weir serve's embedded broker lets in only clients that log in: kcat
// without credentials cannot list it, kcat with the data dir's kcat.conf
// can.
func TestServeBrokerRefusesClientsWithoutCredentials(t *testing.T) {
	testenv.RequireTool(t, "kcat")
	dir := t.TempDir()
	r := start(t, testConfig(dir))
	defer r.stop(t)
	addr := r.Brokers()[0]

	if out, err := kcatRun(t, "-b", addr, "-L"); err == nil || strings.Contains(out, protocol.TopicLiveControl) {
		t.Errorf("kcat -L without credentials: err %v\n%s", err, out)
	}
	kafkaDir := filepath.Join(dir, "kafka")
	out, err := kcatRun(t, "-F", filepath.Join(kafkaDir, "kcat.conf"), "-L")
	if err != nil || !strings.Contains(out, `topic "`+protocol.TopicLiveControl+`"`) {
		t.Errorf("kcat -F kcat.conf -L: %v\n%s", err, out)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, "credentials": 0o600, "kcat.conf": 0o600} {
		if fi, err := os.Stat(filepath.Join(kafkaDir, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("kafka/%s: %v, want mode %v", name, err, want)
		}
	}
}

// A process pointed at the broker with a wrong password fails to start,
// naming the refusal.
func TestProcessWithAWrongKafkaPasswordFailsToStart(t *testing.T) {
	dir := t.TempDir()
	bcfg := testConfig(filepath.Join(dir, "broker"))
	bcfg.Roles = "broker"
	broker := start(t, bcfg)
	defer broker.stop(t)

	cfg := testConfig(filepath.Join(dir, "api"))
	cfg.Roles = "api"
	cfg.Kafka = broker.Brokers()[0]
	cfg.KafkaUser, cfg.KafkaPassword = "weir", "wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		srv.close()
		t.Fatal("a process with a wrong Kafka password started")
	}
	if !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("Start: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}
