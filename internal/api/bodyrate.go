package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// paceBodies holds every request body to Config.MinBodyRate through the
// connection's read deadline (see pacedBody). net/http itself offers only
// ReadTimeout, a deadline for the whole request: an upload of several
// gigabytes on a slow line would need hours while a body trickling one
// byte every 20 s would still hold its connection that long; and once a
// body is read, the same deadline cancels the request of a long-running
// handler. A deadline that moves with the bytes has neither problem.
func (s *Server) paceBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b := &pacedBody{ReadCloser: r.Body, rc: http.NewResponseController(w),
			rate: s.cfg.MinBodyRate, window: s.cfg.BodyTimeout}
		// A ResponseWriter without deadlines (a test recorder) is served
		// unpaced.
		if b.start() == nil {
			r.Body = b
		}
		next.ServeHTTP(w, r)
	})
}

// pacedBody is a request body whose connection read deadline starts
// window ahead and moves later by 1/rate seconds per byte read, never to
// more than window ahead: a client keeping up with rate never meets it,
// one falling window behind does. At the end of the body the deadline is
// lifted, so net/http's background read cannot cancel a handler still
// working. A body left unread keeps its deadline, which bounds how long
// net/http spends discarding the rest after the handler returns.
type pacedBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	rate     int64
	window   time.Duration
	deadline time.Time
	read     int64
	tooSlow  bool
}

func (b *pacedBody) start() error {
	b.deadline = time.Now().Add(b.window)
	return b.rc.SetReadDeadline(b.deadline)
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.tooSlow {
		return 0, b.slowError()
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.tooSlow = true
		return n, b.slowError()
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		now := time.Now()
		if b.rate > 0 {
			b.deadline = b.deadline.Add(time.Duration(float64(n) / float64(b.rate) * float64(time.Second)))
		} else {
			b.deadline = now.Add(b.window)
		}
		b.deadline = minTime(b.deadline, now.Add(b.window))
		_ = b.rc.SetReadDeadline(b.deadline)
	}
	return n, err
}

func (b *pacedBody) slowError() error {
	return &SlowBodyError{Rate: b.rate, Window: b.window, Read: b.read}
}

// SlowBodyError is the read error of a request body that fell behind the
// minimum rate; handlers answer it with 408 (see bodyTooSlow).
type SlowBodyError struct {
	Rate   int64         // bytes per second required
	Window time.Duration // how far behind it may fall
	Read   int64         // bytes that arrived
}

func (e *SlowBodyError) Error() string {
	if e.Rate <= 0 {
		return fmt.Sprintf("request body stalled: nothing arrived for %s (after %d bytes)", e.Window, e.Read)
	}
	return fmt.Sprintf("request body arrived slower than this server's minimum of %s/s (it may fall %s behind; %d bytes arrived)",
		humanBytes(e.Rate), e.Window, e.Read)
}

// Timeout reports true: SlowBodyError is a net.Error, so code that answers
// read timeouts (huma's body reader) answers it with 408 too.
func (e *SlowBodyError) Timeout() bool { return true }

// Temporary reports false: the connection is given up.
func (e *SlowBodyError) Temporary() bool { return false }

// bodyTooSlow turns a SlowBodyError in err into a 408 problem, or returns
// nil when err holds none.
func bodyTooSlow(err error) error {
	var slow *SlowBodyError
	if !errors.As(err, &slow) {
		return nil
	}
	return huma.NewError(http.StatusRequestTimeout, slow.Error()+"; the connection is closed")
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
