package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profiler serves Go's runtime profiles (/debug/pprof/) on a listener of
// its own (--pprof-listen), so they are never reachable through the API's
// address. It is off unless asked for: a profile shows the process's
// internals and a CPU profile costs CPU while it runs.
type profiler struct {
	srv *http.Server
	ln  net.Listener
}

// startProfiler binds addr and serves the pprof handlers on it.
func startProfiler(addr string, log *slog.Logger) (*profiler, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &profiler{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiling endpoint stopped", "err", err)
		}
	}()
	return p, nil
}

// Addr is the address the profiler is bound to.
func (p *profiler) Addr() net.Addr { return p.ln.Addr() }

func (p *profiler) close() {
	if p != nil {
		p.srv.Close()
	}
}
