package vod

import (
	"strings"
	"testing"
	"time"
)

func TestParseSegmentList(t *testing.T) {
	list := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n" +
		"#EXTINF:4.000000,\nseg_00000.m4s\n#EXTINF:4.004000,\nseg_00001.m4s\n#EXTINF:1.500000,\nseg_00002.m4s\n#EXT-X-ENDLIST\n"
	segs, ended, err := parseSegmentList([]byte(list))
	if err != nil || !ended || len(segs) != 3 {
		t.Fatalf("segs %v ended %v err %v", segs, ended, err)
	}
	if segs[1].Name != "seg_00001.m4s" || segs[1].Duration != 4004*time.Millisecond || segs[2].Duration != 1500*time.Millisecond {
		t.Errorf("segments %+v", segs)
	}
	for name, bad := range map[string]string{
		"path traversal":      "#EXTINF:4,\n../../etc/passwd\n",
		"absolute path":       "#EXTINF:4,\n/etc/passwd\n",
		"segment without inf": "seg_00000.ts\n",
		"negative duration":   "#EXTINF:-1,\nseg_00000.ts\n",
	} {
		if _, _, err := parseSegmentList([]byte(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if segs, ended, err := parseSegmentList([]byte("#EXTM3U\n#EXTINF:4.0,\nseg_00000.ts\n")); err != nil || ended || len(segs) != 1 {
		t.Errorf("open list: %v %v %v", segs, ended, err)
	}
}

func TestReadProgress(t *testing.T) {
	in := "frame=0\nout_time_us=N/A\nprogress=continue\nframe=30\nout_time_us=1000000\nout_time=00:00:01.000000\nprogress=continue\n" +
		"out_time_us=2500000\nprogress=end\n"
	var got []time.Duration
	var ends []bool
	readProgress(strings.NewReader(in), func(d time.Duration, end bool) { got = append(got, d); ends = append(ends, end) })
	want := []time.Duration{0, time.Second, 2500 * time.Millisecond}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || ends[2] != true || ends[1] {
		t.Errorf("progress %v ends %v, want %v ending on the last", got, ends, want)
	}
}

func FuzzParseSegmentList(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		segs, _, err := parseSegmentList(data)
		if err != nil {
			return
		}
		for _, s := range segs {
			if s.Name == "" || strings.ContainsAny(s.Name, `/\`) || s.Duration < 0 {
				t.Fatalf("accepted segment %+v", s)
			}
		}
	})
}

func FuzzReadProgress(f *testing.F) {
	f.Fuzz(func(t *testing.T, data string) {
		readProgress(strings.NewReader(data), func(d time.Duration, _ bool) {
			if d < 0 {
				t.Fatalf("negative output time %v", d)
			}
		})
	})
}
