// Package server assembles a weir process: the embedded Kafka-protocol broker
// (unless external brokers are named), the bus client, the object and
// metadata stores, the HTTP control plane and the media pipelines. Every
// component talks to the others through the bus or a store, so running them
// in one process or many is configuration.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/ingest/control"
	"github.com/weir-media/weir/internal/ingest/push"
	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/live"
	"github.com/weir-media/weir/internal/liveladder"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/netguard"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/vod"
	"github.com/weir-media/weir/protocol"
)

// Config is what `weir serve` is started with. Field tags are flag names.
type Config struct {
	Data        string `koanf:"data"`
	HTTP        string `koanf:"http"`
	Kafka       string `koanf:"kafka"`
	KafkaListen string `koanf:"kafka-listen"`

	// How to log in to --kafka: a user with a password (or a password
	// file), or a credentials file; by default DATA/kafka/credentials
	// when it exists. TLS settings likewise. The embedded broker ignores
	// them: its processes use its own credentials file.
	KafkaUser          string `koanf:"kafka-user"`
	KafkaPassword      string `koanf:"kafka-password"`
	KafkaPasswordFile  string `koanf:"kafka-password-file"`
	KafkaCredentials   string `koanf:"kafka-credentials"`
	KafkaSASLMechanism string `koanf:"kafka-sasl-mechanism"`
	KafkaTLS           bool   `koanf:"kafka-tls"`
	KafkaTLSCA         string `koanf:"kafka-tls-ca"`
	RTMP               string `koanf:"rtmp"`
	SRT                string `koanf:"srt"`
	Metadata           string `koanf:"metadata"`
	Objects            string `koanf:"objects"`
	APIToken           string `koanf:"api-token"`
	Presign            bool   `koanf:"presign"`
	MaxUpload          int64  `koanf:"max-upload-bytes"`
	LogLevel           string `koanf:"log-level"`

	// APITokenFile names a file holding the API token, so the token need
	// not appear in the process list; it excludes APIToken.
	APITokenFile string `koanf:"api-token-file"`

	// TLSCert and TLSKey are PEM files of a certificate chain and its key;
	// with them the HTTP listener (API, console, HLS, metrics) speaks
	// HTTPS. Renewed files are picked up without a restart.
	TLSCert string `koanf:"tls-cert"`
	TLSKey  string `koanf:"tls-key"`
	// RTMPS, when set, is the listen address of an RTMPS ingest listener
	// (RTMP inside TLS) with the certificate of TLSCert, renewals
	// included; it needs TLSCert and TLSKey.
	RTMPS string `koanf:"rtmps"`
	// PprofListen, when set, serves /debug/pprof/ on a listener of its
	// own at this address (see docs/operations.md, Profiling).
	PprofListen string `koanf:"pprof-listen"`

	LiveSegmentDuration  time.Duration `koanf:"live-segment-duration"`
	LiveWindow           int           `koanf:"live-window"`
	LiveWindowDuration   time.Duration `koanf:"live-window-duration"`
	LivePublisherTimeout time.Duration `koanf:"live-publisher-timeout"`
	LiveRetention        time.Duration `koanf:"live-retention"`
	LiveTopicRetention   time.Duration `koanf:"live-topic-retention"`
	LiveMaxSegment       time.Duration `koanf:"live-max-segment-duration"`
	// LiveLadder is the ABR ladder of live streams started without one
	// (liveladder.ParseSpec); empty: none.
	LiveLadder string `koanf:"live-ladder"`
	// LiveLLHLS makes Low-Latency HLS the default of new live streams;
	// LivePartTarget is the LL-HLS part target.
	LiveLLHLS      bool          `koanf:"live-ll-hls"`
	LivePartTarget time.Duration `koanf:"live-part-target"`

	VODLadder          string        `koanf:"vod-ladder"`
	VODSegmentDuration time.Duration `koanf:"vod-segment-duration"`
	VODFormat          string        `koanf:"vod-format"`
	VODPreset          string        `koanf:"vod-preset"`
	VODParallel        int           `koanf:"vod-parallel"`

	AllowPrivateSources bool `koanf:"allow-private-sources"`

	// WebhookAllow lists the loopback or private ranges alert webhooks
	// may reach (comma-separated CIDRs or addresses); AlertsRetryFor is
	// how long a delivery is retried by default.
	WebhookAllow   string        `koanf:"webhook-allow"`
	AlertsRetryFor time.Duration `koanf:"alerts-retry-for"`

	// EnginesDir holds external engines' manifests (*.yaml, *.yml,
	// *.json) to register at start; one bad file fails the start.
	EnginesDir string `koanf:"engines-dir"`
	// EngineConcurrency is how many chunks each engine this process
	// hosts works on at once.
	EngineConcurrency int `koanf:"engine-concurrency"`
	// PublicURL is the base URL engines and clients reach this weir's
	// HTTP API at; default the HTTP listener's address.
	PublicURL string `koanf:"public-url"`

	Limits `koanf:",squash"`

	// Roles is the --roles value: which parts of weir this process runs
	// (see ParseRoles; empty means all).
	Roles string `koanf:"roles"`
}

