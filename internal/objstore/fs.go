package objstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fsInternalDir is the top-level directory where FS keeps temp files and
// metadata. Keys inside it are rejected and List never shows it.
const fsInternalDir = ".weir-objstore"

const (
	fsTmpDir  = fsInternalDir + "/tmp"
	fsMetaDir = fsInternalDir + "/meta"
	// fsStaleTemp is how long a temp file must sit unmodified before NewFS
	// treats it as left behind by a crashed process. An upload in progress
	// writes continuously, so it keeps its temp file fresh.
	fsStaleTemp = time.Hour
	// fsLockStripes bounds the per-key locks that pair a data rename with
	// its metadata rename.
	fsLockStripes = 64
)

// FS stores each object as a plain file at dir/key, so the directory can be
// browsed, backed up or served by other tools.
//
// Writes are atomic: Put streams into a temp file under
// dir/.weir-objstore/tmp, fsyncs it and renames it over the key, so readers
// see the old object or the new one, never a partial one, and a failed or
// cancelled Put leaves nothing behind. The content type, size, modification
// time and a SHA-256 based ETag live in a small sidecar under
// dir/.weir-objstore/meta (named by a hash of the key, so sidecars can never
// collide with objects). A sidecar that does not match its data file (a
// crash between the two renames, or a file placed by hand) is ignored: the
// ETag then falls back to one derived from size and modification time, and
// the content type to application/octet-stream.
//
// All file access goes through an os.Root, so a symbolic link pointing
// outside dir is never followed. On Linux, Put and Get resolve paths from
// directory handles opened through that os.Root when the store opens (the
// top directory, the temp and the sidecar directories), with openat2's
// RESOLVE_BENEATH, which refuses the same escapes; what openat2 cannot
// decide goes to the os.Root. The temp and sidecar directories must
// therefore not be removed while the store is open. Keys whose first segment is ".weir-objstore"
// are rejected with ErrInvalidKey. Because objects are files, FS cannot hold
// both "a" and "a/b": the second Put fails with an error (S3 allows both).
//
// Concurrent Puts of one key within a process are serialized at the final
// rename; two processes writing the same key may leave a sidecar that does
// not match, which degrades to the fallback described above.
type FS struct {
	dir       string
	root      *os.Root
	sys       *fsSys
	locks     [fsLockStripes]sync.Mutex
	lastMtime atomic.Int64
}

var _ Store = (*FS)(nil)

// fsMeta is the sidecar content. Size and MtimeNanos tie it to one version
// of the data file.
type fsMeta struct {
	ContentType string `json:"content_type"`
	ETag        string `json:"etag"`
	Size        int64  `json:"size"`
	MtimeNanos  int64  `json:"mtime_ns"`
}

// NewFS opens (creating it if needed) a file store rooted at dir. Temp files
// older than an hour, left by a crashed process, are removed.
func NewFS(dir string) (*FS, error) {
	if dir == "" {
		return nil, errors.New("file object store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file object store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file object store %s: %w", abs, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("file object store %s: %w", abs, err)
	}
	for _, d := range []string{fsTmpDir, fsMetaDir} {
		if err := root.MkdirAll(d, 0o755); err != nil {
			root.Close()
			return nil, fmt.Errorf("file object store %s: %w", abs, err)
		}
	}
	sys, err := openSys(root)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("file object store %s: %w", abs, err)
	}
	s := &FS{dir: abs, root: root, sys: sys}
	s.sweepTemps(time.Now().Add(-fsStaleTemp))
	return s, nil
}

// Dir returns the absolute directory the store was opened on.
func (s *FS) Dir() string { return s.dir }

// Close releases the directory handle. The store must not be used after.
func (s *FS) Close() error {
	s.sys.close()
	return s.root.Close()
}

// sweepTemps removes temp files last modified before cutoff.
func (s *FS) sweepTemps(cutoff time.Time) {
	entries, err := fs.ReadDir(s.root.FS(), fsTmpDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || info.ModTime().After(cutoff) {
			continue
		}
		_ = s.root.Remove(fsTmpDir + "/" + e.Name())
	}
}

// checkKey validates key for this store.
func (s *FS) checkKey(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if key == fsInternalDir || strings.HasPrefix(key, fsInternalDir+"/") {
		return fmt.Errorf("key %q: reserved by the file store: %w", key, ErrInvalidKey)
	}
	return nil
}

func (s *FS) lock(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &s.locks[h.Sum32()%fsLockStripes]
}

func metaPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return fsMetaDir + "/" + h[:2] + "/" + h[2:]
}

