package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	livePlaylist  = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\nseg_00007.ts\n#EXTINF:2.000,\nseg_00008.ts\n"
	endedPlaylist = livePlaylist + "#EXT-X-ENDLIST\n"
	vodPlaylist   = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_0.ts\n"
	masterList    = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080\n1080p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n"
)

// put stores an object through the real store.
func (e *env) put(key string, data []byte) {
	e.t.Helper()
	if _, err := e.objects.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), ""); err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
}

func TestHLSContentTypesAndCaching(t *testing.T) {
	e := newEnv(t, "")
	const id = "live-0123456789ab"
	cases := []struct {
		key, body, wantType, wantCache string
	}{
		{"live.m3u8", livePlaylist, "application/vnd.apple.mpegurl", "public, max-age=1"},
		{"ended.m3u8", endedPlaylist, "application/vnd.apple.mpegurl", "public, max-age=86400"},
		{"vod/index.m3u8", vodPlaylist, "application/vnd.apple.mpegurl", "public, max-age=86400"},
		{"master.m3u8", masterList, "application/vnd.apple.mpegurl", "public, max-age=10"},
		{"seg_00007.ts", "\x47ts", "video/mp2t", "public, max-age=31536000, immutable"},
		{"720p/seg_1.m4s", "moof", "video/mp4", "public, max-age=31536000, immutable"},
		{"720p/init.mp4", "ftyp", "video/mp4", "public, max-age=31536000, immutable"},
		{"audio/seg_1.aac", "aac", "audio/aac", "public, max-age=31536000, immutable"},
		{"subs/en.vtt", "WEBVTT\n", "text/vtt; charset=utf-8", "public, max-age=31536000, immutable"},
		{"thumb.jpg", "\xff\xd8jpeg", "image/jpeg", "public, max-age=5"},
		{"info.json", `{"a":1}`, "application/json", "public, max-age=5"},
		{"UPPER.TS", "\x47", "video/mp2t", "public, max-age=31536000, immutable"},
	}
	for _, tc := range cases {
		e.put(id+"/"+tc.key, []byte(tc.body))
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			rec := e.do("GET", "/hls/"+id+"/"+tc.key, nil)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if rec.Body.String() != tc.body {
				t.Fatalf("body %q, want %q", rec.Body, tc.body)
			}
			h := rec.Header()
			if h.Get("Content-Type") != tc.wantType || h.Get("Cache-Control") != tc.wantCache {
				t.Fatalf("Content-Type %q Cache-Control %q, want %q and %q", h.Get("Content-Type"), h.Get("Cache-Control"), tc.wantType, tc.wantCache)
			}
			if h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Content-Range") {
				t.Fatalf("CORS headers %v", h)
			}
			if h.Get("ETag") == "" || h.Get("Accept-Ranges") != "bytes" || h.Get("Content-Length") != fmt.Sprint(len(tc.body)) {
				t.Fatalf("headers %v", h)
			}
		})
	}
}

func TestHLSPlaylistCachingFollowsRewrites(t *testing.T) {
	e := newEnv(t, "")
	key := "live-0123456789ab/live.m3u8"
	e.put(key, []byte(livePlaylist))
	first := e.do("GET", "/hls/"+key, nil)
	e.put(key, []byte(endedPlaylist))
	second := e.do("GET", "/hls/"+key, nil)
	if first.Header().Get("Cache-Control") != cacheLivePlaylist || second.Header().Get("Cache-Control") != cacheEndedPlaylist {
		t.Fatalf("cache control %q then %q", first.Header().Get("Cache-Control"), second.Header().Get("Cache-Control"))
	}
	if first.Header().Get("ETag") == second.Header().Get("ETag") {
		t.Fatal("ETag did not change when the playlist did")
	}
	if second.Body.String() != endedPlaylist {
		t.Fatalf("stale body %q", second.Body)
	}
}