// Version is reported by /health; the CLI sets it from its link-time version.
var Version = "dev"

// Server is a running weir process.
type Server struct {
	cfg     Config
	roles   Roles
	holder  string
	log     *slog.Logger
	broker  *bus.Broker
	bus     *bus.Client
	meta    metastore.Store
	objects objstore.Store
	engines *engines.Catalog
	reg     *prometheus.Registry
	http    *http.Server
	httpLn  *netguard.Listener
	lnMet   *netguard.Metrics
	tls     *certificate // nil: plain HTTP
	brokers []string
	busOpts []bus.ClientOption // how to log in to brokers

	rtmp     *push.RTMPServer
	rtmps    *push.RTMPServer // nil without --rtmps
	srt      *push.SRTServer
	httpPush *push.HTTPServer // HTTP and WebSocket publishers, on the HTTP listener
	packager *live.Packager
	ladder   *liveladder.Transcoder
	control  *control.Controller
	vod      *vod.Worker
	jobs     *jobs.Runner
	hosts    *engineHosts
	alerts   *alerts.Service
	runAlert bool      // this process evaluates rules and delivers alerts
	pprof    *profiler // nil without --pprof-listen
}

// Start opens the stores, starts the broker and binds every listener. It
// returns once the process is ready to serve; Run then serves until the
// context ends.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	roles, err := ParseRoles(cfg.Roles)
	if err != nil {
		return nil, err
	}
	liveRungs, err := liveladder.ParseSpec(cfg.LiveLadder)
	if err != nil {
		return nil, fmt.Errorf("--live-ladder: %w", err)
	}
	liveLadder := liveladder.Specs(liveRungs)
	if !roles.All() {
		log = log.With("roles", roles.String())
	}
	// s stays set when a step fails (the named result does not), so the
	// deferred close releases whatever was started before the failure.
	s := &Server{cfg: cfg, roles: roles, holder: metastore.DefaultHolder(), log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.cfg.APIToken, err = cfg.apiToken(log); err != nil {
		return nil, err
	}
	if cfg.PprofListen != "" {
		if s.pprof, err = startProfiler(cfg.PprofListen, log); err != nil {
			return nil, err
		}
		log.Info("profiling endpoint on", "addr", "http://"+s.pprof.Addr().String()+"/debug/pprof/")
	}
	// A bad certificate stops weir before anything starts.
	if s.tls, err = loadCertificate(cfg.TLSCert, cfg.TLSKey, log); err != nil {
		return nil, err
	}
	if cfg.RTMPS != "" && s.tls == nil {
		return nil, errors.New("--rtmps needs --tls-cert and --tls-key: RTMPS serves the HTTPS certificate")
	}
	if err := privateDir(cfg.Data, log); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.Data, err)
	}
	if err := s.reg.Register(dataDiskCollector{dir: cfg.Data}); err != nil {
		return nil, fmt.Errorf("data dir metrics: %w", err)
	}

	if s.lnMet, err = netguard.NewMetrics(s.reg); err != nil {
		return nil, err
	}
	if err := s.startBroker(); err != nil {
		return nil, err
	}
	metrics, err := bus.NewMetrics(s.reg)
	if err != nil {
		return nil, fmt.Errorf("bus metrics: %w", err)
	}
	s.bus, err = bus.NewClient(s.brokers, append([]bus.ClientOption{bus.WithMetrics(metrics), bus.WithLogger(log.With("component", "bus"))}, s.busOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", s.brokers, err)
	}

	metaURL := cfg.Metadata
	if metaURL == "" {
		metaURL = "sqlite:" + filepath.Join(cfg.Data, "weir.db")
	}
	if s.meta, err = metastore.Open(ctx, metaURL); err != nil {
		return nil, fmt.Errorf("metadata store: %w", err)
	}
	objURL := cfg.Objects
	if objURL == "" {
		objURL = filepath.Join(cfg.Data, "objects")
	}
	if s.objects, err = objstore.Open(objURL); err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}

	s.engines = engines.NewCatalog(engine.Default(), s.meta, engines.WithLogger(log.With("component", "engines")))
	// The fingerprint engine's references: the library kept in the
	// metadata store (/fingerprints).
	engines.SetFingerprintLibrary(engines.FingerprintLibraryOf(s.meta))
	if cfg.EnginesDir != "" {
		names, err := s.engines.LoadDir(ctx, cfg.EnginesDir)
		if err != nil {
			return nil, fmt.Errorf("--engines-dir: %w", err)
		}
		log.Info("external engines registered", "dir", cfg.EnginesDir, "engines", names)
	}

	if err := s.startPipelines(ctx); err != nil {
		return nil, err
	}
	if err := s.startAlerts(); err != nil {
		return nil, err
	}

	refuse := refuseHTTP
	if s.tls != nil {
		refuse = nil // a TLS client could not read a plain-text 503
	}
	s.httpLn, err = netguard.Listen("tcp", cfg.HTTP, netguard.Config{
		Name: "http", MaxConns: maxConns(cfg.HTTPMaxConns, httpShare), Refuse: refuse,
		Logger: log, Metrics: s.lnMet,
	})
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	rtmpAddr, srtAddr, rtmpsAddr := cfg.RTMP, cfg.SRT, cfg.RTMPS
	if s.rtmp != nil {
		rtmpAddr, srtAddr = s.rtmp.Addr().String(), s.srt.Addr().String()
	}
	rtmpsBase := ""
	if s.rtmps != nil {
		rtmpsAddr = s.rtmps.Addr().String()
	}
	if rtmpsAddr != "" {
		rtmpsBase = publicURL("rtmps", rtmpsAddr, s.httpLn.Addr())
	}
	// The job service behind /jobs; the job runner (role chunker) takes
	// the jobs it announces.
	jobService := &jobs.Service{Meta: s.meta, Bus: s.bus, Catalog: s.engines,
		AllowPrivateSources: cfg.AllowPrivateSources, BusTimeout: cfg.BusTimeout, Log: log.With("component", "jobs")}
	apiServer, err := api.New(api.Config{
		OperationsOnly: !roles.Has(RoleAPI),
		Meta:           s.meta,
		Objects:        s.objects,
		Bus:            s.bus,
		Logger:         log.With("component", "api"),
		Registry:       s.reg,
		APIToken:       s.cfg.APIToken,
		Presign:        cfg.Presign,
		MaxUploadBytes: cfg.MaxUpload,
		Version:        Version,
		RTMPBase:       publicURL("rtmp", rtmpAddr, s.httpLn.Addr()),
		SRTBase:        publicURL("srt", srtAddr, s.httpLn.Addr()),
		RTMPSBase:      rtmpsBase,
		LiveLadder:     liveLadder,
		LiveLLHLS:      cfg.LiveLLHLS,
		KafkaBrokers:   s.brokers,
		Engines:        s.engines,
		Jobs:           jobService,
		Alerts:         s.alerts,
		Ready:          s.readyChecks(),
		Fallback:       console.Handler(),
		MinBodyRate:    cfg.HTTPMinBodyRate,
		BodyTimeout:    cfg.HTTPBodyTimeout,
		BusTimeout:     cfg.BusTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	handler := apiServer.Handler()
	if s.httpPush != nil {
		// Publishers authenticate with their publish key, not the API
		// token, and stream bodies the API's pacing is not meant for.
		handler = s.httpPush.Mount(handler)
	} else {
		handler = push.NotServed(handler)
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: orDefault(cfg.HTTPHeaderTimeout, defaultHTTPHeaderTimeout),
		IdleTimeout:       orDefault(cfg.HTTPIdleTimeout, defaultHTTPIdleTimeout),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if s.tls != nil {
		s.http.TLSConfig = s.tls.config()
	}
	if s.httpPush != nil {
		// Shutdown waits for handlers: end the publishers' streams.
		s.http.RegisterOnShutdown(func() { s.httpPush.Close() })
	}
	return s, nil
}

// startPipelines creates the pipeline topics and starts the push listeners,
// the live packager and controller and the VOD worker. Their Run loops start
// in Run.
func (s *Server) startPipelines(ctx context.Context) error {
	// The job and control topics get several partitions so that, at the
	// distributed scale, workers in one consumer group share them by
	// stream id.
	for _, topic := range []string{protocol.TopicVODJobs, protocol.TopicLiveControl, protocol.TopicJobs} {
		if err := s.bus.CreateTopic(ctx, topic, pipelinePartitions); err != nil {
			return fmt.Errorf("creating topic %s: %w%s", topic, err, s.loginHint())
		}
	}
	sources := sourceHTTPClient(s.cfg.AllowPrivateSources, s.cfg.sourceTimeouts())
	if s.roles.Has(RolePackager) {
		if err := s.startPackager(); err != nil {
			return err
		}
	}
	if s.roles.Has(RoleLiveLadder) {
		var err error
		s.ladder, err = liveladder.New(liveladder.Config{Meta: s.meta, Bus: s.bus, Holder: s.holder,
			Preset: s.cfg.VODPreset, Logger: s.log, Registry: s.reg})
		if err != nil {
			return fmt.Errorf("live ladder: %w", err)
		}
	}
	if s.roles.Has(RoleIngest) {
		if err := s.startIngest(sources); err != nil {
			return err
		}
	}
	if s.roles.Has(RoleVOD) {
		if err := s.startVOD(sources); err != nil {
			return err
		}
	}
	if s.roles.Has(RoleChunker) {
		if err := s.startJobs(ctx, sources); err != nil {
			return err
		}
	}
	if s.roles.Has(RoleEngines) {
		s.hosts = &engineHosts{s: s, hosts: map[string]*runningHost{}}
	}
	return nil
}

// startBroker starts the embedded broker when this process has the broker
// role and no external cluster was named, and works out the bootstrap
// brokers every role connects to.
func (s *Server) startBroker() error {
	cfg := s.cfg
	explicit := !s.roles.All() && s.roles.Has(RoleBroker)
	switch {
	case cfg.Kafka != "" && explicit:
		return fmt.Errorf("--roles broker runs the embedded broker; it cannot be combined with --kafka %s", cfg.Kafka)
	case cfg.Kafka == "" && !s.roles.Has(RoleBroker):
		return fmt.Errorf("--roles %s has no broker role: name the Kafka cluster (or the process running --roles broker) with --kafka", s.roles)
	}
	if cfg.Kafka != "" {
		for _, b := range strings.Split(cfg.Kafka, ",") {
			if b = strings.TrimSpace(b); b != "" {
				s.brokers = append(s.brokers, b)
			}
		}
		var err error
		if s.busOpts, err = cfg.busConnection().ClientOptions(); err != nil {
			return fmt.Errorf("--kafka %s: %w", cfg.Kafka, err)
		}
		return nil
	}
	if cfg.KafkaUser != "" || cfg.KafkaPassword != "" || cfg.KafkaPasswordFile != "" || cfg.KafkaCredentials != "" || cfg.KafkaTLS || cfg.KafkaTLSCA != "" {
		s.log.Warn("the --kafka-user, --kafka-password, --kafka-credentials and --kafka-tls settings apply to --kafka; the embedded broker's processes log in with its own credentials file",
			"file", filepath.Join(cfg.Data, "kafka", bus.CredentialsFileName))
	}
	var err error
	s.broker, err = bus.StartBroker(
		bus.WithListenAddr(cfg.KafkaListen),
		bus.WithDataDir(filepath.Join(cfg.Data, "kafka")),
		bus.WithAuthentication(),
		bus.WithLogger(s.log.With("component", "broker")),
		bus.WithMaxConns(maxConns(cfg.KafkaMaxConns, kafkaShare)),
		bus.WithListenerMetrics(s.lnMet),
	)
	if err != nil {
		return fmt.Errorf("embedded kafka broker on %s: %w", cfg.KafkaListen, err)
	}
	s.brokers = []string{s.broker.Addr()}
	// This process's own clients reach the broker through memory, not
	// loopback TCP (bus.Broker.InProcess); other processes use TCP.
	s.busOpts = []bus.ClientOption{bus.WithSASL(s.broker.Superuser()), s.broker.InProcess()}
	kafkaDir := filepath.Join(cfg.Data, "kafka")
	s.log.Info("the embedded broker requires a login",
		"user", s.broker.Superuser().User, "credentials", filepath.Join(kafkaDir, bus.CredentialsFileName),
		"kcat", "kcat -F "+filepath.Join(kafkaDir, bus.KcatConfigFileName)+" -L",
		"add_users", "weir bus users add NAME --engine ID --data "+cfg.Data)
	return nil
}

// loginHint is added to the first bus error of a process that reached
// --kafka without a login: a cluster that requires one just closes the
// connection, which says nothing.
func (s *Server) loginHint() string {
	if s.broker != nil || s.cfg.busConnection().User != "" || s.cfg.busConnection().CredentialsFile != "" {
		return ""
	}
	return " (no Kafka login given: a broker started by weir, and most clusters, need --kafka-credentials FILE, or --kafka-user with --kafka-password or --kafka-password-file)"
}

// busConnection is how this process logs in to --kafka. Without a user or
// a credentials file it uses the data dir's credentials file when there is
// one, so every process of a data dir is weir's principal.
func (cfg Config) busConnection() bus.Connection {
	conn := bus.Connection{
		User: cfg.KafkaUser, Password: cfg.KafkaPassword, PasswordFile: cfg.KafkaPasswordFile,
		Mechanism: cfg.KafkaSASLMechanism, CredentialsFile: cfg.KafkaCredentials,
		TLS: cfg.KafkaTLS, TLSCA: cfg.KafkaTLSCA,
	}
	if conn.User == "" && conn.CredentialsFile == "" {
		own := filepath.Join(cfg.Data, "kafka", bus.CredentialsFileName)
		if _, err := os.Stat(own); err == nil {
			conn.CredentialsFile = own
		}
	}
	return conn
}

// startIngest binds the RTMP and SRT listeners and creates the live
// controller, which pulls live sources.
func (s *Server) startIngest(sources *http.Client) error {
	var err error
	pcfg := push.Config{Addr: s.cfg.RTMP, Streams: s.meta, Producer: s.bus, Logger: s.log, Registry: s.reg, Holder: s.holder,
		MaxConns: maxConns(s.cfg.RTMPMaxConns, pushShare), ListenerMetrics: s.lnMet}
	if s.rtmp, err = push.NewRTMPServer(pcfg); err != nil {
		return fmt.Errorf("rtmp server: %w", err)
	}
	if err := s.rtmp.Start(); err != nil {
		return fmt.Errorf("rtmp listener on %s: %w", s.cfg.RTMP, err)
	}
	if s.cfg.RTMPS != "" {
		tcfg := pcfg
		tcfg.Addr, tcfg.TLS = s.cfg.RTMPS, s.tls.config()
		if s.rtmps, err = push.NewRTMPServer(tcfg); err != nil {
			return fmt.Errorf("rtmps server: %w", err)
		}
		if err := s.rtmps.Start(); err != nil {
			return fmt.Errorf("rtmps listener on %s: %w", s.cfg.RTMPS, err)
		}
	}
	pcfg.Addr, pcfg.MaxConns = s.cfg.SRT, maxConns(s.cfg.SRTMaxConns, pushShare)
	if s.srt, err = push.NewSRTServer(pcfg); err != nil {
		return fmt.Errorf("srt server: %w", err)
	}
	// HTTP and WebSocket publishers hold connections of the HTTP
	// listener (--http-max-conns), and each WebM one an ffmpeg process:
	// at most an eighth of the open-file limit of them at once.
	hcfg := pcfg
	hcfg.MaxConns = maxConns(0, pushShare)
	if s.httpPush, err = push.NewHTTPServer(hcfg); err != nil {
		return fmt.Errorf("http push server: %w", err)
	}
	if err := s.srt.Start(); err != nil {
		return fmt.Errorf("srt listener on %s: %w", s.cfg.SRT, err)
	}
	ccfg := control.Config{
		Meta: s.meta, Bus: s.bus,
		Logger:     s.log,
		HTTPClient: sources,
		Holder:     s.holder,
	}
	if s.control, err = control.New(ccfg); err != nil {
		return fmt.Errorf("live controller: %w", err)
	}
	return nil
}

func (s *Server) startPackager() error {
	var err error
	s.packager, err = live.NewPackager(live.Config{
		Meta: s.meta, Objects: s.objects, Bus: s.bus, Registry: s.reg,
		Logger:             s.log,
		SegmentDuration:    s.cfg.LiveSegmentDuration,
		Window:             s.cfg.LiveWindow,
		WindowDuration:     s.cfg.LiveWindowDuration,
		PublisherTimeout:   s.cfg.LivePublisherTimeout,
		Retention:          s.cfg.LiveRetention,
		TopicRetention:     s.cfg.LiveTopicRetention,
		MaxSegmentDuration: s.cfg.LiveMaxSegment,
		PartTarget:         s.cfg.LivePartTarget,
	})
	if err != nil {
		return fmt.Errorf("live packager: %w", err)
	}
	return nil
}

func (s *Server) startVOD(sources *http.Client) error {
	ladder, err := vod.ParseLadder(s.cfg.VODLadder)
	if err != nil {
		return fmt.Errorf("--vod-ladder: %w", err)
	}
	s.vod, err = vod.NewWorker(vod.Config{
		Meta: s.meta, Objects: s.objects, Registry: s.reg,
		Logger:          s.log,
		WorkDir:         filepath.Join(s.cfg.Data, "work", "vod"),
		Ladder:          ladder,
		SegmentDuration: s.cfg.VODSegmentDuration,
		Format:          s.cfg.VODFormat,
		Preset:          s.cfg.VODPreset,
		MaxParallel:     s.cfg.VODParallel,
		HTTPClient:      sources,
		Holder:          s.holder,
	})
	if err != nil {
		return fmt.Errorf("vod worker: %w", err)
	}
	return nil
}

// apiToken is the API token from --api-token or --api-token-file (one
// line; surrounding white space, such as the final newline, is dropped).
// A token file others can read is logged, not refused: secrets mounted by
// orchestrators are often 0644 inside a private mount.
func (cfg Config) apiToken(log *slog.Logger) (string, error) {
	if cfg.APITokenFile == "" {
		return cfg.APIToken, nil
	}
	if cfg.APIToken != "" {
		return "", errors.New("--api-token and --api-token-file are both set; use one")
	}
	data, err := os.ReadFile(cfg.APITokenFile)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" || strings.ContainsAny(token, "\r\n") {
		return "", fmt.Errorf("--api-token-file %s: want one line holding the token", cfg.APITokenFile)
	}
	if fi, err := os.Stat(cfg.APITokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the API token file is readable by other users; chmod 600 it", "file", cfg.APITokenFile, "mode", fi.Mode().Perm().String())
	}
	return token, nil
}

// privateDir creates the data dir with mode 0700, or takes group and
// other permissions off an existing one: it holds the metadata database,
// the bus log and every upload, none of them for other local users.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&0o700); err != nil {
			return err
		}
		log.Info("data dir was open to other users; made it owner-only", "dir", dir, "was", perm.String())
	}
	return nil
}

