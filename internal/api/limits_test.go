package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
)

// rawRequest writes head (request line and headers, without the blank
// line) and the first body bytes on a fresh connection to ts. The caller
// closes the connection before ts, whose Close waits for its handlers.
func rawRequest(t *testing.T, ts *httptest.Server, head string, body []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	return c
}

// trickle writes one byte every interval until stop closes or a write fails.
func trickle(c net.Conn, interval time.Duration, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			return
		}
	}
}

func TestAnUploadTricklingBelowTheMinimumRateGets408AndLosesItsConnection(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.MinBodyRate = 1024; c.BodyTimeout = time.Second })
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()

	head := "POST /vod/upload HTTP/1.1\nHost: weir\nContent-Type: multipart/form-data; boundary=b\nContent-Length: 100000"
	c := rawRequest(t, ts, head, []byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.ts\"\r\n\r\n"))
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go trickle(c, 200*time.Millisecond, stop) // 5 bytes/s

	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to an upload trickling at 5 bytes/s (minimum 1 KiB/s): %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !bytes.Contains(b, []byte("minimum")) {
		t.Fatalf("status %d %s, want 408 naming the minimum rate", resp.StatusCode, b)
	}
	if !resp.Close {
		t.Error("the 408 does not close the connection")
	}
	if e.streamCount("vod") != 0 || len(e.objectKeys()) != 0 {
		t.Errorf("the refused upload left %d streams and objects %v", e.streamCount("vod"), e.objectKeys())
	}
}

func TestAnUnreadBodyIsDiscardedForNoLongerThanTheBodyTimeout(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.BodyTimeout = time.Second })
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()

	// /health reads no body; net/http discards the rest of a small one
	// before answering, which a trickling client could stretch forever.
	c := rawRequest(t, ts, "GET /health HTTP/1.1\nHost: weir\nContent-Length: 1000", []byte("x"))
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go trickle(c, 200*time.Millisecond, stop)

	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer while the unread body trickles in: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer the connection gave %v, want EOF: the server must stop waiting for the body", err)
	}
}

func TestAnUploadAtASteadyRateOutlastsTheBodyTimeout(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.MinBodyRate = 1024; c.BodyTimeout = 3 * time.Second })
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()

	const chunk, chunks = 1024, 32 // 32 KiB at about 10 KiB/s: over 3 s in all
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, _ := mw.CreateFormFile("file", "slow.ts")
		for range chunks {
			time.Sleep(100 * time.Millisecond)
			if _, err := fw.Write(bytes.Repeat([]byte{7}, chunk)); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		mw.Close()
		pw.Close()
	}()
	started := time.Now()
	resp, err := http.Post(ts.URL+"/vod/upload", mw.FormDataContentType(), pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload at 10 KiB/s taking %s: status %d %s, want 202", time.Since(started).Round(time.Millisecond), resp.StatusCode, b)
	}
	if !bytes.Contains(b, []byte(fmt.Sprintf(`"size_bytes":%d`, chunk*chunks))) {
		t.Fatalf("upload answer %s does not report %d bytes", b, chunk*chunks)
	}
}

// silentBroker accepts TCP connections into its backlog and never answers,
// as a broker whose accept loop died does.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestRequestsNeedingTheBusAnswer503WhenItDoesNotAnswer(t *testing.T) {
	client, err := bus.NewClient([]string{silentBroker(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	e := newEnv(t, "", func(c *Config) { c.Bus = client; c.BusTimeout = time.Second })

	for _, tc := range []struct {
		name, path string
		body       any
		fragment   string
	}{
		{"vod import", "/vod/upload", map[string]string{"url": "https://example.com/a.mp4"}, "could not be queued on the bus"},
		{"live start", "/streams/start", map[string]string{"title": "t"}, "could not be announced on the bus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan *httptest.ResponseRecorder, 1)
			go func() { done <- e.doJSON(http.MethodPost, tc.path, tc.body) }()
			select {
			case rec := <-done:
				wantProblem(t, rec, http.StatusServiceUnavailable, tc.fragment)
			case <-time.After(60 * time.Second):
				t.Fatalf("POST %s still waiting for the bus after 60 s; want 503 within seconds", tc.path)
			}
		})
	}
}
