package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// httpEnv is a pushEnv with the HTTP push server mounted on a real HTTP
// server.
type httpEnv struct {
	*pushEnv
	push *HTTPServer
	srv  *httptest.Server
}

func newHTTPEnv(t *testing.T, adjust func(*Config)) *httpEnv {
	t.Helper()
	e := &httpEnv{pushEnv: newPushEnvWith(t, adjust)}
	cfg := Config{Streams: e.meta, Producer: e.rec, Logger: testLogger(t), Registry: e.reg,
		StatusInterval: 100 * time.Millisecond, ReadTimeout: 3 * time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
	var err error
	if e.push, err = NewHTTPServer(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.push.Mount(http.NotFoundHandler()))
	t.Cleanup(func() {
		e.push.Close()
		e.srv.Close()
	})
	return e
}

func (e *httpEnv) publishURL(key string) string { return e.srv.URL + HTTPPublishPrefix + key }

func (e *httpEnv) wsURL(key string) string {
	return "ws" + strings.TrimPrefix(e.publishURL(key), "http")
}

// waitEnded waits for a stream's session to end on the bus (its DONE
// heartbeat) and returns its records.
func (e *httpEnv) waitEnded(t *testing.T, id string) []recorded {
	t.Helper()
	var recs []recorded
	waitFor(t, 20*time.Second, "the stream to end on the bus", func() bool {
		recs = e.rec.stream(protocol.StreamTopic(id))
		if len(recs) == 0 {
			return false
		}
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return ok && hb.Status != protocol.HeartbeatRunning
	})
	return recs
}

// problem is an RFC 9457 answer.
type problem struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// put sends body to url with method and returns the status and problem
// (status 0 after an error, reported with t.Errorf, so that put may run in
// a goroutine of its own).
func put(t *testing.T, method, url string, body io.Reader) (int, problem) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, problem{}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, problem{}
	}
	defer resp.Body.Close()
	var p problem
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Errorf("%s: status %d without a problem document: %v", method, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, p
}

// tsClip makes seconds of a 160x120 test pattern with a tone as MPEG-TS.
func tsClip(t *testing.T, seconds string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "clip.ts")
	if out, err := ffmpeg(t, time.Minute, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration="+seconds,
		"-f", "lavfi", "-i", "sine=frequency=440:duration="+seconds, "-c:v", "libx264", "-preset", "ultrafast",
		"-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", f); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ffmpeg -method PUT and -method POST publish as they would to any HTTP
// server: a chunked body of MPEG-TS, passed through byte for byte.
func TestHTTPPutAndPostPublishMPEGTS(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, nil)
	for _, method := range []string{"PUT", "POST"} {
		t.Run(method, func(t *testing.T) {
			st := e.newStream()
			args := append(testPattern(3), "-f", "mpegts", "-method", method, e.publishURL(st.PublishKey))
			if out, err := ffmpeg(t, time.Minute, args...); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			ts := checkStream(t, e.waitEnded(t, st.ID), false)
			if len(ts)%188 != 0 || ts[0] != 0x47 {
				t.Errorf("%d bytes starting %#x: want whole transport packets", len(ts), ts[0])
			}
			codecs, d := probeStreams(t, ts)
			if !strings.Contains(codecs, "h264,video") || !strings.Contains(codecs, "aac,audio") || d < 2.5 || d > 3.5 {
				t.Fatalf("published stream: %q, %.2f s; want h264 and aac, about 3 s", codecs, d)
			}
		})
	}
	if n := e.connections("http", "accepted"); n != 2 {
		t.Errorf("accepted http publishers %v, want 2", n)
	}
}

// A WebSocket client sends MPEG-TS in binary messages of odd sizes; the
// bytes reach the stream topic as they were.
func TestWebSocketPublishesMPEGTS(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, nil)
	st := e.newStream()
	clip := tsClip(t, "2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, e.wsURL(st.PublishKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	for rest := clip; len(rest) > 0; {
		n := min(1000+len(rest)%3000, len(rest))
		if err := conn.Write(ctx, websocket.MessageBinary, rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := conn.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("closing: %v", err)
	}
	ts := checkStream(t, e.waitEnded(t, st.ID), false)
	if !bytes.Equal(ts, clip) {
		t.Fatalf("%d bytes on the bus, want the %d sent, unchanged", len(ts), len(clip))
	}
	if n := e.connections("websocket", "accepted"); n != 1 {
		t.Errorf("accepted websocket publishers %v, want 1", n)
	}
}

