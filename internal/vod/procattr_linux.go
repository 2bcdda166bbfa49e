package vod

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill ffmpeg if the worker process dies
// (SIGKILL, OOM), so no orphaned encoder keeps writing into a work
// directory the redelivered job is using.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
