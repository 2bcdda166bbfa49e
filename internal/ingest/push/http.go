package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/metastore"
)

// HTTPPublishPrefix is the path HTTP and WebSocket publishers push to:
// /publish/{publishKey}, on the HTTP listener.
const HTTPPublishPrefix = "/publish/"

// DefaultMaxMessageBytes is the default Config.MaxMessageBytes.
const DefaultMaxMessageBytes = 4 << 20

// maxKeyLength bounds a publish key in a URL path; keys weir makes are 32
// hex digits.
const maxKeyLength = 128

// HTTPPublishKey extracts the publish key from the path an HTTP or
// WebSocket publisher asked for: /publish/KEY, optionally with an
// extension naming the format (.ts, .m2t, .webm, .mkv), which is ignored:
// the format is told from the bytes. Any other path is an error.
func HTTPPublishKey(path string) (string, error) {
	rest, ok := strings.CutPrefix(path, HTTPPublishPrefix)
	if !ok {
		return "", fmt.Errorf("publish to %sKEY, not to %q", HTTPPublishPrefix, path)
	}
	for _, ext := range []string{".ts", ".m2t", ".webm", ".mkv"} {
		if k, ok := strings.CutSuffix(rest, ext); ok {
			rest = k
			break
		}
	}
	if rest == "" || len(rest) > maxKeyLength || strings.ContainsAny(rest, "/ ?#%.") {
		return "", fmt.Errorf("malformed publish key: %w", ErrUnknownKey)
	}
	return rest, nil
}

// HTTPServer takes publishers pushing over HTTP and WebSocket on the HTTP
// listener, at HTTPPublishPrefix + publishKey:
//
//   - HTTP PUT or POST of a body of MPEG-TS, as ffmpeg sends it with
//     `-method PUT -f mpegts http://HOST:8080/publish/KEY` (chunked, of no
//     set length), or any other client streaming a body;
//   - a WebSocket (GET with Upgrade) whose binary messages carry the
//     stream: MPEG-TS, or WebM/Matroska as a browser's MediaRecorder
//     makes it.
//
// Either may also carry WebM or Matroska with H.264 or H.265 video, which
// an ffmpeg process remuxes into MPEG-TS (audio other than AAC or MP3, such
// as Opus, is transcoded to AAC). The format is told from the first bytes.
//
// The publish key is checked, and the stream's publish lease taken, before
// a byte of the body is read: an unknown key is answered 401, the key of an
// ended stream 403, a stream that has a publisher 409, all as RFC 9457
// problem documents (JSON) naming the reason. A body that is neither
// format gets 415. Then, as for RTMP and SRT, the stream goes to the
// stream topic through an ingest.Session holding the lease (every record
// carries its fencing token), a publisher that sends nothing for
// ReadTimeout is dropped (408), as is one whose stream ends (checked every
// StatusInterval) or whose lease is lost (409); a stream that stops being
// MPEG-TS is dropped (400). A WebSocket is closed with a status code and
// reason instead (see docs/ingest.md). Origins are not checked: the
// publish key is the only credential, and a page needs it to publish.
type HTTPServer struct {
	listener[*httpPublisher]
	ws     *serverMetrics
	active atomic.Int64
}

