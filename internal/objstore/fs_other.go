//go:build !linux

package objstore

import (
	"io/fs"
	"os"
	"time"
)

// fsSys is empty where FS resolves every path through its os.Root.
type fsSys struct{}

func openSys(*os.Root) (*fsSys, error) { return &fsSys{}, nil }

func (*fsSys) close() {}

func (s *FS) createTemp(name string) (*os.File, error) {
	return s.root.OpenFile(fsTmpDir+"/"+name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func (s *FS) stampMtime(_ *os.File, name string, t time.Time) error {
	return s.root.Chtimes(fsTmpDir+"/"+name, t, t)
}

func (s *FS) openDir(p string) (dirHandle, error) {
	f, err := s.root.Open(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (s *FS) renameTemp(tmp string, _ dirHandle, dst string) error {
	return s.root.Rename(fsTmpDir+"/"+tmp, dst)
}

func (s *FS) renameTempToMeta(tmp, mp string) error {
	return s.root.Rename(fsTmpDir+"/"+tmp, mp)
}

func (s *FS) openKey(key string) (*os.File, error) { return s.root.Open(key) }

func (s *FS) statKey(key string) (fs.FileInfo, error) { return s.root.Stat(key) }

func (s *FS) readMeta(mp string) ([]byte, error) { return s.root.ReadFile(mp) }

func (s *FS) removeObject(key string) (bool, error) { return s.removeObjectRoot(key) }

func (s *FS) removeEmptyDir(dir string) bool { return s.root.Remove(dir) == nil }
