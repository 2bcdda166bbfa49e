// Package testenv starts the real peers that tests run against.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// VersitygwVersion is the S3 server version tests are written against.
const VersitygwVersion = "v1.8.0"

// Environment variables that point tests at an already running S3 server
// instead of a versitygw started per test.
const (
	EnvS3Endpoint  = "WEIR_TEST_S3_ENDPOINT"
	EnvS3AccessKey = "WEIR_TEST_S3_ACCESS_KEY"
	EnvS3SecretKey = "WEIR_TEST_S3_SECRET_KEY"
	EnvS3Region    = "WEIR_TEST_S3_REGION"
)

const (
	testAccessKey = "weirtest"
	testSecretKey = "weirtest-secret"
	testRegion    = "us-east-1"
	readyTimeout  = 30 * time.Second
	stopTimeout   = 10 * time.Second
)

// S3Server is an S3-compatible endpoint a test may use.
type S3Server struct {
	Endpoint  string // e.g. "http://127.0.0.1:41234"
	AccessKey string
	SecretKey string
	Region    string

	pid int // versitygw's process id; 0 when the server is external
}

// URL returns the objstore URL for bucket on this server, asking for the
// bucket to be created: pass it to objstore.Open or `weir serve --objects`.
func (s S3Server) URL(bucket string) string {
	q := url.Values{}
	q.Set("endpoint", s.Endpoint)
	q.Set("region", s.Region)
	q.Set("path_style", "true")
	q.Set("create_bucket", "true")
	q.Set("access_key", s.AccessKey)
	q.Set("secret_key", s.SecretKey)
	return "s3://" + bucket + "?" + q.Encode()
}

// UniqueBucket returns a fresh valid bucket name, so tests sharing a
// server (an external one especially) never see each other's objects.
func UniqueBucket(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("bucket name: %v", err)
	}
	return "weir-test-" + hex.EncodeToString(b[:])
}

// S3 returns an S3 server for the test.
//
// When WEIR_TEST_S3_ENDPOINT is set, that server is used, with
// WEIR_TEST_S3_ACCESS_KEY, WEIR_TEST_S3_SECRET_KEY and WEIR_TEST_S3_REGION
// (default us-east-1).
//
// Otherwise S3 starts a private versitygw (posix backend in t.TempDir(),
// listening on a free 127.0.0.1 port), waits until it answers, and stops it
// in t.Cleanup; versitygw starts in milliseconds, so a server per test keeps
// tests isolated at little cost. The process is also bound to the test
// process with a parent-death signal (Linux), so even a test binary that
// panics, times out or is killed leaves no versitygw behind.
//
// A missing versitygw binary (looked up in PATH, then $GOBIN and
// $GOPATH/bin) fails the test: run `make test` or
// `scripts/s3-server.sh install` to install it.
func S3(t testing.TB) S3Server {
	t.Helper()
	if ep := os.Getenv(EnvS3Endpoint); ep != "" {
		srv := S3Server{
			Endpoint:  ep,
			AccessKey: os.Getenv(EnvS3AccessKey),
			SecretKey: os.Getenv(EnvS3SecretKey),
			Region:    os.Getenv(EnvS3Region),
		}
		if srv.AccessKey == "" || srv.SecretKey == "" {
			t.Fatalf("%s is set, so %s and %s must be too", EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey)
		}
		if srv.Region == "" {
			srv.Region = testRegion
		}
		return srv
	}
	bin, err := findVersitygw(os.Getenv("PATH"), os.Getenv("GOBIN"), build.Default.GOPATH)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir() // registered before the stop below, so removed after it
	var lastErr error
	for range 3 { // a free port can be taken between probing and binding
		srv, stop, err := startVersitygw(bin, root)
		if err == nil {
			t.Cleanup(stop)
			t.Logf("versitygw %s on %s, data in %s", VersitygwVersion, srv.Endpoint, root)
			return srv
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return S3Server{}
}

// findVersitygw looks for the versitygw binary in pathEnv, then gobin, then
// gopath's bin directories.
func findVersitygw(pathEnv, gobin, gopath string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if p := filepath.Join(dir, "versitygw"); isExecutableFile(p) {
			return p, nil
		}
	}
	var tried []string
	if gobin != "" {
		tried = append(tried, gobin)
	}
	for _, gp := range filepath.SplitList(gopath) {
		tried = append(tried, filepath.Join(gp, "bin"))
	}
	for _, dir := range tried {
		if p := filepath.Join(dir, "versitygw"); isExecutableFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw not found in PATH or %v: run `make test` or `scripts/s3-server.sh install` "+
		"(go install github.com/versity/versitygw/cmd/versitygw@%s), or point %s at a running S3 server",
		tried, VersitygwVersion, EnvS3Endpoint)
}

func isExecutableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// startVersitygw runs one versitygw on a free port and waits until it
// answers HTTP. stop kills it and waits for it to exit.
func startVersitygw(bin, root string) (S3Server, func(), error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return S3Server{}, nil, err
	}
	cmd := exec.Command(bin,
		"--access", testAccessKey,
		"--secret", testSecretKey,
		"--region", testRegion,
		"--port", addr,
		"--quiet",
		"posix", root)
	// Keep the gateway's own environment from overriding the flags.
	cmd.Env = filterEnv(os.Environ(), "ROOT_ACCESS_KEY_ID", "ROOT_ACCESS_KEY", "ROOT_SECRET_ACCESS_KEY", "ROOT_SECRET_KEY", "VGW_PORT", "VGW_REGION")
	var output vgwOutput
	cmd.Stdout = &output
	cmd.Stderr = &output
	cmd.SysProcAttr = dieWithParent()

	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process; keep that thread alive and
		// unshared until the child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return S3Server{}, nil, fmt.Errorf("run %s: %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(stopTimeout):
		}
	}
	srv := S3Server{
		Endpoint:  "http://" + addr,
		AccessKey: testAccessKey,
		SecretKey: testSecretKey,
		Region:    testRegion,
		pid:       cmd.Process.Pid,
	}
	if err := waitVersitygwReady(srv.Endpoint, exited); err != nil {
		stop()
		return S3Server{}, nil, fmt.Errorf("%w; versitygw output:\n%s", err, output.String())
	}
	return srv, stop, nil
}

// waitVersitygwReady polls endpoint until it gives any HTTP answer (an anonymous
// request is refused with 403, which proves the gateway is serving).
func waitVersitygwReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("versitygw exited before answering")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not answer on %s within %s: %w", endpoint, readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

func filterEnv(env []string, drop ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, d := range drop {
			if len(kv) > len(d) && kv[:len(d)+1] == d+"=" {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// vgwOutput collects the server's output for failure messages, keeping
// at most 64 KiB.
type vgwOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *vgwOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 64<<10 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *vgwOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
