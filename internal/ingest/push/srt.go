package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	srt "github.com/datarhei/gosrt"

	"github.com/weir-media/weir/internal/ingest"
)

// SRT stream id modes.
const (
	srtModePublish = "publish"
	srtModeRead    = "read"
)

// SRTServer accepts SRT publishers sending MPEG-TS on
// srt://HOST:8890?streamid=publish:{publishKey} (the SRT access-control form
// "#!::r={publishKey},m=publish" works too) and puts their bytes, as they
// are, on the live stream's topic.
//
// The stream id is checked during the SRT handshake, so a wrong or ended key
// never gets a connection: it is rejected with reason 1401 (unauthorized) or
// 1403 (ended), and a malformed id or a reading mode with 1400 or 1405.
// A publisher that sends nothing for ReadTimeout is dropped (SRT's peer idle
// timeout), as is the publisher of a stream that ends. A stream has one
// publisher across every ingest process (see RTMPServer): a second one is
// rejected during the handshake with reason 1407 (conflict) while the
// first is connected. A stream started with an SRT passphrase takes only
// publishers encrypting with it (AES, keys derived from the passphrase):
// one without encryption is rejected with 1011 (unsecure), one with another
// passphrase with 1010 (bad secret). A stream without a passphrase rejects
// encrypting publishers with 1011. Datagrams that are not SRT are ignored
// by the SRT library.
type SRTServer struct {
	listener[srt.Conn]
	// sessions counts connections being handled, handshakes included
	// (Config.MaxConns); acceptErr is the latest accept's error, nil
	// once one works.
	sessions  atomic.Int64
	acceptErr atomic.Pointer[error]
}

// NewSRTServer checks cfg and registers the server's metrics; Start
// listens.
func NewSRTServer(cfg Config) (*SRTServer, error) {
	s := &SRTServer{}
	if err := s.init(cfg, "srt", DefaultSRTAddr); err != nil {
		return nil, err
	}
	return s, nil
}

// Start binds the UDP listen address and starts accepting publishers in the
// background.
func (s *SRTServer) Start() error {
	conf := srt.DefaultConfig()
	conf.PeerIdleTimeout = s.cfg.ReadTimeout
	ln, err := srt.Listen("srt", s.cfg.Addr, conf)
	if err != nil {
		return fmt.Errorf("srt server: %w", err)
	}
	s.bind(ln, ln.Close, s.acceptCheck)
	s.log.Info("srt ingest listening", "addr", ln.Addr().String())
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

func (s *SRTServer) accept(ln srt.Listener) {
	defer s.wg.Done()
	pause := time.Duration(0)
	for {
		req, err := ln.Accept2()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, srt.ErrListenerClosed) {
				return
			}
			s.acceptErr.Store(&err)
			pause = min(max(2*pause, 50*time.Millisecond), time.Second)
			s.log.Warn("srt accept", "err", err, "retry_in", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		s.acceptErr.Store(nil)
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			req.Reject(srt.REJ_CLOSE)
			return
		}
		if s.cfg.MaxConns > 0 && int(s.sessions.Load()) >= s.cfg.MaxConns {
			s.mu.Unlock()
			s.metrics.connections.WithLabelValues("refused").Inc()
			req.Reject(srt.REJX_OVERLOAD)
			s.log.Warn("srt connection cap reached; refusing", "max_conns", s.cfg.MaxConns, "remote", req.RemoteAddr().String())
			continue
		}
		s.sessions.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(req)
	}
}

// acceptCheck reports the error of the latest accept, while none has
// worked since.
func (s *SRTServer) acceptCheck() error {
	if err := s.acceptErr.Load(); err != nil {
		return fmt.Errorf("srt listener on %s cannot accept connections: %w", s.Addr(), *err)
	}
	return nil
}

