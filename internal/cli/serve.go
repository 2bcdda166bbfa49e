package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/internal/server"
)

func init() { register(newServeCmd) }

func newServeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run weir: embedded Kafka broker, REST API, console, HLS, ingest and pipelines",
		Long: `serve runs a whole weir process. With no --kafka it starts an embedded
Kafka-protocol broker (any Kafka client can connect to --kafka-listen); with
--kafka it uses that cluster instead. The embedded broker requires a SASL
login: on its first start it writes its superuser's credentials to
DATA/kafka/credentials (and a kcat config, DATA/kafka/kcat.conf); processes
started with --kafka log in with --kafka-credentials or --kafka-user (see
docs/bus.md). Config comes from flags, then WEIR_* environment variables
(WEIR_KAFKA_LISTEN for --kafka-listen), then weir.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg server.Config
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			log, err := newLogger(cfg.LogLevel)
			if err != nil {
				return err
			}
			server.Version = Version
			srv, err := server.Start(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprint(os.Stderr, srv.Banner()) // a person at a terminal (make run)
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (default ./weir.yaml when present)")
	f.String("data", "./weir-data", "data directory (embedded broker, SQLite, objects)")
	f.String("http", "127.0.0.1:8080", "HTTP listen address (API, console, HLS, metrics)")
	f.String("kafka", "", "external Kafka brokers host:port,...; no embedded broker when set")
	f.String("kafka-listen", "127.0.0.1:9092", "embedded Kafka broker listen address")
	addKafkaLoginFlags(f, "DATA/kafka/credentials")
	f.String("rtmp", "127.0.0.1:1935", "RTMP listen address (0.0.0.0:1935 to take publishers from other machines)")
	f.String("srt", "127.0.0.1:8890", "SRT listen address (0.0.0.0:8890 to take publishers from other machines)")
	f.String("metadata", "", "metadata store: sqlite:PATH or postgres://... (default sqlite in the data dir)")
	f.String("objects", "", "object store: a directory or s3://bucket?endpoint=... (default DATA/objects)")
	f.String("api-token", "", "bearer token required on mutating API calls (prefer WEIR_API_TOKEN or --api-token-file: a flag shows in ps)")
	f.String("tls-cert", "", "PEM certificate chain: serve HTTPS (API, console, HLS, metrics) instead of HTTP; needs --tls-key")
	f.String("tls-key", "", "PEM private key of --tls-cert")
	f.String("rtmps", "", "RTMPS listen address such as 127.0.0.1:1936 (RTMP over TLS with the --tls-cert certificate; off when empty)")
	f.String("pprof-listen", "", "serve Go's /debug/pprof/ profiles on this address, such as 127.0.0.1:6060 (off when empty; a listener of its own)")
	f.String("api-token-file", "", "read the API token from this file (one line) instead of --api-token")
	f.Bool("presign", false, "redirect HLS segment requests to presigned object-store URLs (S3)")
	f.Int64("max-upload-bytes", 8<<30, "largest accepted VOD upload in bytes")
	f.String("log-level", "info", "log level: debug, info, warn, error")
	f.Duration("live-segment-duration", 2*time.Second, "live: target segment duration (cut on the next key frame)")
	f.Int("live-window", 10, "live: segments in the live playlist's DVR window")
	f.Duration("live-window-duration", 0, "live: bound the DVR window by duration instead of segment count")
	f.Duration("live-publisher-timeout", 30*time.Second, "live: end a stream whose publisher has been gone this long")
	f.Duration("live-max-segment-duration", 0, "live: the longest segment, and rounded up the playlists' fixed EXT-X-TARGETDURATION; a longer GOP continues in the next segment (default 2 x --live-segment-duration)")
	f.Duration("live-topic-retention", 24*time.Hour, "live: delete an ended stream's topic (its raw media on the bus) this long after it ended (0 keeps topics)")
	f.Duration("live-retention", 0, "live: delete segments this long after they leave the window (0 keeps all)")
	f.Bool("live-ll-hls", false, "live: package streams started without an ll_hls choice as Low-Latency HLS (fMP4 parts, blocking playlist reload, delta updates)")
	f.Duration("live-part-target", 333*time.Millisecond, "live: Low-Latency HLS part target, the longest part (EXT-X-PART-INF:PART-TARGET)")
	f.String("live-ladder", "", "live: ABR ladder of streams started without one, rungs NAME=BITRATE highest first such as 480p=1400k,360p=800k (empty: none); the liveladder role transcodes them")
	f.String("vod-ladder", "1080p=5000k,720p=3000k,480p=1400k,360p=800k", "vod: ladder rungs NAME=BITRATE, highest first (only rungs at or below the source are made)")
	f.Duration("vod-segment-duration", 4*time.Second, "vod: HLS segment duration and GOP length")
	f.String("vod-format", "fmp4", "vod: segment format, fmp4 or ts")
	f.String("vod-preset", "veryfast", "vod: x264 preset")
	f.Int("vod-parallel", runtime.NumCPU(), "vod: ffmpeg processes one title may run at once")
	f.Bool("allow-private-sources", false, "let VOD URL imports and live pulls fetch from loopback and private addresses")
	f.Int("engine-concurrency", 2, "engines: chunks each hosted engine works on at once")
	f.String("public-url", "", "base URL engines reach weir's HTTP API at, for chunk downloads (default: the HTTP listener's address)")
	f.String("engines-dir", "", "register the external engines whose manifests (*.yaml, *.yml, *.json) are in this directory")
	f.Int("http-max-conns", 0, "most HTTP connections open at once (0: a quarter of the open-file limit; -1: no cap)")
	f.Int("kafka-max-conns", 0, "most connections the embedded broker holds at once (0: a quarter of the open-file limit; -1: no cap)")
	f.Int("rtmp-max-conns", 0, "most RTMP connections at once (0: an eighth of the open-file limit; -1: no cap)")
	f.Int("srt-max-conns", 0, "most SRT connections at once (0: an eighth of the open-file limit; -1: no cap)")
	f.Duration("http-header-timeout", 10*time.Second, "HTTP: longest wait for a request's headers")
	f.Duration("http-idle-timeout", 120*time.Second, "HTTP: close keep-alive connections idle this long")
	f.Int64("http-min-body-rate", 4096, "HTTP: slowest a request body (an upload) may arrive, in bytes per second averaged over --http-body-timeout; slower gets 408 (-1: no minimum)")
	f.Duration("http-body-timeout", 30*time.Second, "HTTP: how far a request body may fall behind --http-min-body-rate (its longest stall)")
	f.Duration("bus-timeout", 10*time.Second, "API requests that need the bus answer 503 when it has not acknowledged within this")
	f.Duration("source-connect-timeout", 10*time.Second, "VOD imports and live pulls: longest TCP and TLS handshake")
	f.Duration("source-header-timeout", 30*time.Second, "VOD imports and live pulls: longest wait for the response headers")
	f.Duration("source-read-timeout", 30*time.Second, "VOD imports and live pulls: longest wait for the next bytes of a response")
	f.String("webhook-allow", "", "alert webhooks: loopback or private addresses (comma-separated CIDR ranges or addresses, such as 127.0.0.1,10.0.0.0/8) that rules may POST to; others are refused")
	f.Duration("alerts-retry-for", 24*time.Hour, "alerts: how long a delivery is retried before it is dead-lettered, for rules that name no retry_for")
	f.String("roles", "all", "parts of weir this process runs: all, or a comma-separated list of "+roleNames())
	return cmd
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	slog.SetDefault(log)
	return log, nil
}

// roleNames lists every role weir serve knows, for --roles' help.
func roleNames() string {
	names := make([]string, len(server.AllRoles))
	for i, r := range server.AllRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}
