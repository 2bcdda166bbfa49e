package server

import (
	"os"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// TestMain removes the weir binary that the tests and benchmarks running
// `weir serve` as a process build (testenv.WeirBinary), which was left in
// the temporary directory after every run.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveWeirBinary()
	os.Exit(code)
}
