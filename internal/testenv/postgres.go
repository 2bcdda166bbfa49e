package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables for the PostgreSQL test server.
const (
	// EnvPostgresURL points tests at a running server instead of a
	// throwaway cluster. It must be a postgres:// URL of a role that may
	// CREATE DATABASE; each test gets its own database there.
	EnvPostgresURL = "WEIR_TEST_POSTGRES_URL"
	// EnvPostgresBin overrides the directory holding initdb and postgres.
	EnvPostgresBin = "WEIR_TEST_POSTGRES_BIN"
)

// PostgresBinDir is where Debian's postgresql-15 package puts the server
// binaries.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

const (
	pgDirPrefix    = "weir-testpg-"
	pgReadyTimeout = 90 * time.Second
	pgStopTimeout  = 30 * time.Second
	pgOwnerFile    = "owner.pid"
)

// The throwaway cluster is shared by every test of one test process.
var pgShared struct {
	mu      sync.Mutex
	started bool
	stopped bool
	admin   string // URL of the maintenance database "postgres"
	err     error
	srv     *pgServer
}

// Postgres returns the URL of a new, empty database for the test, dropped
// again in t.Cleanup (with any sessions still connected to it).
//
// When WEIR_TEST_POSTGRES_URL is set the database is created on that
// server. Otherwise the first call in a test process starts a throwaway
// PostgreSQL 15 cluster (initdb into a directory under os.TempDir(), trust
// authentication, fsync off, listening on 127.0.0.1 at a free port and on a
// Unix socket in that directory), and later calls reuse it. When the test
// process runs as root, initdb and postgres run as the "postgres" OS user,
// since PostgreSQL refuses to run as root.
//
// The cluster never outlives the test process: call StopPostgres from
// TestMain for an orderly stop and removal of its directory. Without that,
// or if the process panics, times out or is killed, the kernel kills the
// server when the test process dies (a parent-death signal on Linux), and
// the next test process that starts a cluster removes the directories of
// clusters whose owning process is gone.
//
// Missing server binaries fail the test rather than skip it: run
// `make test`, which installs them.
func Postgres(t testing.TB) string {
	t.Helper()
	admin, err := postgresAdminURL()
	if err != nil {
		t.Fatalf("PostgreSQL test server: %v", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("database name: %v", err)
	}
	name := "weir_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pgAdminExec(ctx, admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL test server: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := pgAdminExec(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("PostgreSQL test server: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("PostgreSQL test server URL: %v", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// StopPostgres stops the throwaway cluster started by Postgres, if any, and
// removes its directory. Call it from TestMain after m.Run; Postgres fails
// once it has run. It does nothing to a server named by
// WEIR_TEST_POSTGRES_URL.
func StopPostgres() {
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	pgShared.stopped = true
	if pgShared.srv != nil {
		pgShared.srv.stop()
		pgShared.srv = nil
	}
}

// postgresAdminURL starts the shared cluster on first use and returns the
// URL of its maintenance database.
func postgresAdminURL() (string, error) {
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	if pgShared.stopped {
		return "", errors.New("StopPostgres has already run in this test process")
	}
	if !pgShared.started {
		pgShared.started = true
		if env := os.Getenv(EnvPostgresURL); env != "" {
			u, err := url.Parse(env)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				pgShared.err = fmt.Errorf("%s=%q is not a postgres:// URL", EnvPostgresURL, env)
			} else {
				pgShared.admin = env
			}
		} else {
			pgShared.srv, pgShared.err = startPostgresCluster()
			if pgShared.err == nil {
				pgShared.admin = pgShared.srv.url
			}
		}
	}
	return pgShared.admin, pgShared.err
}

// pgAdminExec runs one statement on a short-lived connection.
func pgAdminExec(ctx context.Context, admin, stmt string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, stmt)
	return err
}

// pgServer is a running throwaway cluster.
type pgServer struct {
	dir     string // holds data/, the socket, the log and owner.pid
	url     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when postgres has exited
	stopped sync.Once
}

// postgresBinDir finds initdb and postgres.
func postgresBinDir() (string, error) {
	dir := PostgresBinDir
	if env := os.Getenv(EnvPostgresBin); env != "" {
		dir = env
	}
	for _, b := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("%s not found in %s: PostgreSQL 15 is missing; run `make test` "+
				"(it installs postgresql-15), set %s to another bin directory, or set %s to a running server",
				b, dir, EnvPostgresBin, EnvPostgresURL)
		}
	}
	return dir, nil
}

// pgCredential says which OS user runs the cluster: nil for the current
// user, or the postgres user's ids when running as root.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root, but there is no postgres user to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres user has non-numeric ids %s:%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgresCluster runs initdb into a fresh directory and starts
// postgres on a free port, retrying with another port if the first is
// taken before postgres binds it.
func startPostgresCluster() (*pgServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	sweepStalePostgres(os.TempDir())

	dir, err := os.MkdirTemp("", pgDirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, pgOwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	var lastErr error
	for range 3 {
		srv, err := runPostgres(bin, dir, cred)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// runPostgres starts the postmaster in the foreground, as our child, and
// waits until it accepts connections.
func runPostgres(bin, dir string, cred *syscall.Credential) (*pgServer, error) {
	port, err := freePostgresPort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// dieWithParent (s3_linux.go) adds a parent-death signal on Linux.
	attr := dieWithParent()
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Credential = cred
	cmd.SysProcAttr = attr

	srv := &pgServer{
		dir:    dir,
		url:    fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		cmd:    cmd,
		exited: make(chan struct{}),
	}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that forked the
		// child exits, not when the process does, so this goroutine keeps
		// its thread until postgres is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(srv.exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(srv.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := srv.waitReady(); err != nil {
		srv.kill()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w; postgres log:\n%s", err, tail(log, 4096))
	}
	return srv, nil
}

func (s *pgServer) waitReady() error {
	deadline := time.Now().Add(pgReadyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.url)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return errors.New("postgres exited before accepting connections")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within %s: %w", pgReadyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops postgres with an immediate shutdown (SIGQUIT: the data is
// thrown away, so there is nothing to checkpoint), escalating to SIGKILL.
func (s *pgServer) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(pgStopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// stop kills postgres and removes the cluster directory.
func (s *pgServer) stop() {
	s.stopped.Do(func() {
		s.kill()
		if err := os.RemoveAll(s.dir); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: remove PostgreSQL test cluster %s: %v\n", s.dir, err)
		}
	})
}

func freePostgresPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sweepStalePostgres removes cluster directories under tmp whose owning test
// process is gone, killing a postmaster that somehow survived it. A
// directory whose owner.pid cannot be read is left alone unless it is over
// an hour old (its creator may be between MkdirTemp and writing the file).
func sweepStalePostgres(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, pgDirPrefix+"*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, pgOwnerFile))
		if err != nil {
			if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(dir)
			}
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || processAlive(owner) {
			continue
		}
		if pm, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := bytes.Cut(pm, []byte("\n"))
			pid, err := strconv.Atoi(strings.TrimSpace(string(first)))
			// The pid may have been reused since; only kill a postgres.
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err == nil && processAlive(pid) && bytes.Contains(cmdline, []byte("postgres")) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		os.RemoveAll(dir)
	}
}

// processAlive reports whether pid names a running process; zombies count
// as gone.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The state follows the parenthesised command name, which may
		// itself contain parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			return stat[i+2] != 'Z' && stat[i+2] != 'X'
		}
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