func TestHLSRanges(t *testing.T) {
	e := newEnv(t, "")
	data := []byte("0123456789abcdefghij") // 20 bytes
	e.put("vod-0123456789ab/720p/seg_1.ts", data)
	e.put("vod-0123456789ab/index.m3u8", []byte(vodPlaylist))
	cases := []struct {
		name, target, rng string
		wantStatus        int
		wantBody          string
		wantRange         string
	}{
		{"first bytes", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=0-4", 206, "01234", "bytes 0-4/20"},
		{"middle", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=10-14", 206, "abcde", "bytes 10-14/20"},
		{"open ended", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=15-", 206, "fghij", "bytes 15-19/20"},
		{"suffix", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=-3", 206, "hij", "bytes 17-19/20"},
		{"end past size is clipped", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=18-100", 206, "ij", "bytes 18-19/20"},
		{"playlist range", "/hls/vod-0123456789ab/index.m3u8", "bytes=0-6", 206, "#EXTM3U", "bytes 0-6/" + fmt.Sprint(len(vodPlaylist))},
		{"start past end", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=20-", 416, "", "bytes */20"},
		{"far past end", "/hls/vod-0123456789ab/720p/seg_1.ts", "bytes=1000-2000", 416, "", "bytes */20"},
		{"malformed range", "/hls/vod-0123456789ab/720p/seg_1.ts", "pages=1-2", 416, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do("GET", tc.target, nil, "Range", tc.rng)
			if tc.wantStatus == 416 {
				wantProblem(t, rec, 416, "HLS object vod-0123456789ab/720p/seg_1.ts is 20 bytes")
			} else if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
				t.Fatalf("status %d body %q, want %d %q", rec.Code, rec.Body, tc.wantStatus, tc.wantBody)
			}
			if got := rec.Header().Get("Content-Range"); got != tc.wantRange {
				t.Fatalf("Content-Range %q, want %q", got, tc.wantRange)
			}
		})
	}

	t.Run("multiple ranges", func(t *testing.T) {
		rec := e.do("GET", "/hls/vod-0123456789ab/720p/seg_1.ts", nil, "Range", "bytes=0-1,10-11")
		if rec.Code != 206 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges") {
			t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		if !strings.Contains(rec.Body.String(), "01") || !strings.Contains(rec.Body.String(), "ab") {
			t.Fatalf("body %q", rec.Body)
		}
	})
}

func TestHLSConditionalRequests(t *testing.T) {
	e := newEnv(t, "")
	key := "vod-0123456789ab/720p/seg_1.ts"
	e.put(key, []byte("segment"))
	first := e.do("GET", "/hls/"+key, nil)
	etag := first.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Fatalf("ETag %q is not a quoted entity tag", etag)
	}
	cases := []struct {
		name       string
		headers    []string
		wantStatus int
	}{
		{"matching etag", []string{"If-None-Match", etag}, 304},
		{"one of several", []string{"If-None-Match", `"nope", ` + etag}, 304},
		{"weak comparison", []string{"If-None-Match", "W/" + etag}, 304},
		{"star", []string{"If-None-Match", "*"}, 304},
		{"other etag", []string{"If-None-Match", `"nope"`}, 200},
		{"if-range match honours range", []string{"Range", "bytes=0-2", "If-Range", etag}, 206},
		{"if-range mismatch sends all", []string{"Range", "bytes=0-2", "If-Range", `"old"`}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do("GET", "/hls/"+key, nil, tc.headers...)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantStatus == 304 && rec.Body.Len() != 0 {
				t.Fatalf("304 with a body %q", rec.Body)
			}
		})
	}
}

func TestHLSHeadSendsNoBody(t *testing.T) {
	e := newEnv(t, "")
	e.put("vod-0123456789ab/seg.ts", bytes.Repeat([]byte{0x47}, 188*4))
	rec := e.do("HEAD", "/hls/vod-0123456789ab/seg.ts", nil)
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "752" || rec.Header().Get("Content-Type") != "video/mp2t" {
		t.Fatalf("HEAD: %d len %d headers %v", rec.Code, rec.Body.Len(), rec.Header())
	}
}

func TestHLSPreflight(t *testing.T) {
	e := newEnv(t, "")
	rec := e.do("OPTIONS", "/hls/live-0123456789ab/live.m3u8", nil,
		"Origin", "https://player.example.net",
		"Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "range")
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
	h := rec.Header()
	if h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Range") || h.Get("Access-Control-Max-Age") == "" {
		t.Fatalf("preflight headers %v", h)
	}
}

func TestHLSMissingObjects(t *testing.T) {
	e := newEnv(t, "")
	e.put("vod-0123456789ab/seg.ts", []byte("x"))
	cases := []struct{ target, fragment string }{
		{"/hls/vod-0123456789ab/nope.ts", "HLS object vod-0123456789ab/nope.ts not found"},
		{"/hls/vod-ffffffffffff/master.m3u8", "not found"},
		{"/hls/vod-0123456789ab/seg.ts/deeper.ts", "not found"},
		{"/hls/vod-0123456789ab/weir.db", `extension ".db" is not served`},
		{"/hls/vod-0123456789ab/noext", `extension "" is not served`},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			rec := e.do("GET", tc.target, nil)
			wantProblem(t, rec, 404, tc.fragment)
			if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
				t.Error("404 without CORS: a browser player could not read the error")
			}
		})
	}
}

