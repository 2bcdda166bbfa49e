package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/weir-media/weir/internal/netguard"
)

// Limits are the resource bounds of a weir process: connection caps per
// listener and the timeouts of the HTTP server, of requests waiting on the
// bus, and of fetching user-given URLs. A zero field takes its default.
type Limits struct {
	// Connection caps per listener: 0 takes a share of the process's
	// open-file limit (see maxConns), a negative value means no cap.
	HTTPMaxConns  int `koanf:"http-max-conns"`
	KafkaMaxConns int `koanf:"kafka-max-conns"`
	RTMPMaxConns  int `koanf:"rtmp-max-conns"`
	SRTMaxConns   int `koanf:"srt-max-conns"`

	// HTTPHeaderTimeout bounds reading a request's headers (default 10 s);
	// HTTPIdleTimeout closes a keep-alive connection idle this long
	// (default 120 s).
	HTTPHeaderTimeout time.Duration `koanf:"http-header-timeout"`
	HTTPIdleTimeout   time.Duration `koanf:"http-idle-timeout"`
	// HTTPMinBodyRate (bytes per second, default 4096; negative: none) and
	// HTTPBodyTimeout (default 30 s) pace request bodies: see
	// api.Config.MinBodyRate.
	HTTPMinBodyRate int64         `koanf:"http-min-body-rate"`
	HTTPBodyTimeout time.Duration `koanf:"http-body-timeout"`
	// BusTimeout bounds a request's wait for the bus (default 10 s).
	BusTimeout time.Duration `koanf:"bus-timeout"`

	// Fetching VOD imports and live pulls: SourceConnectTimeout bounds
	// the TCP and TLS handshakes (default 10 s), SourceHeaderTimeout the
	// wait for response headers (default 30 s), SourceReadTimeout any one
	// read of the body (default 30 s). None bounds a whole transfer.
	SourceConnectTimeout time.Duration `koanf:"source-connect-timeout"`
	SourceHeaderTimeout  time.Duration `koanf:"source-header-timeout"`
	SourceReadTimeout    time.Duration `koanf:"source-read-timeout"`
}

const (
	defaultHTTPHeaderTimeout = 10 * time.Second
	defaultHTTPIdleTimeout   = 120 * time.Second
	defaultSourceConnect     = 10 * time.Second
	defaultSourceHeader      = 30 * time.Second
	defaultSourceRead        = 30 * time.Second
)

// Shares of the open-file limit the listeners' default caps take: a
// quarter each for HTTP and the broker, an eighth each for RTMP and SRT,
// which leaves a quarter for files, stores and outbound connections.
const (
	httpShare  = 4
	kafkaShare = 4
	pushShare  = 8
)

// maxConns is a listener's cap from its flag: the flag when positive, none
// when negative, else a share of the open-file limit.
func maxConns(flag, share int) int {
	switch {
	case flag > 0:
		return flag
	case flag < 0:
		return 0
	}
	return netguard.ShareOfFileLimit(share)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// busyResponse is what an HTTP connection over the cap reads before it is
// closed: a problem document, as every other error of the API.
var busyResponse = func() string {
	body := `{"title":"Service Unavailable","status":503,"detail":"this server holds its maximum of open connections (--http-max-conns); retry shortly"}` + "\n"
	return fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// refuseHTTP answers a connection over the HTTP cap without reading its
// request.
func refuseHTTP(c net.Conn) { _, _ = io.WriteString(c, busyResponse) }

// readyChecks are /ready's checks beyond the stores: the bus, and every
// listener this process runs.
func (s *Server) readyChecks() map[string]func(context.Context) error {
	checks := map[string]func(context.Context) error{"bus": s.bus.Ping}
	add := func(name string, check func() error) {
		checks[name] = func(context.Context) error { return check() }
	}
	add("http-listener", s.httpLn.Check)
	if s.broker != nil {
		add("kafka-listener", s.broker.ListenerCheck)
	}
	if s.rtmp != nil {
		add("rtmp-listener", s.rtmp.Check)
		add("srt-listener", s.srt.Check)
	}
	if s.rtmps != nil {
		add("rtmps-listener", s.rtmps.Check)
	}
	return checks
}
