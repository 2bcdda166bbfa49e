package metastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the metadata store for distributed deployments: a PostgreSQL
// database reached through a pgx connection pool. Any number of weir
// processes may share one database: row locks (SELECT ... FOR UPDATE) order
// status transitions, version columns catch stale writers, and an advisory
// lock makes concurrent schema migrations run one at a time.
//
// JSON columns (Details, Spec, Result, Payload, Output) are JSONB: they come
// back equal as JSON but re-serialised (key order and whitespace may differ
// from what was written). Times are TIMESTAMPTZ, microsecond precision.
type Postgres struct {
	sqlStore
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// migrationLockKey is the pg_advisory_xact_lock key that serialises weir
// schema migrations on one database ("weirmeta" in ASCII).
const migrationLockKey int64 = 0x776569726d657461

// OpenPostgres connects to the database at url (a postgres:// or
// postgresql:// URL, or any connection string pgx accepts, including
// pool_max_conns and the other pgxpool parameters) and applies pending
// migrations. It fails if the server cannot be reached.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx errors quote the connection string, password included.
		return nil, fmt.Errorf("postgres metadata store %s: bad connection string: %w", redactURL(url), ErrInvalid)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres metadata store %s: %w", redactURL(url), err)
	}
	p := &Postgres{pool: pool}
	p.sqlStore.b = postgresBackend{pool}
	_, err = migrate(ctx, &p.sqlStore, migrationDialect{
		name: backendPostgres,
		lock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
		ledger: `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER     NOT NULL PRIMARY KEY,
			name       TEXT        NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL
		)`,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres metadata store %s: %w", redactURL(url), err)
	}
	return p, nil
}

// redactURL hides the password of a URL-form connection string for error
// messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	return u.Redacted()
}

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres metadata store: %w", markUnavailable(err))
	}
	return nil
}

// Close waits for borrowed connections to return and closes the pool.
// Closing twice is harmless.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// postgresBackend adapts a pgx pool to backend.
type postgresBackend struct{ pool *pgxpool.Pool }

func (b postgresBackend) reader() querier         { return pgQuerier{b.pool} }
func (b postgresBackend) writer() querier         { return pgQuerier{b.pool} }
func (b postgresBackend) lockClause() string      { return " FOR UPDATE OF s" }
func (b postgresBackend) timeArg(t time.Time) any { return t }
func (b postgresBackend) clockNow() string        { return "statement_timestamp()" }
func (b postgresBackend) clockPlus(n int) string {
	return fmt.Sprintf("(statement_timestamp() + $%d::bigint * interval '1 microsecond')", n)
}

func (b postgresBackend) inTx(ctx context.Context, fn func(q querier) error) error {
	return markUnavailable(pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return fn(pgQuerier{tx}) }))
}

// markUnavailable wraps err with ErrUnavailable when it says the server could
// not be reached: a failed connect, a broken or closed connection, or the
// server refusing work because it is shutting down or starting up (SQLSTATE
// class 08 and 57P01-57P03). Other errors, nil included, come back as they are.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// A caller's own deadline is not the server's fault (and
		// context.DeadlineExceeded would pass as a net.Error below).
		return err
	}
	var (
		ce *pgconn.ConnectError
		ne net.Error
		pe *pgconn.PgError
	)
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
	case errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "08") ||
		pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"):
	default:
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (b postgresBackend) constraint(err error) constraintKind {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return constraintNone
	}
	switch pe.Code {
	case "23505": // unique_violation
		return constraintUnique
	case "23503": // foreign_key_violation
		return constraintForeignKey
	}
	return constraintNone
}

// pgQuerier runs statements on a pool or a transaction.
type pgQuerier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (c pgQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, query, args...)
	if err != nil {
		return 0, markUnavailable(err)
	}
	return tag.RowsAffected(), nil
}

func (c pgQuerier) query(ctx context.Context, query string, args ...any) (rowIter, error) {
	rows, err := c.q.Query(ctx, query, args...)
	if err != nil {
		return nil, markUnavailable(err)
	}
	return pgRows{rows}, nil
}

// pgRows marks a connection lost mid-query as ErrUnavailable: pgx reports
// most failures of a query through the rows rather than from Query itself.
type pgRows struct{ pgx.Rows }

func (r pgRows) Err() error { return markUnavailable(r.Rows.Err()) }
