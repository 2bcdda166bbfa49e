package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestMain stops the shared PostgreSQL cluster after the tests. It is the
// package's only TestMain: other testenv tests must not define one.
func TestMain(m *testing.M) {
	code := m.Run()
	StopPostgres()
	os.Exit(code)
}

func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresGivesEachCallAFreshEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := Postgres(t), Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	ca, cb := pgConnect(t, a), pgConnect(t, b)
	for _, c := range []*pgx.Conn{ca, cb} {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("fresh database has %d tables", n)
		}
	}
	if _, err := ca.Exec(ctx, `CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := ca.QueryRow(ctx, `SELECT x FROM marker`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("read back marker: %d, %v", x, err)
	}
	var n int
	if err := cb.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'marker'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a table created in one test database is visible in another")
	}
}

func TestPostgresDropsTheDatabaseWhenTheTestEnds(t *testing.T) {
	var dbURL string
	t.Run("user", func(t *testing.T) {
		dbURL = Postgres(t)
		conn := pgConnect(t, dbURL)
		// An open session must not keep the database alive.
		if _, err := conn.Exec(context.Background(), `CREATE TABLE t (x int)`); err != nil {
			t.Fatal(err)
		}
	})
	admin, err := postgresAdminURL()
	if err != nil {
		t.Fatal(err)
	}
	name := dbURL[strings.LastIndex(dbURL, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	conn := pgConnect(t, admin)
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestPostgresBinariesMissingIsAnErrorNamingMakeTest(t *testing.T) {
	t.Setenv(EnvPostgresBin, t.TempDir())
	_, err := postgresBinDir()
	if err == nil || !strings.Contains(err.Error(), "make test") {
		t.Fatalf("postgresBinDir with no binaries: %v, want an error telling to run make test", err)
	}
}

// deadPID returns the id of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestSweepStalePostgresRemovesOnlyClustersOfDeadProcesses(t *testing.T) {
	tmp := t.TempDir()
	cases := []struct {
		name  string
		owner string // content of owner.pid; "" for no file
		kept  bool
	}{
		{"owner alive", strconv.Itoa(os.Getpid()), true},
		{"owner gone", strconv.Itoa(deadPID(t)), false},
		{"owner file being written", "", true},
		{"owner file garbled", "not-a-pid", true},
	}
	for i, c := range cases {
		dir := filepath.Join(tmp, fmt.Sprintf("%s%d", pgDirPrefix, i))
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if c.owner != "" {
			if err := os.WriteFile(filepath.Join(dir, pgOwnerFile), []byte(c.owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := filepath.Join(tmp, "unrelated-dir")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	sweepStalePostgres(tmp)
	for i, c := range cases {
		_, err := os.Stat(filepath.Join(tmp, fmt.Sprintf("%s%d", pgDirPrefix, i)))
		if kept := err == nil; kept != c.kept {
			t.Errorf("%s: kept = %v, want %v", c.name, kept, c.kept)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("sweep removed a directory that is not a test cluster: %v", err)
	}
}

const orphanHelperEnv = "WEIR_TESTENV_PG_ORPHAN_HELPER"

// TestPostgresOrphanHelper is not a test: TestPostgresServerDiesWithTheTestProcess
// runs it in a child process that starts a cluster, reports it and waits to
// be killed.
func TestPostgresOrphanHelper(t *testing.T) {
	if os.Getenv(orphanHelperEnv) != "1" {
		t.Skip("helper process for TestPostgresServerDiesWithTheTestProcess")
	}
	Postgres(t)
	srv := pgShared.srv
	fmt.Printf("CLUSTER pid=%d dir=%s\n", srv.cmd.Process.Pid, srv.dir)
	time.Sleep(10 * time.Minute)
}

func TestPostgresServerDiesWithTheTestProcess(t *testing.T) {
	if _, err := postgresBinDir(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresOrphanHelper$", "-test.v")
	cmd.Env = append(filterEnv(os.Environ(), EnvPostgresURL), orphanHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	type cluster struct {
		pid int
		dir string
	}
	found := make(chan cluster, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var c cluster
			if _, err := fmt.Sscanf(sc.Text(), "CLUSTER pid=%d dir=%s", &c.pid, &c.dir); err == nil {
				found <- c
			}
		}
		close(found)
	}()
	var c cluster
	select {
	case got, ok := <-found:
		if !ok {
			t.Fatal("helper process exited without starting a cluster")
		}
		c = got
	case <-time.After(3 * time.Minute):
		t.Fatal("helper process did not start a cluster within 3 minutes")
	}
	if !processAlive(c.pid) {
		t.Fatalf("postgres %d is not running while its test process is", c.pid)
	}

	// Kill the test process the hard way: no TestMain, no cleanup runs.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for processAlive(c.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("postgres %d still runs 60s after its test process was killed", c.pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(c.dir); err != nil {
		t.Fatalf("cluster directory should outlive a killed test process until swept: %v", err)
	}
	sweepStalePostgres(filepath.Dir(c.dir))
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Fatalf("sweep left the dead cluster's directory %s: %v", c.dir, err)
	}
}
