//go:build unix

package bus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is the file StartBroker locks inside a data dir. kfake
// ignores files it does not know.
const lockFileName = "weir-broker.lock"

// lockDir takes an exclusive, non-blocking flock on dir's lock file, so two
// brokers never write the same data dir. The kernel drops the lock when the
// process dies, so a crash leaves nothing stale behind.
func lockDir(dir string) (unlock func() error, err error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrDataDirLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() error {
		// Closing the descriptor releases the flock.
		return f.Close()
	}, nil
}
