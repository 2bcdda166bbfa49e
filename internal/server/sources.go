package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/weir-media/weir/internal/ingest"
)

// sourceHTTPClient is the client the pipelines fetch user-given URLs with
// (VOD imports, live pulls). Unless allowPrivate is set it refuses to
// connect to any address that is not on the public internet (see
// ingest.PublicAddr): a URL handed to the API must not become a way to reach
// services behind the server. Every fetch is bounded by t.
func sourceHTTPClient(allowPrivate bool, t sourceTimeouts) *http.Client {
	if allowPrivate {
		return guardedHTTPClient(nil, t)
	}
	return guardedHTTPClient(refusePrivate, t)
}

// sourceTimeouts bound each step of a fetch, never the whole transfer (a
// large file on a slow link takes as long as it takes): connecting (TCP
// and TLS), waiting for the response headers, and waiting for the next
// bytes of the body. A host that accepts and never answers, or stops
// sending mid-body, fails the fetch instead of holding it forever.
type sourceTimeouts struct {
	connect, header, read time.Duration
}

// sourceTimeouts are the configured ones, defaults filled in.
func (l Limits) sourceTimeouts() sourceTimeouts {
	return sourceTimeouts{
		connect: orDefault(l.SourceConnectTimeout, defaultSourceConnect),
		header:  orDefault(l.SourceHeaderTimeout, defaultSourceHeader),
		read:    orDefault(l.SourceReadTimeout, defaultSourceRead),
	}
}

// guardedHTTPClient dials through control, a net.Dialer Control function.
// It runs on the address actually being connected to, after DNS and for
// every connection (each redirect hop, each address of a DNS answer), so a
// public name that resolves or redirects inside the network is refused
// too, and a DNS answer that changes between a check and the dial
// (rebinding) cannot slip past it.
func guardedHTTPClient(control func(network, address string, c syscall.RawConn) error, t sourceTimeouts) *http.Client {
	dialer := &net.Dialer{Timeout: t.connect, KeepAlive: 30 * time.Second, Control: control}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if control != nil {
		// A proxy would be dialled instead of the source and would defeat
		// the check, so sources are fetched directly.
		tr.Proxy = nil
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &readTimeoutConn{Conn: c, timeout: t.read}, nil
	}
	tr.TLSHandshakeTimeout = t.connect
	tr.ResponseHeaderTimeout = t.header
	return &http.Client{Transport: tr}
}

// readTimeoutConn fails any read that waits longer than timeout.
type readTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *readTimeoutConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no data from the source for %s: %w", c.timeout, err)
	}
	return n, err
}

// refusePrivate is a net.Dialer Control function. Its refusal wraps
// ingest.ErrPrivateAddress, so a live pull fails the stream at once instead
// of retrying (the http client's errors wrap the dialer's).
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("source address %q: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("source address %q: %w", address, err)
	}
	if !ingest.PublicAddr(ip) {
		return fmt.Errorf("refusing to fetch a source from %s, a loopback, private or reserved address (start weir serve with --allow-private-sources to allow it): %w", ip, ingest.ErrPrivateAddress)
	}
	return nil
}