// pipelinePartitions is the partition count of the VOD job and live control
// topics.
const pipelinePartitions = 4

// publicURL turns a listen address into the base URL clients publish to,
// using the HTTP listener's host when the listen host is empty or wildcard.
func publicURL(scheme, listen string, httpAddr net.Addr) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + "://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host, _, _ = net.SplitHostPort(httpAddr.String())
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// HTTPURL is the base URL of the HTTP listener: https:// with --tls-cert.
func (s *Server) HTTPURL() string {
	if s.tls != nil {
		return "https://" + s.HTTPAddr()
	}
	return "http://" + s.HTTPAddr()
}

// Brokers are the Kafka bootstrap addresses in use.
func (s *Server) Brokers() []string { return s.brokers }

// Banner is a few lines for a person starting weir by hand, with the
// addresses the listeners are actually bound to (ports picked by the
// system, a config file or WEIR_* variables included), for the roles this
// process runs.
func (s *Server) Banner() string {
	var b strings.Builder
	httpURL := s.HTTPURL()
	if s.roles.Has(RoleAPI) {
		fmt.Fprintf(&b, "weir: console and API  %s/   (OpenAPI docs at /docs, metrics at /metrics)\n", httpURL)
	} else {
		fmt.Fprintf(&b, "weir: operations       %s/   (/health, /ready, /metrics, /bus)\n", httpURL)
	}
	brokers := strings.Join(s.brokers, ",")
	if s.broker != nil {
		kafkaDir := filepath.Join(s.cfg.Data, "kafka")
		fmt.Fprintf(&b, "weir: Kafka            %s   (SASL %s as %s, password in %s; try: kcat -F %s -L)\n",
			brokers, s.broker.Superuser().Mechanism, s.broker.Superuser().User,
			filepath.Join(kafkaDir, bus.CredentialsFileName), filepath.Join(kafkaDir, bus.KcatConfigFileName))
		fmt.Fprintf(&b, "weir: Kafka users      weir bus users add NAME --engine ID   (an engine's login: read chunk_ID, write results_*)\n")
	} else {
		fmt.Fprintf(&b, "weir: Kafka            %s\n", brokers)
	}
	if s.rtmp != nil {
		fmt.Fprintf(&b, "weir: RTMP publish     %s/live/{publish key}\n", publicURL("rtmp", s.rtmp.Addr().String(), s.httpLn.Addr()))
		if s.rtmps != nil {
			fmt.Fprintf(&b, "weir: RTMPS publish    %s/live/{publish key}\n", publicURL("rtmps", s.rtmps.Addr().String(), s.httpLn.Addr()))
		}
		fmt.Fprintf(&b, "weir: SRT publish      %s?streamid=publish:{publish key}\n", publicURL("srt", s.srt.Addr().String(), s.httpLn.Addr()))
	}
	fmt.Fprintf(&b, "weir: data directory   %s   (Ctrl-C stops cleanly)\n", s.cfg.Data)
	return b.String()
}

