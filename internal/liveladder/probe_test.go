package liveladder

import (
	"os"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProberReadsThePictureSize(t *testing.T) {
	ts := readTestdata(t, "160x120.ts")
	p := newProber()
	done := false
	// In odd pieces, as records split a stream anywhere.
	for i := 0; i < len(ts) && !done; i += 1000 {
		done = p.feed(ts[i:min(i+1000, len(ts))])
	}
	if !done || p.noVideo || p.width != 160 || p.height != 120 {
		t.Fatalf("prober: done %v, no video %v, %dx%d; want 160x120", done, p.noVideo, p.width, p.height)
	}
}

func TestProberTakesAStreamMidway(t *testing.T) {
	ts := readTestdata(t, "160x120.ts")
	// From the middle of a packet, as a transcoder taking over does.
	p := newProber()
	if !p.feed(ts[len(ts)/3+17:]) || p.height != 120 {
		t.Fatalf("prober from the middle: %dx%d, no video %v", p.width, p.height, p.noVideo)
	}
}

func TestProberSaysAudioOnly(t *testing.T) {
	p := newProber()
	if !p.feed(readTestdata(t, "audio.ts")) || !p.noVideo {
		t.Fatalf("audio-only stream: no video %v, %dx%d", p.noVideo, p.width, p.height)
	}
}

func TestProberGivesUpOnGarbage(t *testing.T) {
	p := newProber()
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	done := false
	for i := 0; i < maxProbeBytes/len(junk)+1 && !done; i++ {
		done = p.feed(junk)
	}
	if !done || !p.noVideo {
		t.Fatalf("garbage: done %v, no video %v", done, p.noVideo)
	}
}

func TestRungsNeverUpscale(t *testing.T) {
	ladder, err := ParseSpec("1080p=5M,720p=3M,480p=1400k,360p=800k")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		w, h int
		want string
	}{
		{1280, 720, "720p,480p,360p"},
		{720, 1280, "720p,480p,360p"}, // portrait: its width is the short side
		{640, 360, "360p"},
		{320, 240, ""},
	} {
		var got []string
		for _, r := range Rungs(ladder, tc.w, tc.h) {
			got = append(got, r.Name)
		}
		if g := strings.Join(got, ","); g != tc.want {
			t.Errorf("%dx%d: rungs %q, want %q", tc.w, tc.h, g, tc.want)
		}
	}
}

func FuzzProber(f *testing.F) {
	ts := readTestdata(f, "160x120.ts")
	f.Add(ts[:min(len(ts), 4096)])
	f.Add(readTestdata(f, "audio.ts"))
	f.Add([]byte{0x47, 0, 0, 0x10})
	f.Add([]byte{0, 0, 1, 0x67, 0x42})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newProber()
		p.feed(b)
		if p.height < 0 || p.width < 0 || (p.height > 0) != (p.width > 0) {
			t.Fatalf("prober read %dx%d", p.width, p.height)
		}
		for _, n := range nalUnits(b) {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
		}
	})
}
