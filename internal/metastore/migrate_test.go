package metastore

import (
	"testing"
	"testing/fstest"
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
