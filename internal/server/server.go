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

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/live"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/push"
	"github.com/weir-media/weir/internal/vod"
)

// Config is what `weir serve` is started with. Field tags are flag names.
type Config struct {
	Data        string `koanf:"data"`
	HTTP        string `koanf:"http"`
	Kafka       string `koanf:"kafka"`
	KafkaListen string `koanf:"kafka-listen"`
	RTMP        string `koanf:"rtmp"`
	SRT         string `koanf:"srt"`
	Metadata    string `koanf:"metadata"`
	Objects     string `koanf:"objects"`
	APIToken    string `koanf:"api-token"`
	Presign     bool   `koanf:"presign"`
	MaxUpload   int64  `koanf:"max-upload-bytes"`
	LogLevel    string `koanf:"log-level"`

	LiveSegmentDuration  time.Duration `koanf:"live-segment-duration"`
	LiveWindow           int           `koanf:"live-window"`
	LiveWindowDuration   time.Duration `koanf:"live-window-duration"`
	LivePublisherTimeout time.Duration `koanf:"live-publisher-timeout"`
	LiveRetention        time.Duration `koanf:"live-retention"`

	VODLadder          string        `koanf:"vod-ladder"`
	VODSegmentDuration time.Duration `koanf:"vod-segment-duration"`
	VODFormat          string        `koanf:"vod-format"`
	VODPreset          string        `koanf:"vod-preset"`
	VODParallel        int           `koanf:"vod-parallel"`

	AllowPrivateSources bool `koanf:"allow-private-sources"`
}

// Version is reported by /health; the CLI sets it from its link-time version.
var Version = "dev"

// Server is a running weir process.
type Server struct {
	cfg     Config
	log     *slog.Logger
	broker  *bus.Broker
	bus     *bus.Client
	meta    metastore.Store
	objects objstore.Store
	reg     *prometheus.Registry
	http    *http.Server
	httpLn  net.Listener
	brokers []string

	rtmp     *push.RTMPServer
	srt      *push.SRTServer
	packager *live.Packager
	control  *live.Controller
	vod      *vod.Worker
}

// Start opens the stores, starts the broker and binds every listener. It
// returns once the process is ready to serve; Run then serves until the
// context ends.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	// s stays set when a step fails (the named result does not), so the
	// deferred close releases whatever was started before the failure.
	s := &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.Data, err)
	}

	if cfg.Kafka == "" {
		s.broker, err = bus.StartBroker(
			bus.WithListenAddr(cfg.KafkaListen),
			bus.WithDataDir(filepath.Join(cfg.Data, "kafka")),
			bus.WithLogger(log.With("component", "broker")),
		)
		if err != nil {
			return nil, fmt.Errorf("embedded kafka broker on %s: %w", cfg.KafkaListen, err)
		}
		s.brokers = []string{s.broker.Addr()}
	} else {
		for _, b := range strings.Split(cfg.Kafka, ",") {
			if b = strings.TrimSpace(b); b != "" {
				s.brokers = append(s.brokers, b)
			}
		}
	}
	metrics, err := bus.NewMetrics(s.reg)
	if err != nil {
		return nil, fmt.Errorf("bus metrics: %w", err)
	}
	s.bus, err = bus.NewClient(s.brokers, bus.WithMetrics(metrics), bus.WithLogger(log.With("component", "bus")))
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

	if err := s.startPipelines(ctx); err != nil {
		return nil, err
	}

	s.httpLn, err = net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	apiServer, err := api.New(api.Config{
		Meta:           s.meta,
		Objects:        s.objects,
		Publisher:      publisher{s.bus},
		Logger:         log.With("component", "api"),
		Registry:       s.reg,
		APIToken:       cfg.APIToken,
		Presign:        cfg.Presign,
		MaxUploadBytes: cfg.MaxUpload,
		Version:        Version,
		RTMPBase:       publicURL("rtmp", s.rtmp.Addr().String(), s.httpLn.Addr()),
		SRTBase:        publicURL("srt", s.srt.Addr().String(), s.httpLn.Addr()),
		KafkaBrokers:   s.brokers,
		Ready: map[string]func(context.Context) error{
			"bus": s.bus.Ping,
		},
		Fallback: console.Handler(),
	})
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	s.http = &http.Server{
		Handler:           apiServer.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
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
	for _, topic := range []string{vod.Topic, live.ControlTopic} {
		if err := s.bus.CreateTopic(ctx, topic, pipelinePartitions); err != nil {
			return fmt.Errorf("creating topic %s: %w", topic, err)
		}
	}
	var err error
	pcfg := push.Config{Addr: s.cfg.RTMP, Streams: s.meta, Producer: s.bus, Logger: s.log, Registry: s.reg}
	if s.rtmp, err = push.NewRTMPServer(pcfg); err != nil {
		return fmt.Errorf("rtmp server: %w", err)
	}
	if err := s.rtmp.Start(); err != nil {
		return fmt.Errorf("rtmp listener on %s: %w", s.cfg.RTMP, err)
	}
	pcfg.Addr = s.cfg.SRT
	if s.srt, err = push.NewSRTServer(pcfg); err != nil {
		return fmt.Errorf("srt server: %w", err)
	}
	if err := s.srt.Start(); err != nil {
		return fmt.Errorf("srt listener on %s: %w", s.cfg.SRT, err)
	}
	s.packager, err = live.NewPackager(live.Config{
		Meta: s.meta, Objects: s.objects, Bus: s.bus, Registry: s.reg,
		Logger:           s.log,
		SegmentDuration:  s.cfg.LiveSegmentDuration,
		Window:           s.cfg.LiveWindow,
		WindowDuration:   s.cfg.LiveWindowDuration,
		PublisherTimeout: s.cfg.LivePublisherTimeout,
		Retention:        s.cfg.LiveRetention,
	})
	if err != nil {
		return fmt.Errorf("live packager: %w", err)
	}
	sources := sourceHTTPClient(s.cfg.AllowPrivateSources)
	s.control, err = live.NewController(live.ControllerConfig{
		Meta: s.meta, Bus: s.bus, Packager: s.packager,
		Logger:     s.log,
		HTTPClient: sources,
	})
	if err != nil {
		return fmt.Errorf("live controller: %w", err)
	}
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
	})
	if err != nil {
		return fmt.Errorf("vod worker: %w", err)
	}
	return nil
}

