package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/protocol"
)

func init() { register(newIngestCmd) }

// DefaultServerURL is where client commands find a running `weir serve`.
const DefaultServerURL = "http://127.0.0.1:8080"

// busFlags are the flags by which client commands reach the bus.
type busFlags struct {
	Server     string `koanf:"server"`
	Kafka      string `koanf:"kafka"`
	kafkaLogin `koanf:",squash"`
}

// kafkaLogin holds the --kafka-* flags that say how to log in to Kafka.
type kafkaLogin struct {
	KafkaUser          string `koanf:"kafka-user"`
	KafkaPassword      string `koanf:"kafka-password"`
	KafkaPasswordFile  string `koanf:"kafka-password-file"`
	KafkaCredentials   string `koanf:"kafka-credentials"`
	KafkaSASLMechanism string `koanf:"kafka-sasl-mechanism"`
	KafkaTLS           bool   `koanf:"kafka-tls"`
	KafkaTLSCA         string `koanf:"kafka-tls-ca"`
}

// DefaultCredentialsFile is the embedded broker's credentials file of
// `weir serve` run with its default data dir: client commands log in with it
// when nothing else is said and it exists.
const DefaultCredentialsFile = "weir-data/kafka/credentials"

func addBusFlags(f *pflag.FlagSet) {
	f.String("server", DefaultServerURL, "`URL` of a running weir serve, asked for its Kafka brokers (GET /bus)")
	f.String("kafka", "", "Kafka brokers host:port,... to use directly instead of asking --server")
	addKafkaLoginFlags(f, "./"+DefaultCredentialsFile)
}

// addKafkaLoginFlags adds the flags that say how to log in to Kafka;
// defaultCreds names the credentials file used when none is given.
func addKafkaLoginFlags(f *pflag.FlagSet, defaultCreds string) {
	f.String("kafka-user", "", "Kafka SASL user")
	f.String("kafka-password", "", "Kafka SASL password (prefer --kafka-password-file or WEIR_KAFKA_PASSWORD: a flag shows in ps)")
	f.String("kafka-password-file", "", "read the Kafka SASL password from this file (first line)")
	f.String("kafka-credentials", "", "Kafka login from a librdkafka properties file (sasl.username, sasl.password, sasl.mechanisms), e.g. a broker's credentials file (default "+defaultCreds+" when it exists)")
	f.String("kafka-sasl-mechanism", "", "Kafka SASL mechanism for --kafka-user: SCRAM-SHA-256 (default), SCRAM-SHA-512 or PLAIN")
	f.Bool("kafka-tls", false, "connect to Kafka with TLS")
	f.String("kafka-tls-ca", "", "PEM file of the CA that signed the Kafka brokers' certificates (implies --kafka-tls; default: the system's roots)")
}

// connection is how the flags say to log in; without a user or a
// credentials file, defaultCreds when that file exists.
func (l kafkaLogin) connection(defaultCreds string) bus.Connection {
	conn := bus.Connection{
		User: l.KafkaUser, Password: l.KafkaPassword, PasswordFile: l.KafkaPasswordFile,
		Mechanism: l.KafkaSASLMechanism, CredentialsFile: l.KafkaCredentials,
		TLS: l.KafkaTLS, TLSCA: l.KafkaTLSCA,
	}
	if conn.User == "" && conn.CredentialsFile == "" && defaultCreds != "" {
		if _, err := os.Stat(defaultCreds); err == nil {
			conn.CredentialsFile = defaultCreds
		}
	}
	return conn
}

type ingestConfig struct {
	busFlags       `koanf:",squash"`
	Live           bool   `koanf:"live"`
	RecordDuration string `koanf:"record-duration"`
	Payload        string `koanf:"payload"`
	Topic          string `koanf:"topic"`
	ChunkSize      int    `koanf:"chunk-size"`
	ReadTimeout    string `koanf:"read-timeout"`
	NoMD5          bool   `koanf:"no-md5"`
}

func newIngestCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "ingest FILE|URL",
		Short: "Publish a file, an HTTP download or a live HTTP stream as a protocol stream on Kafka",
		Long: `ingest is weir's pull adapter. It reads a local file, downloads an HTTP(S)
URL as it arrives, or records a live HTTP stream (--live, stopped after
--record-duration or Ctrl-C), recognises the format with ffprobe, and writes
stream_init, raw_stream records and stream_eof to a stream topic, with
engine_heartbeat records along the way.

The source and topic may come from a Veritone task payload (--payload): its
taskPayload.url, isLiveStream and recordDuration, streamOutKafkaTopic, jobId,
taskId and recordingId are used unless a flag or argument says otherwise.
Without a topic, a new stream_<uuid> topic is used and printed.

The Kafka brokers come from a running weir serve (--server) or --kafka.
Read the result with ` + "`weir consume --topic T --from-beginning --until-eof`" + `
or any Kafka client. docs/ingest.md has the details.`,
		Example: `  weir ingest clip.ts
  weir ingest https://example.com/clip.mp4 --topic stream_demo
  weir ingest http://radio.example.com/stream.aac --live --record-duration 1m
  weir ingest --payload task.json --kafka 127.0.0.1:9092`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg ingestConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			opts, err := cfg.pullOptions(args)
			if err != nil {
				return err
			}
			return runIngest(cmd, cfg.busFlags, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (default ./weir.yaml when present)")
	addBusFlags(f)
	f.Bool("live", false, "the source is live: read it as it comes until --record-duration, its end or Ctrl-C")
	f.String("record-duration", "", `stop a live source after this long ("90s", "1m", or seconds); implies --live`)
	f.String("payload", "", "Veritone task payload JSON file (url, isLiveStream, recordDuration, streamOutKafkaTopic, ids)")
	f.String("topic", "", "stream topic to write (default: the payload's streamOutKafkaTopic, else a new stream_<uuid>)")
	f.Int("chunk-size", protocol.DefaultChunkSize, "most bytes per raw_stream record")
	f.String("read-timeout", ingest.DefaultReadTimeout.String(), "give up on an HTTP source that sends nothing for this long")
	f.Bool("no-md5", false, "skip the stream's MD5 (stream_eof without md5Checksum): faster, for a trusted source whose consumers need no end-to-end check")
	return cmd
}

// pullOptions turns the flags and arguments into Pull's options.
func (cfg *ingestConfig) pullOptions(args []string) (ingest.PullOptions, error) {
	opts := ingest.PullOptions{Live: cfg.Live, Topic: cfg.Topic, Stream: ingest.StreamOptions{ChunkSize: cfg.ChunkSize, NoMD5: cfg.NoMD5}}
	if len(args) == 1 {
		opts.Source = args[0]
	}
	if cfg.RecordDuration != "" {
		d, err := protocol.ParseDuration(cfg.RecordDuration)
		if err != nil {
			return opts, fmt.Errorf("--record-duration: %w", err)
		}
		opts.RecordDuration = d
	}
	if cfg.ReadTimeout != "" {
		d, err := protocol.ParseDuration(cfg.ReadTimeout)
		if err != nil {
			return opts, fmt.Errorf("--read-timeout: %w", err)
		}
		opts.ReadTimeout = d
	}
	if cfg.ChunkSize < 1 || cfg.ChunkSize > protocol.MaxChunkSize {
		return opts, fmt.Errorf("--chunk-size %d: must be from 1 to %d", cfg.ChunkSize, protocol.MaxChunkSize)
	}
	if cfg.Payload != "" {
		p, err := readPayload(cfg.Payload)
		if err != nil {
			return opts, err
		}
		opts.Payload = p
	}
	if opts.Source == "" && (opts.Payload == nil || opts.Payload.Payload.URL == "") {
		return opts, errors.New("nothing to ingest: give a FILE or URL argument, or --payload with taskPayload.url")
	}
	if opts.Topic == "" && (opts.Payload == nil || opts.Payload.StreamOutKafkaTopic == "") {
		opts.Topic = protocol.StreamTopic(uuid.NewString())
	}
	return opts, nil
}

