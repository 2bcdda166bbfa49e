//go:build linux || darwin || freebsd

package server

import "syscall"

// diskUsage is the size of the filesystem holding dir and the bytes an
// unprivileged process may still write there.
func diskUsage(dir string) (size, avail uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	bs := uint64(st.Bsize)
	return uint64(st.Blocks) * bs, uint64(st.Bavail) * bs, true
}
