package testenv

import "syscall"

// dieWithParent makes the kernel kill the child when the thread that
// started it exits, which for the locked thread in startVersitygw means
// when the test process exits.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