// readPayload reads and checks a task payload file. Errors name the field,
// or the line and column of a JSON syntax error.
func readPayload(path string) (*protocol.TaskPayload, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--payload: %w", err)
	}
	p, err := protocol.ParseTaskPayload(data)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := lineCol(data, se.Offset)
			return nil, fmt.Errorf("payload %s: line %d, column %d: %w", path, line, col, err)
		}
		return nil, fmt.Errorf("payload %s: %w", path, err)
	}
	return p, nil
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func runIngest(cmd *cobra.Command, bf busFlags, opts ingest.PullOptions) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	log := cliLogger(cmd.ErrOrStderr())
	client, err := dialBus(ctx, bf, log)
	if err != nil {
		return err
	}
	defer client.Close()
	opts.Logger = log
	opts.OnStart = func(res ingest.Result) {
		format := fmt.Sprintf("%s (%s)", res.MimeType, cmpOrDash(res.FFmpegFormat))
		if res.DurationMS > 0 {
			format += fmt.Sprintf(", %s", time.Duration(res.DurationMS)*time.Millisecond)
		}
		fmt.Fprintf(out, "topic     %s\nsource    %s\nformat    %s\n", res.Topic, res.Source, format)
	}
	res, err := ingest.Pull(ctx, opts, client)
	if res.Published {
		s := res.Stats
		fmt.Fprintf(out, "bytes     %d in %d raw_stream records (%d stream messages, %d heartbeats)\n", s.Bytes, s.RawMessages, s.Messages, s.Heartbeats)
		fmt.Fprintf(out, "md5       %s\n", cmp.Or(s.MD5, "not computed (--no-md5)"))
		fmt.Fprintf(out, "ended     %s (forcedEOF %v)\n", res.End, s.ForcedEOF)
		fmt.Fprintf(out, "duration  %s\n", res.Elapsed.Round(time.Millisecond))
	}
	if err != nil {
		if res.End == ingest.EndStopped || errors.Is(err, context.Canceled) {
			return &exitError{code: 130, err: err}
		}
		return err
	}
	return nil
}

func cmpOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cliLogger logs warnings and errors of client commands to w.
func cliLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// busDialTimeout bounds finding and reaching the brokers.
const busDialTimeout = 10 * time.Second

// dialBus returns a client for the brokers named by --kafka or, without
// it, for those a running weir serve at --server announces, after checking
// that one answers.
func dialBus(ctx context.Context, bf busFlags, log *slog.Logger) (*bus.Client, error) {
	var brokers []string
	var err error
	if bf.Kafka != "" {
		if brokers, err = bus.ParseBrokers(bf.Kafka); err != nil {
			return nil, fmt.Errorf("--kafka: %w", err)
		}
	} else if brokers, err = serverBrokers(ctx, bf.Server); err != nil {
		return nil, err
	}
	conn := bf.connection(DefaultCredentialsFile)
	opts, err := conn.ClientOptions()
	if err != nil {
		return nil, err
	}
	client, err := bus.NewClient(brokers, append([]bus.ClientOption{bus.WithLogger(log), bus.WithClientID("weir-cli")}, opts...)...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, busDialTimeout)
	defer cancel()
	if err := client.Ping(pctx); err != nil {
		client.Close()
		login := "without a login (pass --kafka-credentials FILE, e.g. the broker's DATA/kafka/credentials, or --kafka-user)"
		if creds, _ := conn.Credentials(); creds.User != "" {
			login = "as " + creds.User
			if conn.User == "" {
				login += " from " + conn.CredentialsFile
			}
		}
		return nil, fmt.Errorf("kafka %v not reachable %s: %w", brokers, login, err)
	}
	return client, nil
}

// serverBrokers asks a running weir serve for its Kafka brokers:
// GET {server}/bus answers {"brokers": ["host:port", ...]}.
func serverBrokers(ctx context.Context, server string) ([]string, error) {
	if server == "" {
		server = DefaultServerURL
	}
	u := strings.TrimRight(server, "/") + "/bus"
	ctx, cancel := context.WithTimeout(ctx, busDialTimeout)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("ask weir server %s for its Kafka brokers: %w (is `weir serve` running? or pass --kafka host:port)", server, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fail(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fail(fmt.Errorf("GET %s: HTTP %s", u, resp.Status))
	}
	var body struct {
		Brokers []string `json:"brokers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fail(fmt.Errorf("GET %s: %w", u, err))
	}
	if len(body.Brokers) == 0 {
		return nil, fail(fmt.Errorf("GET %s: no brokers in the answer", u))
	}
	return body.Brokers, nil
}
