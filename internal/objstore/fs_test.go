package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func newTestFS(t testing.TB) *FS {
	t.Helper()
	s, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFSContract(t *testing.T) {
	runContract(t, func(t *testing.T) Store { return newTestFS(t) }, contractOptions{presign: false, overwriteRounds: 15})
}

// TestFSPutHashesWhatItWrites: the file store's Put reports the SHA-256
// of the bytes it wrote (what PutBytes' callers record, so segments are
// hashed once) and its ETag is the first half of it, as before.
func TestFSPutHashesWhatItWrites(t *testing.T) {
	s := newTestFS(t)
	for _, size := range []int{0, 1, 256 << 10, 1<<20 + 3} {
		body := randomBytes(size, uint64(size))
		sum := sha256.Sum256(body)
		want := fmt.Sprintf("%x", sum)
		put, err := s.Put(context.Background(), "k", bytes.NewReader(body), -1, "")
		if err != nil {
			t.Fatal(err)
		}
		if put.SHA256 != want || put.ETag != want[:32] {
			t.Fatalf("size %d: SHA256 %s ETag %s, want %s and its first half", size, put.SHA256, put.ETag, want)
		}
		if st, err := s.Stat(context.Background(), "k"); err != nil || st.ETag != put.ETag || st.SHA256 != "" {
			t.Fatalf("size %d: Stat %+v, %v; want ETag %s and no SHA256", size, st, err, put.ETag)
		}
	}
}

// filesUnder lists every regular file below dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFSStoresObjectsAsPlainFilesWithHiddenMetadata(t *testing.T) {
	s := newTestFS(t)
	mustPut(t, s, "live/abc/seg_00001.ts", []byte("ts bytes"), "video/mp2t")
	b, err := os.ReadFile(filepath.Join(s.Dir(), "live", "abc", "seg_00001.ts"))
	if err != nil || string(b) != "ts bytes" {
		t.Fatalf("file on disk = %q, %v", b, err)
	}
	var meta, tmp int
	for _, f := range filesUnder(t, s.Dir()) {
		switch {
		case strings.HasPrefix(f, fsMetaDir+"/"):
			meta++
		case strings.HasPrefix(f, fsTmpDir+"/"):
			tmp++
		case f != "live/abc/seg_00001.ts":
			t.Errorf("unexpected file %s", f)
		}
	}
	if meta != 1 || tmp != 0 {
		t.Fatalf("%d metadata files and %d temp files, want 1 and 0", meta, tmp)
	}
	l, err := s.List(context.Background(), "")
	if err != nil || len(l) != 1 {
		t.Fatalf("List = %v, %v; want only the object", l, err)
	}
}

func TestFSFailedWritesLeaveNoTempFiles(t *testing.T) {
	s := newTestFS(t)
	ctx := context.Background()
	boom := errors.New("boom")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	attempts := []struct {
		name string
		put  func() error
	}{
		{"reader error", func() error {
			_, err := s.Put(ctx, "a/b", io.MultiReader(strings.NewReader("part"), iotest.ErrReader(boom)), -1, "")
			return err
		}},
		{"short body", func() error { _, err := s.Put(ctx, "a/b", strings.NewReader("abc"), 10, ""); return err }},
		{"long body", func() error { _, err := s.Put(ctx, "a/b", strings.NewReader("abcdef"), 2, ""); return err }},
		{"cancelled", func() error { _, err := s.Put(cctx, "a/b", strings.NewReader("abc"), 3, ""); return err }},
		{"directory in the way", func() error {
			mustPut(t, s, "d/inner", []byte("x"), "")
			_, err := s.Put(ctx, "d", strings.NewReader("abc"), 3, "")
			return err
		}},
		{"file in the way", func() error {
			mustPut(t, s, "f", []byte("x"), "")
			_, err := s.Put(ctx, "f/inner", strings.NewReader("abc"), 3, "")
			return err
		}},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			if err := a.put(); err == nil {
				t.Fatal("Put succeeded")
			}
			for _, f := range filesUnder(t, s.Dir()) {
				if strings.HasPrefix(f, fsTmpDir+"/") {
					t.Errorf("temp file %s left behind", f)
				}
			}
		})
	}
	if _, err := s.Stat(ctx, "a/b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a/b exists after only failed Puts: %v", err)
	}
	if got, _ := mustGet(t, s, "d/inner"); string(got) != "x" {
		t.Fatal("d/inner damaged")
	}
	if got, _ := mustGet(t, s, "f"); string(got) != "x" {
		t.Fatal("f damaged")
	}
}

