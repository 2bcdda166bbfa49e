package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/weir-media/weir/internal/metastore"
)

// Reasons an HTTP or WebSocket publisher is stopped.
var (
	errStreamEnded  = errors.New("the stream has ended")
	errLeaseLost    = errors.New("the stream's publish lease was lost: another publisher has it")
	errShuttingDown = errors.New("the server is shutting down")
	errIdle         = errors.New("the publisher sent nothing")
	errTextMessage  = errors.New("a text message: send the stream in binary messages")
	errEmpty        = errors.New("the stream ended before a byte of media")
)

// feed is what a publisher sends, read by one goroutine: read returns the
// next bytes (valid until the next call), and io.EOF once the publisher
// ended its stream cleanly. interrupt makes a read in progress, and every
// later one, return (a WebSocket's reads return once it is closed).
type feed interface {
	read() ([]byte, error)
	interrupt()
}

// errInterrupted: the server stopped reading a publisher's stream.
var errInterrupted = errors.New("reading interrupted")

// bodyFeed reads an HTTP request body, dropping a publisher that sends
// nothing for timeout. A stop interrupts a read in progress through the
// connection's read deadline.
type bodyFeed struct {
	body    io.Reader
	rc      *http.ResponseController
	p       *httpPublisher
	timeout time.Duration
	buf     []byte
	mu      sync.Mutex // orders deadline changes against stop
	stopped bool
}

func newBodyFeed(w http.ResponseWriter, r *http.Request, p *httpPublisher, timeout time.Duration) *bodyFeed {
	f := &bodyFeed{body: r.Body, rc: http.NewResponseController(w), p: p, timeout: timeout, buf: make([]byte, 64<<10)}
	p.onStop(f.interrupt)
	return f
}

func (f *bodyFeed) interrupt() {
	f.mu.Lock()
	f.stopped = true
	f.rc.SetReadDeadline(time.Now())
	f.mu.Unlock()
}

// interrupted returns why reading stopped, if it was interrupted.
func (f *bodyFeed) interrupted() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		return nil
	}
	if why := f.p.reason(); why != nil {
		return why
	}
	return errInterrupted
}

func (f *bodyFeed) read() ([]byte, error) {
	// The deadline is moved under the lock interrupt takes, so an
	// interrupt is never undone.
	f.mu.Lock()
	stopped := f.stopped
	if !stopped {
		f.rc.SetReadDeadline(time.Now().Add(f.timeout))
	}
	f.mu.Unlock()
	if stopped {
		return nil, f.interrupted()
	}
	n, err := f.body.Read(f.buf)
	if err != nil && !errors.Is(err, io.EOF) {
		if why := f.interrupted(); why != nil {
			return f.buf[:n], why
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			f.p.stop(fmt.Errorf("%w for %v", errIdle, f.timeout))
			return f.buf[:n], f.p.reason()
		}
		return f.buf[:n], fmt.Errorf("reading the request body: %w", err)
	}
	return f.buf[:n], err
}

// wsFeed reads the binary messages of a WebSocket. A stop closes the
// WebSocket with the status and reason of the stop (see pushError), and so
// does a publisher that sends nothing for timeout.
type wsFeed struct {
	conn    *websocket.Conn
	p       *httpPublisher
	timeout time.Duration
	idle    *time.Timer
	once    sync.Once
	closed  chan struct{}
}

func newWSFeed(conn *websocket.Conn, p *httpPublisher, timeout time.Duration) *wsFeed {
	f := &wsFeed{conn: conn, p: p, timeout: timeout, closed: make(chan struct{})}
	f.idle = time.AfterFunc(timeout, func() { p.stop(fmt.Errorf("%w for %v", errIdle, timeout)) })
	p.onStop(func() {
		code, reason := classify(p.reason(), nil, nil).wsClose()
		go f.close(code, reason)
	})
	return f
}

// interrupt does nothing: the server closes the WebSocket, with the
// status its stream ended with, before it waits for the reads to end.
func (f *wsFeed) interrupt() {}

