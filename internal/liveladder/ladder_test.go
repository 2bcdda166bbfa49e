package liveladder

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRoundTrips(t *testing.T) {
	rungs, err := Parse([]string{" 480p=1400k", "360p=800000", "240p=1M"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Specs(rungs), []string{"480p=1400k", "360p=800k", "240p=1M"}; !slices.Equal(got, want) {
		t.Fatalf("Specs = %q, want %q", got, want)
	}
	again, err := Parse(Specs(rungs))
	if err != nil || !slices.Equal(again, rungs) {
		t.Fatalf("reparsed %v (%v), want %v", again, err, rungs)
	}
}

func TestParseEmptyIsNoLadder(t *testing.T) {
	for _, items := range [][]string{nil, {}, {" ", ""}} {
		if r, err := Parse(items); r != nil || err != nil {
			t.Errorf("Parse(%q) = %v, %v; want no ladder", items, r, err)
		}
	}
	if r, err := ParseSpec(""); r != nil || err != nil {
		t.Errorf("ParseSpec(\"\") = %v, %v", r, err)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, items := range [][]string{
		{"480p"}, {"481p=1M"}, {"360p=800k", "480p=1400k"}, {"480p=1400k,360p=800k"},
		{"480p=-1k"}, {"720p=1M", "640p=1M", "480p=1M", "360p=1M", "240p=1M", "180p=1M", "144p=1M"},
	} {
		if _, err := Parse(items); err == nil {
			t.Errorf("Parse(%q) accepted", items)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"480p=1400k,360p=800k", "720p=3M", "", "x=y", "480p=1k,480p=1k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		rungs, err := ParseSpec(spec)
		if err != nil {
			return
		}
		for i, r := range rungs {
			if strings.Contains(r.Name, ".") || r.Height <= 0 || r.VideoBitrate <= 0 {
				t.Fatalf("ParseSpec(%q): bad rung %+v", spec, r)
			}
			if i > 0 && rungs[i-1].Height <= r.Height {
				t.Fatalf("ParseSpec(%q): rungs out of order", spec)
			}
		}
		again, err := Parse(Specs(rungs))
		if err != nil || !slices.Equal(again, rungs) {
			t.Fatalf("ParseSpec(%q) does not round-trip: %v, %v", spec, again, err)
		}
	})
}