// tempName returns a fresh name for a file in fsTmpDir.
func tempName() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nextMtime returns a modification time strictly later than any this store
// handed out before, so two quick writes of equal size never share one.
func (s *FS) nextMtime() time.Time {
	for {
		last := s.lastMtime.Load()
		now := time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if s.lastMtime.CompareAndSwap(last, now) {
			return time.Unix(0, now)
		}
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Put implements Store.
func (s *FS) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := s.checkKey(key); err != nil {
		return Info{}, err
	}
	if size < -1 {
		return Info{}, fmt.Errorf("put %s: negative size %d", key, size)
	}
	if contentType == "" {
		contentType = defaultContentType
	}
	dataTmp := tempName()
	metaTmp := tempName()
	committed := false
	defer func() {
		if !committed {
			_ = s.root.Remove(fsTmpDir + "/" + dataTmp)
			_ = s.root.Remove(fsTmpDir + "/" + metaTmp)
		}
	}()

	n, sum, mtime, err := s.writeData(ctx, dataTmp, r, size)
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	etag := sum[:32]
	meta := fsMeta{ContentType: contentType, ETag: etag, Size: n, MtimeNanos: mtime.UnixNano()}
	if err := s.writeMeta(metaTmp, meta); err != nil {
		return Info{}, fmt.Errorf("put %s: metadata: %w", key, err)
	}

	mu := s.lock(key)
	mu.Lock()
	dir, err := s.renameInto(dataTmp, key)
	if err == nil {
		// The data is in place; a failed metadata rename only degrades
		// the content type and ETag to the fallback, so it is reported
		// but the object stays.
		err = s.renameMeta(metaTmp, metaPath(key))
		if err != nil {
			_ = s.root.Remove(fsTmpDir + "/" + metaTmp)
			err = fmt.Errorf("put %s: metadata: %w", key, err)
		}
		committed = true
	} else {
		err = fmt.Errorf("put %s: %w", key, err)
	}
	mu.Unlock()
	if dir != nil {
		// Make the rename survive a crash. A failure is ignored: the
		// data itself is already synced.
		_ = dir.Sync()
		dir.Close()
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Key: key, Size: n, ContentType: contentType, ModTime: mtime, ETag: etag, SHA256: sum}, nil
}

// writeData streams r into the temp file name, hashing as it goes, and
// returns the byte count, the hex SHA-256 (the ETag is its first half) and
// the modification time it stamped.
func (s *FS) writeData(ctx context.Context, name string, r io.Reader, size int64) (int64, string, time.Time, error) {
	f, err := s.createTemp(name)
	if err != nil {
		return 0, "", time.Time{}, err
	}
	defer f.Close()
	h := sha256.New()
	bufp := copyBufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(f, h), bodyReader(ctx, r, size), *bufp)
	copyBufPool.Put(bufp)
	if err != nil {
		return 0, "", time.Time{}, err
	}
	mtime := s.nextMtime()
	if err := s.stampMtime(f, name, mtime); err != nil {
		return 0, "", time.Time{}, err
	}
	if err := f.Sync(); err != nil {
		return 0, "", time.Time{}, err
	}
	// The file system rounds the time to what it keeps; read it back so
	// the sidecar matches the data file exactly.
	fi, err := f.Stat()
	if err != nil {
		return 0, "", time.Time{}, err
	}
	if err := f.Close(); err != nil {
		return 0, "", time.Time{}, err
	}
	return n, hex.EncodeToString(h.Sum(nil)), fi.ModTime(), nil
}

