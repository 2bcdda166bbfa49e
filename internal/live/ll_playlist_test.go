package live

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/objstore"
)

func TestPartNumber(t *testing.T) {
	for name, want := range map[string]int64{"part_0.m4s": 0, "part_17.m4s": 17, "part_9223372036854775807.m4s": 1<<63 - 1} {
		if k, ok := partNumber(name); !ok || k != want {
			t.Errorf("partNumber(%q) = %d, %v; want %d", name, k, ok, want)
		}
	}
	for _, name := range []string{"", "part_.m4s", "part_1.ts", "part_01.m4s", "part_-1.m4s", "part_+1.m4s", "seg_1.m4s",
		"1.m4s", "part_1.m4s.m4s", "part_9223372036854775808.m4s", "init_1.mp4", "xpart_1.m4s"} {
		if k, ok := partNumber(name); ok {
			t.Errorf("partNumber(%q) = %d, true; want not a part", name, k)
		}
	}
}

// FuzzPartNumber: whatever the name, partNumber accepts exactly the names
// partURI writes.
func FuzzPartNumber(f *testing.F) {
	for _, s := range []string{"part_0.m4s", "part_42.m4s", "part_.m4s", "part_007.m4s", "seg_3.m4s", "part_-5.m4s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		k, ok := partNumber(name)
		if ok && (k < 0 || partURI(k) != name) {
			t.Fatalf("partNumber(%q) = %d, true, but partURI gives %q", name, k, partURI(k))
		}
	})
}

// TestFindOrphansSortsTheEarlierPackagersParts: at a takeover, the parts
// below the stream's next part number are kept for later deletion, and
// those from it on (of the segment the earlier packager was cutting, whose
// numbers the new one writes again) are deleted at once; other objects and
// renditions' parts are left alone.
func TestFindOrphansSortsTheEarlierPackagersParts(t *testing.T) {
	store, err := objstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	keys := []string{"s/seg_0.m4s", "s/init_0.mp4", "s/part_x.m4s", "s/720p/part_9.m4s"}
	for k := range int64(10) {
		keys = append(keys, partKey("s", k))
	}
	for _, k := range keys {
		if _, err := store.Put(ctx, k, strings.NewReader("x"), 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	env := &streamEnv{id: "s", prefix: "s", p: &Packager{cfg: Config{Objects: store}}, log: slog.New(slog.DiscardHandler)}
	l := &llPlaylist{nextPart: 6}
	l.findOrphans(ctx, env)
	var want []string
	for k := range int64(6) {
		want = append(want, partKey("s", k))
	}
	if !slices.Equal(l.orphans, want) {
		t.Errorf("orphans %v, want %v", l.orphans, want)
	}
	for _, k := range keys {
		_, err := store.Stat(ctx, k)
		n, isPart := partNumber(strings.TrimPrefix(k, "s/"))
		if gone := errors.Is(err, objstore.ErrNotFound); gone != (isPart && n >= 6) {
			t.Errorf("%s: gone %v (%v)", k, gone, err)
		}
	}
}