// makeMatroska makes seconds of a test pattern with a tone in a Matroska
// or WebM file with the given codecs.
func makeMatroska(t *testing.T, format, vcodec, acodec string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "clip."+format)
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:v", vcodec, "-g", "25", "-pix_fmt", "yuv420p"}
	if vcodec == "libx264" {
		args = append(args, "-preset", "ultrafast")
	} else {
		args = append(args, "-deadline", "realtime")
	}
	args = append(args, "-c:a", acodec, "-f", format, f)
	if out, err := ffmpeg(t, time.Minute, args...); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendWS sends data over a WebSocket in messages of size bytes. Unless
// refused says the server will close it, it then closes the WebSocket
// normally. It returns the close status the server closed it with.
func sendWS(t *testing.T, url string, data []byte, size int, refused bool) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// The server sends nothing but its close: a read waiting for it
	// gets the status it closed with, if it closed first.
	read := make(chan error, 1)
	go func() {
		_, _, err := conn.Read(ctx)
		read <- err
	}()
	for rest := data; len(rest) > 0; {
		n := min(size, len(rest))
		if err := conn.Write(ctx, websocket.MessageBinary, rest[:n]); err != nil {
			break // the server closed it
		}
		rest = rest[n:]
	}
	if !refused {
		conn.Close(websocket.StatusNormalClosure, "done")
	}
	err = <-read
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return websocket.CloseStatus(err), ""
}

// WebM/Matroska over a WebSocket, as a browser's MediaRecorder sends it
// with H.264 video and Opus audio, is remuxed into MPEG-TS: H.264 copied,
// Opus transcoded to AAC.
func TestWebSocketWebMIsRemuxedToMPEGTS(t *testing.T) {
	t.Parallel()
	needTool(t, "ffprobe")
	e := newHTTPEnv(t, nil)
	st := e.newStream()
	mkv := makeMatroska(t, "matroska", "libx264", "libopus")
	sendWS(t, e.wsURL(st.PublishKey), mkv, 16<<10, false)
	ts := checkStream(t, e.waitEnded(t, st.ID), false)
	codecs, d := probeStreams(t, ts)
	if !strings.Contains(codecs, "h264,video") || !strings.Contains(codecs, "aac,audio") || d < 2.5 || d > 3.5 {
		t.Fatalf("remuxed stream: %q, %.2f s; want h264 and aac, about 3 s", codecs, d)
	}
}

// VP8 (a WebM as Firefox records it) is not remuxed: weir copies video
// and segments only H.264 and H.265. The WebSocket is closed with 1003
// (unsupported data) and a reason naming the codec; nothing is published.
func TestWebSocketWebMWithVP8IsRefused(t *testing.T) {
	t.Parallel()
	needTool(t, "ffprobe")
	e := newHTTPEnv(t, nil)
	st := e.newStream()
	webm := makeMatroska(t, "webm", "libvpx", "libopus")
	code, reason := sendWS(t, e.wsURL(st.PublishKey), webm, 16<<10, true)
	if code != websocket.StatusUnsupportedData || !strings.Contains(reason, "vp8") {
		t.Fatalf("closed with %v %q, want 1003 naming vp8", code, reason)
	}
	if n := e.rec.count(); n != 0 {
		t.Fatalf("a refused publisher produced %d records", n)
	}
}

func TestHTTPPublishRefusals(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, nil)
	ended := e.newStream()
	if _, err := e.meta.TransitionStatus(context.Background(), ended.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	good := e.newStream()
	clip := tsClip(t, "1")
	tests := []struct {
		name   string
		method string
		url    string
		body   []byte
		status int
		detail string
	}{
		{"unknown key", "PUT", e.publishURL("0123456789abcdef0123456789abcdef"), clip, 401, "unknown publish key"},
		{"ended stream", "PUT", e.publishURL(ended.PublishKey), clip, 403, "has ended"},
		{"malformed key", "PUT", e.publishURL("a/b"), clip, 404, "malformed publish key"},
		{"wrong method", "DELETE", e.publishURL(good.PublishKey), nil, 405, "PUT or POST"},
		{"html, not media", "PUT", e.publishURL(good.PublishKey), []byte("<!doctype html><html><body>hello</body></html>"), 415, `"<!doctype html><html><bo"`},
		{"empty body", "POST", e.publishURL(good.PublishKey), nil, 400, "before a byte of media"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, p := put(t, tc.method, tc.url, bytes.NewReader(tc.body))
			if status != tc.status || p.Status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("%d %+v, want %d with %q", status, p, tc.status, tc.detail)
			}
		})
	}
	// A WebSocket with a wrong key is refused before the upgrade, with
	// the same status.
	_, resp, err := websocket.Dial(context.Background(), e.wsURL("0123456789abcdef0123456789abcdef"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket with an unknown key: %v, %v; want 401", err, resp)
	}
	if n := e.rec.count(); n != 0 {
		t.Fatalf("refused publishers produced %d records", n)
	}
}

