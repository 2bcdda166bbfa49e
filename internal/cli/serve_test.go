package cli

import (
	"net"
	"testing"

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
