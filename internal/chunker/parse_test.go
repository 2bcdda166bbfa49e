package chunker

import (
	"math"
	"regexp"
	"strings"
	"testing"
)

func TestParseSegmentLine(t *testing.T) {
	good := map[string]segment{
		"000000.ts,0.000000,2.021333":      {"000000.ts", 0, 2.021333},
		"000003.wav,6.015000,6.037313\n":   {"000003.wav", 6.015, 6.037313},
		`"a,b.ts",1.5,2.5`:                 {"a,b.ts", 1.5, 2.5},
		`"say ""hi"".ts",1,1`:              {`say "hi".ts`, 1, 1},
		"000001.jpg,1.021333,1.061333\r\n": {"000001.jpg", 1.021333, 1.061333},
		"x.ts,-0.040000,0.000000":          {"x.ts", -0.04, 0},
	}
	for line, want := range good {
		got, err := parseSegmentLine(line)
		if err != nil || got.File != want.File || math.Abs(got.Start-want.Start) > 1e-9 || math.Abs(got.End-want.End) > 1e-9 {
			t.Errorf("parseSegmentLine(%q) = %+v, %v; want %+v", line, got, err, want)
		}
	}
	for _, line := range []string{
		"", "000000.ts", "000000.ts,1", ",1,2", "a.ts,x,2", "a.ts,1,y", "a.ts,2,1",
		"a.ts,NaN,1", "a.ts,1,Inf", "a.ts,0,1e300", "../x.ts,0,1", "dir/x.ts,0,1", `"a.ts,0,1`,
		`"a"b".ts",0,1`, `a"b.ts,0,1`, "..,0,1", "a\x00b,0,1",
	} {
		if s, err := parseSegmentLine(line); err == nil {
			t.Errorf("parseSegmentLine(%q) = %+v, want an error", line, s)
		}
	}
}

func TestMetaParser(t *testing.T) {
	out := "frame:0    pts:1920    pts_time:0.0213333\nlavfi.scene_score=0.000000\nweir.frame=1\n" +
		"frame:1    pts:91920   pts_time:1.02133\nlavfi.scene_score=0.871000\nweir.frame=1\n" +
		"frame:2    pts:NOPTS   pts_time:NOPTS\n"
	var p metaParser
	var got []frameMeta
	for line := range strings.Lines(out) {
		m, ok, err := p.line(line)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, m)
		}
	}
	if m, ok := p.end(); ok {
		got = append(got, m)
	}
	want := []frameMeta{{PTS: 1920, HasPTS: true, HasScore: true}, {PTS: 91920, HasPTS: true, Score: 0.871, HasScore: true}, {}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"lavfi.scene_score=1", "frame:0", "frame:0 pts:x", "frame:0 dts:1"} {
		var p metaParser
		if _, _, err := p.line(bad); err == nil {
			t.Errorf("line %q accepted", bad)
		}
	}
	p = metaParser{}
	p.line("frame:0 pts:1 pts_time:0")
	for _, bad := range []string{"no equals sign", "lavfi.scene_score=nan", "lavfi.scene_score=abc"} {
		if _, _, err := p.line(bad); err == nil {
			t.Errorf("line %q accepted", bad)
		}
	}
}

var uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestUUID(t *testing.T) {
	a := UUID("job-0123456789ab", KindVideo, 7)
	if !uuidForm.MatchString(a) {
		t.Fatalf("UUID = %q, not a version-5 UUID", a)
	}
	if b := UUID("job-0123456789ab", KindVideo, 7); a != b {
		t.Errorf("UUID changed between calls: %s, %s", a, b)
	}
	// Pinned: a change renames every stored chunk and breaks idempotency.
	if want := "e1a169d0-c5d7-5354-92fb-c6aa41f374b6"; a != want {
		t.Errorf("UUID(job-0123456789ab, video, 7) = %s, was %s", a, want)
	}
	seen := map[string]bool{}
	for _, job := range []string{"job-a", "job-b", "job-a/video"} {
		for _, k := range []Kind{KindVideo, KindAudio, KindFrame} {
			for i := range int64(3) {
				u := UUID(job, k, i)
				if seen[u] {
					t.Errorf("UUID(%s, %s, %d) = %s repeats", job, k, i, u)
				}
				seen[u] = true
			}
		}
	}
}

func TestKindFor(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want Kind
		ok   bool
	}{
		{[]string{"image/*"}, KindFrame, true},
		{[]string{"image/jpeg", "video/mp4"}, KindFrame, true},
		{[]string{"audio/wav"}, KindAudio, true},
		{[]string{"Audio/*; rate=16000"}, KindAudio, true},
		{[]string{"video/mp2t"}, KindVideo, true},
		{[]string{"*/*"}, KindVideo, true},
		{[]string{"text/plain", "audio/*", "video/*"}, KindAudio, true},
		{[]string{"text/plain"}, "", false},
		{nil, "", false},
	} {
		got, ok := KindFor(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("KindFor(%q) = %q, %t; want %q, %t", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseSegmentLine: any line either parses into a plain file name and
// ordered, finite times, or is refused; nothing panics.
func FuzzParseSegmentLine(f *testing.F) {
	for _, s := range []string{"000000.ts,0.000000,2.021333", `"a,b.ts",1,2`, "x,1,0", "", ",,", `""",1,2`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, err := parseSegmentLine(line)
		if err != nil {
			return
		}
		if s.File == "" || strings.ContainsAny(s.File, "/\\\x00") || s.File == ".." {
			t.Errorf("file name %q accepted", s.File)
		}
		if math.IsNaN(s.Start) || math.IsInf(s.End, 0) || s.End < s.Start {
			t.Errorf("times %g..%g accepted", s.Start, s.End)
		}
	})
}

// FuzzMetaParser: the metadata reader survives any output and only returns
// finite scores.
func FuzzMetaParser(f *testing.F) {
	f.Add("frame:0    pts:1920    pts_time:0.0213333\nlavfi.scene_score=0.000000\nweir.frame=1\n")
	f.Add("frame:1 pts:NOPTS pts_time:NOPTS\nweir.frame=1\nframe:2 pts:-5\n")
	f.Add("weir.frame=1\nframe:\n=\n")
	f.Fuzz(func(t *testing.T, out string) {
		var p metaParser
		for line := range strings.Lines(out) {
			m, ok, err := p.line(line)
			if err != nil {
				return
			}
			if ok && (math.IsNaN(m.Score) || math.IsInf(m.Score, 0)) {
				t.Errorf("score %g", m.Score)
			}
		}
		p.end()
	})
}
