package objstore

import (
	"syscall"
	"testing"
	"time"
)

func init() {
	processCPU = func() time.Duration {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
}

// newTestFSWithoutOpenat2 is a store that behaves as on a kernel without
// openat2 (or with it filtered): every lookup goes through the os.Root.
func newTestFSWithoutOpenat2(t *testing.T) *FS {
	s := newTestFS(t)
	s.sys.noOpenat2.Store(true)
	return s
}

func TestFSWithoutOpenat2(t *testing.T) {
	t.Run("contract", func(t *testing.T) {
		runContract(t, func(t *testing.T) Store { return newTestFSWithoutOpenat2(t) }, contractOptions{presign: false, overwriteRounds: 5})
	})
	t.Run("symlinks outside", func(t *testing.T) { testFSSymlinksOutside(t, newTestFSWithoutOpenat2(t)) })
	t.Run("symlinks inside", func(t *testing.T) { testFSSymlinksInside(t, newTestFSWithoutOpenat2(t)) })
	t.Run("key directories", func(t *testing.T) { testFSKeyDirectories(t, newTestFSWithoutOpenat2(t)) })
	t.Run("delete", func(t *testing.T) { testFSDeleteRemovesOnlyObjects(t, newTestFSWithoutOpenat2(t)) })
	t.Run("mod times", func(t *testing.T) { testFSModTimes(t, newTestFSWithoutOpenat2(t)) })
}
