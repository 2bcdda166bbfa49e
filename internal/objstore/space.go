package objstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// NoSpace reports whether err says a disk is full: ENOSPC, or EDQUOT (a
// quota is used up). A write that failed this way can succeed later, once
// space is freed, unlike most other write errors.
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// MinFreeBytes is the free space below which FS.Ready fails: less than a
// few segments' worth, so writes are about to fail if they do not already.
const MinFreeBytes = 4 << 20

// Ready reports whether the store can take writes, for readiness probes:
// an error wrapping syscall.ENOSPC when the file system holding it has
// less than MinFreeBytes available, else any error met writing, syncing
// and removing a small probe file where Put writes its temp files.
func (s *FS) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if free, ok := FreeBytes(s.dir); ok && free < MinFreeBytes {
		return fmt.Errorf("object store %s: %d bytes free, below the %d it needs to take writes: %w", s.dir, free, MinFreeBytes, syscall.ENOSPC)
	}
	name := tempName()
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("object store %s: writing a probe file: %w", s.dir, err)
	}
	defer s.root.Remove(name)
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("object store %s: writing a probe file: %w", s.dir, err)
	}
	return nil
}
