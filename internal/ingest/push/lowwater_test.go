package push

import (
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestMarkForFollowsTheRate(t *testing.T) {
	for _, c := range []struct {
		rate float64
		want int
	}{
		{0, 0},
		{16e3, 0},                // 128 kbit/s audio: 320 bytes per 20 ms, no mark
		{375e3, 7500},            // 3 Mbit/s
		{10e6, lowWaterMax},      // capped
		{lowWaterMin * 50, 2048}, // exactly the floor
	} {
		if got := markFor(c.rate); got != c.want {
			t.Errorf("markFor(%v) = %d, want %d", c.rate, got, c.want)
		}
	}
}

// TestLowWaterSetsTheSocketsMark: on a real TCP connection (wrapped, as
// the listener hands it over), the controller sets SO_RCVLOWAT from the
// measured rate once a period has passed, moves it when the rate changes
// enough, and takes it back to the default when the publisher slows down.
func TestLowWaterSetsTheSocketsMark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the low-water mark is set on Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	mark := func() int {
		rc, err := tc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	t0 := time.Now()
	l := newLowWater(wrapped{tc}, t0)
	l.update(t0.Add(time.Second), 1<<20) // before a period: nothing
	if m := mark(); m > 1 {              // kernels report the default as 0 or 1
		t.Fatalf("mark %d before a period, want the default", m)
	}
	l.update(t0.Add(2*time.Second), 750e3) // 375 kB/s
	if m := mark(); m != 7500 {
		t.Fatalf("mark %d at 375 kB/s, want 7500", m)
	}
	l.update(t0.Add(4*time.Second), 750e3+800e3) // 400 kB/s: within a quarter, kept
	if m := mark(); m != 7500 {
		t.Fatalf("mark %d after a small change, want 7500 kept", m)
	}
	l.update(t0.Add(6*time.Second), 750e3+800e3+20e3) // 10 kB/s: none
	if m := mark(); m > 1 {
		t.Fatalf("mark %d for a slow publisher, want the default", m)
	}
}

// wrapped stands for the listener's connection wrapper.
type wrapped struct{ net.Conn }

func (w wrapped) Unwrap() net.Conn { return w.Conn }
