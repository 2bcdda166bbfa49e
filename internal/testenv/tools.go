package testenv

import (
	"os/exec"
	"testing"
)

// RequireTool fails the test when a command-line peer (ffmpeg, ffprobe,
// kcat, dot...) is not on PATH. It fails rather than skips: `make test`
// installs every tool the suite uses, so a missing one is a broken setup
// that must not pass as green.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s is not installed; run `make test` (scripts/deps.sh test installs it)", name)
		}
	}
}
