package push

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/netguard"
)

// Defaults of Config.
const (
	DefaultRTMPAddr    = "127.0.0.1:1935"
	DefaultRTMPSAddr   = "127.0.0.1:1936"
	DefaultSRTAddr     = "127.0.0.1:8890"
	DefaultReadTimeout = 10 * time.Second
	// DefaultChunkSize is the raw_stream record size of pushed live
	// streams: 64 KiB, within protocol.MaxChunkSize, so a frame or a
	// few (a 3 Mbit/s stream's key frame included) travel as one record
	// instead of many 10 KiB ones.
	DefaultChunkSize = 64 << 10
	// DefaultHold lets a publisher's bytes wait up to 20 ms for the next
	// frames, so audio frames share records with video ones. It is the
	// hold of SRT and HTTP pushes, whose MPEG-TS weir passes on without
	// finding the key frames in it, and of every Low-Latency HLS stream,
	// whose parts wait for the bytes.
	DefaultHold = 20 * time.Millisecond
	// DefaultFrameHold is an RTMP publisher's hold: RTMP hands weir
	// frames, and its key frames (which close segments) skip the hold,
	// so a longer one delays no segment while it puts about six frames
	// in a record instead of one or two, which is what the live path's
	// CPU is spent on (records framed, produced, stored, fetched, fed).
	DefaultFrameHold      = 200 * time.Millisecond
	DefaultStatusInterval = 2 * time.Second
	DefaultLeaseTTL       = 10 * time.Second
	// closeTimeout bounds the last bus records of a session whose
	// publisher left.
	closeTimeout = 10 * time.Second
	// trackProbeTime covers the media the RTMP reader reads (2 s of it,
	// arriving in real time) before it knows the publisher's tracks.
	trackProbeTime = 5 * time.Second
)

// RTMPApp is the RTMP application publishers push to:
// rtmp://HOST:1935/live/{publishKey}, or server rtmp://HOST:1935/live with
// the publish key as stream key in OBS.
const RTMPApp = "live"

// Config configures an ingest server (NewRTMPServer, NewSRTServer).
type Config struct {
	// Addr is the listen address; default DefaultRTMPAddr or
	// DefaultSRTAddr. Port 0 picks a free port (see Addr on the server).
	Addr string
	// Streams looks up publish keys, watches stream status and grants
	// publish leases; required.
	Streams StreamLookup
	// Producer writes the stream topics; required: the *bus.Client, or a
	// bustest.Bus in tests.
	Producer bus.Bus
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the weir_push_* metrics; nil registers nothing.
	Registry prometheus.Registerer
	// ReadTimeout drops a publisher that sends nothing for this long
	// (default DefaultReadTimeout).
	ReadTimeout time.Duration
	// StatusInterval is how often a publisher's stream is checked for
	// having ended, to disconnect the publisher (default
	// DefaultStatusInterval).
	StatusInterval time.Duration
	// ChunkSize is the most bytes per raw_stream record (default
	// DefaultChunkSize).
	ChunkSize int
	// Hold is how long an SRT or HTTP publisher's bytes may wait for
	// more to share their raw_stream record (ingest.SessionOptions.Hold;
	// default DefaultHold); negative sends each write at once.
	Hold time.Duration
	// FrameHold is Hold for RTMP publishers, whose key frames skip it
	// (default DefaultFrameHold, at most ingest.MaxHold); negative sends
	// each frame at once. A Low-Latency HLS stream holds at most Hold.
	FrameHold time.Duration
	// Holder names this process in publish leases (default
	// metastore.DefaultHolder()); it must differ between processes.
	Holder string
	// LeaseTTL is how long a publish lease lasts without renewal (default
	// DefaultLeaseTTL): after a crash, a stream's publisher can reconnect
	// to another process about this long later.
	LeaseTTL time.Duration
	// MaxConns caps the connections a server holds at once, handshakes
	// included (0: no cap). RTMP closes a connection over the cap as soon
	// as it is accepted; SRT rejects it with REJX_OVERLOAD (1402).
	MaxConns int
	// ListenerMetrics receives the RTMP listener's weir_listener_* series;
	// nil records none.
	ListenerMetrics *netguard.Metrics
	// MaxMessageBytes bounds one WebSocket message of the HTTP server
	// (default DefaultMaxMessageBytes); a larger one closes the WebSocket
	// with status 1009 (message too big).
	MaxMessageBytes int
	// TLS, when set, makes an RTMP server speak RTMPS (RTMP inside TLS)
	// with this configuration; its metrics carry protocol="rtmps" and
	// its address defaults to DefaultRTMPSAddr. The SRT server ignores
	// it (SRT encrypts with a passphrase instead).
	TLS *tls.Config
}

