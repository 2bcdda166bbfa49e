package metastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sqliteHarness() harness {
	return harness{fresh: func(t *testing.T) string {
		return "sqlite:" + filepath.Join(t.TempDir(), "meta.db")
	}}
}

func TestSQLiteContract(t *testing.T) {
	runContract(t, sqliteHarness())
}

func openTestSQLite(t testing.TB, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteRunsInWALWithForeignKeysAndIndexedPublishKeys(t *testing.T) {
	ctx := context.Background()
	s := openTestSQLite(t, filepath.Join(t.TempDir(), "meta.db"))
	var mode string
	if err := s.read.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.write.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
	}
	// The reader pool must not write, even by mistake.
	if _, err := s.read.ExecContext(ctx, `CREATE TABLE oops (x INTEGER)`); err == nil {
		t.Fatal("the read pool accepted a write")
	}
	rows, err := s.read.QueryContext(ctx, `EXPLAIN QUERY PLAN `+streamSelect+
		` WHERE s.publish_key = $1 AND s.publish_key <> ''`, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "streams_publish_key_idx") {
		t.Fatalf("publish key lookup does not use its index:\n%s", strings.Join(plan, "\n"))
	}
}

func TestSQLitePathIsAFileNameNotADSN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new dir")
	path := filepath.Join(dir, "meta?mode=ro#frag%20.db")
	s := openTestSQLite(t, path)
	mustCreate(t, s, Stream{ID: "vod-1", Kind: KindVOD})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the literal path: %v", err)
	}
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
}

// Two stores on one file stand in for two processes: each has its own
// writer connection, so they contend for SQLite's lock, and busy_timeout
// with BEGIN IMMEDIATE must keep SQLITE_BUSY away.
func TestSQLiteTwoStoresOnOneFileNeverReportBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	a, b := openTestSQLite(t, path), openTestSQLite(t, path)
	mustCreate(t, a, Stream{ID: "live-1", Kind: KindLive})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w, s := range []*SQLite{a, b, a, b} {
		wg.Go(func() {
			for i := range 50 {
				err := s.UpsertSegment(ctx, Segment{StreamID: "live-1", Rendition: fmt.Sprint(w), ChunkIndex: int64(i)})
				if err == nil {
					_, err = s.TransitionStatus(ctx, "live-1", StatusLive, func(st *Stream) { st.Gaps++ })
				}
				if err != nil {
					failures.Add(1)
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		return
	}
	got, err := b.GetStream(ctx, "live-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.SegmentCount != 200 || got.Gaps != 200 {
		t.Fatalf("segments %d gaps %d, want 200 and 200", got.SegmentCount, got.Gaps)
	}
}

func BenchmarkSQLiteUpsertSegment(b *testing.B) {
	ctx := context.Background()
	s := openTestSQLite(b, filepath.Join(b.TempDir(), "meta.db"))
	mustCreateB(b, s)
	seg := Segment{StreamID: "live-1", Key: "live/live-1/segment.ts", DurationUS: 2_000_000, Size: 188 * 1000,
		SHA256: strings.Repeat("ab", 32)}
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		i := int64(0)
		for b.Loop() {
			seg.ChunkIndex = i
			i++
			if err := s.UpsertSegment(ctx, seg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "upserts/s")
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			g := seg
			g.Rendition = "parallel"
			for pb.Next() {
				g.ChunkIndex = next.Add(1)
				if err := s.UpsertSegment(ctx, g); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "upserts/s")
	})
}

func mustCreateB(b *testing.B, s Store) {
	b.Helper()
	if _, err := s.CreateStream(context.Background(), Stream{ID: "live-1", Kind: KindLive}); err != nil {
		b.Fatal(err)
	}
}

// The database holds every stream's details and publish-key hashes: only
// its owner may read it, a new one and one left readable by an older weir
// alike, along with the -wal and -shm files SQLite keeps beside it.
func TestSQLiteFilesAreOwnerOnly(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, path string) {
		t.Helper()
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v, want no group or other permissions", filepath.Base(name), perm)
			}
		}
	}
	t.Run("a new database", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		path := filepath.Join(dir, "weir.db")
		s := openTestSQLite(t, path)
		if _, err := s.CreateStream(ctx, Stream{ID: "live-000000000001", Kind: KindLive, Status: StatusCreated}); err != nil {
			t.Fatal(err)
		}
		check(t, path)
		if fi, _ := os.Stat(dir); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("the directory it created has mode %v, want 0700", fi.Mode().Perm())
		}
	})
	t.Run("an existing world-readable database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "weir.db")
		s, err := OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateStream(ctx, Stream{ID: "live-000000000002", Kind: KindLive, Status: StatusCreated}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.Chmod(path, 0o644); err != nil { // as weir before 0600 left it
			t.Fatal(err)
		}
		s = openTestSQLite(t, path)
		if _, err := s.GetStream(ctx, "live-000000000002"); err != nil {
			t.Fatalf("the existing database lost its rows: %v", err)
		}
		check(t, path)
	})
}

// TestSQLiteListsAStreamsJobsByItsIndex: a stream's jobs, newest first, a
// page and the next, are read through jobs_stream_created_idx in order
// (no scan of every job, no sort).
func TestSQLiteListsAStreamsJobsByItsIndex(t *testing.T) {
	ctx := context.Background()
	s := openTestSQLite(t, filepath.Join(t.TempDir(), "meta.db"))
	cursor := encodeCursor(pageCursor{createdAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), id: "job-1"})
	for _, after := range []string{"", cursor} {
		query, args, err := s.jobsQuery(JobFilter{StreamID: "vod-1"}, 100, after)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.read.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "\n")
		if !strings.Contains(p, "jobs_stream_created_idx") || strings.Contains(p, "TEMP B-TREE") {
			t.Fatalf("a stream's jobs (cursor %q) are not read in order through jobs_stream_created_idx:\n%s", after, p)
		}
	}
}
