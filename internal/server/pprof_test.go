package server

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// The profiler serves the runtime's profiles on its own listener, and a
// second process asking for the same address gets a clear error.
func TestProfilerServesPprof(t *testing.T) {
	p, err := startProfiler("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	base := "http://" + p.Addr().String()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/cmdline":           "",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body %.200q; want 200 containing %q", path, resp.StatusCode, body, want)
		}
	}
	if _, err := startProfiler(p.Addr().String(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--pprof-listen") {
		t.Errorf("second profiler on %s: err %v, want a --pprof-listen bind error", p.Addr(), err)
	}
}
