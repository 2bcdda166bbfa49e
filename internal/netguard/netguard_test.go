package netguard

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// exhausted is a listener that fails like a process out of file
// descriptors until it is told to recover, then hands out real
// connections from inner.
type exhausted struct {
	net.Listener
	failures chan struct{} // one value per failed accept
	recover  chan struct{}
}

func (e *exhausted) Accept() (net.Conn, error) {
	select {
	case <-e.recover:
		return e.Listener.Accept()
	default:
	}
	select {
	case e.failures <- struct{}{}:
	default:
	}
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestAcceptKeepsAcceptingAfterFileDescriptorsRunOut(t *testing.T) {
	inner := listenTCP(t)
	e := &exhausted{Listener: inner, failures: make(chan struct{}), recover: make(chan struct{})}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(e, Config{Name: "test", Metrics: m})
	defer l.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Errorf("Accept returned %v; a supervised listener must keep trying", err)
		}
		accepted <- c
	}()
	for range 3 {
		<-e.failures
	}
	err = l.Check()
	if err == nil || !errors.Is(err, syscall.EMFILE) || !strings.Contains(err.Error(), "test listener") {
		t.Fatalf("Check while accept fails with EMFILE = %v, want an error naming the listener and wrapping EMFILE", err)
	}

	close(e.recover)
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("no connection accepted after file descriptors came back")
	}
	if err := l.Check(); err != nil {
		t.Fatalf("Check after a successful accept = %v, want nil", err)
	}
	if n := value(m.errors.WithLabelValues("test")); n < 3 {
		t.Fatalf("weir_listener_accept_errors_total = %v, want at least 3", n)
	}
}

func TestAcceptReturnsAnErrorOnlyOnceClosed(t *testing.T) {
	e := &exhausted{Listener: listenTCP(t), failures: make(chan struct{}), recover: make(chan struct{})}
	l := Wrap(e, Config{Name: "test"})
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	<-e.failures
	<-e.failures
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Accept on a closed listener returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Accept kept retrying after Close")
	}
	if err := l.Check(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Check after Close = %v, want \"closed\"", err)
	}
}

func TestConnectionsOverTheCapAreRefusedUntilOneCloses(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(listenTCP(t), Config{Name: "capped", MaxConns: 2, Metrics: m,
		Refuse: func(c net.Conn) { io.WriteString(c, "busy\n") }})
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Both connections speak, as every client of weir's protocols does
	// first thing, so neither can be evicted.
	var held []net.Conn
	for range 2 {
		io.WriteString(dial(), "x")
		c := <-accepted
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if l.Open() != 2 {
		t.Fatalf("Open = %d, want 2", l.Open())
	}

	over := dial()
	over.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(over).ReadString('\n')
	if line != "busy\n" {
		t.Fatalf("connection over the cap read %q, %v; want the refusal then EOF", line, err)
	}
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over the cap stayed open")
	}
	if n := value(m.refused.WithLabelValues("capped")); n != 1 {
		t.Fatalf("weir_listener_refused_total = %v, want 1", n)
	}

	held[0].Close()
	held[0].Close() // a second Close must not free a second slot
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("no connection accepted after one of the capped ones closed")
	}
	if l.Open() != 1 {
		t.Fatalf("Open = %d after closing two of three accepted, want 1", l.Open())
	}
	if n := value(m.open.WithLabelValues("capped")); n != 1 {
		t.Fatalf("weir_listener_connections = %v, want 1", n)
	}
}

func TestASilentConnectionMakesRoomForANewOneAtTheCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(listenTCP(t), Config{Name: "capped", MaxConns: 2, Metrics: m})
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
			// The server side reads as a protocol server does.
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		<-accepted
		return c
	}
	silent := dial()
	talker := dial()
	io.WriteString(talker, "hello")
	waitSpoken := time.Now().Add(30 * time.Second)
	for l.silentCount() != 1 {
		if time.Now().After(waitSpoken) {
			t.Fatal("the talking connection is still counted as silent")
		}
		time.Sleep(10 * time.Millisecond)
	}

	newcomer := dial() // at the cap: the silent one must make room
	silent.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the silent connection read %v, want EOF: it should have been evicted", err)
	}
	for _, c := range []net.Conn{talker, newcomer} {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection that should stay open read %v", err)
		}
	}
	if n := value(m.evicted.WithLabelValues("capped")); n != 1 {
		t.Fatalf("weir_listener_evicted_total = %v, want 1", n)
	}
}

// silentCount is how many open connections have sent nothing.
func (l *Listener) silentCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.silent)
}

func TestShareOfFileLimit(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	want := max(int(rl.Cur)/4, 16)
	if got := ShareOfFileLimit(4); got != want {
		t.Fatalf("ShareOfFileLimit(4) = %d with a limit of %d, want %d", got, rl.Cur, want)
	}
	if got := ShareOfFileLimit(0); got != 0 {
		t.Fatalf("ShareOfFileLimit(0) = %d, want 0 (no cap)", got)
	}
}

// value reads a counter's or gauge's current value.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
