// Package api is weir's HTTP control plane: the REST API of seed 003 (VOD
// uploads, live stream lifecycle, metadata and playback URLs), the engine
// registry (/engines), jobs that run engines over a source (/jobs), HLS
// delivery from the object store, health and readiness probes, Prometheus
// metrics and the OpenAPI 3.1 document with interactive docs.
//
// Every route hangs off one net/http ServeMux driven by huma; the handful of
// routes that must stream bytes (HLS objects, job chunks, /metrics) are plain handlers on
// the same mux and are still described in the OpenAPI document. Errors are
// RFC 9457 problem documents (application/problem+json) everywhere.
//
// The package talks to the rest of weir only through seams: the metadata
// store, the object store and the bus (bus.Bus), on which it publishes the
// control messages of the protocol package. It never touches
// media; the VOD and live pipelines pick up the jobs and control messages it
// publishes.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/hlsresults"
	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/prom"
	"github.com/weir-media/weir/protocol"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxUploadBytes = 8 << 30 // 8 GiB
	DefaultMaxJSONBytes   = 1 << 20 // 1 MiB
	DefaultPresignTTL     = time.Hour
	DefaultMinBodyRate    = 4 << 10 // 4 KiB/s
	DefaultBodyTimeout    = 30 * time.Second
	DefaultBusTimeout     = 10 * time.Second
	DefaultReadyTimeout   = 2 * time.Second
	// MaxTitleLength is the longest title, in characters, a stream may have.
	MaxTitleLength = protocol.MaxTitleLength
	// MaxURLLength is the longest source URL accepted.
	MaxURLLength = 2048
)

// Config configures a Server. Meta, Objects and Bus are required.
type Config struct {
	Meta    metastore.Store
	Objects objstore.Store
	// Bus receives the control messages (protocol.VODJob on
	// protocol.TopicVODJobs, protocol.LiveControl on
	// protocol.TopicLiveControl); a request answers once the broker
	// acknowledged its message.
	Bus bus.Bus
	// Logger receives request errors; nil logs to slog.Default().
	Logger *slog.Logger
	// Registry receives the HTTP metrics plus Go runtime and process
	// collectors, and is what GET /metrics exposes, so collectors others
	// register on it (bus metrics) show up too. Nil makes a private one.
	Registry *prometheus.Registry
	// Version is reported by /health and in the OpenAPI document.
	Version string

	// APIToken, when set, is required as "Authorization: Bearer <token>" on
	// every POST, PUT, PATCH and DELETE. Reads stay open.
	APIToken string
	// Presign makes HLS segment requests redirect (302) to presigned object
	// URLs when the object store can make them; playlists are always served
	// directly so their relative URIs keep resolving through this server.
	Presign bool
	// PresignTTL is how long presigned URLs stay valid (default 1h).
	PresignTTL time.Duration
	// MaxUploadBytes caps the size of an uploaded file (default 8 GiB).
	MaxUploadBytes int64
	// MaxJSONBytes caps JSON request bodies (default 1 MiB).
	MaxJSONBytes int64
	// MinBodyRate is the slowest a request body (an upload, a JSON body)
	// may arrive, in bytes per second, averaged over BodyTimeout (default
	// 4 KiB/s): a client that falls further behind gets 408 and its
	// connection is closed. There is no total deadline, so an upload of
	// any size works at any real speed. Negative turns the rate off,
	// leaving BodyTimeout as the longest wait for each read.
	MinBodyRate int64
	// BodyTimeout is how far a request body may fall behind MinBodyRate,
	// and so the longest stall a body may have once it is ahead of it
	// (default 30 s). It also bounds the unread rest of a body the server
	// discards after answering.
	BodyTimeout time.Duration
	// BusTimeout bounds how long a request waits for the bus to
	// acknowledge its control message (default 10 s); past it the request
	// answers 503 instead of hanging while the bus is unreachable.
	BusTimeout time.Duration

	// BaseURL is the externally visible base URL of this listener, such as
	// "https://media.example.com"; playback and metadata URLs in responses
	// start with it. Empty means derive it from each request's Host header
	// (and X-Forwarded-Proto).
	BaseURL string
	// RTMPBase and SRTBase are the ingest bases handed to publishers, such
	// as "rtmp://media.example.com:1935" and "srt://media.example.com:8890".
	// Empty means the request's host name with ports 1935 and 8890.
	RTMPBase string
	SRTBase  string
	// RTMPSBase is the RTMPS ingest base, such as
	// "rtmps://media.example.com:1936"; empty means weir takes no RTMPS
	// and start answers no rtmps URL.
	RTMPSBase string
	// LiveLadder is the ABR ladder of live streams started without one
	// ("480p=1400k" items, liveladder.Specs); empty: no ladder.
	LiveLadder []string
	// LiveLLHLS is whether live streams started without an ll_hls choice
	// are packaged as Low-Latency HLS (weir serve --live-ll-hls).
	LiveLLHLS bool
	// KafkaBrokers is what GET /bus reports, so CLI tools can reach the bus.
	KafkaBrokers []string

	// Ready holds the readiness checks by dependency name ("bus",
	// "metadata", "objects"); each returns nil when its dependency is
	// usable. When "metadata" or "objects" is missing, New adds a default
	// one that pings the configured store.
	Ready map[string]func(ctx context.Context) error
	// ReadyTimeout bounds each readiness check (default 2s).
	ReadyTimeout time.Duration

	// Fallback serves requests that match no route (the web console at "/").
	// Nil answers them with a 404 problem.
	Fallback http.Handler

	// Engines is the engine catalog behind /engines. Nil makes one of the
	// engine package's Default registry (the built-in engines) and Meta.
	Engines *engines.Catalog

	// Jobs is the job service behind /jobs. Nil makes one of Meta, Bus
	// and Engines that refuses URL sources at private addresses.
	Jobs *jobs.Service

	// Alerts is the alert rules service behind /rules and /alerts. Nil
	// makes one of Meta that only manages rules (it evaluates and
	// delivers nothing) and refuses webhooks at private IP literals.
	Alerts *alerts.Service

	// OperationsOnly serves only /health, /ready, /metrics and /bus: the
	// listener of a process that runs other roles than the API.
	OperationsOnly bool
}

