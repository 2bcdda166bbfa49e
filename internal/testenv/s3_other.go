//go:build !linux

package testenv

import "syscall"

// dieWithParent has no portable equivalent outside Linux; there the
// t.Cleanup in S3 is the only thing stopping versitygw.
func dieWithParent() *syscall.SysProcAttr { return nil }
