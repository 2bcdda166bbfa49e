//go:build !linux

package vod

import "os/exec"

// dieWithParent is a no-op where the kernel cannot tie a child's life to
// its parent's; each attempt's fresh work directory still keeps an orphaned
// ffmpeg from touching a later attempt's files.
func dieWithParent(*exec.Cmd) {}
