package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// listener is what the RTMP and SRT servers share: their settings, logger
// and metrics, the bound listener, the open publisher connections, and
// shutdown. C is the protocol's connection type.
type listener[C interface {
	comparable
	io.Closer
}] struct {
	cfg     Config
	log     *slog.Logger
	metrics *serverMetrics

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	// ln is the bound listener (nil before Start); closeLn closes it.
	ln      interface{ Addr() net.Addr }
	closeLn func()
	check   func() error
	conns   map[C]struct{}
	wg      sync.WaitGroup
}

// init checks cfg for protocol proto and registers its metrics.
func (s *listener[C]) init(cfg Config, proto, defaultAddr string) error {
	if err := cfg.check(proto, defaultAddr); err != nil {
		return err
	}
	m, err := newServerMetrics(cfg.Registry, proto)
	if err != nil {
		return fmt.Errorf("%s server metrics: %w", proto, err)
	}
	s.cfg, s.log, s.metrics = cfg, cfg.Logger.With("component", proto), m
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conns = map[C]struct{}{}
	return nil
}

// bind records the bound listener, how to close it and how to tell
// whether it still accepts.
func (s *listener[C]) bind(ln interface{ Addr() net.Addr }, closeLn func(), check func() error) {
	s.mu.Lock()
	s.ln, s.closeLn, s.check = ln, closeLn, check
	s.mu.Unlock()
}

// Check reports whether the server takes publishers: an error before
// Start, after Close, and while its listener fails to accept.
func (s *listener[C]) Check() error {
	s.mu.Lock()
	check := s.check
	s.mu.Unlock()
	if check == nil {
		return errors.New("not listening")
	}
	if s.ctx.Err() != nil {
		return errors.New("closed")
	}
	return check()
}

// Addr returns the bound address (nil before Start).
func (s *listener[C]) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops listening, disconnects every publisher (each stream gets its
// stream_eof) and waits for the connections to wind down.
func (s *listener[C]) Close() error {
	s.cancel()
	s.mu.Lock()
	closeLn := s.closeLn
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if closeLn != nil {
		closeLn()
	}
	s.wg.Wait()
	return nil
}