func (f *wsFeed) read() ([]byte, error) {
	typ, data, err := f.conn.Read(context.Background())
	if err != nil {
		if why := f.p.reason(); why != nil {
			return nil, why
		}
		switch websocket.CloseStatus(err) {
		case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading the websocket: %w", err)
	}
	f.idle.Reset(f.timeout)
	if typ != websocket.MessageBinary {
		return nil, errTextMessage
	}
	return data, nil
}

// close closes the WebSocket once, with code and reason (the handshake
// waits for the peer's answer a few seconds at most).
func (f *wsFeed) close(code websocket.StatusCode, reason string) {
	f.once.Do(func() {
		f.idle.Stop()
		f.conn.Close(code, reason)
		close(f.closed)
	})
}

// source is the MPEG-TS a publisher's stream turns into.
type source interface {
	read() ([]byte, error)
	close()
}

// replay is a source that yields the bytes read to tell the format, then
// the rest of the feed: MPEG-TS as it came.
type replay struct {
	head []byte
	f    feed
}

func (r *replay) read() ([]byte, error) {
	if r.head != nil {
		h := r.head
		r.head = nil
		return h, nil
	}
	return r.f.read()
}

func (r *replay) close() {}

// pushError is why a publish ended other than by the publisher ending its
// stream: the HTTP status a PUT or POST is answered with, the status a
// WebSocket is closed with, and the cause.
type pushError struct {
	status  int
	ws      websocket.StatusCode
	err     error
	refused bool // counted as refused rather than failed
}

// refusal is a publisher turned away.
func refusal(status int, err error) *pushError {
	code := websocket.StatusPolicyViolation
	if status == http.StatusUnsupportedMediaType {
		code = websocket.StatusUnsupportedData
	}
	return &pushError{status: status, ws: code, err: err, refused: true}
}

// failure is a publish that broke.
func failure(status int, ws websocket.StatusCode, err error) *pushError {
	return &pushError{status: status, ws: ws, err: err}
}

// result is the weir_push_connections_total result the error counts as.
func (e *pushError) result() string {
	if e.refused {
		return "refused"
	}
	return "failed"
}

// wsClose is the WebSocket close status and reason for e; a nil e is a
// normal closure.
func (e *pushError) wsClose() (websocket.StatusCode, string) {
	if e == nil {
		return websocket.StatusNormalClosure, ""
	}
	// A close frame's reason holds at most 123 bytes.
	reason := e.err.Error()
	for len(reason) > 123 {
		_, size := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-size]
	}
	return e.ws, reason
}

// classify turns why a publisher was stopped (nil if it was not), the
// error its stream ended with, and the bus session's failure into the
// answer it gets; nil for a stream the publisher ended itself.
func classify(why, readErr, sessErr error) *pushError {
	switch {
	case errors.Is(why, errStreamEnded):
		return &pushError{status: http.StatusForbidden, ws: websocket.StatusNormalClosure, err: why}
	case errors.Is(why, errLeaseLost), errors.Is(sessErr, metastore.ErrLeaseLost), errors.Is(readErr, metastore.ErrLeaseLost):
		return failure(http.StatusConflict, websocket.StatusPolicyViolation, errLeaseLost)
	case errors.Is(why, errShuttingDown):
		return failure(http.StatusServiceUnavailable, websocket.StatusGoingAway, why)
	case errors.Is(why, errIdle):
		return failure(http.StatusRequestTimeout, websocket.StatusPolicyViolation, why)
	case why != nil:
		return failure(http.StatusInternalServerError, websocket.StatusInternalError, why)
	case sessErr != nil:
		return failure(http.StatusServiceUnavailable, websocket.StatusInternalError, fmt.Errorf("writing the stream to the bus: %w", sessErr))
	case readErr == nil, errors.Is(readErr, io.EOF):
		return nil
	case errors.Is(readErr, errLostSync), errors.Is(readErr, errRemux), errors.Is(readErr, errInterrupted):
		return failure(http.StatusBadRequest, websocket.StatusInvalidFramePayloadData, readErr)
	case errors.Is(readErr, errTextMessage):
		return failure(http.StatusBadRequest, websocket.StatusUnsupportedData, readErr)
	}
	return failure(http.StatusBadRequest, websocket.StatusProtocolError, readErr)
}