// pipelinePartitions is the partition count of the VOD job and live control
// topics.
const pipelinePartitions = 4

// consumeVODJobs subscribes the VOD worker to its job topic in its consumer
// group. The worker defers each job record while the job runs in the
// background; an unacknowledged job is redelivered.
func (s *Server) consumeVODJobs(ctx context.Context, handle vod.Handler) error {
	return s.bus.Consume(ctx, bus.ConsumeOptions{
		Topics:        []string{vod.Topic},
		Group:         vod.ConsumerGroup,
		FromBeginning: true,
		Handler:       handle,
	})
}

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

// Brokers are the Kafka bootstrap addresses in use.
func (s *Server) Brokers() []string { return s.brokers }

// Run serves until ctx ends, then shuts down in dependency order: stop
// accepting requests, let pipelines finish their current step and commit
// their offsets, flush producers, close the broker, close the stores.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	pipeCtx, stopPipes := context.WithCancel(context.Background())
	var pipes sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{
		"live packager":   s.packager.Run,
		"live controller": s.control.Run,
		"vod worker":      func(ctx context.Context) error { return s.vod.Run(ctx, s.consumeVODJobs) },
	} {
		pipes.Add(1)
		go func() {
			defer pipes.Done()
			if err := run(pipeCtx); err != nil {
				s.log.Error(name+" stopped", "err", err)
			}
		}()
	}
	s.log.Info("weir serving", "http", "http://"+s.HTTPAddr(), "kafka", strings.Join(s.brokers, ","),
		"rtmp", s.rtmp.Addr(), "srt", s.srt.Addr(), "data", s.cfg.Data)
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
	s.rtmp.Close()
	s.srt.Close()
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

func (s *Server) close() {
	if s.rtmp != nil {
		s.rtmp.Close()
	}
	if s.srt != nil {
		s.srt.Close()
	}
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

// publisher adapts the bus client to the API's Publisher seam.
type publisher struct{ c *bus.Client }

func (p publisher) Publish(ctx context.Context, topic string, key, value []byte) error {
	return p.c.Produce(ctx, &bus.Record{Topic: topic, Key: key, Value: value})
}
