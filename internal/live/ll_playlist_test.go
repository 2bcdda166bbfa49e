package live

import "testing"

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
