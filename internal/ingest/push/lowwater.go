package push

import (
	"net"
	"time"
)

// An RTMP publisher sends each audio and video frame as it is made, a few
// hundred bytes to a few tens of kilobytes every 10 to 30 ms, and each
// arrival used to wake the connection's goroutine (and, in a process that
// is otherwise idle, the Go runtime's scheduler and system monitor) to read
// one frame. Bytes that are not a key frame wait for company in the
// session anyway (DefaultFrameHold), so weir lets the kernel gather them:
// once a publish runs, the socket's receive low-water mark (SO_RCVLOWAT)
// asks for about lowWaterSpan of the publisher's rate before the reader is
// woken. A read still returns whatever is there; only a reader that found
// nothing waits for the mark. The mark follows the publisher's rate every
// lowWaterEvery; slow publishers (below lowWaterMin bytes per span) get
// none, and it never exceeds lowWaterMax.
const (
	lowWaterSpan  = 20 * time.Millisecond
	lowWaterEvery = 2 * time.Second
	lowWaterMin   = 2 << 10
	lowWaterMax   = 16 << 10
)

// lowWater keeps one publisher connection's receive low-water mark.
type lowWater struct {
	set   func(bytes int) error // nil: the platform has no low-water mark
	since time.Time
	bytes int64 // the count at since
	mark  int   // 0: none set (the kernel's default of 1 byte)
}

// newLowWater returns the controller of conn's low-water mark, which does
// nothing when conn is not a TCP connection (wrapped or not) or the
// platform cannot set the mark.
func newLowWater(conn net.Conn, now time.Time) *lowWater {
	l := &lowWater{since: now}
	for conn != nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			l.set = rcvLowatSetter(tc)
			break
		}
		u, ok := conn.(interface{ Unwrap() net.Conn })
		if !ok {
			break
		}
		conn = u.Unwrap()
	}
	return l
}

// update takes the count of bytes received so far, at now, and moves the
// mark to lowWaterSpan of the rate since the last update when a period has
// passed and the mark would change by a quarter or more.
func (l *lowWater) update(now time.Time, total int64) {
	if l.set == nil {
		return
	}
	elapsed := now.Sub(l.since)
	if elapsed < lowWaterEvery {
		return
	}
	rate := float64(total-l.bytes) / elapsed.Seconds()
	l.since, l.bytes = now, total
	mark := markFor(rate)
	if diff := mark - l.mark; diff == 0 || (mark > 0 && l.mark > 0 && 4*abs(diff) < l.mark) {
		return
	}
	want := max(mark, 1) // 1: the kernel's default, no mark
	if l.set(want) == nil {
		l.mark = mark
	}
}

// markFor is the low-water mark for a publisher sending rate bytes per
// second: 0 (none) below lowWaterMin per lowWaterSpan.
func markFor(rate float64) int {
	m := int(rate * lowWaterSpan.Seconds())
	if m < lowWaterMin {
		return 0
	}
	return min(m, lowWaterMax)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
