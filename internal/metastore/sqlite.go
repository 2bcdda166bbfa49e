package metastore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite is the embedded metadata store: one SQLite file (plus its -wal and
// -shm companions) in WAL mode, through the pure-Go modernc.org/sqlite
// driver.
//
// Writes go through a pool of exactly one connection whose transactions
// begin IMMEDIATE, so writers from this process queue in Go instead of
// racing for SQLite's lock, and a transaction never has to upgrade a read
// lock (the classic source of SQLITE_BUSY that busy_timeout cannot fix).
// Reads use a separate pool of query-only connections that WAL lets run
// alongside the writer. busy_timeout (5 s) covers the remaining case: another
// process, such as a second weir command, writing the same file.
type SQLite struct {
	sqlStore
	path  string
	write *sql.DB
	read  *sql.DB

	// Statements outside transactions stay prepared on each pool.
	readStmts, writeStmts stmtCache

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*SQLite)(nil)

// weir_sha256_hex is HashPublishKey in SQL, for the migration that hashes
// the publish keys earlier versions stored in plain text.
func init() {
	sqlite.MustRegisterDeterministicScalarFunction("weir_sha256_hex", 1,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			switch v := args[0].(type) {
			case string:
				return HashPublishKey(v), nil
			case []byte:
				return HashPublishKey(string(v)), nil
			}
			return nil, fmt.Errorf("weir_sha256_hex: want text, got %T", args[0])
		})
}

// sqliteBusyTimeout is how long a connection waits for another process's
// lock before failing with SQLITE_BUSY.
const sqliteBusyTimeout = 5 * time.Second

// OpenSQLite opens (creating when missing, along with its parent directory)
// the SQLite database at path and applies pending migrations. The path is a
// file name, not a DSN: characters such as '?' and '#' are part of the name.
func OpenSQLite(path string) (*SQLite, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("sqlite metadata store %q: bad path: %w", path, ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	if err := ownerOnly(abs); err != nil {
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		sqliteBusyTimeout.Milliseconds())
	writer, err := sql.Open("sqlite", sqliteDSN(abs, common+"&_pragma=journal_mode(WAL)&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxIdleTime(0)
	writer.SetConnMaxLifetime(0)
	// The writer connects first so that journal_mode=WAL is in place before
	// any reader opens the file.
	if err := writer.PingContext(context.Background()); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	reader, err := sql.Open("sqlite", sqliteDSN(abs, common+"&_pragma=query_only(1)"))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)

	s := &SQLite{path: abs, write: writer, read: reader, readStmts: stmtCache{db: reader},
		writeStmts: stmtCache{db: writer}}
	s.sqlStore.b = sqliteBackend{s}
	_, err = migrate(context.Background(), &s.sqlStore, migrationDialect{
		name: backendSQLite,
		ledger: `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`,
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite metadata store %s: %w", path, err)
	}
	return s, nil
}

// ownerOnly creates the database file with mode 0600 when it is missing
// and takes group and other permissions off an existing one and its -wal
// and -shm files: it holds every stream's details and the publish-key
// hashes. SQLite gives the -wal and -shm files it creates the database
// file's mode.
func ownerOnly(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, name := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(name, perm&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// sqliteDSN builds a URI filename for modernc.org/sqlite. The path is
// percent-encoded where SQLite's URI parser would otherwise read it as
// syntax.
func sqliteDSN(abs, params string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(abs)) + "?" + params
}

// Path returns the absolute path of the database file.
func (s *SQLite) Path() string { return s.path }

// Ping checks that both connection pools can reach the file.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite metadata store %s: %w", s.path, err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite metadata store %s: %w", s.path, err)
	}
	return nil
}

// Close closes both pools; the WAL is checkpointed into the main file when
// the last connection closes. Closing twice is harmless.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.readStmts.close(), s.writeStmts.close(), s.read.Close(), s.write.Close())
	})
	return s.closeErr
}

// sqliteBackend adapts SQLite's pools to backend.
type sqliteBackend struct{ s *SQLite }

func (b sqliteBackend) reader() querier { return &b.s.readStmts }
func (b sqliteBackend) writer() querier { return &b.s.writeStmts }
func (b sqliteBackend) lockClause() string {
	// The IMMEDIATE transaction already holds the database write lock.
	return ""
}
func (b sqliteBackend) timeArg(t time.Time) any { return t.UnixMicro() }

// sqliteNow is the current time in microseconds since the epoch (julianday
// has millisecond resolution, plenty for leases).
const sqliteNow = `CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)`

func (b sqliteBackend) clockNow() string { return sqliteNow }
func (b sqliteBackend) clockPlus(n int) string {
	return fmt.Sprintf("(%s + $%d)", sqliteNow, n)
}

func (b sqliteBackend) inTx(ctx context.Context, fn func(q querier) error) error {
	tx, err := b.s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlQuerier{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (b sqliteBackend) constraint(err error) constraintKind {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return constraintNone
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return constraintUnique
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return constraintForeignKey
	}
	return constraintNone
}

// sqlQuerier runs statements on a *sql.DB or *sql.Tx.
type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

func (c sqlQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c sqlQuerier) query(ctx context.Context, query string, args ...any) (rowIter, error) {
	rows, err := c.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// sqlRows gives *sql.Rows the error-less Close of rowIter; database/sql
// reports a close-time failure through Err as well.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// stmtCache runs statements on db through prepared statements kept for
// reuse: parsing an upsert costs about as much as running it. The store
// issues a small, fixed set of statement texts, so the cache stays small.
type stmtCache struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtCache) exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c *stmtCache) query(ctx context.Context, query string, args ...any) (rowIter, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	return errors.Join(errs...)
}
