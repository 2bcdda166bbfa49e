package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// This file runs weir as several real processes (`weir serve --roles ...`)
// sharing an embedded broker process, PostgreSQL and an S3 server, and kills
// them with SIGKILL mid-work: the cross-process rules (one publisher per
// stream, one packager per stream, one worker per title) must hold with
// nothing shared in memory.

// weirProc is one `weir serve` process of a cluster test.
type weirProc struct {
	name    string
	http    string
	rtmp    string
	srt     string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// cluster is the shared setting of a cluster test's processes.
type cluster struct {
	t        *testing.T
	bin      string
	dir      string
	kafka    string
	metadata string
	objects  string
	procs    []*weirProc
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	c := &cluster{t: t, bin: testenv.WeirBinary(t), dir: t.TempDir()}
	c.metadata = testenv.Postgres(t)
	c.objects = testenv.S3(t).URL(testenv.UniqueBucket(t))
	c.kafka = testenv.FreeAddr(t)
	broker := c.start("broker", "--roles", "broker", "--kafka-listen", c.kafka)
	c.waitReady(broker)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("--- log of %s (last 40 lines)\n%s", p.name, tail(p.logPath, 40))
			}
		}
	})
	return c
}

// start runs `weir serve` with args plus the cluster's stores and bus.
func (c *cluster) start(name string, args ...string) *weirProc {
	c.t.Helper()
	return c.startEnv(name, nil, args...)
}

// startEnv is start with extra environment variables (NAME=value).
func (c *cluster) startEnv(name string, env []string, args ...string) *weirProc {
	c.t.Helper()
	p := &weirProc{name: name, http: testenv.FreeAddr(c.t), rtmp: testenv.FreeAddr(c.t), srt: testenv.FreeAddr(c.t),
		logPath: filepath.Join(c.dir, name+".log"), exited: make(chan struct{})}
	full := []string{"serve", "--data", filepath.Join(c.dir, name), "--http", p.http,
		"--rtmp", p.rtmp, "--srt", p.srt, "--metadata", c.metadata, "--objects", c.objects,
		"--live-segment-duration", "1s", "--live-window", "5", "--vod-preset", "ultrafast",
		"--vod-segment-duration", "2s", "--log-level", "info"}
	if !contains(args, "broker") {
		// Every process logs in as weir, with the broker process's
		// credentials file.
		full = append(full, "--kafka", c.kafka, "--kafka-credentials", filepath.Join(c.dir, "broker", "kafka", "credentials"))
	}
	full = append(full, args...)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(c.bin, full...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	c.procs = append(c.procs, p)
	c.t.Cleanup(func() { p.stop() })
	return p
}

func contains(args []string, s string) bool {
	for _, a := range args {
		if a == s {
			return true
		}
	}
	return false
}

// waitReady waits until the process answers /ready with 200.
func (c *cluster) waitReady(p *weirProc) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.http + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			c.t.Fatalf("%s exited before it was ready:\n%s", p.name, tail(p.logPath, 40))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready after 60 s:\n%s", p.name, tail(p.logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 kills the process outright, as a crash would.
func (p *weirProc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop ends the process with SIGTERM, then SIGKILL if it lingers.
func (p *weirProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill9()
	}
}

func (p *weirProc) pid() int { return p.cmd.Process.Pid }

// api calls the REST API of p and decodes the JSON answer into out.
func (p *weirProc) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, "http://"+p.http+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s on %s: %d %s: %v", method, path, p.name, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls cond every 200 ms until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ctxFor is a context bounded by the test's deadline.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
