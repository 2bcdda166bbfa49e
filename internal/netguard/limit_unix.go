//go:build unix

package netguard

import "syscall"

// FileLimit is the process's open-file limit (RLIMIT_NOFILE, soft), or 0
// when it cannot be read or is unlimited.
func FileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 { // unlimited reads as a huge value
		return 0
	}
	return int(rl.Cur)
}
