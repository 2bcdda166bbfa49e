package push

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/netguard"
)

// listenerConnections reads weir_listener_connections for a listener.
func (e *pushEnv) listenerConnections(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weir_listener_connections" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == name {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestRTMPConnectionsOverTheCapAreClosedUnlessAnIdleOneMakesRoom(t *testing.T) {
	t.Parallel()
	e := newPushEnvWith(t, func(c *Config) {
		c.MaxConns = 1
		c.ReadTimeout = time.Minute // the connections below must hold their slot
		m, err := netguard.NewMetrics(c.Registry)
		if err != nil {
			t.Fatal(err)
		}
		c.ListenerMetrics = m
	})
	if err := e.rtmp.Check(); err != nil {
		t.Fatalf("Check on a listening server = %v", err)
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", e.rtmp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	eof := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}

	// An idle connection (it never sent a byte) gives its slot to a
	// publisher.
	idle := dial()
	waitFor(t, 10*time.Second, "the idle connection to take the only slot", func() bool {
		return e.listenerConnections("rtmp") == 1
	})
	st := e.newStream()
	if out, err := ffmpeg(t, time.Minute, append(testPattern(1), "-f", "flv", e.rtmpURL(st.PublishKey))...); err != nil {
		t.Fatalf("a publisher was refused in favour of an idle connection: %v\n%s", err, out)
	}
	if !eof(idle) {
		t.Fatal("the idle connection was not closed to make room")
	}

	// A connection that has begun its handshake keeps its slot: the next
	// one is closed at once.
	waitFor(t, 10*time.Second, "the slot to be free", func() bool {
		return e.listenerConnections("rtmp") == 0
	})
	talking := dial()
	// C0 (RTMP version 3) and C1; the server's S0 proves it read them.
	talking.Write(append([]byte{3}, make([]byte, 1536)...))
	talking.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := talking.Read(make([]byte, 1)); err != nil {
		t.Fatalf("no handshake answer: %v", err)
	}
	if over := dial(); !eof(over) {
		t.Fatal("a connection over the cap was not closed at once")
	}
}

func TestSRTConnectionsOverTheCapAreRejectedAsOverloaded(t *testing.T) {
	t.Parallel()
	e := newPushEnvWith(t, func(c *Config) { c.MaxConns = 1; c.ReadTimeout = time.Minute })
	first := e.newStream()
	conn, err := srtDial(e.srtAddr(), "publish:"+first.PublishKey)
	if err != nil {
		t.Fatalf("first SRT publisher: %v", err)
	}
	second := e.newStream()
	before := e.connections("srt", "refused")
	if c, err := srtDial(e.srtAddr(), "publish:"+second.PublishKey); err == nil {
		c.Close()
		t.Fatal("a second SRT publisher was accepted over a cap of 1")
	}
	if got := e.connections("srt", "refused"); got != before+1 {
		t.Fatalf("refused SRT connections = %v, want %v", got, before+1)
	}

	conn.Close()
	waitFor(t, 30*time.Second, "a publisher to be accepted once the first left", func() bool {
		c, err := srtDial(e.srtAddr(), "publish:"+second.PublishKey)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if err := e.srt.Check(); err != nil {
		t.Fatalf("Check on a listening SRT server = %v", err)
	}
}
