package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/protocol"
)

// startJobs makes the job runner of the chunker role.
func (s *Server) startJobs(ctx context.Context, sources *http.Client) error {
	if err := s.bus.CreateTopic(ctx, protocol.TopicJobs, pipelinePartitions); err != nil {
		return fmt.Errorf("creating topic %s: %w%s", protocol.TopicJobs, err, s.loginHint())
	}
	var err error
	s.jobs, err = jobs.NewRunner(jobs.RunnerConfig{
		Bus: s.bus, Meta: s.meta, Objects: s.objects, Catalog: s.engines,
		PublicURL:  s.publicURL,
		Holder:     s.holder,
		HTTPClient: sources,
		TempDir:    filepath.Join(s.cfg.Data, "work", "chunks"),
		Registry:   s.reg,
		Log:        s.log,
	})
	if err != nil {
		return fmt.Errorf("job runner: %w", err)
	}
	return nil
}

// publicURL is the base URL engines reach weir's API at: --public-url, or
// the HTTP listener's address (127.0.0.1 when it listens on every
// interface).
func (s *Server) publicURL() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	if s.httpLn == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(s.HTTPAddr())
	if err != nil {
		return s.HTTPURL()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// engineHosts runs, in a process with the engines role, a host for every
// engine weir runs itself: the built-in chunk engines that are available
// and the external engines reached over HTTP (external Kafka engines host
// themselves). It looks at the catalog every few seconds, so an engine
// registered or removed over the API gets or loses its host without a
// restart.
type engineHosts struct {
	s     *Server
	mu    sync.Mutex
	hosts map[string]*runningHost
}

type runningHost struct {
	key  string // what the host was made from: a change makes a new one
	stop context.CancelFunc
	done chan struct{}
}

// engineHostRescan is how often the catalog is read again.
const engineHostRescan = 3 * time.Second

func (h *engineHosts) Run(ctx context.Context) error {
	defer h.stopAll()
	for {
		h.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(engineHostRescan):
		}
	}
}

// sync starts hosts for new engines and stops those of removed ones.
func (h *engineHosts) sync(ctx context.Context) {
	entries, err := h.s.engines.List(ctx)
	if err != nil {
		h.s.log.Warn("engine hosts: list engines", "err", err)
		return
	}
	want := map[string]engines.Entry{}
	for _, e := range entries {
		if hostKey(e) != "" {
			want[e.Spec.Name] = e
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, rh := range h.hosts {
		select {
		case <-rh.done: // stopped by itself: started again below
			delete(h.hosts, name)
			continue
		default:
		}
		if e, ok := want[name]; !ok || hostKey(e) != rh.key {
			rh.stop()
			<-rh.done
			delete(h.hosts, name)
		}
	}
	for name, e := range want {
		if _, ok := h.hosts[name]; ok {
			continue
		}
		if rh, err := h.start(ctx, e); err != nil {
			h.s.log.Warn("engine hosts: cannot host engine", "engine", name, "err", err)
		} else {
			h.hosts[name] = rh
		}
	}
}

// hostKey says how weir hosts an engine, "" when it does not: built-in
// chunk engines that are available, and HTTP engines by URL.
func hostKey(e engines.Entry) string {
	switch {
	case e.Kind == engines.KindBuiltin && e.Spec.Mode == engine.ModeChunk && e.Status == engines.StatusAvailable:
		return "builtin"
	case e.HTTP != nil:
		return "http " + e.HTTP.URL
	}
	return ""
}

func (h *engineHosts) start(ctx context.Context, e engines.Entry) (*runningHost, error) {
	var proc enginehost.Processor
	if e.HTTP != nil {
		proc = enginehost.NewHTTP(*e.HTTP)
	} else {
		reg, ok := engine.Default().Lookup(e.Spec.Name)
		if !ok {
			return nil, fmt.Errorf("not in the registry")
		}
		p, err := enginehost.NewInProcess(reg, h.s.log)
		if err != nil {
			return nil, err
		}
		proc = p
	}
	host, err := enginehost.New(enginehost.Config{Spec: e.Spec, Processor: proc, Bus: h.s.bus,
		Concurrency: h.s.cfg.EngineConcurrency, Log: h.s.log, Fetch: h.fetch})
	if err != nil {
		return nil, err
	}
	hctx, stop := context.WithCancel(ctx)
	rh := &runningHost{key: hostKey(e), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(rh.done)
		if err := host.Run(hctx); err != nil && hctx.Err() == nil {
			h.s.log.Warn("engine host stopped", "engine", e.Spec.Name, "err", err)
		}
	}()
	h.s.log.Info("hosting engine", "engine", e.Spec.Name, "how", rh.key)
	return rh, nil
}

func (h *engineHosts) stopAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, rh := range h.hosts {
		rh.stop()
		<-rh.done
		delete(h.hosts, name)
	}
}

// fetch gets a chunk's bytes for a hosted engine: straight from the
// object store when the cacheURI is weir's own chunk URL, else over HTTP.
func (h *engineHosts) fetch(ctx context.Context, uri string) (io.ReadCloser, error) {
	if base := h.s.publicURL() + "/"; base != "/" && strings.HasPrefix(uri, base+"jobs/") {
		rc, _, err := h.s.objects.Get(ctx, strings.TrimPrefix(uri, base))
		return rc, err
	}
	return enginehost.HTTPFetch(ctx, uri)
}
