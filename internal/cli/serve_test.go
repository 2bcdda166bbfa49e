package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/server"
)

// The API token can reach `weir serve` without showing in ps: from
// WEIR_API_TOKEN or from a file named by --api-token-file.
func TestServeTakesTheAPITokenFromTheEnvironmentOrAFile(t *testing.T) {
	t.Chdir(t.TempDir()) // no weir.yaml
	t.Setenv("WEIR_API_TOKEN", "from-the-environment")
	load := func(args ...string) server.Config {
		cmd := newServeCmd()
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		var cfg server.Config
		if err := loadConfig(cmd, "", &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if cfg := load(); cfg.APIToken != "from-the-environment" {
		t.Errorf("APIToken = %q, want WEIR_API_TOKEN's value", cfg.APIToken)
	}
	t.Setenv("WEIR_API_TOKEN", "")
	if cfg := load("--api-token-file", "/run/secrets/weir-token"); cfg.APITokenFile != "/run/secrets/weir-token" || cfg.APIToken != "" {
		t.Errorf("config = token %q file %q, want the file", cfg.APIToken, cfg.APITokenFile)
	}
	t.Setenv("WEIR_API_TOKEN_FILE", "/etc/weir/token")
	if cfg := load(); cfg.APITokenFile != "/etc/weir/token" {
		t.Errorf("APITokenFile = %q, want WEIR_API_TOKEN_FILE's value", cfg.APITokenFile)
	}
}

// Every listener defaults to loopback: publishing over RTMP or SRT from
// another machine is a choice (--rtmp 0.0.0.0:1935), as it is for HTTP and
// the embedded broker.
func TestServeListensOnLoopbackByDefault(t *testing.T) {
	t.Chdir(t.TempDir())
	cmd := newServeCmd()
	var cfg server.Config
	if err := loadConfig(cmd, "", &cfg); err != nil {
		t.Fatal(err)
	}
	for flag, addr := range map[string]string{"http": cfg.HTTP, "kafka-listen": cfg.KafkaListen, "rtmp": cfg.RTMP, "srt": cfg.SRT} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("--%s defaults to %q, want 127.0.0.1:PORT", flag, addr)
		}
	}
}

// The Low-Latency HLS switches come from flags, WEIR_* variables or
// weir.yaml like every other setting.
func TestServeLowLatencyHLSSettings(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	load := func(args ...string) server.Config {
		t.Helper()
		cmd := newServeCmd()
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		var cfg server.Config
		if err := loadConfig(cmd, "", &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if cfg := load(); cfg.LiveLLHLS || cfg.LivePartTarget != 333*time.Millisecond {
		t.Errorf("defaults: ll-hls %v, part target %v", cfg.LiveLLHLS, cfg.LivePartTarget)
	}
	if cfg := load("--live-ll-hls", "--live-part-target", "250ms"); !cfg.LiveLLHLS || cfg.LivePartTarget != 250*time.Millisecond {
		t.Errorf("flags: ll-hls %v, part target %v", cfg.LiveLLHLS, cfg.LivePartTarget)
	}
	if err := os.WriteFile(filepath.Join(dir, "weir.yaml"), []byte("live-ll-hls: true\nlive-part-target: 400ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg := load(); !cfg.LiveLLHLS || cfg.LivePartTarget != 400*time.Millisecond {
		t.Errorf("weir.yaml: ll-hls %v, part target %v", cfg.LiveLLHLS, cfg.LivePartTarget)
	}
	t.Setenv("WEIR_LIVE_PART_TARGET", "200ms")
	if cfg := load(); cfg.LivePartTarget != 200*time.Millisecond {
		t.Errorf("WEIR_LIVE_PART_TARGET: part target %v", cfg.LivePartTarget)
	}
}

// TestServeRolesHelpNamesEveryRole: --roles' help lists every role weir
// serve accepts (it once lacked liveladder).
func TestServeRolesHelpNamesEveryRole(t *testing.T) {
	usage := newServeCmd().Flags().Lookup("roles").Usage
	for _, r := range server.AllRoles {
		if !strings.Contains(usage, string(r)) {
			t.Errorf("--roles help %q does not name the %s role", usage, r)
		}
	}
}