var traversalTargets = []string{
	"/hls/vod-0123456789ab/../../weir.db.ts",
	"/hls/vod-0123456789ab/%2e%2e/%2e%2e/secret.ts",
	"/hls/vod-0123456789ab/%2E%2E/secret.ts",
	"/hls/vod-0123456789ab/..%2f..%2fsecret.ts",
	"/hls/vod-0123456789ab/%2e%2e%2fsecret.ts",
	"/hls/..%2fobjects/secret.ts",
	"/hls/vod-0123456789ab/a%5c..%5c..%5csecret.ts",
	"/hls/vod-0123456789ab/a\\b.ts",
	"/hls/vod-0123456789ab//etc/passwd.ts",
	"/hls/vod-0123456789ab/%2fetc/passwd.ts",
	"/hls//etc/passwd.ts",
	"/hls/vod-0123456789ab/./seg.ts",
	"/hls/vod-0123456789ab/%252e%252e/secret.ts",
	"/hls/vod-0123456789ab/seg%00.ts",
	"/hls/vod-0123456789ab/C:/secret.ts",
	"/hls/vod-0123456789ab",
	"/hls/vod-0123456789ab/",
	"/hls/vod.0123/seg.ts",
	"/hls/" + strings.Repeat("a", 65) + "/seg.ts",
}

func TestHLSRejectsTraversal(t *testing.T) {
	e := newEnv(t, "")
	// Something worth stealing next to the stream, inside and outside the store.
	e.put("other-stream/secret.ts", []byte("secret"))
	e.put("vod-0123456789ab/seg.ts", []byte("segment"))
	for _, target := range traversalTargets {
		t.Run(target, func(t *testing.T) {
			rec := e.do("GET", target, nil)
			p := wantProblem(t, rec, 400, "invalid HLS path")
			if strings.Contains(rec.Body.String(), "secret\"") || rec.Header().Get("Location") != "" {
				t.Fatalf("leaked or redirected: %v %q", rec.Header(), p.Detail)
			}
		})
	}
}

// TestHLSRejectsTraversalOverTheWire sends raw request lines, so no client
// library cleans the path before the server sees it.
func TestHLSRejectsTraversalOverTheWire(t *testing.T) {
	e := newEnv(t, "")
	e.put("other-stream/secret.ts", []byte("secret"))
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	for _, target := range []string{
		"/hls/vod-0123456789ab/../other-stream/secret.ts",
		"/hls/vod-0123456789ab/%2e%2e/other-stream/secret.ts",
		"/hls/vod-0123456789ab/..%2fother-stream%2fsecret.ts",
		"/hls/vod-0123456789ab/..%5cother-stream%5csecret.ts",
	} {
		t.Run(target, func(t *testing.T) {
			conn, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || bytes.Contains(body, []byte("secret")) {
				t.Fatalf("status %d type %q body %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		})
	}
}

func TestHLSPresignRedirectsSegmentsOnly(t *testing.T) {
	e := newEnv(t, "", func(c *Config) {
		c.Objects = presigningStore{c.Objects}
		c.Presign = true
	})
	e.put("vod-0123456789ab/720p/seg_1.ts", []byte("seg"))
	e.put("vod-0123456789ab/720p/index.m3u8", []byte(vodPlaylist))

	rec := e.do("GET", "/hls/vod-0123456789ab/720p/seg_1.ts", nil)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "https://bucket.s3.example.com/vod-0123456789ab/720p/seg_1.ts?X-Amz-Expires=3600" {
		t.Fatalf("segment: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Error("redirect without CORS")
	}
	rec = e.do("GET", "/hls/vod-0123456789ab/720p/index.m3u8", nil)
	if rec.Code != 200 || rec.Body.String() != vodPlaylist {
		t.Fatalf("playlist: %d %q", rec.Code, rec.Body)
	}
}

func TestHLSPresignFallsBackWhenUnsupported(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.Presign = true }) // the file store cannot presign
	e.put("vod-0123456789ab/seg.ts", []byte("seg"))
	rec := e.do("GET", "/hls/vod-0123456789ab/seg.ts", nil)
	if rec.Code != 200 || rec.Body.String() != "seg" {
		t.Fatalf("status %d body %q", rec.Code, rec.Body)
	}
}

func TestHLSHonoursCancelledRequests(t *testing.T) {
	e := newEnv(t, "")
	e.put("vod-0123456789ab/seg.ts", []byte("seg"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/hls/vod-0123456789ab/seg.ts", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Body.String() == "seg" {
		t.Fatal("served an object for a request that was already cancelled")
	}
}

func BenchmarkHLSSegment2MB(b *testing.B) {
	e := newEnv(b, "")
	data := make([]byte, 2<<20)
	rand.Read(data)
	if _, err := e.objects.Put(context.Background(), "vod-0123456789ab/720p/seg_00001.ts", bytes.NewReader(data), int64(len(data)), "video/mp2t"); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	url := ts.URL + "/hls/vod-0123456789ab/720p/seg_00001.ts"
	client := ts.Client()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(data)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}
