package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/media"
)

// Why a source could not be read. The errors of Pull and PullLive wrap one
// of these, or are an *HTTPStatusError, when that is the reason; IsPermanent
// tells the ones no retry can mend.
var (
	// ErrStalled: an HTTP source sent nothing (headers included) for the
	// read timeout.
	ErrStalled = errors.New("source stalled")
	// ErrPrivateAddress: the HTTP client would not connect to the
	// source's address. weir serve's client refuses loopback, private and
	// reserved addresses unless started with --allow-private-sources; its
	// dialer's error wraps this.
	ErrPrivateAddress = errors.New("source address is not public")
	// ErrUnsupportedScheme: the source, or a redirect it answered with,
	// names a scheme weir cannot read.
	ErrUnsupportedScheme = errors.New("unsupported source scheme")
)

// HTTPStatusError is the error for an HTTP source that answered with a
// status other than 2xx.
type HTTPStatusError struct {
	URL        string // without its password
	StatusCode int
	Status     string // "404 Not Found"
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %s", e.URL, e.Status)
}

// IsPermanent reports whether err, the failure of one attempt to read a
// source, would come back on every retry. Those are:
//
//   - an address the HTTP client refused (ErrPrivateAddress);
//   - an unsupported scheme, also behind a redirect (ErrUnsupportedScheme);
//   - an HTTP status 4xx other than 408 Request Timeout and 429 Too Many
//     Requests (*HTTPStatusError);
//   - a response that is not media (media.ErrNoMedia).
//
// Everything else (refused or dropped connections, stalls, timeouts, DNS
// failures, 5xx) may mend. The answer comes from the error's types, never
// its text.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if se, ok := errors.AsType[*HTTPStatusError](err); ok {
		c := se.StatusCode
		return c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests
	}
	return errors.Is(err, ErrPrivateAddress) || errors.Is(err, ErrUnsupportedScheme) || errors.Is(err, media.ErrNoMedia)
}

// httpGet is a GET of an HTTP(S) source.
type httpGet struct {
	client    *http.Client
	url       *url.URL
	userAgent string
	// readTimeout bounds how long the source may send nothing, headers
	// included; 0 or negative for no limit.
	readTimeout time.Duration
}

// open sends the request under ctx and checks the answer: a status other
// than 2xx is an *HTTPStatusError, a redirect to a scheme other than http
// or https wraps ErrUnsupportedScheme, and a source that sends nothing for
// readTimeout fails with an error wrapping ErrStalled. Reads of the body
// it returns fail the same way once the source stalls; only the time a
// Read waits counts, not the time spent between reads.
func (g httpGet) open(ctx context.Context) (*httpBody, error) {
	switch strings.ToLower(g.url.Scheme) {
	case "http", "https":
	default:
		return nil, fmt.Errorf("source %s: unsupported scheme %q: %w", g.url.Redacted(), g.url.Scheme, ErrUnsupportedScheme)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	var idle *time.Timer
	if g.readTimeout > 0 {
		stalled := fmt.Errorf("GET %s: no data for %s: %w", g.url.Redacted(), g.readTimeout, ErrStalled)
		idle = time.AfterFunc(g.readTimeout, func() { cancel(stalled) })
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url.String(), nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("source %s: %w", g.url.Redacted(), err)
	}
	req.Header.Set("User-Agent", g.userAgent)
	resp, err := checkRedirects(g.client).Do(req)
	if idle != nil {
		idle.Stop()
	}
	if err != nil {
		cause := context.Cause(ctx)
		cancel(nil)
		if errors.Is(cause, ErrStalled) {
			return nil, cause
		}
		return nil, fmt.Errorf("source: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		cancel(nil)
		return nil, &HTTPStatusError{URL: g.url.Redacted(), StatusCode: resp.StatusCode, Status: resp.Status}
	}
	return &httpBody{body: resp.Body, contentType: resp.Header.Get("Content-Type"), ctx: ctx, cancel: cancel, idle: idle, timeout: g.readTimeout}, nil
}

// checkRedirects returns a copy of c that refuses redirects to schemes other
// than http and https with an error wrapping ErrUnsupportedScheme, before
// following them, and otherwise redirects as c does.
func checkRedirects(c *http.Client) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if s := strings.ToLower(req.URL.Scheme); s != "http" && s != "https" {
			return fmt.Errorf("redirect to %s://: %w", req.URL.Scheme, ErrUnsupportedScheme)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// httpBody is an HTTP source's response body. Its idle timer runs only
// while a Read waits, so time the caller spends producing or probing
// between reads does not count as the source stalling.
type httpBody struct {
	body        io.ReadCloser
	contentType string
	ctx         context.Context
	cancel      context.CancelCauseFunc
	idle        *time.Timer // nil without a read timeout
	timeout     time.Duration
}

func (b *httpBody) Read(p []byte) (int, error) {
	if b.idle != nil {
		b.idle.Reset(b.timeout)
		defer b.idle.Stop()
	}
	n, err := b.body.Read(p)
	if err != nil {
		if cause := context.Cause(b.ctx); errors.Is(cause, ErrStalled) {
			return n, cause
		}
	}
	return n, err
}

func (b *httpBody) Close() error {
	if b.idle != nil {
		b.idle.Stop()
	}
	b.cancel(nil)
	return b.body.Close()
}