func (s *FS) writeMeta(name string, m fsMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	f, err := s.createTemp(name)
	if err != nil {
		return err
	}
	// No fsync: a sidecar lost or torn by a crash fails to parse or to
	// match its data file, and Stat then falls back as documented on FS.
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dirHandle is an open directory that Put renames into and then fsyncs.
type dirHandle interface {
	Fd() uintptr
	Sync() error
	Close() error
}

// renameInto moves the temp file tmp to key and returns key's directory,
// still open for the fsync that makes the rename durable. The directory is
// created only when it is missing, and the rename is retried when a
// concurrent Delete prunes it in between (a rename into a removed directory
// fails with ENOENT).
func (s *FS) renameInto(tmp, key string) (dirHandle, error) {
	dirPath := path.Dir(key)
	var err error
	for range 10 {
		var dir dirHandle
		dir, err = s.openDir(dirPath)
		if errors.Is(err, fs.ErrNotExist) {
			err = s.root.MkdirAll(dirPath, 0o755)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			continue // created, or a parent was pruned while being walked
		}
		if err != nil {
			return nil, err
		}
		err = s.renameTemp(tmp, dir, key)
		if err == nil {
			return dir, nil
		}
		dir.Close()
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// renameMeta moves the temp file tmp to the sidecar path mp, creating its
// directory the first time one of its sidecars is written.
func (s *FS) renameMeta(tmp, mp string) error {
	err := s.renameTempToMeta(tmp, mp)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := s.root.MkdirAll(path.Dir(mp), 0o755); err != nil {
		return err
	}
	return s.renameTempToMeta(tmp, mp)
}

// notFound maps file system errors that mean "no such object" to ErrNotFound.
func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	return fmt.Errorf("key %q: %w", key, err)
}

// info describes the file at key, using its sidecar when the sidecar
// belongs to this version of the file.
func (s *FS) info(key string, fi fs.FileInfo) Info {
	inf := Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}
	var m fsMeta
	b, err := s.readMeta(metaPath(key))
	if err == nil && json.Unmarshal(b, &m) == nil &&
		m.Size == fi.Size() && m.MtimeNanos == fi.ModTime().UnixNano() && m.ETag != "" {
		inf.ContentType = m.ContentType
		inf.ETag = m.ETag
		return inf
	}
	inf.ContentType = defaultContentType
	inf.ETag = fmt.Sprintf("%x-%x", fi.Size(), fi.ModTime().UnixNano())
	return inf
}

// open opens the regular file holding key.
func (s *FS) open(ctx context.Context, key string) (*os.File, Info, error) {
	if err := s.checkKey(key); err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, err
	}
	f, err := s.openKey(key)
	if err != nil {
		return nil, Info{}, notFound(key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("key %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Info{}, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	return f, s.info(key, fi), nil
}

// Get implements Store. The returned reader is an *os.File, so it also
// implements io.Seeker and io.ReaderAt (handy for http.ServeContent).
func (s *FS) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	f, inf, err := s.open(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	return f, inf, nil
}

// GetRange implements Store.
func (s *FS) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error) {
	if offset < 0 || length < -1 {
		return nil, Info{}, fmt.Errorf("key %q: offset %d length %d: %w", key, offset, length, ErrInvalidRange)
	}
	f, inf, err := s.open(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	if offset > inf.Size {
		f.Close()
		return nil, Info{}, fmt.Errorf("key %q: offset %d past size %d: %w", key, offset, inf.Size, ErrInvalidRange)
	}
	n := inf.Size - offset
	if length >= 0 && length < n {
		n = length
	}
	return &sectionCloser{Reader: io.NewSectionReader(f, offset, n), Closer: f}, inf, nil
}

type sectionCloser struct {
	io.Reader
	io.Closer
}

// Stat implements Store.
func (s *FS) Stat(ctx context.Context, key string) (Info, error) {
	if err := s.checkKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := s.statKey(key)
	if err != nil {
		return Info{}, notFound(key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	return s.info(key, fi), nil
}

// List implements Store. Files that are not regular (symbolic links
// included) and files whose names are not valid keys are skipped.
func (s *FS) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var out []Info
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Directories pruned by a concurrent Delete simply vanish.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == fsInternalDir {
				return fs.SkipDir
			}
			if p != "." && p != start {
				dirPrefix := p + "/"
				if !strings.HasPrefix(dirPrefix, prefix) && !strings.HasPrefix(prefix, dirPrefix) {
					return fs.SkipDir
				}
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) || s.checkKey(p) != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // deleted since the directory was read
		}
		out = append(out, s.info(p, fi))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store. Parent directories left empty are removed.
func (s *FS) Delete(ctx context.Context, key string) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mu := s.lock(key)
	mu.Lock()
	found, err := s.removeObject(key)
	mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if !found {
		return nil
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		// Removing a non-empty directory fails, which ends the pruning.
		if !s.removeEmptyDir(dir) {
			break
		}
	}
	return nil
}

// removeObjectRoot removes the file at key and its sidecar through the
// os.Root; found reports whether there was one. A key that does not exist
// or names a directory (only a prefix of other keys, not an object) is no
// error.
func (s *FS) removeObjectRoot(key string) (found bool, err error) {
	fi, err := s.root.Lstat(key)
	switch {
	case err != nil:
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		return false, err
	case fi.IsDir():
		return false, nil
	}
	err = s.root.Remove(key)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		err = s.root.Remove(metaPath(key))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	return true, err
}

// PresignGet implements Store: files are served by weir itself, so it
// always returns ErrPresignUnsupported.
func (s *FS) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := s.checkKey(key); err != nil {
		return "", err
	}
	return "", fmt.Errorf("file store at %s: %w", s.dir, ErrPresignUnsupported)
}
