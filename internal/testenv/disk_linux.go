package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of sizeMiB mebibytes on a fresh directory and
// returns it; the test's cleanup unmounts it. It fails the test, naming
// what is missing, when mounting is impossible (it needs root or
// CAP_SYS_ADMIN): the tests that use it are about a full disk, which only
// a real file system of limited size can show.
func SmallDisk(t testing.TB, sizeMiB int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "weir-small-disk-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", sizeMiB)); err != nil {
		os.Remove(dir)
		t.Fatalf("mounting a %d MiB tmpfs on %s to play a full disk: %v (run the tests as root, or with CAP_SYS_ADMIN)", sizeMiB, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting the small disk %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// FillDisk writes a file in dir until the file system is full, then
// shrinks it to leave about leave bytes free. It returns the file's path;
// removing it gives the space back.
func FillDisk(t testing.TB, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(block)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	if leave > 0 {
		if err := f.Truncate(max(n-leave, 0)); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	return path
}
