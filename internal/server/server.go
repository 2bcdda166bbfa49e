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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
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
}

// Start opens the stores, starts the broker and binds every listener. It
// returns once the process is ready to serve; Run then serves until the
// context ends.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (s *Server, err error) {
	s = &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
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
		RTMPBase:       publicURL("rtmp", cfg.RTMP, s.httpLn.Addr()),
		SRTBase:        publicURL("srt", cfg.SRT, s.httpLn.Addr()),
		KafkaBrokers:   s.brokers,
		Ready: map[string]func(context.Context) error{
			"bus": s.bus.Ping,
		},
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
	s.log.Info("weir serving", "http", "http://"+s.HTTPAddr(), "kafka", strings.Join(s.brokers, ","), "data", s.cfg.Data)
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
	if s.bus != nil {
		if err := s.bus.Flush(shutdownCtx); err != nil {
			s.log.Warn("flushing kafka producer", "err", err)
		}
	}
	s.close()
	return runErr
}

func (s *Server) close() {
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