func TestFSReopenedStoreSeesTheObjects(t *testing.T) {
	dir := t.TempDir()
	s1, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := mustPut(t, s1, "vod/v/master.m3u8", []byte("#EXTM3U\n"), "application/vnd.apple.mpegurl")
	s1.Close()

	s2, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, inf := mustGet(t, s2, "vod/v/master.m3u8")
	if string(got) != "#EXTM3U\n" || inf.ContentType != put.ContentType || inf.ETag != put.ETag || !inf.ModTime.Equal(put.ModTime) {
		t.Fatalf("reopened store: %q %+v, want %+v", got, inf, put)
	}
}

func TestFSNewFSSweepsOnlyStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	stale := filepath.Join(dir, fsTmpDir, "stale")
	fresh := filepath.Join(dir, fsTmpDir, "fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("left over"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * fsStaleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	s, err = NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file survived: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file (maybe another process's upload) was removed: %v", err)
	}
}

func TestFSSymlinksOutsideTheDirectoryAreNotFollowed(t *testing.T) {
	testFSSymlinksOutside(t, newTestFS(t))
}

func testFSSymlinksOutside(t *testing.T, s *FS) {
	ctx := context.Background()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("top secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.Dir(), "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(s.Dir(), "evilfile")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"evil/secret", "evilfile"} {
		if rc, _, err := s.Get(ctx, key); err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("Get(%q) followed the link and read %q", key, b)
		}
		if _, err := s.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q) followed the link", key)
		}
	}
	if _, err := s.Put(ctx, "evil/planted", strings.NewReader("x"), 1, ""); err == nil {
		t.Error("Put through a link to outside succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was written outside the store")
	}
	l, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 0 {
		t.Errorf("List shows %v, want no objects (links are not objects)", l)
	}
	if err := s.Delete(ctx, "evil/secret"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
			t.Error("Delete through a link removed a file outside the store")
		}
	}
}

