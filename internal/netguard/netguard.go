// Package netguard keeps a listener accepting through resource exhaustion
// and bounds the connections it holds open.
//
// A plain accept loop meets EMFILE or ENFILE when the process or the
// system runs out of file descriptors; many loops (franz-go's kfake among
// them) give up on the first error and the port stays dead after the
// pressure is gone. A Listener never hands such an error to its caller: it
// backs off (5 ms doubling to 1 s) and keeps accepting, so the loop above it
// only ever sees the error of a closed listener. While accepting fails,
// Check reports it, which is what readiness probes ask.
//
// With Config.MaxConns set, a connection accepted while MaxConns are open
// takes the place of the oldest open connection that has not sent a byte
// yet, which is closed; when every open connection has spoken, the new one
// is closed at once instead (after Config.Refuse, if set, had a chance to
// say why). Every protocol weir serves has the client speak first, so a
// silent connection is one no client is using: a flood of idle connections
// can neither take every descriptor the process has nor lock real clients
// out (weir's own bus clients among them).
package netguard

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Listener.
type Config struct {
	// Name names the listener in logs, metrics and Check errors ("http",
	// "kafka", "rtmp").
	Name string
	// MaxConns caps the connections open at once; 0 or less means no cap.
	MaxConns int
	// Refuse, when set, is handed each connection over the cap before it
	// is closed, to tell the client why (HTTP writes a 503). The
	// connection has a one-second write deadline.
	Refuse func(net.Conn)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics receives the listener's series; nil records none.
	Metrics *Metrics
}

// Backoff bounds: the first retry after a failed accept waits minBackoff,
// each further one twice as long, up to maxBackoff (net/http's own values).
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
	// logEvery spaces out the warnings of a listener that keeps failing
	// or keeps refusing connections over its cap.
	logEvery = 10 * time.Second
)

// Listener is a supervised net.Listener. Its Accept returns an error only
// once the listener is closed.
type Listener struct {
	ln    net.Listener
	cfg   Config
	log   *slog.Logger
	slots chan struct{} // nil without a cap
	done  chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu          sync.Mutex
	silent      []*conn   // open connections that have sent nothing, oldest first
	failErr     error     // last accept error; nil while accepting works
	failSince   time.Time // first failure of the current run of failures
	failures    int       // failures in the current run
	lastFailLog time.Time
	refused     int // refusals and evictions since lastCapLog
	evicted     int
	lastCapLog  time.Time
}

// Wrap supervises ln. Closing the Listener closes ln.
func Wrap(ln net.Listener, cfg Config) *Listener {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Listener{ln: ln, cfg: cfg, done: make(chan struct{}),
		log: cfg.Logger.With("listener", cfg.Name, "addr", ln.Addr().String())}
	if cfg.MaxConns > 0 {
		l.slots = make(chan struct{}, cfg.MaxConns)
	}
	cfg.Metrics.init(cfg.Name)
	return l
}

// Listen binds addr on network and supervises the listener.
func Listen(network, addr string, cfg Config) (*Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return Wrap(ln, cfg), nil
}

// Accept waits for the next connection within the cap. It retries every
// failed accept with a growing pause and returns an error only when the
// listener is closed.
func (l *Listener) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closed() || errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			pause = min(max(2*pause, minBackoff), maxBackoff)
			l.acceptFailed(err)
			select {
			case <-l.done:
				return nil, net.ErrClosed
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		l.acceptWorked()
		if gc := l.admit(c); gc != nil {
			return gc, nil
		}
		l.refuse(c)
	}
}

// admit gives c a slot, evicting the oldest silent connection when none
// is free; nil means c must be refused.
func (l *Listener) admit(c net.Conn) net.Conn {
	if l.slots == nil {
		return l.opened(c)
	}
	select {
	case l.slots <- struct{}{}:
		return l.opened(c)
	default:
	}
	if victim := l.oldestSilent(); victim != nil {
		victim.Close() // gives its slot back
		l.cfg.Metrics.evictedOne(l.cfg.Name)
		l.atCap(true)
		select {
		case l.slots <- struct{}{}:
			return l.opened(c)
		default: // a concurrent Accept took it first
		}
	}
	return nil
}

func (l *Listener) opened(c net.Conn) *conn {
	gc := &conn{Conn: c, l: l}
	l.mu.Lock()
	l.silent = append(l.silent, gc)
	l.mu.Unlock()
	l.cfg.Metrics.opened(l.cfg.Name)
	return gc
}

