package vod

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLadder(t *testing.T) {
	got, err := ParseLadder(" 1080p=5M, 480p=1400k,240p=400000")
	if err != nil {
		t.Fatal(err)
	}
	want := []Rung{
		{Name: "1080p", Height: 1080, VideoBitrate: 5_000_000, MaxBitrate: 5_350_000, BufSize: 7_500_000, Profile: "high", AudioBitrate: 128_000},
		{Name: "480p", Height: 480, VideoBitrate: 1_400_000, MaxBitrate: 1_498_000, BufSize: 2_100_000, Profile: "main", AudioBitrate: 96_000},
		{Name: "240p", Height: 240, VideoBitrate: 400_000, MaxBitrate: 428_000, BufSize: 600_000, Profile: "main", AudioBitrate: 96_000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if def, _ := ParseLadder(""); !reflect.DeepEqual(def, DefaultLadder()) {
		t.Fatal("an empty spec is not the default ladder")
	}
}

func TestParseLadderRejectsBadSpecs(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"720p", "want NAME=BITRATE"},
		{"720=3000k", "followed by p"},
		{"721p=3000k", "even height"},
		{"720p=fast", "bit rate"},
		{"720p=-5k", "bit rate"},
		{"720p=99999999M", "bit rate"},
		{"480p=1M,720p=3M", "highest to the lowest"},
		{"720p=3M,720p=2M", "highest to the lowest"},
	}
	for _, tt := range tests {
		if _, err := ParseLadder(tt.spec); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseLadder(%q) = %v, want an error mentioning %q", tt.spec, err, tt.want)
		}
	}
}

func FuzzParseLadder(f *testing.F) {
	f.Add("1080p=5000k,720p=3000k")
	f.Add("360p=800000")
	f.Add("=,=")
	f.Fuzz(func(t *testing.T, spec string) {
		ladder, err := ParseLadder(spec)
		if err != nil {
			return
		}
		for i, r := range ladder {
			if r.VideoBitrate <= 0 || r.Height <= 0 || (i > 0 && ladder[i-1].Height <= r.Height) {
				t.Fatalf("ParseLadder(%q) accepted a bad ladder %+v", spec, ladder)
			}
		}
	})
}
