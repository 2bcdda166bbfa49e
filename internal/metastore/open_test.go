package metastore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStoreURLPicksTheBackend(t *testing.T) {
	cases := []struct {
		in      string
		backend string
		dsn     string
	}{
		{"sqlite:weir-data/meta.db", backendSQLite, "weir-data/meta.db"},
		{"sqlite:/var/lib/weir/meta.db", backendSQLite, "/var/lib/weir/meta.db"},
		{"sqlite://weir-data/meta.db", backendSQLite, "weir-data/meta.db"},
		{"sqlite:///var/lib/weir/meta.db", backendSQLite, "/var/lib/weir/meta.db"},
		{"SQLite:meta.db", backendSQLite, "meta.db"},
		{"weir-data/meta.db", backendSQLite, "weir-data/meta.db"},
		{"/abs/meta.db", backendSQLite, "/abs/meta.db"},
		{"meta.db?x=1", backendSQLite, "meta.db?x=1"},
		{"postgres://weir@db:5432/weir?sslmode=disable", backendPostgres, "postgres://weir@db:5432/weir?sslmode=disable"},
		{"postgresql://weir@db/weir", backendPostgres, "postgresql://weir@db/weir"},
		{"POSTGRES://weir@db/weir", backendPostgres, "POSTGRES://weir@db/weir"},
	}
	for _, c := range cases {
		got, err := parseStoreURL(c.in)
		if err != nil {
			t.Errorf("parseStoreURL(%q): %v", c.in, err)
			continue
		}
		if got.backend != c.backend || got.dsn != c.dsn {
			t.Errorf("parseStoreURL(%q) = %s %q, want %s %q", c.in, got.backend, got.dsn, c.backend, c.dsn)
		}
	}
}

func TestParseStoreURLRejectsWhatItCannotOpen(t *testing.T) {
	for _, in := range []string{"", "   ", "sqlite:", "sqlite://", "sqlite:  ", "mysql://db/weir", "s3://bucket", "meta\x00.db"} {
		if got, err := parseStoreURL(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseStoreURL(%q) = %+v, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestOpenSQLiteURLCreatesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "meta.db")
	s, err := Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sq, ok := s.(*SQLite)
	if !ok || sq.Path() != path {
		t.Fatalf("Open gave %T at %v, want *SQLite at %s", s, sq, path)
	}
	if _, err := Open(context.Background(), "mysql://x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open(mysql://x) = %v, want ErrInvalid", err)
	}
}

func FuzzParseStoreURL(f *testing.F) {
	for _, seed := range []string{"sqlite:meta.db", "sqlite:///var/meta.db", "postgres://u:p@h:5432/d?sslmode=disable",
		"postgresql://h/d", "weir-data/meta.db", "mysql://x", "", "sqlite:", "a://b", "sqlite:\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseStoreURL(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("parseStoreURL(%q) error %v is not ErrInvalid", in, err)
			}
			return
		}
		switch got.backend {
		case backendPostgres:
			if got.dsn != in {
				t.Fatalf("postgres URL %q rewritten to %q", in, got.dsn)
			}
		case backendSQLite:
			if strings.TrimSpace(got.dsn) == "" || strings.ContainsRune(got.dsn, 0) || !strings.HasSuffix(in, got.dsn) {
				t.Fatalf("parseStoreURL(%q) gave SQLite path %q", in, got.dsn)
			}
			// Naming the same path with sqlite:// must agree. (Not with
			// "sqlite:": "sqlite:" + "//x" reads as sqlite://x.)
			again, err := parseStoreURL("sqlite://" + got.dsn)
			if err != nil || again != got {
				t.Fatalf("sqlite://%s parses to %+v, %v; want %+v", got.dsn, again, err, got)
			}
		default:
			t.Fatalf("parseStoreURL(%q) picked backend %q", in, got.backend)
		}
	})
}