func (c *Config) check(kind, defaultAddr string) error {
	if c.Streams == nil {
		return fmt.Errorf("%s server: Config.Streams is required", kind)
	}
	if c.Producer == nil {
		return fmt.Errorf("%s server: Config.Producer is required", kind)
	}
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.FrameHold == 0 {
		c.FrameHold = DefaultFrameHold
	}
	if c.Holder == "" {
		c.Holder = metastore.DefaultHolder()
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	return nil
}

// RTMPServer accepts RTMP publishers (OBS, ffmpeg) on
// rtmp://HOST:1935/live/{publishKey} and turns each into a protocol stream of
// MPEG-TS on the live stream's topic.
//
// The publish key is checked when the publisher asks to publish: an unknown
// key, or the key of a stream that has ended, is refused with
// NetStream.Publish.Unauthorized and logged (without the key). H.264 or
// H.265 video and AAC or MP3 audio are remuxed into MPEG-TS with their
// original timestamps. A stream has one publisher across every ingest
// process: the session holds the stream's publish lease for its whole life
// and every record it writes carries the lease's token
// (protocol.HeaderPublishToken); a second publisher of the same stream is
// refused while the first is connected. A publisher is dropped when it
// sends nothing for ReadTimeout, when the stream ends (checked every
// StatusInterval), or when the server closes; its stream gets a stream_eof
// either way. A publisher whose lease is lost is dropped without one: the
// stream is no longer its to end. Playback over RTMP is refused: viewers
// watch HLS.
//
// With Config.TLS the server takes RTMPS: the TLS handshake comes first
// (bounded by ReadTimeout), then RTMP as above inside it.
type RTMPServer struct {
	listener[net.Conn]
	proto string
}

// NewRTMPServer checks cfg and registers the server's metrics; Start
// listens.
func NewRTMPServer(cfg Config) (*RTMPServer, error) {
	s := &RTMPServer{proto: "rtmp"}
	addr := DefaultRTMPAddr
	if cfg.TLS != nil {
		s.proto, addr = "rtmps", DefaultRTMPSAddr
	}
	if err := s.init(cfg, s.proto, addr); err != nil {
		return nil, err
	}
	return s, nil
}

// Start binds the listen address and starts accepting publishers in the
// background. It fails if the address is taken.
func (s *RTMPServer) Start() error {
	// The guard keeps accepting through file descriptor exhaustion and
	// holds the connection cap.
	ln, err := netguard.Listen("tcp", s.cfg.Addr, netguard.Config{
		Name: s.proto, MaxConns: s.cfg.MaxConns, Logger: s.cfg.Logger, Metrics: s.cfg.ListenerMetrics,
	})
	if err != nil {
		return fmt.Errorf("%s server: %w", s.proto, err)
	}
	s.bind(ln, func() { ln.Close() }, ln.Check)
	s.log.Info(s.proto+" ingest listening", "addr", ln.Addr().String())
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

func (s *RTMPServer) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("rtmp accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(conn)
	}
}

func (s *RTMPServer) handle(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	log := s.log.With("remote", conn.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			s.metrics.connections.WithLabelValues("failed").Inc()
			log.Error("rtmp connection panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if err := s.serve(conn, log); err != nil {
		log.Info("rtmp connection closed", "err", err)
	}
}

// errRefused marks a publisher turned away on purpose (already logged and
// counted).
var errRefused = errors.New("publisher refused")

func (s *RTMPServer) serve(conn net.Conn, log *slog.Logger) error {
	conn.SetDeadline(time.Now().Add(s.cfg.ReadTimeout))
	// The deadlines set on conn bound the TLS connection's reads and
	// writes too; closing conn ends both.
	var rw io.ReadWriter = conn
	if s.cfg.TLS != nil {
		tc := tls.Server(conn, s.cfg.TLS)
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.metrics.connections.WithLabelValues("failed").Inc()
			return fmt.Errorf("rtmps: tls handshake: %w", err)
		}
		rw = tc
	}
	sc := &gortmplib.ServerConn{RW: readBuffered(rw)}
	if err := sc.Initialize(); err != nil {
		s.metrics.connections.WithLabelValues("failed").Inc()
		return fmt.Errorf("rtmp handshake: %w", err)
	}
	if err := sc.AcceptConn(); err != nil {
		s.metrics.connections.WithLabelValues("failed").Inc()
		return fmt.Errorf("rtmp connect: %w", err)
	}
	if !sc.Publish {
		s.metrics.connections.WithLabelValues("refused").Inc()
		sc.RejectAction()
		log.Warn("rtmp play refused: weir serves viewers over HLS, not RTMP")
		return errRefused
	}
	key, err := RTMPPublishKey(sc.URL)
	var st metastore.Stream
	if err == nil {
		st, err = Authorize(s.ctx, s.cfg.Streams, key)
	}
	if err != nil {
		s.metrics.connections.WithLabelValues("refused").Inc()
		sc.RejectAction()
		log.Warn("rtmp publish refused", "reason", err.Error())
		return errRefused
	}
	log = log.With("stream", st.ID)
	held, err := s.claimStream(st.ID)
	if err != nil {
		s.metrics.connections.WithLabelValues("refused").Inc()
		sc.RejectAction()
		log.Warn("rtmp publish refused", "reason", err.Error())
		return errRefused
	}
	defer s.releaseStream(held, log)
	var ended, lost atomic.Bool

	// The reader learns the tracks from the first two seconds of media,
	// which arrive in real time: give it that on top of the timeout.
	conn.SetDeadline(time.Now().Add(s.cfg.ReadTimeout + trackProbeTime))
	// The reader accepts the publish itself only when it wraps the
	// *ServerConn directly; it wraps the arrival recorder instead.
	if err := sc.AcceptAction(); err != nil {
		s.metrics.connections.WithLabelValues("failed").Inc()
		return fmt.Errorf("rtmp publish of stream %s: accepting: %w", st.ID, err)
	}
	arrivals := &arrivalConn{Conn: sc, recording: true}
	r := &gortmplib.Reader{Conn: arrivals}
	if err := r.Initialize(); err != nil {
		s.metrics.connections.WithLabelValues("failed").Inc()
		return fmt.Errorf("rtmp publish of stream %s: reading tracks: %w", st.ID, err)
	}
	backlog := arrivals.stop()
	if len(backlog) > 0 {
		log.Debug("rtmp track probe held media back", "messages", len(backlog),
			"held", time.Since(backlog[0]).Round(time.Millisecond))
	}
	mux, kept, err := newTSMuxer(r.Tracks())
	if err != nil {
		s.metrics.connections.WithLabelValues("refused").Inc()
		log.Warn("rtmp publish refused", "reason", err.Error())
		return errRefused
	}
	sess, err := ingest.OpenSession(s.ctx, s.cfg.Producer, ingest.SessionOptions{
		StreamID:  st.ID,
		EngineID:  "weir-rtmp",
		ChunkSize: s.cfg.ChunkSize,
		Hold:      holdFor(st, s.cfg.FrameHold, s.cfg.Hold),
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
	log.Info("rtmp publisher connected", "tracks", len(kept))

	// recvAt is when the message being handled arrived: recorded during
	// the track probe for the messages the reader hands over afterwards,
	// zero (meaning now) for the rest.
	var recvAt time.Time
	var muxErr error
	// write sends the remuxed bytes of one frame; key frames (which close
	// segments) skip the session's hold.
	write := func(key bool, b []byte, err error) {
		if err != nil {
			if muxErr == nil {
				muxErr = err
			}
			return
		}
		if len(b) > 0 {
			at := recvAt
			if at.IsZero() {
				at = time.Now()
			}
			w := sess.Write
			if key {
				w = sess.WriteNow
			}
			if err := w(b, at); err != nil && muxErr == nil {
				muxErr = err
			}
		}
	}
	send := func(b []byte, err error) { write(false, b, err) }
	for _, t := range kept {
		switch t.Codec.(type) {
		case *rtmpcodecs.H264:
			r.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) {
				b, err := mux.WriteVideo(pts, dts, au)
				write(h264.IsRandomAccess(au), b, err)
			})
		case *rtmpcodecs.H265:
			r.OnDataH265(t, func(pts, dts time.Duration, au [][]byte) {
				b, err := mux.WriteVideo(pts, dts, au)
				write(h265.IsRandomAccess(au), b, err)
			})
		case *rtmpcodecs.MPEG4Audio:
			r.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) { send(mux.WriteAAC(pts, au)) })
		case *rtmpcodecs.MPEG1Audio:
			r.OnDataMPEG1Audio(t, func(pts time.Duration, frame []byte) { send(mux.WriteMPEGAudio(pts, frame)) })
		}
	}

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

	// The kernel gathers a frame or two before waking the reader (see
	// lowwater.go).
	lw := newLowWater(conn, time.Now())
	var readErr error
	for muxErr == nil {
		// Both deadlines: the library writes acknowledgements as bytes
		// come in, long after the handshake's deadline.
		conn.SetDeadline(time.Now().Add(s.cfg.ReadTimeout))
		recvAt = time.Time{}
		if len(backlog) > 0 {
			recvAt, backlog = backlog[0], backlog[1:]
		}
		if readErr = r.Read(); readErr != nil {
			break
		}
		lw.update(time.Now(), sess.Bytes())
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), closeTimeout)
	defer cancel()
	cerr := sess.Close(cctx, ended.Load())
	s.metrics.bytes.Add(float64(sess.Bytes()))
	switch {
	case ended.Load():
		log.Info("rtmp publisher disconnected: the stream ended")
	case lost.Load():
		log.Warn("rtmp publisher dropped: its publish lease was lost")
	default:
		log.Info("rtmp publisher disconnected", "reason", firstErr(muxErr, readErr))
	}
	return cerr
}

