package metastore

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/weir-media/weir/internal/testenv"
)

func TestLoadMigrationsOrdersAndValidates(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	cases := []struct {
		name     string
		files    fstest.MapFS
		versions []int
		ok       bool
	}{
		{"ordered by number, not by name", fstest.MapFS{
			"m/0002_index.sql": file("B"), "m/0001_init.sql": file("A"), "m/10_more.sql": file("J"),
			"m/0003_c.sql": file("C"), "m/4_d.sql": file("D"), "m/5_e.sql": file("E"), "m/6_f.sql": file("F"),
			"m/7_g.sql": file("G"), "m/8_h.sql": file("H"), "m/9_i.sql": file("I"),
		}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, true},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, false},
		{"no name", fstest.MapFS{"m/0001.sql": file("A")}, nil, false},
		{"not sql", fstest.MapFS{"m/0001_a.txt": file("A")}, nil, false},
		{"zero", fstest.MapFS{"m/0000_a.sql": file("A")}, nil, false},
		{"duplicate number", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, nil, false},
	}
	for _, c := range cases {
		ms, err := loadMigrations(c.files, "m")
		if (err == nil) != c.ok {
			t.Errorf("%s: error %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		for i, m := range ms {
			if m.version != c.versions[i] {
				t.Errorf("%s: versions out of order: %+v", c.name, ms)
			}
		}
		if ms[0].name != "init" || ms[0].sql != "A" {
			t.Errorf("%s: first migration %+v", c.name, ms[0])
		}
	}
}

// Both dialects must describe the same schema history.
func TestMigrationDialectsStayInStep(t *testing.T) {
	lite, err := loadMigrations(migrationFiles, "migrations/"+backendSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations(migrationFiles, "migrations/"+backendPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d is %q for sqlite but %q for postgres", i+1, lite[i].name, pg[i].name)
		}
	}
}

// Publish keys are stored hashed; a database from before that change holds
// them in plain text, and migration 3 hashes them so the keys handed out
// earlier keep working and the copy on disk stops being usable.
func TestMigrationHashesPlainPublishKeys(t *testing.T) {
	for name, h := range map[string]harness{"sqlite": sqliteHarness(), "postgres": {fresh: func(t *testing.T) string { return testenv.Postgres(t) }}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			loc := h.fresh(t)
			s := h.open(t, loc)
			created := mustCreate(t, s, Stream{ID: "live-1", Kind: KindLive, PublishKey: "handed-out-before"})
			if created.PublishKey != "handed-out-before" || created.PublishKeyHash != HashPublishKey("handed-out-before") {
				t.Fatalf("created stream key %q hash %q: want the plain key returned once and its hash", created.PublishKey, created.PublishKeyHash)
			}
			st := rawSQL(t, s)
			if got := storedKey(t, st, "live-1"); got != HashPublishKey("handed-out-before") {
				t.Fatalf("stored publish_key %q, want its SHA-256", got)
			}
			// Make it a database as the previous schema left it.
			if _, err := st.b.writer().exec(ctx, `UPDATE streams SET publish_key = 'handed-out-before'`); err != nil {
				t.Fatal(err)
			}
			if _, err := st.b.writer().exec(ctx, `DELETE FROM schema_migrations WHERE version = 3`); err != nil {
				t.Fatal(err)
			}
			s.Close()

			s = h.open(t, loc)
			if got := storedKey(t, rawSQL(t, s), "live-1"); got != HashPublishKey("handed-out-before") {
				t.Fatalf("after the migration publish_key is %q, want its SHA-256", got)
			}
			found, err := s.GetStreamByPublishKey(ctx, "handed-out-before")
			if err != nil || found.ID != "live-1" || found.PublishKey != "" {
				t.Fatalf("by the old key after the migration: %+v, %v", found, err)
			}
			if _, err := s.GetStreamByPublishKey(ctx, HashPublishKey("handed-out-before")); err == nil {
				t.Fatal("the stored hash itself opened the stream: it must be hashed again, not compared as is")
			}
		})
	}
}

func rawSQL(t *testing.T, s Store) *sqlStore {
	t.Helper()
	switch v := s.(type) {
	case *SQLite:
		return &v.sqlStore
	case *Postgres:
		return &v.sqlStore
	}
	t.Fatalf("unknown store %T", s)
	return nil
}

func storedKey(t *testing.T, st *sqlStore, id string) string {
	t.Helper()
	var key string
	found, err := queryOne(context.Background(), st.b.reader(), `SELECT publish_key FROM streams WHERE id = $1`, []any{id}, &key)
	if err != nil || !found {
		t.Fatalf("reading publish_key of %s: %v (found %v)", id, err, found)
	}
	return key
}