// NewHTTPServer checks cfg (Addr is unused: mount the server on the HTTP
// listener with Mount) and registers the weir_push_* metrics for
// protocols "http" and "websocket".
func NewHTTPServer(cfg Config) (*HTTPServer, error) {
	cfg.Addr = "http"
	s := &HTTPServer{}
	if err := s.init(cfg, "http", "http"); err != nil {
		return nil, err
	}
	if s.cfg.MaxMessageBytes <= 0 {
		s.cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	ws, err := newServerMetrics(cfg.Registry, "websocket")
	if err != nil {
		return nil, fmt.Errorf("websocket server metrics: %w", err)
	}
	s.ws = ws
	s.bind(nil, nil, func() error { return nil })
	return s, nil
}

// Mount returns a handler that serves HTTPPublishPrefix with s and every
// other path with next.
func (s *HTTPServer) Mount(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, HTTPPublishPrefix) {
			s.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// NotServed returns a handler that answers HTTPPublishPrefix with a 404
// problem saying this process takes no publishers (it runs without the
// ingest role), and every other path with next.
func NotServed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, HTTPPublishPrefix) {
			writeProblem(w, http.StatusNotFound, "this weir process takes no publishers (it runs without the ingest role); publish to a process with it")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isWebSocket reports whether r asks to upgrade to a WebSocket.
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// ServeHTTP takes one publisher (see HTTPServer).
func (s *HTTPServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws := isWebSocket(r)
	proto, m := "http", s.metrics
	if ws {
		proto, m = "websocket", s.ws
	}
	log := s.log.With("remote", r.RemoteAddr, "protocol", proto)
	defer func() {
		if p := recover(); p != nil {
			m.connections.WithLabelValues("failed").Inc()
			log.Error("http publisher panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if perr := checkRequest(r, ws); perr != nil {
		s.refuse(w, m, log, perr)
		return
	}
	key, err := HTTPPublishKey(r.URL.Path)
	if err != nil {
		s.refuse(w, m, log, refusal(http.StatusNotFound, err))
		return
	}
	if !s.enter() {
		s.refuse(w, m, log, refusal(http.StatusServiceUnavailable, errors.New("the server is shutting down or has too many publishers; retry later")))
		return
	}
	defer s.leave()
	st, err := Authorize(r.Context(), s.cfg.Streams, key)
	switch {
	case errors.Is(err, ErrUnknownKey):
		w.Header().Set("WWW-Authenticate", `Key realm="weir publish"`)
		s.refuse(w, m, log, refusal(http.StatusUnauthorized, err))
		return
	case errors.Is(err, ErrStreamEnded):
		s.refuse(w, m, log, refusal(http.StatusForbidden, err))
		return
	case err != nil:
		s.refuse(w, m, log, refusal(http.StatusServiceUnavailable, err))
		return
	}
	log = log.With("stream", st.ID)
	held, err := s.claimStream(st.ID)
	if errors.Is(err, ErrPublisherConnected) {
		s.refuse(w, m, log, refusal(http.StatusConflict, err))
		return
	} else if err != nil {
		s.refuse(w, m, log, refusal(http.StatusServiceUnavailable, err))
		return
	}
	defer s.releaseStream(held, log)

	p := &httpPublisher{}
	var f feed
	if ws {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			m.connections.WithLabelValues("failed").Inc()
			log.Info("websocket handshake failed", "err", err)
			return
		}
		defer conn.CloseNow()
		conn.SetReadLimit(int64(s.cfg.MaxMessageBytes))
		f = newWSFeed(conn, p, s.cfg.ReadTimeout)
	} else {
		f = newBodyFeed(w, r, p, s.cfg.ReadTimeout)
	}
	if !s.track(p) {
		p.stop(errShuttingDown)
	}
	defer s.untrack(p)
	sessionOpened := false
	src, perr := s.publish(r.Context(), st, held, p, f, proto, m, log, &sessionOpened)
	if !sessionOpened && perr != nil {
		m.connections.WithLabelValues(perr.result()).Inc()
		log.Warn(proto+" publish refused", "reason", perr.err.Error())
	}
	// A WebSocket is closed first, with the stream's end, which also ends
	// any read of it still in progress; then the source is stopped.
	if ws {
		code, reason := perr.wsClose()
		f.(*wsFeed).close(code, reason)
	}
	if src != nil {
		src.close()
	}
	if ws {
		return
	}
	if perr == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeProblem(w, perr.status, perr.err.Error())
}

// checkRequest refuses requests that cannot be a publish: the wrong method.
func checkRequest(r *http.Request, ws bool) *pushError {
	if ws {
		if r.Method != http.MethodGet {
			return refusal(http.StatusMethodNotAllowed, fmt.Errorf("a WebSocket publisher connects with GET, not %s", r.Method))
		}
		return nil
	}
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		return refusal(http.StatusMethodNotAllowed, fmt.Errorf("publish with PUT or POST (a body of MPEG-TS) or a WebSocket, not %s; viewers watch /hls/", r.Method))
	}
	return nil
}

// enter counts a publisher in, unless the server is closed or at
// Config.MaxConns.
func (s *HTTPServer) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil || s.cfg.MaxConns > 0 && int(s.active.Load()) >= s.cfg.MaxConns {
		return false
	}
	s.active.Add(1)
	s.wg.Add(1)
	return true
}

func (s *HTTPServer) leave() {
	s.active.Add(-1)
	s.wg.Done()
}

// track registers p so Close can stop it; false when the server closed.
func (s *HTTPServer) track(p *httpPublisher) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[p] = struct{}{}
	return s.ctx.Err() == nil
}

func (s *HTTPServer) untrack(p *httpPublisher) {
	s.mu.Lock()
	delete(s.conns, p)
	s.mu.Unlock()
}