// rtmpReadBuffer is the read buffer in front of a publisher's connection:
// the RTMP library reads through a 4 KiB buffer of its own, which at a few
// Mbit/s costs a read system call every 4 KiB; 64 KiB takes whatever has
// arrived in one call.
const rtmpReadBuffer = 64 << 10

// bufferedRW reads through a buffer and writes straight through.
type bufferedRW struct {
	*bufio.Reader
	io.Writer
}

func readBuffered(rw io.ReadWriter) io.ReadWriter {
	return bufferedRW{Reader: bufio.NewReaderSize(rw, rtmpReadBuffer), Writer: rw}
}

// arrivalConn records when each message of the track probe arrived.
//
// gortmplib's Reader reads about two seconds of media before it knows the
// publisher's tracks, keeps every message it read, and hands them over
// again once the tracks are known, one message per Reader.Read, before
// reading the connection again. Stamping those messages with the time they
// are handed over would put the whole session's receive times (and so its
// EXT-X-PROGRAM-DATE-TIME) two seconds late; the recorded times, taken in
// the same order, are when they really arrived.
type arrivalConn struct {
	gortmplib.Conn
	recording bool
	arrivals  []time.Time
}

// Read reads a message and, while recording, notes its arrival.
func (c *arrivalConn) Read() (message.Message, error) {
	msg, err := c.Conn.Read()
	if err == nil && c.recording {
		c.arrivals = append(c.arrivals, time.Now())
	}
	return msg, err
}

// stop ends the recording and returns the arrival times of the messages
// read so far, oldest first: those of the messages the reader replays.
func (c *arrivalConn) stop() []time.Time {
	c.recording = false
	a := c.arrivals
	c.arrivals = nil
	return a
}

func firstErr(errs ...error) string {
	for _, e := range errs {
		if e != nil {
			return e.Error()
		}
	}
	return ""
}

// RTMPPublishKey extracts the publish key from the URL an RTMP publisher
// asked for: rtmp://HOST[:PORT]/live/KEY, with anything after a '?' in the
// key (some encoders append query parameters) ignored. Any other
// application, or a missing key, is an error.
func RTMPPublishKey(u *url.URL) (string, error) {
	if u == nil {
		return "", errors.New("no publish URL")
	}
	p := strings.Trim(u.Path, "/")
	app, key, ok := strings.Cut(p, "/")
	if !ok || app != RTMPApp {
		return "", fmt.Errorf("publish to rtmp://HOST/%s/KEY, not to application %q", RTMPApp, app)
	}
	key, _, _ = strings.Cut(key, "?")
	if key == "" || strings.ContainsAny(key, "/ ") {
		return "", fmt.Errorf("malformed publish key: %w", ErrUnknownKey)
	}
	return key, nil
}
