package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func newS3Client(srv S3Server) *s3.Client {
	return s3.New(s3.Options{
		Region:       srv.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
}

func TestS3ServesTheS3APIWithTheReturnedCredentials(t *testing.T) {
	srv := S3(t)
	ctx := context.Background()
	c := newS3Client(srv)
	bucket := UniqueBucket(t)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("a/b.txt"), Body: strings.NewReader("hello"),
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "a/b.txt" {
		t.Fatalf("list = %+v, want the one object a/b.txt", out.Contents)
	}

	wrong := srv
	wrong.SecretKey = "not-the-secret"
	if _, err := newS3Client(wrong).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}); err == nil {
		t.Fatal("list with a wrong secret succeeded; the server is not checking signatures")
	}
}

func TestS3StopsTheServerWhenTheTestEnds(t *testing.T) {
	if os.Getenv(EnvS3Endpoint) != "" {
		t.Skip("external S3 server in use")
	}
	var srv S3Server
	t.Run("user", func(t *testing.T) { srv = S3(t) })
	if srv.pid == 0 {
		t.Fatal("no process id recorded")
	}
	if !processGoneSoon(srv.pid) {
		t.Errorf("versitygw pid %d still running after its test ended", srv.pid)
	}
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(srv.Endpoint); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after its test ended", srv.Endpoint)
	}
}

func TestS3GivesEachTestItsOwnServer(t *testing.T) {
	if os.Getenv(EnvS3Endpoint) != "" {
		t.Skip("external S3 server in use")
	}
	a, b := S3(t), S3(t)
	if a.Endpoint == b.Endpoint {
		t.Fatalf("both calls returned %s", a.Endpoint)
	}
}

// TestS3ServerDiesWithACrashedTestProcess runs a child test process that
// starts a server and exits without running cleanups, then checks the
// kernel killed the orphaned versitygw.
func TestS3ServerDiesWithACrashedTestProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux only")
	}
	if os.Getenv(EnvS3Endpoint) != "" {
		t.Skip("external S3 server in use")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAbandonServer$", "-test.v")
	cmd.Env = append(os.Environ(), "WEIR_TESTENV_HELPER=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VERSITYGW_PID="); ok {
			pid, _ = strconv.Atoi(rest)
		}
	}
	_ = cmd.Wait()
	if pid == 0 {
		t.Fatal("helper process printed no versitygw pid")
	}
	if !processGoneSoon(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("versitygw pid %d outlived its crashed test process", pid)
	}
}

// TestHelperAbandonServer is the child of TestS3ServerDiesWithACrashedTestProcess.
func TestHelperAbandonServer(t *testing.T) {
	if os.Getenv("WEIR_TESTENV_HELPER") != "1" {
		t.Skip("helper process only")
	}
	srv := S3(t)
	fmt.Printf("VERSITYGW_PID=%d\n", srv.pid)
	os.Exit(3) // no cleanups run, as when a test binary crashes
}

// processGoneSoon polls until pid no longer exists or is a zombie (an orphan
// whose reaper is slow), for up to 10 seconds.
func processGoneSoon(pid int) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		if err == nil {
			// Format: "pid (comm) S ...": the state follows the last ')'.
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(s[i+1:], " Z") {
				return true
			}
		}
		if runtime.GOOS != "linux" && syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestFindVersitygwLooksInPathThenGobinThenGopath(t *testing.T) {
	mk := func(dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "versitygw")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := t.TempDir()
	inPath := mk(filepath.Join(base, "path"))
	inGobin := mk(filepath.Join(base, "gobin"))
	inGopath := mk(filepath.Join(base, "gopath", "bin"))
	notExec := filepath.Join(base, "noexec")
	os.MkdirAll(notExec, 0o755)
	os.WriteFile(filepath.Join(notExec, "versitygw"), nil, 0o644)

	tests := []struct {
		name, pathEnv, gobin, gopath, want string
	}{
		{"PATH wins", filepath.Join(base, "path"), filepath.Join(base, "gobin"), filepath.Join(base, "gopath"), inPath},
		{"GOBIN before GOPATH", notExec, filepath.Join(base, "gobin"), filepath.Join(base, "gopath"), inGobin},
		{"GOPATH bin last", "", "", filepath.Join(base, "gopath"), inGopath},
		{"second GOPATH entry", "", "", filepath.Join(base, "nothing") + string(filepath.ListSeparator) + filepath.Join(base, "gopath"), inGopath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findVersitygw(tt.pathEnv, tt.gobin, tt.gopath)
			if err != nil || got != tt.want {
				t.Fatalf("findVersitygw = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestFindVersitygwFailureSaysHowToInstall(t *testing.T) {
	_, err := findVersitygw(t.TempDir(), "", t.TempDir())
	if err == nil {
		t.Fatal("found a versitygw in empty directories")
	}
	for _, want := range []string{"make test", "scripts/s3-server.sh install", "versitygw@" + VersitygwVersion} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestS3UsesTheExternalServerFromTheEnvironment(t *testing.T) {
	t.Setenv(EnvS3Endpoint, "http://s3.example.test:9000")
	t.Setenv(EnvS3AccessKey, "ak")
	t.Setenv(EnvS3SecretKey, "sk")
	t.Setenv(EnvS3Region, "")
	srv := S3(t)
	want := S3Server{Endpoint: "http://s3.example.test:9000", AccessKey: "ak", SecretKey: "sk", Region: "us-east-1"}
	if srv != want {
		t.Fatalf("S3 = %+v, want %+v", srv, want)
	}
}

func TestUniqueBucketNamesAreValidAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		b := UniqueBucket(t)
		if len(b) < 3 || len(b) > 63 || strings.Trim(b, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Fatalf("bucket name %q breaks S3 naming rules", b)
		}
		if seen[b] {
			t.Fatalf("bucket name %q repeated", b)
		}
		seen[b] = true
	}
}
