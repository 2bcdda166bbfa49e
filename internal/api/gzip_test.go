package api

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// rawGet sends a request over a real connection with a client that does
// not decompress (so the test sees the bytes on the wire).
func rawGet(t *testing.T, method, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func gunzip(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("body is not gzip: %v (%q)", err, data)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip body: %v", err)
	}
	return string(out)
}

func varies(h http.Header, name string) bool {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// TestHLSPlaylistsAreGzippedWhenAsked fetches a live playlist over a real
// connection with Accept-Encoding: gzip, reloads it after the packager
// appended a segment, and checks the compressed answers against the
// identity ones; segments are never compressed, and HEAD, Range and
// conditional requests keep working.
func TestHLSPlaylistsAreGzippedWhenAsked(t *testing.T) {
	e := newEnv(t, "")
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	const id = "live-0123456789ab"
	base := ts.URL + "/hls/" + id + "/"
	seg := bytes.Repeat([]byte{0x47, 0x40, 0x11, 0x10}, 4096)
	e.put(id+"/seg_00007.ts", seg)
	e.put(id+"/info.json", []byte(strings.Repeat(`{"segment":7,"ok":true}`, 50)))

	var lastTag string
	for reload, text := range []string{livePlaylist, livePlaylist + "#EXTINF:2.000,\nseg_00009.ts\n", endedPlaylist} {
		e.put(id+"/live.m3u8", []byte(text))
		resp, body := rawGet(t, "GET", base+"live.m3u8", "Accept-Encoding", "gzip")
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Encoding") != "gzip" || !varies(h, "Accept-Encoding") {
			t.Fatalf("reload %d: status %d headers %v", reload, resp.StatusCode, h)
		}
		if h.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Fatalf("reload %d: Content-Length %s for %d bytes on the wire", reload, h.Get("Content-Length"), len(body))
		}
		if got := gunzip(t, body); got != text {
			t.Fatalf("reload %d: decompressed %q, want %q", reload, got, text)
		}
		if h.Get("Content-Type") != "application/vnd.apple.mpegurl" || h.Get("Cache-Control") == "" {
			t.Fatalf("reload %d: headers %v", reload, h)
		}
		tag := h.Get("ETag")
		if tag == lastTag {
			t.Fatalf("reload %d: the rewritten playlist kept ETag %s", reload, tag)
		}
		lastTag = tag

		// The identity representation has its own ETag and is what a
		// client without Accept-Encoding gets.
		plain, pbody := rawGet(t, "GET", base+"live.m3u8")
		if string(pbody) != text || plain.Header.Get("Content-Encoding") != "" || !varies(plain.Header, "Accept-Encoding") {
			t.Fatalf("reload %d identity: %q headers %v", reload, pbody, plain.Header)
		}
		if plain.Header.Get("ETag") == tag {
			t.Fatalf("reload %d: gzip and identity share ETag %s", reload, tag)
		}
		// Revalidation of the gzip representation.
		nm, nmBody := rawGet(t, "GET", base+"live.m3u8", "Accept-Encoding", "gzip", "If-None-Match", tag)
		if nm.StatusCode != 304 || len(nmBody) != 0 {
			t.Fatalf("reload %d: If-None-Match %s: status %d body %q", reload, tag, nm.StatusCode, nmBody)
		}
	}

	t.Run("HEAD matches GET", func(t *testing.T) {
		get, body := rawGet(t, "GET", base+"live.m3u8", "Accept-Encoding", "gzip")
		head, hbody := rawGet(t, "HEAD", base+"live.m3u8", "Accept-Encoding", "gzip")
		if head.StatusCode != 200 || len(hbody) != 0 {
			t.Fatalf("HEAD: status %d body %q", head.StatusCode, hbody)
		}
		for _, k := range []string{"Content-Encoding", "Content-Length", "ETag", "Content-Type"} {
			if head.Header.Get(k) != get.Header.Get(k) {
				t.Errorf("HEAD %s %q, GET %q", k, head.Header.Get(k), get.Header.Get(k))
			}
		}
		if head.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Errorf("HEAD Content-Length %s, GET sent %d bytes", head.Header.Get("Content-Length"), len(body))
		}
	})
	t.Run("failed precondition is a problem", func(t *testing.T) {
		resp, body := rawGet(t, "GET", base+"live.m3u8", "Accept-Encoding", "gzip", "If-Match", `"old"`)
		if resp.StatusCode != 412 || resp.Header.Get("Content-Encoding") != "" || !bytes.Contains(body, []byte(`"status":412`)) {
			t.Fatalf("status %d headers %v body %q", resp.StatusCode, resp.Header, body)
		}
	})
	t.Run("range gets identity bytes", func(t *testing.T) {
		resp, body := rawGet(t, "GET", base+"live.m3u8", "Accept-Encoding", "gzip", "Range", "bytes=0-6")
		if resp.StatusCode != 206 || string(body) != "#EXTM3U" || resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("status %d body %q headers %v", resp.StatusCode, body, resp.Header)
		}
		if want := fmt.Sprintf("bytes 0-6/%d", len(endedPlaylist)); resp.Header.Get("Content-Range") != want {
			t.Fatalf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
		}
	})
	t.Run("segments are never compressed", func(t *testing.T) {
		resp, body := rawGet(t, "GET", base+"seg_00007.ts", "Accept-Encoding", "gzip, deflate, br")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, seg) ||
			resp.Header.Get("Content-Length") != fmt.Sprint(len(seg)) {
			t.Fatalf("status %d, %d bytes, headers %v", resp.StatusCode, len(body), resp.Header)
		}
	})
	t.Run("JSON sidecars too", func(t *testing.T) {
		resp, body := rawGet(t, "GET", base+"info.json", "Accept-Encoding", "gzip")
		if resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(gunzip(t, body), `{"segment":7`) ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", resp.Header)
		}
	})
	t.Run("refused gzip", func(t *testing.T) {
		for _, ae := range []string{"gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0, *"} {
			resp, body := rawGet(t, "GET", base+"live.m3u8", "Accept-Encoding", ae)
			if resp.Header.Get("Content-Encoding") != "" || string(body) != endedPlaylist {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q", ae, resp.Header.Get("Content-Encoding"))
			}
		}
	})
	t.Run("Go client decompresses transparently", func(t *testing.T) {
		resp, err := http.Get(base + "live.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !resp.Uncompressed || string(body) != endedPlaylist {
			t.Fatalf("uncompressed %v body %q", resp.Uncompressed, body)
		}
	})
	t.Run("curl --compressed", func(t *testing.T) {
		testenv.RequireTool(t, "curl")
		out, err := exec.Command("curl", "-sS", "--compressed", "-D", "-", base+"live.m3u8").Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		if !strings.Contains(strings.ToLower(head), "content-encoding: gzip") || body != endedPlaylist {
			t.Fatalf("curl saw headers\n%s\nbody %q", head, body)
		}
	})
}

func TestAcceptsGzip(t *testing.T) {
	cases := map[string]bool{
		"": false, "gzip": true, "GZIP": true, "x-gzip": true, "deflate, gzip;q=0.5": true,
		"gzip;q=0": false, "gzip; q=0.000": false, "*": true, "*;q=0": false, "br, *": true,
		"gzip;q=0, *": false, "*;q=0, gzip": true, "gzip;q=abc": false, "gzip;q=2": false, "identity": false,
	}
	for in, want := range cases {
		if got := acceptsGzip([]string{in}); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestGzipETag(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: `"abc-gz"`, `W/"abc"`: `W/"abc-gz"`} {
		if got := gzipETag(in); got != want {
			t.Errorf("gzipETag(%s) = %s, want %s", in, got, want)
		}
	}
}