func TestFSInternalDirectoryIsReserved(t *testing.T) {
	s := newTestFS(t)
	for _, key := range []string{fsInternalDir, fsInternalDir + "/tmp/x", fsMetaDir + "/ab/cd"} {
		if _, err := s.Put(context.Background(), key, strings.NewReader("x"), 1, ""); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(context.Background(), key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	// A similar name that is not the reserved one is an ordinary key.
	mustPut(t, s, fsInternalDir+"x/y", []byte("ok"), "")
}

func TestFSFileChangedBehindTheStoresBackGetsANewETag(t *testing.T) {
	s := newTestFS(t)
	put := mustPut(t, s, "seg.ts", []byte("original"), "video/mp2t")
	// Same size, different bytes, written by another tool.
	if err := os.WriteFile(filepath.Join(s.Dir(), "seg.ts"), []byte("replaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := put.ModTime.Add(time.Second)
	if err := os.Chtimes(filepath.Join(s.Dir(), "seg.ts"), later, later); err != nil {
		t.Fatal(err)
	}
	inf, err := s.Stat(context.Background(), "seg.ts")
	if err != nil {
		t.Fatal(err)
	}
	if inf.ETag == put.ETag {
		t.Fatalf("ETag %s unchanged after the content changed", inf.ETag)
	}
	if inf.ContentType != defaultContentType {
		t.Fatalf("content type %q from a sidecar that no longer matches", inf.ContentType)
	}
}

func TestFSDeletePrunesEmptyDirectories(t *testing.T) {
	s := newTestFS(t)
	mustPut(t, s, "live/s1/a/seg.ts", []byte("x"), "")
	mustPut(t, s, "live/s2/seg.ts", []byte("x"), "")
	if err := s.Delete(context.Background(), "live/s1/a/seg.ts"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "live", "s1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directory live/s1 kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "live", "s2", "seg.ts")); err != nil {
		t.Errorf("sibling removed: %v", err)
	}
}

func TestFSConcurrentPutsAndDeletesInOneDirectory(t *testing.T) {
	s := newTestFS(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Sprintf("live/s/w%d/seg_%03d.ts", w, i)
				if _, err := s.Put(ctx, key, strings.NewReader("seg"), 3, "video/mp2t"); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if _, err := s.List(ctx, "live/"); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("List = %v, %v; want empty", l, err)
	}
}

func TestFSConcurrentPutsOfOneKeyKeepMetadataConsistent(t *testing.T) {
	s := newTestFS(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				body := fmt.Sprintf("writer %d round %02d", w, i)
				if _, err := s.Put(ctx, "k", strings.NewReader(body), int64(len(body)), fmt.Sprintf("text/w%d", w)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, inf := mustGet(t, s, "k")
	// The sidecar must describe the version that won, so the content type
	// names the writer whose bytes are there.
	if want := "text/w" + string(got[7]); inf.ContentType != want {
		t.Fatalf("content %q has content type %q, want %q", got, inf.ContentType, want)
	}
}

func TestFSGetReturnsASeekableReader(t *testing.T) {
	s := newTestFS(t)
	mustPut(t, s, "v.mp4", []byte("0123456789"), "video/mp4")
	rc, _, err := s.Get(context.Background(), "v.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rs, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("Get returned %T, not an io.ReadSeeker", rc)
	}
	if _, err := rs.Seek(7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rs); !bytes.Equal(b, []byte("789")) {
		t.Fatalf("after Seek(7) read %q", b)
	}
}

func BenchmarkFSPutSegment(b *testing.B) {
	s := newTestFS(b)
	seg := randomBytes(2<<20, 7)
	ctx := context.Background()
	b.SetBytes(int64(len(seg)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("live/bench/seg_%05d.ts", i%64)
		if _, err := s.Put(ctx, key, bytes.NewReader(seg), int64(len(seg)), "video/mp2t"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFSGetSegment(b *testing.B) {
	s := newTestFS(b)
	seg := randomBytes(2<<20, 7)
	ctx := context.Background()
	mustPut(b, s, "live/bench/seg.ts", seg, "video/mp2t")
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(seg)))
	b.ResetTimer()
	for b.Loop() {
		rc, _, err := s.Get(ctx, "live/bench/seg.ts")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func TestFSSymlinksInsideTheDirectoryAreFollowed(t *testing.T) {
	testFSSymlinksInside(t, newTestFS(t))
}

// testFSSymlinksInside checks that a link to a directory inside the store
// works as os.Root allows: objects can be read and written through it.
func testFSSymlinksInside(t *testing.T, s *FS) {
	mustPut(t, s, "real/seg.ts", []byte("seg"), "video/mp2t")
	if err := os.Symlink("real", filepath.Join(s.Dir(), "alias")); err != nil {
		t.Fatal(err)
	}
	// Sidecars are named by key, so "alias/seg.ts" has none of its own.
	if got, _ := mustGet(t, s, "alias/seg.ts"); string(got) != "seg" {
		t.Fatalf("Get through an inside link = %q", got)
	}
	if inf, err := s.Stat(context.Background(), "alias/seg.ts"); err != nil || inf.Size != 3 {
		t.Fatalf("Stat through an inside link = %+v, %v", inf, err)
	}
	if _, err := s.Stat(context.Background(), "alias"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a link to a directory = %v, want ErrNotFound", err)
	}
	mustPut(t, s, "alias/new.ts", []byte("new"), "")
	if b, err := os.ReadFile(filepath.Join(s.Dir(), "real", "new.ts")); err != nil || string(b) != "new" {
		t.Fatalf("Put through an inside link left %q, %v in the target", b, err)
	}
}

func TestFSPutCreatesAndRecreatesKeyDirectories(t *testing.T) {
	testFSKeyDirectories(t, newTestFS(t))
}

// testFSKeyDirectories checks that Put creates a missing key directory at
// any depth, also when Delete pruned it or another tool removed it.
func testFSKeyDirectories(t *testing.T, s *FS) {
	ctx := context.Background()
	deep := "a/b/c/d/e/f/seg.ts"
	mustPut(t, s, deep, []byte("deep"), "video/mp2t")
	if got, _ := mustGet(t, s, deep); string(got) != "deep" {
		t.Fatalf("Get(%q) = %q", deep, got)
	}
	mustPut(t, s, "live/s1/seg_1.ts", []byte("one"), "")
	if err := s.Delete(ctx, "live/s1/seg_1.ts"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "live")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete did not prune live/: %v", err)
	}
	mustPut(t, s, "live/s1/seg_2.ts", []byte("two"), "")
	if b, err := os.ReadFile(filepath.Join(s.Dir(), "live", "s1", "seg_2.ts")); err != nil || string(b) != "two" {
		t.Fatalf("after the directory was pruned, the file holds %q, %v", b, err)
	}
	if err := os.RemoveAll(filepath.Join(s.Dir(), "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.Dir(), filepath.FromSlash(path.Dir(metaPath(deep))))); err != nil {
		t.Fatal(err)
	}
	put := mustPut(t, s, deep, []byte("again"), "video/mp2t")
	if got, inf := mustGet(t, s, deep); string(got) != "again" || inf.ETag != put.ETag {
		t.Fatalf("after removing the directories behind the store: %q, ETag %s, want %s", got, inf.ETag, put.ETag)
	}
	// A key below an object is still refused.
	if _, err := s.Put(ctx, "live/s1/seg_2.ts/x", strings.NewReader("x"), 1, ""); err == nil {
		t.Fatal("Put below an object succeeded")
	}
}

func TestFSDeleteRemovesOnlyObjects(t *testing.T) {
	testFSDeleteRemovesOnlyObjects(t, newTestFS(t))
}

// testFSDeleteRemovesOnlyObjects checks Delete's edges: a directory is a
// prefix, not an object; a key below an object and a missing key are no
// error; a link is removed, not its target; the sidecar goes with the file.
func testFSDeleteRemovesOnlyObjects(t *testing.T, s *FS) {
	ctx := context.Background()
	mustPut(t, s, "live/s/seg.ts", []byte("seg"), "video/mp2t")
	for _, key := range []string{"live/s", "live", "live/s/seg.ts/below", "live/none", "gone/a/b"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete(%q) = %v", key, err)
		}
	}
	if got, _ := mustGet(t, s, "live/s/seg.ts"); string(got) != "seg" {
		t.Fatalf("after deleting prefixes, the object holds %q", got)
	}
	if err := os.Symlink("seg.ts", filepath.Join(s.Dir(), "live", "s", "link.ts")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "live/s/link.ts"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(s.Dir(), "live", "s", "link.ts")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("link kept: %v", err)
	}
	if err := s.Delete(ctx, "live/s/seg.ts"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), filepath.FromSlash(metaPath("live/s/seg.ts")))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("sidecar kept: %v", err)
	}
	if l := filesUnder(t, s.Dir()); len(l) != 0 {
		t.Fatalf("files left: %v", l)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "live")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty directory live kept: %v", err)
	}
}

func TestFSModTimesAreUniqueAndMatchTheSidecar(t *testing.T) {
	testFSModTimes(t, newTestFS(t))
}

// testFSModTimes puts equal-sized objects as fast as it can and checks that
// every modification time is new, is the data file's own, and that the
// sidecar written with it is accepted (the ETag and content type survive).
func testFSModTimes(t *testing.T, s *FS) {
	ctx := context.Background()
	var last time.Time
	for i := range 40 {
		key := fmt.Sprintf("live/s/seg_%d.ts", i%3)
		body := fmt.Sprintf("body %02d", i)
		put := mustPut(t, s, key, []byte(body), "video/mp2t")
		if !put.ModTime.After(last) {
			t.Fatalf("Put %d: ModTime %v not after %v", i, put.ModTime, last)
		}
		last = put.ModTime
		fi, err := os.Stat(filepath.Join(s.Dir(), filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(put.ModTime) {
			t.Fatalf("Put %d: file ModTime %v, Put said %v", i, fi.ModTime(), put.ModTime)
		}
		inf, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if inf.ETag != put.ETag || inf.ContentType != "video/mp2t" || !inf.ModTime.Equal(put.ModTime) {
			t.Fatalf("Put %d: Stat = %+v, Put = %+v (sidecar not matched)", i, inf, put)
		}
	}
}

// processCPU returns the CPU time (user and system) this process has used,
// where the platform tells it; nil elsewhere.
var processCPU func() time.Duration

// reportCPU adds a cpu-ns/op metric to b from the CPU time used since
// start: the live path cares about CPU, and ns/op here is mostly fsync.
func reportCPU(b *testing.B, start time.Duration) {
	if processCPU != nil && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuNow() time.Duration {
	if processCPU == nil {
		return 0
	}
	return processCPU()
}

// BenchmarkFSPutSmall is the live packager's pattern: each 2-s segment
// (about 300 KB) goes under a new key in the stream's directory, the 1 KB
// playlist beside it is rewritten, and the segment is read back; "part"
// is an LL-HLS part put and an older one deleted. Count the
// system calls per operation with strace, as docs/benchmarks.md describes.
func BenchmarkFSPutSmall(b *testing.B) {
	ctx := context.Background()
	seg := randomBytes(300<<10, 7)
	playlist := randomBytes(1<<10, 8)
	b.Run("segment", func(b *testing.B) {
		s := newTestFS(b)
		b.SetBytes(int64(len(seg)))
		start := cpuNow()
		for i := 0; b.Loop(); i++ {
			key := fmt.Sprintf("live/s0123456789/seg_%05d.ts", i%256)
			if _, err := s.Put(ctx, key, bytes.NewReader(seg), int64(len(seg)), "video/mp2t"); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("playlist", func(b *testing.B) {
		s := newTestFS(b)
		b.SetBytes(int64(len(playlist)))
		start := cpuNow()
		for b.Loop() {
			if _, err := s.Put(ctx, "live/s0123456789/index.m3u8", bytes.NewReader(playlist), int64(len(playlist)), "application/vnd.apple.mpegurl"); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("part", func(b *testing.B) {
		// LL-HLS parts: a small object in, the one that left the
		// window (eight back) deleted, as the packager does.
		s := newTestFS(b)
		part := playlist[:512]
		b.SetBytes(int64(len(part)))
		start := cpuNow()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Put(ctx, fmt.Sprintf("live/s0123456789/part_%06d.m4s", i), bytes.NewReader(part), int64(len(part)), "video/mp4"); err != nil {
				b.Fatal(err)
			}
			if i >= 8 {
				if err := s.Delete(ctx, fmt.Sprintf("live/s0123456789/part_%06d.m4s", i-8)); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportCPU(b, start)
	})
	b.Run("readback", func(b *testing.B) {
		s := newTestFS(b)
		mustPut(b, s, "live/s0123456789/seg_00001.ts", seg, "video/mp2t")
		buf := make([]byte, len(seg)+1)
		b.SetBytes(int64(len(seg)))
		start := cpuNow()
		for b.Loop() {
			rc, _, err := s.Get(ctx, "live/s0123456789/seg_00001.ts")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(rc, buf[:len(seg)]); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
		reportCPU(b, start)
	})
}
