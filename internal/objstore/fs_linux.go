//go:build linux

package objstore

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fsSys holds directory handles that let Put and Get name files relative
// to an already open directory, so a path is resolved in one system call
// instead of one openat and close per component (what os.Root does). Each
// handle was opened through the os.Root; openat2's RESOLVE_BENEATH keeps
// every lookup inside the store as os.Root does, and anything openat2
// cannot decide (an old kernel, a seccomp filter, a symbolic link it
// refuses) is handed to the os.Root.
type fsSys struct {
	top, tmp, meta *os.File
	noOpenat2      atomic.Bool
}

func openSys(root *os.Root) (*fsSys, error) {
	var f [3]*os.File
	for i, p := range []string{".", fsTmpDir, fsMetaDir} {
		d, err := root.Open(p)
		if err != nil {
			for _, o := range f[:i] {
				o.Close()
			}
			return nil, err
		}
		f[i] = d
	}
	return &fsSys{top: f[0], tmp: f[1], meta: f[2]}, nil
}

func (y *fsSys) close() {
	y.top.Close()
	y.tmp.Close()
	y.meta.Close()
}

// fd returns f's descriptor; the caller keeps f alive while using it.
func fd(f *os.File) int { return int(f.Fd()) }

// openBeneathFd opens the clean relative path name below dir with openat2
// and RESOLVE_BENEATH. ok is false when openat2 could not decide, and the
// caller must ask the os.Root instead. ENOENT is final: os.Root resolves
// the same components and would find the same thing missing.
func (y *fsSys) openBeneathFd(dir *os.File, name string, flags int, resolve uint64) (nfd int, ok bool, err error) {
	if y.noOpenat2.Load() {
		return -1, false, nil
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
	for {
		nfd, err = unix.Openat2(fd(dir), name, &how)
		if err != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(dir)
	switch {
	case err == nil:
		return nfd, true, nil
	case err == unix.ENOENT:
		return -1, true, &fs.PathError{Op: "openat2", Path: name, Err: err}
	case err == unix.ENOSYS || err == unix.EPERM:
		y.noOpenat2.Store(true)
	}
	return -1, false, nil
}

// openBeneath is openBeneathFd returning an *os.File.
func (y *fsSys) openBeneath(dir *os.File, name string, flags int, resolve uint64) (*os.File, bool, error) {
	nfd, ok, err := y.openBeneathFd(dir, name, flags, resolve)
	if !ok || err != nil {
		return nil, ok, err
	}
	return os.NewFile(uintptr(nfd), name), true, nil
}

// rawDir is a directory descriptor without an *os.File around it (which
// would cost an fcntl to set up).
type rawDir int

func (d rawDir) Fd() uintptr { return uintptr(d) }

func (d rawDir) Sync() error {
	for {
		err := unix.Fsync(int(d))
		if err != unix.EINTR {
			return err
		}
	}
}

func (d rawDir) Close() error { return unix.Close(int(d)) }

// createTemp creates the temp file name in the temp directory.
func (s *FS) createTemp(name string) (*os.File, error) {
	nfd, err := unix.Openat(fd(s.sys.tmp), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &fs.PathError{Op: "openat", Path: fsTmpDir + "/" + name, Err: err}
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// stampMtime sets f's access and modification times through its
// descriptor (utimensat with a NULL path), not by name.
func (s *FS) stampMtime(f *os.File, name string, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	err = conn.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	})
	if err == nil && errno != 0 {
		err = &fs.PathError{Op: "utimensat", Path: name, Err: errno}
	}
	return err
}

// openDir opens the directory p ("." for the top) for a rename into it
// and the fsync after.
func (s *FS) openDir(p string) (dirHandle, error) {
	nfd, ok, err := s.sys.openBeneathFd(s.sys.top, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if ok {
		if err != nil {
			return nil, err
		}
		return rawDir(nfd), nil
	}
	f, err := s.root.Open(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// renameTemp moves the temp file tmp to dst, whose directory dir is open.
func (s *FS) renameTemp(tmp string, dir dirHandle, dst string) error {
	err := unix.Renameat(fd(s.sys.tmp), tmp, int(dir.Fd()), path.Base(dst))
	runtime.KeepAlive(dir)
	if err != nil {
		return &os.LinkError{Op: "renameat", Old: fsTmpDir + "/" + tmp, New: dst, Err: err}
	}
	return nil
}

// renameTempToMeta moves the temp file tmp to the sidecar path mp (under
// fsMetaDir). It fails with fs.ErrNotExist when mp's directory is missing.
func (s *FS) renameTempToMeta(tmp, mp string) error {
	sub, base := path.Split(mp[len(fsMetaDir)+1:])
	dfd, err := unix.Openat(fd(s.sys.meta), path.Clean(sub), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "openat", Path: mp, Err: err}
	}
	defer unix.Close(dfd)
	if err := unix.Renameat(fd(s.sys.tmp), tmp, dfd, base); err != nil {
		return &os.LinkError{Op: "renameat", Old: fsTmpDir + "/" + tmp, New: mp, Err: err}
	}
	return nil
}

// statKey describes the file at key, following a link inside the store
// as os.Root does (an O_PATH descriptor: nothing is opened for reading).
func (s *FS) statKey(key string) (fs.FileInfo, error) {
	f, ok, err := s.sys.openBeneath(s.sys.top, key, unix.O_PATH, 0)
	if !ok {
		return s.root.Stat(key)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// openKey opens the file at key for reading.
func (s *FS) openKey(key string) (*os.File, error) {
	f, ok, err := s.sys.openBeneath(s.sys.top, key, unix.O_RDONLY, 0)
	if ok {
		return f, err
	}
	return s.root.Open(key)
}

// maxMetaSize bounds a sidecar read; real ones are about 130 bytes.
const maxMetaSize = 4 << 10

// readMeta returns the sidecar at mp (under fsMetaDir). Sidecars are
// written by the store itself, so no symbolic link is followed.
func (s *FS) readMeta(mp string) ([]byte, error) {
	nfd, ok, err := s.sys.openBeneathFd(s.sys.meta, mp[len(fsMetaDir)+1:], unix.O_RDONLY, unix.RESOLVE_NO_SYMLINKS)
	if !ok {
		return s.root.ReadFile(mp)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(nfd)
	buf := make([]byte, 512)
	n := 0
	for {
		if n == len(buf) {
			if n >= maxMetaSize {
				return nil, fmt.Errorf("sidecar %s: over %d bytes", mp, maxMetaSize)
			}
			buf = append(buf, make([]byte, n)...)
		}
		m, err := unix.Read(nfd, buf[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: mp, Err: err}
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
}

// openParent opens the directory holding p. For the top directory it
// returns the store's own handle, which the caller must not close: owned
// reports whether to.
func (s *FS) openParent(p string) (dfd int, owned, ok bool, err error) {
	parent := path.Dir(p)
	if parent == "." {
		return fd(s.sys.top), false, true, nil
	}
	dfd, ok, err = s.sys.openBeneathFd(s.sys.top, parent, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	return dfd, true, ok, err
}

// removeObject removes the file at key and its sidecar; found reports
// whether there was one. A key that does not exist or names a directory
// (only a prefix of other keys, not an object) is no error.
func (s *FS) removeObject(key string) (found bool, err error) {
	dir, owned, ok, err := s.openParent(key)
	if !ok {
		return s.removeObjectRoot(key)
	}
	if err != nil {
		return false, nil // ENOENT: no directory, no object
	}
	if owned {
		defer unix.Close(dir)
	}
	base := path.Base(key)
	var st unix.Stat_t
	err = unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR:
		return false, nil
	case err != nil:
		return false, &fs.PathError{Op: "fstatat", Path: key, Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return false, nil
	}
	if err := unix.Unlinkat(dir, base, 0); err != nil && err != unix.ENOENT {
		return true, &fs.PathError{Op: "unlinkat", Path: key, Err: err}
	}
	runtime.KeepAlive(s.sys.top)
	return true, s.removeMeta(metaPath(key))
}

// removeMeta removes the sidecar at mp (under fsMetaDir), if there is one.
func (s *FS) removeMeta(mp string) error {
	sub, base := path.Split(mp[len(fsMetaDir)+1:])
	dfd, err := unix.Openat(fd(s.sys.meta), path.Clean(sub), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "openat", Path: mp, Err: err}
	}
	defer unix.Close(dfd)
	if err := unix.Unlinkat(dfd, base, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "unlinkat", Path: mp, Err: err}
	}
	return nil
}

// removeEmptyDir removes the directory dir if it is empty, reporting
// whether it did.
func (s *FS) removeEmptyDir(dir string) bool {
	parent, owned, ok, err := s.openParent(dir)
	if !ok {
		return s.root.Remove(dir) == nil
	}
	if err != nil {
		return false
	}
	err = unix.Unlinkat(parent, path.Base(dir), unix.AT_REMOVEDIR)
	if owned {
		unix.Close(parent)
	}
	runtime.KeepAlive(s.sys.top)
	return err == nil
}