// oldestSilent takes the oldest connection that has sent nothing off the
// silent list.
func (l *Listener) oldestSilent() *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.silent) == 0 {
		return nil
	}
	c := l.silent[0]
	l.silent = l.silent[1:]
	return c
}

// spoke takes c off the silent list.
func (l *Listener) spoke(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, s := range l.silent {
		if s == c {
			l.silent = append(l.silent[:i], l.silent[i+1:]...)
			return
		}
	}
}

// Close stops accepting; connections already handed out stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.ln.Close()
	})
	return l.closeErr
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Open is the number of connections handed out and not yet closed, when
// the listener has a cap (0 without one; the weir_listener_connections
// gauge counts either way).
func (l *Listener) Open() int { return len(l.slots) }

// Check reports whether the listener takes connections: an error when it
// is closed, or when its latest accept failed (out of file descriptors,
// say) and none has worked since.
func (l *Listener) Check() error {
	if l.closed() {
		return fmt.Errorf("%s listener on %s is closed", l.cfg.Name, l.ln.Addr())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failErr != nil {
		return fmt.Errorf("%s listener on %s has failed to accept connections for %s (%d attempts): %w",
			l.cfg.Name, l.ln.Addr(), time.Since(l.failSince).Round(time.Millisecond), l.failures, l.failErr)
	}
	return nil
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *Listener) acceptFailed(err error) {
	l.cfg.Metrics.acceptError(l.cfg.Name)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.failErr == nil {
		l.failSince = now
	}
	l.failErr = err
	l.failures++
	if now.Sub(l.lastFailLog) >= logEvery {
		l.lastFailLog = now
		l.log.Warn("listener cannot accept connections; retrying", "err", err,
			"failing_for", now.Sub(l.failSince).Round(time.Millisecond), "attempts", l.failures)
	}
}

func (l *Listener) acceptWorked() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failErr == nil {
		return
	}
	l.log.Info("listener accepting again", "failed_for", time.Since(l.failSince).Round(time.Millisecond), "attempts", l.failures)
	l.failErr, l.failures, l.lastFailLog = nil, 0, time.Time{}
}

// refuse turns away a connection over the cap.
func (l *Listener) refuse(c net.Conn) {
	l.cfg.Metrics.refusedOne(l.cfg.Name)
	if l.cfg.Refuse != nil {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		l.cfg.Refuse(c)
	}
	c.Close()
	l.atCap(false)
}

// atCap counts a connection evicted or refused at the cap and says so in
// the log, at most every logEvery.
func (l *Listener) atCap(evicted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if evicted {
		l.evicted++
	} else {
		l.refused++
	}
	if now := time.Now(); now.Sub(l.lastCapLog) >= logEvery {
		l.log.Warn("connection cap reached: closing connections that sent nothing, refusing new ones when none is left",
			"max_conns", l.cfg.MaxConns, "evicted", l.evicted, "refused", l.refused)
		l.lastCapLog, l.refused, l.evicted = now, 0, 0
	}
}

// conn gives its slot back on the first Close and leaves the silent list
// at its first byte.
type conn struct {
	net.Conn
	l     *Listener
	once  sync.Once
	spoke atomic.Bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoke.Load() && c.spoke.CompareAndSwap(false, true) {
		c.l.spoke(c)
	}
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.spoke.CompareAndSwap(false, true) {
			c.l.spoke(c)
		}
		if c.l.slots != nil {
			<-c.l.slots
		}
		c.l.cfg.Metrics.closed(c.l.cfg.Name)
	})
	return err
}

// ReadFrom keeps the kernel's file-to-socket copy (sendfile) that
// *net.TCPConn offers, which embedding net.Conn would hide.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// Unwrap returns the accepted connection.
func (c *conn) Unwrap() net.Conn { return c.Conn }

// ShareOfFileLimit is the default cap of a listener that may hold 1/share
// of the process's open-file limit (FileLimit), at least 16; 0 (no cap)
// when the limit is unknown. weir's listeners together take well under the
// whole limit, leaving descriptors for files, stores and outbound
// connections.
func ShareOfFileLimit(share int) int {
	n := FileLimit()
	if n <= 0 || share <= 0 {
		return 0
	}
	return max(n/share, 16)
}
