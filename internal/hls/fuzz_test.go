package hls

import (
	"bytes"
	"os"
	"strings"
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

// FuzzParseMediaPlaylist: whatever parses encodes, and the encoding parses
// back to the same playlist (the subtitles and metadata playlists mirror
// parsed playlists, so a reading that does not survive a round trip would
// shift their segments).
func FuzzParseMediaPlaylist(f *testing.F) {
	for _, p := range []MediaPlaylist{
		{TargetDuration: 2, MediaSequence: 7, Segments: []Segment{{URI: "seg_7.ts", Duration: 2 * time.Second, Discontinuity: true, ProgramDateTime: time.Unix(1700000000, 5e8)}}},
		{Type: Event, Map: &Map{URI: "init.mp4"}, Ended: true, Segments: []Segment{{URI: "seg_00000.m4s", Duration: 4 * time.Second, ByteRange: &ByteRange{Length: 10, Offset: 5}}}},
		llPlaylist(),
	} {
		b, _ := p.Encode()
		f.Add(b)
	}
	delta := llPlaylist()
	delta.SkippedSegments, delta.Segments = 2, delta.Segments[2:]
	if b, err := delta.Encode(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseMediaPlaylist(data)
		if err != nil {
			return
		}
		enc, err := p.Encode()
		if err != nil {
			return // a value Encode refuses (an empty title line is fine; a quote in a MAP URI is not)
		}
		q, err := ParseMediaPlaylist(enc)
		if err != nil {
			t.Fatalf("encoding of a parsed playlist does not parse: %v\n%s", err, enc)
		}
		again, err := q.Encode()
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("round trip changed the playlist (%v):\n%s\n---\n%s", err, enc, again)
		}
	})
}

// FuzzExtendMaster: a master that parses either extends into a master
// that parses with the subtitles group on every variant, or is refused.
func FuzzExtendMaster(f *testing.F) {
	m, _ := (&MasterPlaylist{Variants: []Variant{{URI: "a/index.m3u8", Bandwidth: 1, Audio: "aud"}}, Renditions: []Rendition{{Type: "AUDIO", GroupID: "aud", Name: "x", URI: "a.m3u8"}}}).Encode()
	f.Add(m)
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,SUBTITLES=\"subs\"\nv.m3u8\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		before, err := ParseMasterPlaylist(data)
		ext := MasterExtension{Subtitles: &Rendition{Type: "SUBTITLES", GroupID: "subs", Name: "n", URI: "subs/x.m3u8"}}
		out, xerr := ExtendMaster(data, ext)
		if err != nil {
			if xerr == nil {
				t.Fatal("extended a master that does not parse")
			}
			return
		}
		if xerr != nil {
			return
		}
		after, err := ParseMasterPlaylist(out)
		if err != nil {
			t.Fatalf("extended master does not parse: %v\n%s", err, out)
		}
		if len(after.Variants) != len(before.Variants) || len(after.Groups["SUBTITLES"]) != len(before.Groups["SUBTITLES"])+1 {
			t.Fatalf("variants %d → %d, subtitle groups %v → %v", len(before.Variants), len(after.Variants), before.Groups, after.Groups)
		}
		for line := range strings.SplitSeq(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "#EXT-X-STREAM-INF:"); ok {
				if a, err := parseAttrs(v); err != nil || a["SUBTITLES"] != "subs" {
					t.Fatalf("variant %q lacks SUBTITLES=\"subs\" (%v)", line, err)
				}
			}
		}
	})
}

func FuzzStarts(f *testing.F) {
	init, err := os.ReadFile("testdata/init.mp4")
	if err != nil {
		f.Fatal(err)
	}
	tracks, err := ParseInit(init)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0x47, 0x40, 0x00, 0x10})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range []func() (Starts, error){
			func() (Starts, error) { return TSStarts(data) },
			func() (Starts, error) { return FMP4Starts(data, tracks) },
		} {
			st, err := s()
			if err == nil && !st.HasVideo && !st.HasAudio {
				t.Fatal("no error and no start")
			}
		}
	})
}
