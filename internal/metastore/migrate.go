package metastore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Schema migrations live in migrations/<dialect>/NNNN_name.sql, numbered
// from 1 without gaps. Each runs once, in order, inside the same transaction
// that records it in schema_migrations, so a failed migration leaves nothing
// half-applied. A migration, once released, is never edited: schema changes
// are new files.

//go:embed migrations
var migrationFiles embed.FS

// migrationHooks are Go steps of migrations that SQL alone cannot do,
// run in the migration's transaction right after its file, by version.
var migrationHooks = map[int]func(ctx context.Context, q querier) error{
	8: indexAllResults,
}

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads a dialect's migrations, ordered by version; it fails
// when a file name is not NNNN_name.sql or the versions are not 1..n.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations %s: %w", dir, err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(e.Name(), ".sql") || name == "" {
			return nil, fmt.Errorf("migration file %s/%s: want NNNN_name.sql", dir, e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migration file %s/%s: %w", dir, e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations %s: version %d found where %d was expected", dir, m.version, i+1)
		}
	}
	return ms, nil
}

// migrationDialect is what the runner needs to know about a backend.
type migrationDialect struct {
	name string // "sqlite" or "postgres", also the migrations directory
	// lock, when set, runs first in the migration transaction and serialises
	// concurrent migrators (SQLite's BEGIN IMMEDIATE already does).
	lock string
	// ledger creates schema_migrations if it is missing.
	ledger string
}

// migrate applies the pending migrations of d. It refuses a database whose
// recorded schema is newer than this binary knows, rather than run against
// tables it does not understand. It returns the versions it applied.
func migrate(ctx context.Context, st *sqlStore, d migrationDialect) ([]int, error) {
	ms, err := loadMigrations(migrationFiles, path.Join("migrations", d.name))
	if err != nil {
		return nil, err
	}
	var applied []int
	err = st.b.inTx(ctx, func(q querier) error {
		applied = nil // inTx does not retry, but keep the result honest if it ever does
		if d.lock != "" {
			if _, err := q.exec(ctx, d.lock); err != nil {
				return fmt.Errorf("lock schema migrations: %w", err)
			}
		}
		if _, err := q.exec(ctx, d.ledger); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		done := map[int]bool{}
		rows, err := q.query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			done[v] = true
			if v > len(ms) {
				rows.Close()
				return fmt.Errorf("metadata schema version %d is newer than this weir knows (%d): upgrade weir", v, len(ms))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for _, m := range ms {
			if done[m.version] {
				continue
			}
			if _, err := q.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if after := migrationHooks[m.version]; after != nil {
				if err := after(ctx, q); err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
				}
			}
			if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, st.timeArg(now())); err != nil {
				return fmt.Errorf("record migration %d (%s): %w", m.version, m.name, err)
			}
			applied = append(applied, m.version)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s metadata schema: %w", d.name, err)
	}
	for _, v := range applied {
		slog.Info("metastore: applied schema migration", "backend", d.name, "version", v, "name", ms[v-1].name)
	}
	return applied, nil
}
