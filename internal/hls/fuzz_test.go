package hls

import (
	"os"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// The fuzz targets check that the segment inspectors never panic on hostile
// bytes (the live packager runs them on what publishers push) and that what
// they report stays within the input.

func FuzzInspectTS(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := InspectTS(data)
		if err != nil {
			return
		}
		if info.KeyFrameEnd < 0 || info.KeyFrameEnd > int64(len(data)) || info.KeyFrameEnd%mpegts.PacketSize != 0 {
			t.Fatalf("key frame end %d outside %d bytes or off a packet boundary", info.KeyFrameEnd, len(data))
		}
	})
}

func FuzzParseInit(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		tracks, err := ParseInit(data)
		if err == nil && len(tracks) == 0 {
			t.Fatal("no error and no tracks")
		}
	})
}

func FuzzInspectFMP4(f *testing.F) {
	init, err := os.ReadFile("testdata/init.mp4")
	if err != nil {
		f.Fatal(err)
	}
	tracks, err := ParseInit(init)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := InspectFMP4(data, tracks)
		if err != nil {
			return
		}
		if info.KeyFrameEnd < 0 || info.KeyFrameEnd > int64(len(data)) {
			t.Fatalf("key frame end %d outside %d bytes", info.KeyFrameEnd, len(data))
		}
		if info.Duration < 0 || info.Start < 0 {
			t.Fatalf("negative time: start %v duration %v", info.Start, info.Duration)
		}
	})
}

func FuzzParseSPS(f *testing.F) {
	f.Fuzz(func(t *testing.T, nalu []byte) {
		vp, err := ParseSPS(nalu)
		if err != nil {
			return
		}
		if len(vp.Codec) != len("avc1.640028") {
			t.Fatalf("codec string %q has the wrong shape", vp.Codec)
		}
	})
}

func FuzzMediaPlaylistEncode(f *testing.F) {
	f.Add("seg_00000.m4s", int64(4_000_000), "")
	f.Fuzz(func(t *testing.T, uri string, durUS int64, title string) {
		p := MediaPlaylist{Type: VOD, Segments: []Segment{{URI: uri, Duration: time.Duration(durUS) * time.Microsecond, Title: title}}}
		data, err := p.Encode()
		if err != nil {
			return
		}
		// Whatever Encode accepts must parse back strictly.
		decodeMedia(t, data)
	})
}