// Run serves until ctx ends, then shuts down in dependency order: stop
// accepting requests, let pipelines finish their current step and commit
// their offsets, flush producers, close the broker, close the stores.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		serve := s.http.Serve
		if s.tls != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	pipeCtx, stopPipes := context.WithCancel(context.Background())
	var pipes sync.WaitGroup
	for name, run := range s.pipelines() {
		pipes.Add(1)
		go func() {
			defer pipes.Done()
			if err := run(pipeCtx); err != nil {
				s.log.Error(name+" stopped", "err", err)
			}
		}()
	}
	attrs := []any{"http", s.HTTPURL(), "kafka", strings.Join(s.brokers, ","), "data", s.cfg.Data}
	if s.rtmp != nil {
		attrs = append(attrs, "rtmp", s.rtmp.Addr(), "srt", s.srt.Addr())
	}
	if s.rtmps != nil {
		attrs = append(attrs, "rtmps", s.rtmps.Addr())
	}
	s.log.Info("weir serving", attrs...)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("weir shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	// Publishers first, so each open stream gets its end-of-stream record;
	// then the pipelines, which commit what they handled.
	s.closeListeners()
	stopPipes()
	pipes.Wait()
	if s.bus != nil {
		if err := s.bus.Flush(shutdownCtx); err != nil {
			s.log.Warn("flushing kafka producer", "err", err)
		}
	}
	s.close()
	return runErr
}

