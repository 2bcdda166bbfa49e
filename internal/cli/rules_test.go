package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// The rules commands against the real REST API: rules are added from
// flags and from a file, listed and removed; a refused rule prints the
// server's reason naming the member.
func TestRulesAddListRemove(t *testing.T) {
	hs, meta, _ := startStreamsServer(t)
	ctx := testContext(t)
	if _, err := meta.CreateStream(context.Background(), metastore.Stream{ID: "live-a1", Kind: metastore.KindLive, Status: metastore.StatusCreated}); err != nil {
		t.Fatal(err)
	}
	res := runWeir(ctx, "rules", "add", "--name", "dead air", "--type", "silence", "--min-duration", "5s", "--stream", "live-a1",
		"--webhook", "https://hooks.example.com/weir", "--cooldown", "30s", "--server", hs.URL)
	if res.err != nil {
		t.Fatalf("add: %v\n%s", res.err, res.stderr)
	}
	id := regexp.MustCompile(`rule-[0-9a-f]{12}`).FindString(res.stdout)
	if id == "" || !strings.Contains(res.stdout, `"dead air": silence for 5s, stream live-a1`) || !strings.Contains(res.stdout, "whsec_") {
		t.Fatalf("add printed %q", res.stdout)
	}
	file := filepath.Join(t.TempDir(), "rule.json")
	if err := os.WriteFile(file, []byte(`{"name": "too loud", "condition": {"type": "loudness", "max_lufs": -10, "min_duration": "2s"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if res = runWeir(ctx, "rules", "add", "--file", file, "--server", hs.URL); res.err != nil || !strings.Contains(res.stdout, "loudness outside [-, -10] LUFS for 2s, all") {
		t.Fatalf("add --file: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	res = runWeir(ctx, "rules", "list", "--server", hs.URL)
	if res.err != nil || !strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, "too loud") || !strings.Contains(res.stdout, "30s") ||
		strings.Contains(res.stdout, "whsec_") {
		t.Fatalf("list: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	if res = runWeir(ctx, "rules", "add", "--name", "x", "--type", "ocr", "--pattern", "(unclosed", "--server", hs.URL); res.err == nil ||
		!strings.Contains(res.err.Error(), "422") || !strings.Contains(res.err.Error(), "condition.pattern") {
		t.Fatalf("a bad pattern: %v", res.err)
	}
	if res = runWeir(ctx, "rules", "add", "--type", "ocr", "--server", hs.URL); res.err == nil || !strings.Contains(res.err.Error(), "--name and --type") {
		t.Fatalf("no name: %v", res.err)
	}
	if res = runWeir(ctx, "rules", "remove", id, "--server", hs.URL); res.err != nil {
		t.Fatalf("remove: %v\n%s", res.err, res.stderr)
	}
	if res = runWeir(ctx, "rules", "list", "--server", hs.URL); res.err != nil || strings.Contains(res.stdout, id) {
		t.Fatalf("list after remove: %v\n%s", res.err, res.stdout)
	}
	if res = runWeir(ctx, "rules", "remove", id, "--server", hs.URL); res.err == nil {
		t.Fatal("removing an unknown rule succeeded")
	}
}
