package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/testenv"
)

// fdLimit is the open-file limit the processes below run under, and flood
// how many idle connections a client holds against the broker: as in the
// report this test comes from, enough to use up every descriptor left.
const (
	fdLimit = 400
	flood   = 380
)

// startUnderFileLimit runs `weir serve` (embedded broker, SQLite, file
// objects) under prlimit --nofile=fdLimit.
func startUnderFileLimit(t *testing.T, args ...string) (*weirProc, string) {
	p, kafka, _ := startUnderFileLimitCreds(t, args...)
	return p, kafka
}

// startUnderFileLimitCreds is startUnderFileLimit that also returns the
// path of the embedded broker's credentials file.
func startUnderFileLimitCreds(t *testing.T, args ...string) (*weirProc, string, string) {
	t.Helper()
	testenv.RequireTool(t, "prlimit")
	dir := t.TempDir()
	p := &weirProc{name: "weir", http: testenv.FreeAddr(t), rtmp: testenv.FreeAddr(t), srt: testenv.FreeAddr(t),
		logPath: filepath.Join(dir, "weir.log"), exited: make(chan struct{})}
	kafka := testenv.FreeAddr(t)
	full := append([]string{fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit), testenv.WeirBinary(t), "serve",
		"--data", filepath.Join(dir, "data"), "--http", p.http, "--kafka-listen", kafka,
		"--rtmp", p.rtmp, "--srt", p.srt, "--log-level", "info"}, args...)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("prlimit", full...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- weir log (last 60 lines)\n%s", tail(p.logPath, 60))
		}
	})
	(&cluster{t: t}).waitReady(p)
	return p, kafka, filepath.Join(dir, "data", "kafka", "credentials")
}

// floodConns opens n idle TCP connections to addr (stopping early if
// dials start failing) and returns them.
func floodConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() { closeAll(conns) })
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// readyReport is GET /ready's answer.
type readyReport struct {
	status int
	Failed []string                  `json:"failed"`
	Checks map[string]map[string]any `json:"checks"`
}

func getReady(client *http.Client, p *weirProc) (readyReport, error) {
	var r readyReport
	resp, err := client.Get("http://" + p.http + "/ready")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// smallUpload posts a small multipart upload and returns the status, within
// the client's timeout.
func smallUpload(client *http.Client, p *weirProc) (int, string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "clip.ts")
	fw.Write(bytes.Repeat([]byte{0x47}, 4096))
	mw.Close()
	resp, err := client.Post("http://"+p.http+"/vod/upload", mw.FormDataContentType(), &body)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// kafkaAnswers reports whether a Kafka client can reach the broker at addr
// within 10 s.
func kafkaAnswers(addr, credentials string) error {
	creds, err := bus.ReadCredentialsFile(credentials)
	if err != nil {
		return err
	}
	client, err := bus.NewClient([]string{addr}, bus.WithSASL(creds))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Ping(ctx)
}

// With no connection caps, idle connections to the broker use up every
// file descriptor: accepts fail with EMFILE. The broker must keep
// accepting once they are gone, /ready must say what is wrong meanwhile,
// and uploads must work again afterwards.
func TestTheBrokerAcceptsAgainAfterFileDescriptorsRunOut(t *testing.T) {
	p, kafka, creds := startUnderFileLimitCreds(t, "--kafka-max-conns", "-1", "--http-max-conns", "-1")
	// One keep-alive connection, opened before the flood, to ask /ready
	// while the process cannot accept new ones.
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	if r, err := getReady(keep, p); err != nil || r.status != http.StatusOK {
		t.Fatalf("/ready before the flood: %d %v %v", r.status, r.Failed, err)
	}

	conns := floodConns(t, kafka, flood)
	t.Logf("holding %d connections to the broker", len(conns))
	waitUntil(t, 60*time.Second, "/ready to report the broker listener failing", func() bool {
		r, err := getReady(keep, p)
		return err == nil && r.status == http.StatusServiceUnavailable && contains(r.Failed, "kafka-listener")
	})

	closeAll(conns)
	waitUntil(t, 60*time.Second, "/ready to pass once the connections are gone", func() bool {
		r, err := getReady(&http.Client{Timeout: 10 * time.Second}, p)
		return err == nil && r.status == http.StatusOK
	})
	if err := kafkaAnswers(kafka, creds); err != nil {
		t.Fatalf("the broker does not answer a new Kafka client after the flood: %v", err)
	}
	code, body, err := smallUpload(&http.Client{Timeout: 30 * time.Second}, p)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("upload after the flood: %d %s %v; want 202 within 30 s", code, body, err)
	}
}

// With the default caps (shares of the open-file limit) the same flood
// never exhausts the process: the broker holds its share and closes the
// rest, and the API keeps taking new connections and uploads meanwhile.
func TestTheConnectionCapsKeepTheAPIServingThroughABrokerFlood(t *testing.T) {
	p, kafka := startUnderFileLimit(t)
	conns := floodConns(t, kafka, flood)
	// Connections over the cap are closed by the broker: read each with a
	// short deadline and count those that ended.
	refused := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			refused++
		}
	}
	if refused < flood-fdLimit/kafkaShare {
		t.Fatalf("the broker closed %d of %d connections; with a cap of %d it must close at least %d",
			refused, len(conns), fdLimit/kafkaShare, flood-fdLimit/kafkaShare)
	}
	fresh := &http.Client{Timeout: 30 * time.Second}
	r, err := getReady(fresh, p)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("/ready during the flood: %d %v %v; want 200 on a new connection", r.status, r.Failed, err)
	}
	code, body, err := smallUpload(fresh, p)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("upload during the flood: %d %s %v; want 202", code, body, err)
	}
	if !strings.Contains(tail(p.logPath, 200), "connection cap reached") {
		t.Error("the log does not say the broker's connection cap was reached")
	}
}
