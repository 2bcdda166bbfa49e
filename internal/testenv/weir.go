package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var weirBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// WeirBinary builds cmd/weir once per test process and returns the
// binary's path, for tests that run `weir serve` as a process of its own.
// A TestMain should call RemoveWeirBinary after the tests.
func WeirBinary(t testing.TB) string {
	t.Helper()
	weirBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "weir-test-bin-")
		if err != nil {
			weirBinary.err = err
			return
		}
		weirBinary.dir = dir
		weirBinary.path = filepath.Join(dir, "weir")
		out, err := exec.Command("go", "build", "-o", weirBinary.path, "github.com/weir-media/weir/cmd/weir").CombinedOutput()
		if err != nil {
			weirBinary.err = fmt.Errorf("go build ./cmd/weir: %v\n%s", err, out)
		}
	})
	if weirBinary.err != nil {
		t.Fatal(weirBinary.err)
	}
	return weirBinary.path
}

// RemoveWeirBinary removes the binary WeirBinary built, if any.
func RemoveWeirBinary() {
	if weirBinary.dir != "" {
		os.RemoveAll(weirBinary.dir)
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