// Server is the HTTP control plane. Create it with New and mount Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	api     huma.API
	metrics *httpMetrics
	handler http.Handler
	// timed generates the subtitles and metadata renditions under /hls/
	// (see hls.go and internal/hlsresults).
	timed *hlsresults.Service
	// watches share the polling of live playlists among held LL-HLS
	// requests (hls_watch.go).
	watches *playlistWatches
}

// New validates cfg, fills in defaults, registers metrics on the registry
// and builds the routes. It fails when a required dependency is missing or a
// URL in cfg is malformed.
func New(cfg Config) (*Server, error) {
	if cfg.Meta == nil {
		return nil, errors.New("api: Config.Meta (metadata store) is required")
	}
	if cfg.Objects == nil {
		return nil, errors.New("api: Config.Objects (object store) is required")
	}
	if cfg.Bus == nil {
		return nil, errors.New("api: Config.Bus is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.PresignTTL <= 0 {
		cfg.PresignTTL = DefaultPresignTTL
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.MaxJSONBytes <= 0 {
		cfg.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if cfg.MinBodyRate == 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.BusTimeout <= 0 {
		cfg.BusTimeout = DefaultBusTimeout
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Engines == nil {
		cfg.Engines = engines.NewCatalog(engine.Default(), cfg.Meta, engines.WithLogger(cfg.Logger))
	}
	if cfg.Jobs == nil {
		cfg.Jobs = &jobs.Service{Meta: cfg.Meta, Bus: cfg.Bus, Catalog: cfg.Engines, BusTimeout: cfg.BusTimeout, Log: cfg.Logger}
	}
	if cfg.Alerts == nil {
		var err error
		if cfg.Alerts, err = alerts.New(alerts.Config{Store: cfg.Meta, Log: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("api: alerts: %w", err)
		}
	}
	for name, base := range map[string]*string{"BaseURL": &cfg.BaseURL, "RTMPBase": &cfg.RTMPBase, "SRTBase": &cfg.SRTBase, "RTMPSBase": &cfg.RTMPSBase} {
		clean, err := cleanBaseURL(*base)
		if err != nil {
			return nil, fmt.Errorf("api: Config.%s: %w", name, err)
		}
		*base = clean
	}
	ready := make(map[string]func(context.Context) error, len(cfg.Ready)+2)
	for name, check := range cfg.Ready {
		if check != nil {
			ready[name] = check
		}
	}
	if _, ok := ready["metadata"]; !ok {
		ready["metadata"] = cfg.Meta.Ping
	}
	if _, ok := ready["objects"]; !ok {
		ready["objects"] = objectsCheck(cfg.Objects)
	}
	cfg.Ready = ready

	metrics, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), metrics: metrics,
		watches: newPlaylistWatches(cfg.Objects, llPollInterval)}
	if _, err := prom.Register[prometheus.Collector](cfg.Registry, readinessCollector{s}); err != nil {
		return nil, fmt.Errorf("api: readiness metric: %w", err)
	}
	s.api = humago.New(s.mux, s.humaConfig())
	s.routes()
	if s.handler, err = s.refuseCrossOrigin(s.authorize(s.guardHLS(s.mux))); err != nil {
		return nil, err
	}
	s.handler = s.instrument(s.paceBodies(s.handler))
	return s, nil
}

// Handler returns the http.Handler serving every route. Server-wide timeouts
// are the caller's http.Server's business; handlers honour request contexts.
func (s *Server) Handler() http.Handler { return s.handler }

// OpenAPI returns the OpenAPI 3.1 document describing every route.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

func (s *Server) humaConfig() huma.Config {
	cfg := huma.DefaultConfig("weir", s.cfg.Version)
	// Drop the default link transformer: it adds "$schema" to every response
	// body, which clients of this API have no use for.
	cfg.CreateHooks = nil
	cfg.Transformers = []huma.Transformer{describeProblem}
	// /docs is served by registerDocs from the binary, not by huma's page,
	// which loads its renderer from a CDN.
	cfg.DocsPath = ""
	cfg.Info.Description = "Control plane of weir, a real-time media stream processing platform: " +
		"VOD uploads, live stream lifecycle, metadata, playback URLs, HLS delivery, the engine registry and jobs that run engines. " +
		"Errors are RFC 9457 problem documents."
	if s.cfg.BaseURL != "" {
		cfg.Servers = []*huma.Server{{URL: s.cfg.BaseURL}}
	}
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {
			Type:        "http",
			Scheme:      "bearer",
			Description: "Required on POST/PUT/PATCH/DELETE when the server runs with an API token; reads are open.",
		},
	}
	return cfg
}

// routes registers every operation. Plain handlers are added to the mux
// directly and documented in the OpenAPI document by hand.
func (s *Server) routes() {
	s.registerHealth()
	if s.cfg.OperationsOnly {
		s.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s: this process serves only /health, /ready, /metrics and /bus; the API is served by processes with the api role", r.Method, r.URL.Path))
		}))
		return
	}
	s.registerVOD()
	s.registerLive()
	s.registerHLS()
	s.registerEngines()
	s.registerJobs()
	s.registerSearch()
	s.registerFingerprints()
	s.registerAlerts()
	s.registerDocs()
	s.mux.Handle("/", http.HandlerFunc(s.serveFallback))
}

