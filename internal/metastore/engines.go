package metastore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// This file holds the external engines (Store.PutEngine and friends).

const engineSelect = `SELECT name, manifest, source, created_at, updated_at FROM engines`

func engineDest(e *Engine) []any {
	return []any{&e.Name, jsonCol{&e.Manifest}, &e.Source, timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt}}
}

// PutEngine implements Store.PutEngine. It inserts first and updates when
// the name is taken, so two processes registering the same engine at once
// (every process reading one --engines-dir) both succeed, one creating it.
func (st *sqlStore) PutEngine(ctx context.Context, e Engine) (Engine, bool, error) {
	if e.Name == "" {
		return Engine{}, false, fmt.Errorf("engine without a name: %w", ErrInvalid)
	}
	if trimmed := bytes.TrimSpace(e.Manifest); len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return Engine{}, false, fmt.Errorf("engine %s: manifest is not a JSON object: %w", e.Name, ErrInvalid)
	}
	ts := now()
	for attempt := 0; ; attempt++ {
		n, err := st.b.writer().exec(ctx, `INSERT INTO engines (name, manifest, source, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING`,
			e.Name, string(e.Manifest), e.Source, st.timeArg(ts), st.timeArg(ts))
		if err != nil {
			return Engine{}, false, fmt.Errorf("engine %s: %w", e.Name, err)
		}
		created := n == 1
		if !created {
			n, err = st.b.writer().exec(ctx, `UPDATE engines SET manifest = $1, source = $2, updated_at = $3 WHERE name = $4`,
				string(e.Manifest), e.Source, st.timeArg(ts), e.Name)
			if err != nil {
				return Engine{}, false, fmt.Errorf("engine %s: %w", e.Name, err)
			}
			if n == 0 && attempt < 3 {
				continue // deleted between the two statements: insert again
			}
		}
		stored, err := st.GetEngine(ctx, e.Name)
		return stored, created, err
	}
}

// GetEngine implements Store.GetEngine.
func (st *sqlStore) GetEngine(ctx context.Context, name string) (Engine, error) {
	var e Engine
	found, err := queryOne(ctx, st.b.reader(), engineSelect+` WHERE name = $1`, []any{name}, engineDest(&e)...)
	if err != nil {
		return Engine{}, fmt.Errorf("engine %s: %w", name, err)
	}
	if !found {
		return Engine{}, fmt.Errorf("engine %s: %w", name, ErrNotFound)
	}
	return e, nil
}

// ListEngines implements Store.ListEngines; no engines is an empty,
// non-nil slice. The names are sorted here, not by ORDER BY: PostgreSQL's
// collation may order "a-c" after "ab", and both backends must agree.
func (st *sqlStore) ListEngines(ctx context.Context) ([]Engine, error) {
	rows, err := st.b.reader().query(ctx, engineSelect)
	if err != nil {
		return nil, fmt.Errorf("list engines: %w", err)
	}
	defer rows.Close()
	out := []Engine{}
	for rows.Next() {
		var e Engine
		if err := rows.Scan(engineDest(&e)...); err != nil {
			return nil, fmt.Errorf("list engines: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list engines: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteEngine implements Store.DeleteEngine.
func (st *sqlStore) DeleteEngine(ctx context.Context, name string) error {
	n, err := st.b.writer().exec(ctx, `DELETE FROM engines WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete engine %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("engine %s: %w", name, ErrNotFound)
	}
	return nil
}
