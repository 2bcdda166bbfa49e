package control

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
)

// errPrivateSource is what weir serve's HTTP client says when it will not
// dial a source.
var errPrivateSource = fmt.Errorf("refusing to fetch a source from 127.0.0.1, a loopback or private address (start weir serve with --allow-private-sources to allow it): %w", ingest.ErrPrivateAddress)

// TestPullFailsForGoodOnPermanentErrors starts pulls of sources that fail:
// a failure no retry can mend fails the stream at the first attempt, with
// the failure as its error; others are retried while the stream stays
// created, and so is every failure of a source that has delivered media.
func TestPullFailsForGoodOnPermanentErrors(t *testing.T) {
	t.Parallel()
	tsHead := make([]byte, 2*mpegts.PacketSize)
	tsHead[0], tsHead[mpegts.PacketSize] = mpegts.SyncByte, mpegts.SyncByte
	// answer serves requests by their number (from 1).
	type answer func(w http.ResponseWriter, n int64)
	status := func(code int) answer {
		return func(w http.ResponseWriter, _ int64) { http.Error(w, http.StatusText(code), code) }
	}
	tests := []struct {
		name      string
		serve     answer // nil: the dial fails
		permanent func(error) bool
		wantFail  string // the stream's error contains it; "": the pull keeps retrying
	}{
		{name: "private address refused by the client", wantFail: "--allow-private-sources"},
		{name: "404", serve: status(http.StatusNotFound), wantFail: "404 Not Found"},
		{name: "html page", serve: func(w http.ResponseWriter, _ int64) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>no stream here, but a long enough page to sniff ...........................................................................................................................................................................................</body></html>")
		}, wantFail: "not MPEG-TS, AAC or MP3"},
		{name: "503 is retried", serve: status(http.StatusServiceUnavailable)},
		{name: "429 is retried", serve: status(http.StatusTooManyRequests)},
		{name: "404 is retried when Permanent says so", serve: status(http.StatusNotFound),
			permanent: func(error) bool { return false }},
		{name: "404 after media is retried", serve: func(w http.ResponseWriter, n int64) {
			if n > 1 {
				http.NotFound(w, nil)
				return
			}
			w.Header().Set("Content-Type", "video/mp2t")
			w.Write(tsHead)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var attempts atomic.Int64
			client := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					attempts.Add(1)
					if tc.serve == nil {
						return nil, errPrivateSource
					}
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				},
				DisableKeepAlives: true,
			}}
			var requests atomic.Int64
			src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				serve := tc.serve
				if serve == nil {
					t.Error("the source was reached although the dial fails")
					return
				}
				serve(w, requests.Add(1))
			}))
			t.Cleanup(src.Close)

			meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "meta.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { meta.Close() })
			ctrl, err := New(Config{Meta: meta, Bus: bustest.New(), Logger: testLogger(t),
				HTTPClient: client, PullRetryMax: 200 * time.Millisecond, Permanent: tc.permanent})
			if err != nil {
				t.Fatal(err)
			}
			st, err := meta.CreateStream(context.Background(), metastore.Stream{
				ID: "live-" + strings.NewReplacer(" ", "-").Replace(tc.name), Kind: metastore.KindLive,
				PublishKey: "key", SourceURL: src.URL + "/live",
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); ctrl.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			if tc.wantFail != "" {
				got := waitStatusOf(t, meta, st.ID, metastore.StatusFailed)
				if !strings.Contains(got.Error, tc.wantFail) {
					t.Errorf("stream failed with %q, want it to say %q", got.Error, tc.wantFail)
				}
				// The pull is over after one attempt.
				waitFor(t, 10*time.Second, "the pull to stop", func() bool {
					ctrl.mu.Lock()
					defer ctrl.mu.Unlock()
					return len(ctrl.pulls) == 0
				})
				if n := attempts.Load(); n != 1 {
					t.Errorf("%d attempts to reach the source, want 1", n)
				}
				return
			}
			waitFor(t, 20*time.Second, "three attempts", func() bool { return attempts.Load() >= 3 })
			got, err := meta.GetStream(context.Background(), st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Terminal() {
				t.Errorf("stream is %s (%q) after a failure that should be retried", got.Status, got.Error)
			}
		})
	}
}

// waitStatusOf waits for stream id to reach status in meta.
func waitStatusOf(t *testing.T, meta metastore.Store, id string, status metastore.Status) metastore.Stream {
	t.Helper()
	var st metastore.Stream
	waitFor(t, 20*time.Second, "stream "+id+" to become "+string(status), func() bool {
		var err error
		st, err = meta.GetStream(context.Background(), id)
		return err == nil && st.Status == status
	})
	return st
}