// serveFallback answers requests no route matched: 405 when the path has
// routes for other methods, else Config.Fallback, else a 404 problem.
func (s *Server) serveFallback(w http.ResponseWriter, r *http.Request) {
	if allowed := s.allowedMethods(r); len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		return
	}
	if s.cfg.Fallback != nil {
		s.cfg.Fallback.ServeHTTP(w, r)
		return
	}
	writeProblem(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s; the API is described at /openapi.json", r.Method, r.URL.Path))
}

// allowedMethods lists the methods that have a route for r's path. The
// catch-all "/" matches every method, so the mux alone would never say 405.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// mutating reports whether method changes state and so needs the API token.
func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// authorize enforces the bearer token on mutating requests when one is set.
// The comparison is constant-time so the token cannot be guessed byte by
// byte from response timings.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.cfg.APIToken == "" {
		return next
	}
	want := []byte(s.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !mutating(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, token, found := strings.Cut(auth, " ")
		switch {
		case auth == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
			writeProblem(w, http.StatusUnauthorized, "missing Authorization header: this server requires \"Authorization: Bearer <token>\" on "+r.Method+" requests")
			return
		case !found || !strings.EqualFold(scheme, "Bearer"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
			writeProblem(w, http.StatusUnauthorized, "Authorization header must use the Bearer scheme: \"Authorization: Bearer <token>\"")
			return
		case subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), want) != 1:
			w.Header().Set("WWW-Authenticate", `Bearer realm="weir", error="invalid_token"`)
			writeProblem(w, http.StatusUnauthorized, "invalid API token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseCrossOrigin refuses state-changing requests a browser sends on
// behalf of another site's page (cross-site request forgery): without an
// API token, a page anywhere on the web could otherwise make a visitor's
// browser start streams or import URLs on a weir listening on their
// machine. Browsers say where a request comes from (Sec-Fetch-Site, else
// Origin, compared with Host); the console is same-origin, and clients
// that send neither header (the CLI, curl, engines) are not browsers and
// pass. Config.BaseURL's origin is trusted too, for a console reached
// through a proxy that rewrites Host.
func (s *Server) refuseCrossOrigin(next http.Handler) (http.Handler, error) {
	cop := http.NewCrossOriginProtection()
	if s.cfg.BaseURL != "" {
		u, err := parseURL(s.cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("api: Config.BaseURL: %w", err)
		}
		if err := cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("api: Config.BaseURL: %w", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from := r.Header.Get("Origin")
		if from == "" {
			from = "another site (Sec-Fetch-Site: " + r.Header.Get("Sec-Fetch-Site") + ")"
		}
		writeProblem(w, http.StatusForbidden, fmt.Sprintf("cross-origin %s refused: a page from %s may not change this server's state; use the console on this server's own address, or a non-browser client", r.Method, from))
	}))
	return cop.Handler(next), nil
}

// bearerSecurity marks an operation as needing the token when one is set.
var bearerSecurity = []map[string][]string{{"bearer": {}}}

// cleanBaseURL trims a trailing slash and checks the URL has a scheme and
// host; the empty string stays empty (derive from the request).
func cleanBaseURL(raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	if raw == "" {
		return "", nil
	}
	u, err := parseURL(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("%q: want scheme://host[:port]", raw)
	}
	return raw, nil
}

// objectsCheck is the default readiness check of the object store: the
// store's own Ready when it has one (the file store: is there room to
// write?), else a Stat of a key that need not exist, so "not found" counts
// as reachable.
func objectsCheck(store objstore.Store) func(context.Context) error {
	if r, ok := store.(interface{ Ready(context.Context) error }); ok {
		return r.Ready
	}
	return func(ctx context.Context) error {
		_, err := store.Stat(ctx, "_weir/ready-probe")
		if err == nil || errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return err
	}
}
