package bus

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestMemConnIsANetConn runs x/net's conformance suite for net.Conn (reads
// and writes both ways, deadlines past, future and cleared, Close
// unblocking readers, concurrent use) against a memConn pair.
func TestMemConnIsANetConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		a, b := memConnPair()
		return a, b, func() { a.Close(); b.Close() }, nil
	})
}

// TestMemConnPeerCloseDrainsThenEOF: what was written before the peer
// closed is still read, then EOF; writes to a closed peer fail.
func TestMemConnPeerCloseDrainsThenEOF(t *testing.T) {
	a, b := memConnPair()
	if _, err := a.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last words" {
		t.Fatalf("read %q, %v; want %q then EOF", got, err, "last words")
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("a write to a closed peer succeeded")
	}
}

// TestMemConnReadDeadlineIsATimeout: an expired read deadline fails the
// read with an error that says timeout, as a TCP connection's does (kgo
// tells timeouts apart that way).
func TestMemConnReadDeadlineIsATimeout(t *testing.T) {
	a, _ := memConnPair()
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
}

// TestMemListenerAcceptsBothAndStopsOnClose: in-process dials and TCP
// connections come out of one Accept; after Close, Accept and dial fail.
func TestMemListenerAcceptsBothAndStopsOnClose(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newMemListener(tcp)
	go func() {
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err == nil {
			c.Write([]byte("t"))
		}
	}()
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := l.dial(context.Background())
		if err != nil {
			t.Error(err)
		}
		c.Write([]byte("m"))
		dialed <- c
	}()
	seen := map[string]bool{}
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		seen[string(b)] = true
		c.Close()
	}
	if !seen["t"] || !seen["m"] {
		t.Fatalf("accepted %v, want a TCP and an in-process connection", seen)
	}
	<-dialed
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
	if _, err := l.dial(context.Background()); err == nil {
		t.Fatal("dial after Close succeeded")
	}
}

// TestInProcessClientNeverTouchesTCP: a client made with Broker.InProcess
// logs in, produces and consumes through an authenticating broker without
// opening a single TCP connection to it; a client without the option does
// open them (the check can fail).
func TestInProcessClientNeverTouchesTCP(t *testing.T) {
	b := startTestBroker(t, WithAuthentication(), WithMaxConns(100)) // MaxConns: the listener counts connections
	c := newTestClient(t, b.Addr(), WithSASL(b.Superuser()), b.InProcess())
	want := numberedValues("m", 50)
	produceValues(t, c, "inproc", nil, want...)
	var got []string
	err := c.Consume(testCtx(t), ConsumeOptions{
		Topics: []string{"inproc"}, Group: "g", FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, r *Record) error {
			got = append(got, string(r.Value))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
		t.Fatalf("consumed %d records (%v…), want %d", len(got), got[:min(3, len(got))], len(want))
	}
	if n := b.ln.Open(); n != 0 {
		t.Fatalf("%d TCP connections open with only an in-process client", n)
	}
	tcp := newTestClient(t, b.Addr(), WithSASL(b.Superuser()))
	produceValues(t, tcp, "inproc", nil, "over tcp")
	if n := b.ln.Open(); n == 0 {
		t.Fatal("a TCP client's connections do not show: the check above proves nothing")
	}
}

// TestInProcessRefusesTLS: in-process connections have no TLS to speak.
func TestInProcessRefusesTLS(t *testing.T) {
	b := startTestBroker(t)
	if _, err := NewClient([]string{b.Addr()}, b.InProcess(), WithTLS(nil)); err == nil {
		t.Fatal("NewClient accepted InProcess with TLS")
	}
}
