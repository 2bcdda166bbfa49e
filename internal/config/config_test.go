package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

type testConfig struct {
	HTTP        string `koanf:"http"`
	KafkaListen string `koanf:"kafka-listen"`
	Presign     bool   `koanf:"presign"`
	Workers     int    `koanf:"workers"`
}

func newFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("http", "127.0.0.1:8080", "")
	fs.String("kafka-listen", "127.0.0.1:9092", "")
	fs.Bool("presign", false, "")
	fs.Int("workers", 2, "")
	return fs
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(yamlPath, []byte("http: 0.0.0.0:1\nkafka-listen: 0.0.0.0:2\nworkers: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		file string
		want testConfig
	}{
		{name: "defaults when nothing is set", file: filepath.Join(dir, "absent-default"), want: testConfig{HTTP: "127.0.0.1:8080", KafkaListen: "127.0.0.1:9092", Workers: 2}},
		{name: "file beats defaults", file: yamlPath, want: testConfig{HTTP: "0.0.0.0:1", KafkaListen: "0.0.0.0:2", Workers: 7}},
		{name: "env beats file", file: yamlPath, env: []string{"WEIR_KAFKA_LISTEN=10.0.0.1:9", "WEIR_PRESIGN=true"}, want: testConfig{HTTP: "0.0.0.0:1", KafkaListen: "10.0.0.1:9", Presign: true, Workers: 7}},
		{name: "flag beats env and file", file: yamlPath, args: []string{"--kafka-listen=1.2.3.4:5", "--workers=3"}, env: []string{"WEIR_KAFKA_LISTEN=10.0.0.1:9"}, want: testConfig{HTTP: "0.0.0.0:1", KafkaListen: "1.2.3.4:5", Workers: 3}},
		{name: "unrelated env ignored", file: yamlPath, env: []string{"WEIR_NOT_A_FLAG=x", "OTHER=1"}, want: testConfig{HTTP: "0.0.0.0:1", KafkaListen: "0.0.0.0:2", Workers: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags()
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var got testConfig
			path := tt.file
			if strings.HasSuffix(path, "absent-default") {
				// Not named explicitly: pretend it is the default file.
				path = ""
				t.Chdir(t.TempDir())
			}
			if err := load(fs, path, func() []string { return tt.env }, &got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadIgnoresKeysOfOtherCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weir.yaml")
	os.WriteFile(path, []byte("http: 0.0.0.0:1\ndata: /var/lib/weir\n"), 0o644)
	var got testConfig
	if err := load(newFlags(), path, func() []string { return nil }, &got, AllowKeys("data")); err != nil {
		t.Fatalf("a key another command knows: %v", err)
	}
	if got.HTTP != "0.0.0.0:1" {
		t.Fatalf("http = %q, want the file's value", got.HTTP)
	}
	if err := load(newFlags(), path, func() []string { return nil }, &got); err == nil || !strings.Contains(err.Error(), `unknown key "data"`) {
		t.Fatalf("without AllowKeys: err = %v, want unknown key \"data\"", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("http: [unclosed\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("htp: 1\n"), 0o644)
	tests := []struct {
		name, path, want string
		env              []string
	}{
		{name: "explicit missing file", path: filepath.Join(dir, "nope.yaml"), want: "nope.yaml"},
		{name: "malformed yaml", path: bad, want: "bad.yaml"},
		{name: "unknown key names the key", path: unknown, want: `unknown key "htp"`},
		{name: "bad env value names the problem", path: "", env: []string{"WEIR_WORKERS=many"}, want: "workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(dir)
			var got testConfig
			err := load(newFlags(), tt.path, func() []string { return tt.env }, &got)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
