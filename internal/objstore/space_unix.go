//go:build linux || darwin

package objstore

import "syscall"

// FreeBytes is the space available to this process on the file system
// holding dir; false when it cannot be told.
func FreeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
