package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media"
)

// errPrivateSource is what weir serve's HTTP client says when it will not
// dial a source.
var errPrivateSource = fmt.Errorf("refusing to fetch a source from 127.0.0.1, a loopback or private address (start weir serve with --allow-private-sources to allow it): %w", ErrPrivateAddress)

// TestIsPermanentGoesByErrorTypes: which failures of a source no retry can
// mend is told from the errors' types; the same words in an untyped error
// mean nothing.
func TestIsPermanentGoesByErrorTypes(t *testing.T) {
	redirect := httptest.NewServer(http.RedirectHandler("ftp://example.com/live.ts", http.StatusFound))
	t.Cleanup(redirect.Close)
	u, _ := url.Parse(redirect.URL + "/live")
	_, schemeErr := httpGet{client: &http.Client{}, url: u, userAgent: "test"}.open(context.Background())
	direct, _ := url.Parse("ftp://example.com/live.ts")
	_, directErr := httpGet{client: &http.Client{}, url: direct, userAgent: "test"}.open(context.Background())
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"refused private address, as the dial error of weir serve", &net.OpError{Op: "dial", Net: "tcp", Err: errPrivateSource}, true},
		{"unsupported scheme behind a redirect", schemeErr, true},
		{"unsupported scheme", directErr, true},
		{"404", &HTTPStatusError{StatusCode: 404, Status: "404 Not Found"}, true},
		{"403 wrapped", fmt.Errorf("attempt 2: %w", &HTTPStatusError{StatusCode: 403, Status: "403 Forbidden"}), true},
		{"408 request timeout", &HTTPStatusError{StatusCode: 408, Status: "408 Request Timeout"}, false},
		{"429 too many requests", &HTTPStatusError{StatusCode: 429, Status: "429 Too Many Requests"}, false},
		{"503", &HTTPStatusError{StatusCode: 503, Status: "503 Service Unavailable"}, false},
		{"an html page", fmt.Errorf("source sends %q: not MPEG-TS, AAC or MP3: %w", "text/html", media.ErrNoMedia), true},
		{"a refusal in words only", errors.New("refusing to fetch (start weir serve with --allow-private-sources to allow it)"), false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, false},
		{"source hung up", errSourceEnded, false},
		{"stalled", fmt.Errorf("GET x: no data for 1s: %w", ErrStalled), false},
		{"timeout", context.DeadlineExceeded, false},
		{"no error", nil, false},
	}
	if !errors.Is(schemeErr, ErrUnsupportedScheme) || !errors.Is(directErr, ErrUnsupportedScheme) {
		t.Fatalf("GET of ftp:// = %v and, redirected, %v; want errors wrapping ErrUnsupportedScheme", directErr, schemeErr)
	}
	for _, tc := range tests {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s (%v): permanent %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestHTTPStatusErrorHidesThePassword: a source URL's password never
// reaches an error (a stream's error text is shown to API users).
func TestHTTPStatusErrorHidesThePassword(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("dj", "s3cret")
	_, err := httpGet{client: &http.Client{}, url: u, userAgent: "test", readTimeout: 5 * time.Second}.open(context.Background())
	se, ok := errors.AsType[*HTTPStatusError](err)
	if !ok || se.StatusCode != 404 {
		t.Fatalf("open = %v, want an HTTPStatusError with code 404", err)
	}
	if got := err.Error(); !!strings.Contains(got, "s3cret") {
		t.Errorf("error %q shows the password", got)
	}
}