// A second publisher of a stream, over HTTP or a WebSocket, is refused
// with 409 while the first publishes; once the first is done, the stream
// takes a publisher again.
func TestSecondHTTPPublisherIsRefused(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, nil)
	st := e.newStream()
	clip := tsClip(t, "1")
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", e.publishURL(st.PublishKey), pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	if _, err := pw.Write(clip[:10*188]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first publisher to start", func() bool { return e.connections("http", "accepted") == 1 })

	status, p := put(t, "PUT", e.publishURL(st.PublishKey), bytes.NewReader(clip))
	if status != http.StatusConflict || !strings.Contains(p.Detail, "already has a publisher") {
		t.Fatalf("second HTTP publisher: %d %+v, want 409", status, p)
	}
	_, resp, err := websocket.Dial(context.Background(), e.wsURL(st.PublishKey), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("second WebSocket publisher: %v, %v; want 409", err, resp)
	}
	pw.Write(clip[10*188:])
	pw.Close()
	if got := <-first; got != http.StatusNoContent {
		t.Fatalf("first publisher answered %d, want 204", got)
	}
	if status, p := put(t, "POST", e.publishURL(st.PublishKey), bytes.NewReader(clip)); status != http.StatusNoContent {
		t.Fatalf("publisher after the first left: %d %+v", status, p)
	}
}

// A publisher that stops sending is dropped after ReadTimeout (408); one
// whose stream turns into something else than MPEG-TS is dropped (400).
// Either way the stream gets its end on the bus.
func TestHTTPPublisherDroppedWhenIdleOrNotMPEGTS(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, func(c *Config) { c.ReadTimeout = time.Second })
	clip := tsClip(t, "1")

	idle := e.newStream()
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(clip[:20*188])
	begin := time.Now()
	status, p := put(t, "PUT", e.publishURL(idle.PublishKey), pr)
	if status != http.StatusRequestTimeout || !strings.Contains(p.Detail, "sent nothing") {
		t.Fatalf("idle publisher: %d %+v, want 408", status, p)
	}
	if took := time.Since(begin); took > 15*time.Second {
		t.Errorf("the idle publisher was dropped after %v", took)
	}
	checkStream(t, e.waitEnded(t, idle.ID), false)

	garbage := e.newStream()
	body := append(append([]byte{}, clip...), bytes.Repeat([]byte("not a transport stream "), 4000)...)
	status, p = put(t, "PUT", e.publishURL(garbage.PublishKey), bytes.NewReader(body))
	if status != http.StatusBadRequest || !strings.Contains(p.Detail, "not MPEG-TS any more") {
		t.Fatalf("publisher sending garbage: %d %+v, want 400", status, p)
	}
	checkStream(t, e.waitEnded(t, garbage.ID), false)
}

// A text message, or a message over MaxMessageBytes, closes a WebSocket
// publisher with 1003 or 1009.
func TestWebSocketRefusesTextAndOversizedMessages(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, func(c *Config) { c.MaxMessageBytes = 64 << 10 })
	clip := tsClip(t, "1")
	for _, tc := range []struct {
		name string
		send func(context.Context, *websocket.Conn) error
		code websocket.StatusCode
	}{
		{"text", func(ctx context.Context, c *websocket.Conn) error {
			if err := c.Write(ctx, websocket.MessageBinary, clip[:4*188]); err != nil {
				return err
			}
			return c.Write(ctx, websocket.MessageText, []byte("hello"))
		}, websocket.StatusUnsupportedData},
		{"oversized", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, make([]byte, 65<<10))
		}, websocket.StatusMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := e.newStream()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, e.wsURL(st.PublishKey), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			tc.send(ctx, conn)
			_, _, err = conn.Read(ctx)
			if got := websocket.CloseStatus(err); got != tc.code {
				t.Fatalf("closed with %v (%v), want %v", got, err, tc.code)
			}
		})
	}
}

