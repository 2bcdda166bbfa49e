package bus

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// In-process connections to the embedded broker. A weir process that runs
// the broker talks Kafka to it too (ingest producing, the packager
// consuming); over loopback TCP every request and response costs two
// socket system calls, the kernel's TCP path and a trip through the
// network poller, on both sides. Broker.InProcess gives clients a dialer
// that connects such a client through memConn pairs instead: the same
// Kafka protocol, the same broker code (kfake accepts them from the same
// listener as TCP connections), no system calls.

// memBufferKeep is the most buffer capacity an emptied pipe keeps for the
// next write; a larger one (a big fetch response) is dropped.
const memBufferKeep = 1 << 20

// memPipe is one direction of a memConn pair: an unbounded byte buffer.
// The Kafka protocol bounds what is in flight (requests wait for their
// responses, fetches ask for a bounded size), so the buffer never grows
// past what TCP's socket buffers would hold in a window or two.
type memPipe struct {
	mu     sync.Mutex
	data   []byte
	off    int
	closed bool          // no more writes: reads drain, then EOF
	ready  chan struct{} // capacity 1: something to read, or closed
}

func newMemPipe() *memPipe { return &memPipe{ready: make(chan struct{}, 1)} }

func (p *memPipe) signal() {
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// write appends b; it fails once the pipe is closed.
func (p *memPipe) write(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return io.ErrClosedPipe
	}
	p.data = append(p.data, b...)
	p.signal()
	return nil
}

// read copies what is buffered into b; ok is false when nothing is, and
// err is io.EOF once the pipe is closed and drained.
func (p *memPipe) read(b []byte) (n int, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off < len(p.data) {
		n = copy(b, p.data[p.off:])
		p.off += n
		if p.off == len(p.data) {
			p.data, p.off = p.data[:0], 0
			if cap(p.data) > memBufferKeep {
				p.data = nil
			}
		} else {
			p.signal() // more for the next read
		}
		return n, true, nil
	}
	if p.closed {
		return 0, true, io.EOF
	}
	return 0, false, nil
}

func (p *memPipe) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.signal()
}

// memDeadline is a read or write deadline: its channel is closed once the
// deadline has passed.
type memDeadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func newMemDeadline() *memDeadline { return &memDeadline{ch: make(chan struct{})} }

func (d *memDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired: wait for it to have closed the channel
	}
	d.timer = nil
	select {
	case <-d.ch:
		d.ch = make(chan struct{}) // expired before: open again
	default:
	}
	if t.IsZero() {
		return
	}
	if wait := time.Until(t); wait > 0 {
		ch := d.ch
		d.timer = time.AfterFunc(wait, func() { close(ch) })
		return
	}
	close(d.ch)
}

func (d *memDeadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// memConn is one end of an in-process connection.
type memConn struct {
	in, out   *memPipe
	rd, wd    *memDeadline
	closed    chan struct{}
	closeOnce sync.Once
}

// memConnPair returns the two ends of a new in-process connection.
func memConnPair() (*memConn, *memConn) {
	a, b := newMemPipe(), newMemPipe()
	return newMemConn(a, b), newMemConn(b, a)
}

func newMemConn(in, out *memPipe) *memConn {
	return &memConn{in: in, out: out, rd: newMemDeadline(), wd: newMemDeadline(), closed: make(chan struct{})}
}

func (c *memConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-c.rd.wait():
			return 0, os.ErrDeadlineExceeded
		default:
		}
		if n, ok, err := c.in.read(b); ok {
			return n, err
		}
		select {
		case <-c.in.ready:
		case <-c.closed:
		case <-c.rd.wait():
		}
	}
}

func (c *memConn) Write(b []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.wd.wait():
		return 0, os.ErrDeadlineExceeded
	default:
	}
	if err := c.out.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close ends both directions: the peer reads what was written, then EOF,
// and its writes fail.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.out.close()
		c.in.close()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr { return memAddr{} }

func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}
func (c *memConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

type memAddr struct{}

func (memAddr) Network() string { return "pipe" }
func (memAddr) String() string  { return "in-process" }

// memListener hands kfake the broker's TCP connections and in-process ones
// from one Accept.
type memListener struct {
	net.Listener // the TCP listener
	conns        chan net.Conn
	tcp          chan acceptResult
	done         chan struct{}
	pump         sync.Once
	closeOnce    sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func newMemListener(ln net.Listener) *memListener {
	return &memListener{Listener: ln, conns: make(chan net.Conn), tcp: make(chan acceptResult), done: make(chan struct{})}
}

// Accept returns the next connection, TCP or in-process; once the TCP
// listener fails (it was closed), so does Accept.
func (l *memListener) Accept() (net.Conn, error) {
	l.pump.Do(func() { go l.acceptTCP() })
	select {
	case c := <-l.conns:
		return c, nil
	case r := <-l.tcp:
		return r.conn, r.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) acceptTCP() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.tcp <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// dialer returns a kgo dialer that connects to addr (the broker's
// advertised address) in process and anywhere else over TCP.
func (l *memListener) dialer(addr string) func(ctx context.Context, network, host string) (net.Conn, error) {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == addr {
			return l.dial(ctx)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	}
}

// dial connects in process; it fails once the listener is closed.
func (l *memListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := memConnPair()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}
