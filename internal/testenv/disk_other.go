//go:build !linux

package testenv

import "testing"

// SmallDisk fails the test: a size-limited file system is mounted only on
// Linux.
func SmallDisk(t testing.TB, sizeMiB int) string {
	t.Helper()
	t.Fatal("a small disk (tmpfs) for full-disk tests is only mounted on Linux")
	return ""
}

// FillDisk fails the test, as SmallDisk does.
func FillDisk(t testing.TB, dir string, leave int64) string {
	t.Helper()
	t.Fatal("full-disk tests run on Linux only")
	return ""
}