// refuse answers a request turned away before its stream started.
func (s *HTTPServer) refuse(w http.ResponseWriter, m *serverMetrics, log *slog.Logger, perr *pushError) {
	m.connections.WithLabelValues(perr.result()).Inc()
	log.Warn("http publish refused", "status", perr.status, "reason", perr.err.Error())
	if perr.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, PUT, POST")
	}
	writeProblem(w, perr.status, perr.err.Error())
}

// writeProblem writes an RFC 9457 problem document, as the REST API does.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

// publish reads the publisher's stream, tells its format, and writes it to
// the stream topic until it ends, the publisher is stopped, or it fails.
// opened is set once the session (stream_init) is written. A nil error is
// a publisher that ended its stream itself. The source returned, if any,
// is for the caller to close.
func (s *HTTPServer) publish(ctx context.Context, st metastore.Stream, held *metastore.HeldLease, p *httpPublisher,
	f feed, proto string, m *serverMetrics, log *slog.Logger, opened *bool) (source, *pushError) {
	src, format, perr := s.open(ctx, f, p, log)
	if perr != nil {
		return src, perr
	}
	sess, err := ingest.OpenSession(s.ctx, s.cfg.Producer, ingest.SessionOptions{
		StreamID:  st.ID,
		EngineID:  "weir-" + proto,
		ChunkSize: s.cfg.ChunkSize,
		Hold:      s.cfg.Hold,
		Lease:     held,
		Logger:    log,
	})
	if err != nil {
		return src, failure(http.StatusServiceUnavailable, websocket.StatusTryAgainLater, err)
	}
	*opened = true
	m.connections.WithLabelValues("accepted").Inc()
	m.publishers.Inc()
	defer m.publishers.Dec()
	log.Info(proto+" publisher connected", "format", format.String())

	wctx, stopWatch := context.WithCancel(s.ctx)
	defer stopWatch()
	go watchStatus(wctx, s.cfg.Streams, st.ID, s.cfg.StatusInterval, func() { p.stop(errStreamEnded) })
	go watchLease(wctx, held, func() { p.stop(errLeaseLost) })

	var tc *tsCheck
	if format == formatTS {
		tc = &tsCheck{}
	}
	var readErr error
	for {
		data, err := src.read()
		if len(data) > 0 {
			if tc != nil {
				if cerr := tc.check(data); cerr != nil {
					readErr = cerr
					break
				}
			}
			if werr := sess.Write(data, time.Now()); werr != nil {
				readErr = werr
				break
			}
		}
		if err != nil {
			readErr = err
			break
		}
	}
	why := p.reason()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), closeTimeout)
	defer cancel()
	cerr := sess.Close(cctx, errors.Is(why, errStreamEnded))
	m.bytes.Add(float64(sess.Bytes()))
	perr = classify(why, readErr, sess.Err())
	switch {
	case perr == nil:
		log.Info(proto + " publisher finished its stream")
	case errors.Is(why, errLeaseLost):
		log.Warn(proto+" publisher dropped: its publish lease was lost", "reason", perr.err.Error())
	default:
		log.Info(proto+" publisher disconnected", "reason", perr.err.Error())
	}
	if perr == nil && cerr != nil {
		perr = failure(http.StatusServiceUnavailable, websocket.StatusInternalError, fmt.Errorf("ending the stream: %w", cerr))
	}
	return src, perr
}

// httpPublisher is one HTTP or WebSocket publisher as Close and the
// watchers see it: stop interrupts its reads with a reason.
type httpPublisher struct {
	mu        sync.Mutex
	why       error
	interrupt func()
}

// onStop sets what stop does to interrupt the publisher's reads; if the
// publisher was stopped already, it runs at once.
func (p *httpPublisher) onStop(f func()) {
	p.mu.Lock()
	p.interrupt = f
	stopped := p.why != nil
	p.mu.Unlock()
	if stopped {
		f()
	}
}

// stop ends the publisher's stream for reason why (the first reason
// given wins).
func (p *httpPublisher) stop(why error) {
	p.mu.Lock()
	if p.why != nil {
		p.mu.Unlock()
		return
	}
	p.why = why
	f := p.interrupt
	p.mu.Unlock()
	if f != nil {
		f()
	}
}

// reason is why the publisher was stopped, nil if it was not.
func (p *httpPublisher) reason() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.why
}

// Close stops the publisher because the server is closing.
func (p *httpPublisher) Close() error {
	p.stop(errShuttingDown)
	return nil
}
