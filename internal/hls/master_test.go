package hls

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

func ladderMaster() MasterPlaylist {
	return MasterPlaylist{
		Version:             6,
		IndependentSegments: true,
		Variants: []Variant{
			{URI: "1080p/index.m3u8", Bandwidth: 5_612_345, AverageBandwidth: 4_987_000, Codecs: []string{"avc1.640028", "mp4a.40.2"}, Width: 1920, Height: 1080, FrameRate: 30, Name: "1080p"},
			{URI: "360p/index.m3u8", Bandwidth: 912_000, AverageBandwidth: 801_000, Codecs: []string{"avc1.4d401e", "mp4a.40.2"}, Width: 640, Height: 360, FrameRate: 29.97},
		},
		IFrameVariants: []IFrameVariant{
			{URI: "1080p/iframes.m3u8", Bandwidth: 310_000, AverageBandwidth: 250_000, Codecs: []string{"avc1.640028"}, Width: 1920, Height: 1080},
		},
	}
}

func TestMasterPlaylistIsExactAndParsesStrictly(t *testing.T) {
	m := ladderMaster()
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=5612345,AVERAGE-BANDWIDTH=4987000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=30.000,NAME="1080p"
1080p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=912000,AVERAGE-BANDWIDTH=801000,CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.970
360p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=310000,AVERAGE-BANDWIDTH=250000,CODECS="avc1.640028",RESOLUTION=1920x1080,URI="1080p/iframes.m3u8"
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(got), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("strict decode: type %d, %v", typ, err)
	}
	mp := pl.(*m3u8.MasterPlaylist)
	if len(mp.Variants) != 3 {
		t.Fatalf("%d variants decoded, want 2 + 1 i-frame", len(mp.Variants))
	}
	v := mp.Variants[0]
	if v.URI != "1080p/index.m3u8" || v.Bandwidth != 5_612_345 || v.AverageBandwidth != 4_987_000 ||
		v.Codecs != "avc1.640028,mp4a.40.2" || v.Resolution != "1920x1080" || v.FrameRate != 30 {
		t.Errorf("variant 0 decoded as %+v", v.VariantParams)
	}
	if iv := mp.Variants[2]; !iv.Iframe || iv.URI != "1080p/iframes.m3u8" || iv.Bandwidth != 310_000 {
		t.Errorf("i-frame variant decoded as %+v uri %s", iv.VariantParams, iv.URI)
	}

	// gohlslib (the player-side parser) must agree too.
	var mv playlist.Multivariant
	if err := mv.Unmarshal(got); err != nil {
		t.Fatalf("gohlslib: %v", err)
	}
	if len(mv.Variants) != 2 || mv.Variants[1].Bandwidth != 912_000 || mv.Variants[1].Resolution != "640x360" {
		t.Errorf("gohlslib variants %+v", mv.Variants)
	}
}

func TestMasterPlaylistWithAudioGroup(t *testing.T) {
	m := MasterPlaylist{
		Renditions: []Rendition{{Type: "AUDIO", GroupID: "aac", Name: "English", Language: "en", Default: true, Channels: 2, URI: "audio/index.m3u8"}},
		Variants:   []Variant{{URI: "720p/index.m3u8", Bandwidth: 3_000_000, Codecs: []string{"avc1.64001f", "mp4a.40.2"}, Width: 1280, Height: 720, Audio: "aac"}},
	}
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"`) {
		t.Errorf("rendition line missing:\n%s", got)
	}
	pl, _, err := m3u8.Decode(*bytes.NewBuffer(got), true)
	if err != nil {
		t.Fatal(err)
	}
	v := pl.(*m3u8.MasterPlaylist).Variants[0]
	if v.Audio != "aac" || len(v.Alternatives) != 1 || v.Alternatives[0].URI != "audio/index.m3u8" {
		t.Errorf("audio group not attached: %+v", v.VariantParams)
	}
}

func TestMasterPlaylistRejectsWhatItCannotWrite(t *testing.T) {
	tests := []struct {
		name string
		m    MasterPlaylist
		want string
	}{
		{"no variants", MasterPlaylist{}, "no variants"},
		{"zero bandwidth", MasterPlaylist{Variants: []Variant{{URI: "a.m3u8"}}}, "BANDWIDTH"},
		{"codec with a quote", MasterPlaylist{Variants: []Variant{{URI: "a.m3u8", Bandwidth: 1, Codecs: []string{`avc1"`}}}}, "double quote"},
		{"bad rendition type", MasterPlaylist{Renditions: []Rendition{{Type: "audio"}}, Variants: []Variant{{URI: "a.m3u8", Bandwidth: 1}}}, "TYPE"},
		{"i-frame variant without bandwidth", MasterPlaylist{Variants: []Variant{{URI: "a.m3u8", Bandwidth: 1}}, IFrameVariants: []IFrameVariant{{URI: "i.m3u8"}}}, "BANDWIDTH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.m.Encode(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestPeakAndAverageBitrate(t *testing.T) {
	s := func(bytes int64, d time.Duration) SegmentSize { return SegmentSize{Bytes: bytes, Duration: d} }
	tests := []struct {
		name      string
		segs      []SegmentSize
		target    time.Duration
		peak, avg int64
	}{
		{
			name:   "constant segments",
			segs:   []SegmentSize{s(500_000, 4*time.Second), s(500_000, 4*time.Second)},
			target: 4 * time.Second, peak: 1_000_000, avg: 1_000_000,
		},
		{
			name:   "one heavy segment sets the peak",
			segs:   []SegmentSize{s(500_000, 4*time.Second), s(1_500_000, 4*time.Second), s(500_000, 4*time.Second)},
			target: 4 * time.Second, peak: 3_000_000, avg: 1_666_667,
		},
		{
			// A 1 s tail alone is shorter than half the target, so it only
			// counts together with its neighbour: (500k+250k)*8/5 s.
			name:   "short heavy tail is averaged with its neighbour",
			segs:   []SegmentSize{s(500_000, 4*time.Second), s(250_000, time.Second)},
			target: 4 * time.Second, peak: 1_200_000, avg: 1_200_000,
		},
		{
			// Runs between 1 s and 3 s: two 1 s segments together (2 s) or
			// three (3 s) also qualify; the heaviest 1 s segment wins.
			name:   "runs of short segments are considered",
			segs:   []SegmentSize{s(100_000, time.Second), s(400_000, time.Second), s(100_000, time.Second)},
			target: 2 * time.Second, peak: 3_200_000, avg: 1_600_000,
		},
		{
			name:   "title shorter than half a target falls back to the average",
			segs:   []SegmentSize{s(100_000, time.Second)},
			target: 4 * time.Second, peak: 800_000, avg: 800_000,
		},
		{
			name:   "zero-duration segments are ignored",
			segs:   []SegmentSize{s(999_999, 0), s(500_000, 4*time.Second)},
			target: 4 * time.Second, peak: 1_000_000, avg: 1_000_000,
		},
		{name: "nothing", target: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PeakBitrate(tt.segs, tt.target); got != tt.peak {
				t.Errorf("peak %d, want %d", got, tt.peak)
			}
			if got := AverageBitrate(tt.segs); got != tt.avg {
				t.Errorf("average %d, want %d", got, tt.avg)
			}
		})
	}
}
