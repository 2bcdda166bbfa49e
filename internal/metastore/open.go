package metastore

import (
	"context"
	"fmt"
	"strings"
)

// Open opens the store named by url, runs its pending schema migrations and
// returns it. The accepted forms are:
//
//   - "sqlite:PATH" or "sqlite://PATH": an SQLite file at PATH (relative to
//     the working directory unless absolute, so "sqlite:///var/weir/meta.db"
//     is the absolute path /var/weir/meta.db). The parent directory is
//     created when missing. The path is taken literally: no query string.
//   - "postgres://..." or "postgresql://...": a PostgreSQL database, with the
//     URL passed to pgx unchanged (so sslmode, pool_max_conns and the other
//     pgx/libpq parameters work).
//   - anything else without "://": a plain SQLite file path.
//
// An empty url, an unknown scheme ("mysql://...") or a path containing a NUL
// byte fails with ErrInvalid before anything is opened.
func Open(ctx context.Context, url string) (Store, error) {
	t, err := parseStoreURL(url)
	if err != nil {
		return nil, err
	}
	switch t.backend {
	case backendPostgres:
		return OpenPostgres(ctx, t.dsn)
	default:
		return OpenSQLite(t.dsn)
	}
}

const (
	backendSQLite   = "sqlite"
	backendPostgres = "postgres"
)

// storeTarget is a parsed metadata URL: which backend, and what to hand it
// (a file path for SQLite, the connection URL for PostgreSQL).
type storeTarget struct {
	backend string
	dsn     string
}

// parseStoreURL decides which backend a metadata URL names; see Open.
func parseStoreURL(raw string) (storeTarget, error) {
	if strings.TrimSpace(raw) == "" {
		return storeTarget{}, fmt.Errorf("metadata url is empty: %w", ErrInvalid)
	}
	if strings.ContainsRune(raw, 0) {
		return storeTarget{}, fmt.Errorf("metadata url %q contains a NUL byte: %w", raw, ErrInvalid)
	}
	lower := strings.ToLower(raw)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return storeTarget{backend: backendPostgres, dsn: raw}, nil
	case strings.HasPrefix(lower, "sqlite://"):
		return sqliteTarget(raw, raw[len("sqlite://"):])
	case strings.HasPrefix(lower, "sqlite:"):
		return sqliteTarget(raw, raw[len("sqlite:"):])
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		return storeTarget{}, fmt.Errorf("metadata url %q: unsupported scheme %q (want sqlite: or postgres://): %w",
			raw, raw[:i], ErrInvalid)
	}
	return sqliteTarget(raw, raw)
}

func sqliteTarget(raw, path string) (storeTarget, error) {
	if strings.TrimSpace(path) == "" {
		return storeTarget{}, fmt.Errorf("metadata url %q names no SQLite file: %w", raw, ErrInvalid)
	}
	return storeTarget{backend: backendSQLite, dsn: path}, nil
}