// Ending the stream disconnects its HTTP publisher (the stream's end is
// forced), and closing the server disconnects every publisher.
func TestHTTPPublisherDisconnectedWhenTheStreamEnds(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, nil)
	st := e.newStream()
	clip := tsClip(t, "1")
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(clip)
	done := make(chan int, 1)
	go func() {
		status, _ := put(t, "PUT", e.publishURL(st.PublishKey), pr)
		done <- status
	}()
	waitFor(t, 10*time.Second, "the publisher to start", func() bool { return e.connections("http", "accepted") == 1 })
	if _, err := e.meta.TransitionStatus(context.Background(), st.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case status := <-done:
		if status != http.StatusForbidden {
			t.Errorf("publisher of an ended stream answered %d, want 403", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher of an ended stream is still connected")
	}
	checkStream(t, e.waitEnded(t, st.ID), true)
}

// A process without the ingest role answers publishers with a 404 that
// says so, and passes every other path on.
func TestNotServedExplainsItself(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NotServed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})))
	defer srv.Close()
	status, p := put(t, "PUT", srv.URL+"/publish/abc", strings.NewReader("x"))
	if status != http.StatusNotFound || !strings.Contains(p.Detail, "ingest role") {
		t.Fatalf("%d %+v, want a 404 naming the ingest role", status, p)
	}
	resp, err := http.Get(srv.URL + "/streams")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("another path answered %d, want the next handler's", resp.StatusCode)
	}
}

// An HTTP publisher holds the stream's publish lease like any other: an
// RTMP publisher of the stream is refused while it publishes, every record
// carries the lease's token, and when the lease is lost the publisher is
// dropped with 409 and the session ends without a stream_eof.
func TestHTTPPublisherHoldsThePublishLease(t *testing.T) {
	t.Parallel()
	meta, err := metastore.OpenSQLite(t.TempDir() + "/meta.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	store := &unreachableLeases{SQLite: meta}
	pe := &pushEnv{t: t, meta: meta, rec: newRecorder()}
	lease := func(c *Config) { c.LeaseTTL = 600 * time.Millisecond }
	pe.start(store, lease)
	cfg := Config{Streams: store, Producer: pe.rec, Logger: testLogger(t), Registry: pe.reg,
		StatusInterval: 100 * time.Millisecond, ReadTimeout: 5 * time.Second}
	lease(&cfg)
	hs, err := NewHTTPServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hs.Mount(http.NotFoundHandler()))
	t.Cleanup(func() { hs.Close(); srv.Close() })
	st := pe.newStream()

	clip := tsClip(t, "2")
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		for {
			if _, err := pw.Write(clip); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	done := make(chan int, 1)
	go func() {
		status, _ := put(t, "PUT", srv.URL+HTTPPublishPrefix+st.PublishKey, pr)
		done <- status
	}()
	waitFor(t, 15*time.Second, "media on the bus", func() bool {
		return len(rawBytes(pe.rec.stream(protocol.StreamTopic(st.ID)))) > 0
	})
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", pe.rtmpURL(st.PublishKey)}
	if out, err := ffmpeg(t, 30*time.Second, args...); err == nil {
		t.Fatalf("an RTMP publisher got in while the stream had an HTTP publisher:\n%s", out)
	}
	held, err := meta.GetLease(context.Background(), metastore.PublishLeaseName(st.ID))
	if err != nil || !held.Held {
		t.Fatalf("publish lease while publishing: %+v, %v", held, err)
	}
	store.cut.Store(true)
	select {
	case status := <-done:
		if status != http.StatusConflict {
			t.Errorf("publisher that lost its lease answered %d, want 409", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher is still connected after its lease was lost")
	}
	recs := pe.rec.stream(protocol.StreamTopic(st.ID))
	for _, r := range recs {
		if _, ok := r.msg.(*protocol.StreamEOF); ok {
			t.Error("the session wrote a stream_eof after losing its lease")
		}
	}
	for i, tok := range sessionTokens(t, recs) {
		if tok != held.Token {
			t.Fatalf("record %d carries token %d, want the lease's %d", i, tok, held.Token)
		}
	}
}