func (s *SRTServer) handle(req srt.ConnRequest) {
	defer s.wg.Done()
	defer s.sessions.Add(-1)
	log := s.log.With("remote", req.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			s.metrics.connections.WithLabelValues("failed").Inc()
			log.Error("srt connection panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if err := s.serve(req, log); err != nil && !errors.Is(err, errRefused) {
		log.Info("srt connection closed", "err", err)
	}
}

func (s *SRTServer) refuse(req srt.ConnRequest, log *slog.Logger, reason srt.RejectionReason, why error) error {
	s.metrics.connections.WithLabelValues("refused").Inc()
	req.Reject(reason)
	log.Warn("srt publish refused", "reason", why.Error(), "code", uint32(reason))
	return errRefused
}

func (s *SRTServer) serve(req srt.ConnRequest, log *slog.Logger) error {
	if req.Version() < 5 {
		return s.refuse(req, log, srt.REJX_BAD_REQUEST, errors.New("SRT version 4 carries no stream id; use SRT 1.3 or later"))
	}
	mode, key, err := ParseSRTStreamID(req.StreamId())
	if err != nil {
		return s.refuse(req, log, srt.REJX_BAD_REQUEST, err)
	}
	if mode != srtModePublish {
		return s.refuse(req, log, srt.REJX_BAD_MODE, fmt.Errorf("mode %q: weir only takes publishers over SRT; viewers watch HLS", mode))
	}
	st, err := Authorize(s.ctx, s.cfg.Streams, key)
	switch {
	case errors.Is(err, ErrStreamEnded):
		return s.refuse(req, log, srt.REJX_FORBIDDEN, err)
	case errors.Is(err, ErrUnknownKey):
		return s.refuse(req, log, srt.REJX_UNAUTHORIZED, err)
	case err != nil:
		return s.refuse(req, log, srt.REJX_ISE, err)
	}
	log = log.With("stream", st.ID)
	if reason, err := checkEncryption(req, st.SRTPassphrase); err != nil {
		return s.refuse(req, log, reason, err)
	}
	held, err := s.claimStream(st.ID)
	if errors.Is(err, ErrPublisherConnected) {
		return s.refuse(req, log, srt.REJX_CONFLICT, err)
	} else if err != nil {
		return s.refuse(req, log, srt.REJX_ISE, err)
	}
	defer s.releaseStream(held, log)
	conn, err := req.Accept()
	if err != nil {
		s.metrics.connections.WithLabelValues("failed").Inc()
		return fmt.Errorf("srt accept for stream %s: %w", st.ID, err)
	}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()

	var ended, lost atomic.Bool
	sess, err := ingest.OpenSession(s.ctx, s.cfg.Producer, ingest.SessionOptions{
		StreamID:  st.ID,
		EngineID:  "weir-srt",
		ChunkSize: s.cfg.ChunkSize,
		Hold:      s.cfg.Hold,
		Lease:     held,
		Logger:    log,
	})
	if err != nil {
		s.metrics.connections.WithLabelValues("failed").Inc()
		return err
	}
	s.metrics.connections.WithLabelValues("accepted").Inc()
	s.metrics.publishers.Inc()
	defer s.metrics.publishers.Dec()
	log.Info("srt publisher connected")

	wctx, stopWatch := context.WithCancel(s.ctx)
	defer stopWatch()
	go watchStatus(wctx, s.cfg.Streams, st.ID, s.cfg.StatusInterval, func() {
		ended.Store(true)
		conn.Close()
	})
	go watchLease(wctx, held, func() {
		lost.Store(true)
		conn.Close()
	})

	buf := make([]byte, 2048)
	var readErr error
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if werr := sess.Write(buf[:n], time.Now()); werr != nil {
				readErr = werr
				break
			}
		}
		if err != nil {
			readErr = err
			break
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), closeTimeout)
	defer cancel()
	cerr := sess.Close(cctx, ended.Load())
	s.metrics.bytes.Add(float64(sess.Bytes()))
	switch {
	case ended.Load():
		log.Info("srt publisher disconnected: the stream ended")
	case lost.Load():
		log.Warn("srt publisher dropped: its publish lease was lost")
	default:
		log.Info("srt publisher disconnected", "reason", firstErr(readErr))
	}
	return cerr
}

// checkEncryption holds a publisher to its stream's passphrase: a stream
// with one takes only publishers that encrypt with exactly it, a stream
// without one only publishers that do not encrypt. On a match the request
// is set up to decrypt.
func checkEncryption(req srt.ConnRequest, passphrase string) (srt.RejectionReason, error) {
	switch {
	case passphrase == "" && req.IsEncrypted():
		return srt.REJ_UNSECURE, errors.New("the publisher encrypts but the stream has no SRT passphrase; publish without one")
	case passphrase == "":
		return 0, nil
	case !req.IsEncrypted():
		return srt.REJ_UNSECURE, errors.New("the stream needs SRT encryption; publish with its passphrase")
	}
	// A wrong passphrase cannot unwrap the publisher's key.
	if err := req.SetPassphrase(passphrase); err != nil {
		return srt.REJ_BADSECRET, errors.New("wrong SRT passphrase")
	}
	return 0, nil
}

// ParseSRTStreamID reads an SRT stream id naming a mode and a publish key:
// "publish:KEY" (or "read:KEY"), or the SRT access-control form
// "#!::r=KEY,m=publish" whose mode defaults to "request" (reading).
// A missing key or an unknown mode is an error.
func ParseSRTStreamID(id string) (mode, key string, err error) {
	id = strings.TrimSpace(id)
	if rest, ok := strings.CutPrefix(id, "#!::"); ok {
		mode = "request"
		for _, kv := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return "", "", fmt.Errorf("stream id: malformed entry %q", kv)
			}
			switch k {
			case "r":
				key = v
			case "m":
				mode = v
			}
		}
		switch mode {
		case srtModePublish:
		case "request", "bidirectional":
			mode = srtModeRead
		default:
			return "", "", fmt.Errorf("stream id: unknown mode %q", mode)
		}
	} else {
		m, k, ok := strings.Cut(id, ":")
		if !ok {
			return "", "", errors.New(`stream id: want "publish:KEY"`)
		}
		switch m {
		case srtModePublish, srtModeRead:
		case "play":
			m = srtModeRead
		default:
			return "", "", fmt.Errorf("stream id: unknown mode %q; want \"publish:KEY\"", m)
		}
		mode, key = m, k
	}
	if key == "" || strings.ContainsAny(key, " /,:") {
		return "", "", errors.New("stream id: missing or malformed publish key")
	}
	return mode, key, nil
}
