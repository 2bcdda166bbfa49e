package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// The fingerprints commands against the real REST API: a generated clip
// is added, listed and removed; a file that is not audio is refused with
// the server's reason.
func TestFingerprintsAddListRemove(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "fpcalc")
	hs, _, _ := startStreamsServer(t)
	ctx := testContext(t)
	clip := filepath.Join(t.TempDir(), "jingle.wav")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
		"aevalsrc=0.5*sin(2*PI*(300*t+40*t*t)):s=44100:d=5", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}

	res := runWeir(ctx, "fingerprints", "add", clip, "--name", "station jingle", "--server", hs.URL)
	if res.err != nil {
		t.Fatalf("add: %v\n%s", res.err, res.stderr)
	}
	id := regexp.MustCompile(`fp-[0-9a-f]+`).FindString(res.stdout)
	if id == "" || !strings.Contains(res.stdout, `"station jingle": 5.0 s`) {
		t.Fatalf("add printed %q", res.stdout)
	}

	res = runWeir(ctx, "fingerprints", "list", "--server", hs.URL)
	if res.err != nil || !strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, "station jingle") {
		t.Fatalf("list: %v\n%s%s", res.err, res.stdout, res.stderr)
	}

	notAudio := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notAudio, []byte(strings.Repeat("not audio at all ", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	if res = runWeir(ctx, "fingerprints", "add", notAudio, "--server", hs.URL); res.err == nil ||
		!strings.Contains(res.err.Error(), "422") || !strings.Contains(res.err.Error(), "not a usable audio clip") {
		t.Fatalf("adding a text file: %v", res.err)
	}

	if res = runWeir(ctx, "fingerprints", "remove", id, "--server", hs.URL); res.err != nil {
		t.Fatalf("remove: %v\n%s", res.err, res.stderr)
	}
	res = runWeir(ctx, "fingerprints", "list", "--server", hs.URL)
	if res.err != nil || strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, "No references") {
		t.Fatalf("list after remove: %v\n%s", res.err, res.stdout)
	}
	if res = runWeir(ctx, "fingerprints", "remove", id, "--server", hs.URL); res.err == nil {
		t.Fatal("removing an unknown reference succeeded")
	}
}