// pipelines are the long-running loops of this process's roles, by name.
func (s *Server) pipelines() map[string]func(context.Context) error {
	runs := map[string]func(context.Context) error{}
	if s.packager != nil {
		runs["live packager"] = s.packager.Run
	}
	if s.ladder != nil {
		runs["live ladder"] = s.ladder.Run
	}
	if s.control != nil {
		runs["live controller"] = s.control.Run
	}
	if s.vod != nil {
		runs["vod worker"] = func(ctx context.Context) error { return s.vod.Run(ctx, s.bus) }
	}
	if s.jobs != nil {
		runs["job runner"] = s.jobs.Run
	}
	if s.hosts != nil {
		runs["engine hosts"] = s.hosts.Run
	}
	if s.runAlert {
		runs["alerts"] = s.alerts.Run
	}
	return runs
}

func (s *Server) closeListeners() {
	if s.rtmp != nil {
		s.rtmp.Close()
	}
	if s.rtmps != nil {
		s.rtmps.Close()
	}
	if s.srt != nil {
		s.srt.Close()
	}
	if s.httpPush != nil {
		s.httpPush.Close()
	}
}

func (s *Server) close() {
	s.closeListeners()
	s.pprof.close()
	if s.bus != nil {
		s.bus.Close()
	}
	if s.broker != nil {
		if err := s.broker.Close(); err != nil {
			s.log.Warn("closing embedded broker", "err", err)
		}
	}
	if s.meta != nil {
		s.meta.Close()
	}
	if s.httpLn != nil {
		s.httpLn.Close()
	}
}
