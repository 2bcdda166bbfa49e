package hls

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// decodeMedia parses p's encoding strictly with an independent parser.
func decodeMedia(t *testing.T, data []byte) *m3u8.MediaPlaylist {
	t.Helper()
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(data), true)
	if err != nil {
		t.Fatalf("strict decode: %v\n%s", err, data)
	}
	if typ != m3u8.MEDIA {
		t.Fatalf("decoded as list type %d, want media\n%s", typ, data)
	}
	mp := pl.(*m3u8.MediaPlaylist)
	if v, why := mp.CalcMinVersion(); mp.Version() < v {
		t.Errorf("EXT-X-VERSION %d is below the minimum %d (%s)", mp.Version(), v, why)
	}
	return mp
}

func TestMediaPlaylistVODWithInitSectionIsExact(t *testing.T) {
	p := MediaPlaylist{
		Type:                VOD,
		IndependentSegments: true,
		Map:                 &Map{URI: "init.mp4"},
		Segments: []Segment{
			{URI: "seg_00000.m4s", Duration: 4 * time.Second},
			{URI: "seg_00001.m4s", Duration: ms(4004)},
			{URI: "seg_00002.m4s", Duration: ms(1500)},
		},
	}
	got, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:5
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.000,
seg_00000.m4s
#EXTINF:4.004,
seg_00001.m4s
#EXTINF:1.500,
seg_00002.m4s
#EXT-X-ENDLIST
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	mp := decodeMedia(t, got)
	if mp.MediaType != m3u8.VOD || !mp.Closed || mp.Map == nil || mp.Map.URI != "init.mp4" || mp.Count() != 3 {
		t.Errorf("decoded %+v", mp)
	}
	again, _ := p.Encode()
	if !bytes.Equal(got, again) {
		t.Error("encoding the same playlist twice gave different bytes")
	}
}

func TestMediaPlaylistTypesAndTags(t *testing.T) {
	pdt := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name      string
		p         MediaPlaylist
		contains  []string
		absent    []string
		version   int
		wantType  m3u8.MediaType
		wantEnded bool
	}{
		{
			name: "event playlist while transcoding has no endlist",
			p: MediaPlaylist{Type: Event, Map: &Map{URI: "init.mp4"},
				Segments: []Segment{{URI: "a.m4s", Duration: 4 * time.Second}}},
			contains: []string{"#EXT-X-PLAYLIST-TYPE:EVENT\n"},
			absent:   []string{"#EXT-X-ENDLIST", "DISCONTINUITY-SEQUENCE"},
			version:  6, wantType: m3u8.EVENT,
		},
		{
			name: "event playlist marked ended gets endlist",
			p: MediaPlaylist{Type: Event, Ended: true,
				Segments: []Segment{{URI: "a.ts", Duration: 4 * time.Second}}},
			contains: []string{"#EXT-X-PLAYLIST-TYPE:EVENT\n", "#EXT-X-ENDLIST\n"},
			version:  3, wantType: m3u8.EVENT, wantEnded: true,
		},
		{
			name: "live window with date-times and a discontinuity",
			p: MediaPlaylist{TargetDuration: 2, MediaSequence: 120, DiscontinuitySequence: 3,
				Segments: []Segment{
					{URI: "seg_120.ts", Duration: 2 * time.Second, ProgramDateTime: pdt},
					{URI: "seg_121.ts", Duration: ms(1960), ProgramDateTime: pdt.Add(2 * time.Second), Discontinuity: true},
				}},
			contains: []string{
				"#EXT-X-MEDIA-SEQUENCE:120\n", "#EXT-X-DISCONTINUITY-SEQUENCE:3\n",
				"#EXT-X-PROGRAM-DATE-TIME:2025-03-04T04:06:07.890Z\n",
				"#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2025-03-04T04:06:09.890Z\n#EXTINF:1.960,\nseg_121.ts\n",
			},
			absent:  []string{"PLAYLIST-TYPE", "ENDLIST"},
			version: 3,
		},
		{
			name: "fmp4 i-frame playlist uses byte ranges and version 5",
			p: MediaPlaylist{Type: VOD, IFramesOnly: true, Map: &Map{URI: "init.mp4"},
				Segments: []Segment{
					{URI: "seg_00000.m4s", Duration: 4 * time.Second, ByteRange: &ByteRange{Length: 41250, Offset: 0}},
					{URI: "seg_00001.m4s", Duration: 4 * time.Second, ByteRange: &ByteRange{Length: 39000}},
				}},
			contains: []string{"#EXT-X-I-FRAMES-ONLY\n", "#EXT-X-BYTERANGE:41250@0\nseg_00000.m4s\n"},
			version:  5, wantType: m3u8.VOD, wantEnded: true,
		},
		{
			name: "mpeg-ts i-frame playlist needs version 4",
			p: MediaPlaylist{Type: VOD, IFramesOnly: true,
				Segments: []Segment{{URI: "seg_00000.ts", Duration: 4 * time.Second, ByteRange: &ByteRange{Length: 18800}}}},
			contains: []string{"#EXT-X-I-FRAMES-ONLY\n"},
			version:  4, wantType: m3u8.VOD, wantEnded: true,
		},
		{
			name:    "explicit higher version is kept",
			p:       MediaPlaylist{Version: 7, Type: VOD, Segments: []Segment{{URI: "a.ts", Duration: time.Second}}},
			version: 7, wantType: m3u8.VOD, wantEnded: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.p.Encode()
			if err != nil {
				t.Fatal(err)
			}
			s := string(data)
			for _, c := range tt.contains {
				if !strings.Contains(s, c) {
					t.Errorf("missing %q in\n%s", c, s)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(s, a) {
					t.Errorf("unexpected %q in\n%s", a, s)
				}
			}
			mp := decodeMedia(t, data)
			if int(mp.Version()) != tt.version {
				t.Errorf("version %d, want %d", mp.Version(), tt.version)
			}
			if mp.MediaType != tt.wantType {
				t.Errorf("playlist type %d, want %d", mp.MediaType, tt.wantType)
			}
			if mp.Closed != tt.wantEnded {
				t.Errorf("ended %v, want %v", mp.Closed, tt.wantEnded)
			}
			if mp.Iframe != tt.p.IFramesOnly {
				t.Errorf("i-frames-only %v, want %v", mp.Iframe, tt.p.IFramesOnly)
			}
			if mp.SeqNo != tt.p.MediaSequence || mp.DiscontinuitySeq != tt.p.DiscontinuitySequence {
				t.Errorf("sequence %d/%d, want %d/%d", mp.SeqNo, mp.DiscontinuitySeq, tt.p.MediaSequence, tt.p.DiscontinuitySequence)
			}
			if int(mp.Count()) != len(tt.p.Segments) {
				t.Fatalf("%d segments decoded, want %d", mp.Count(), len(tt.p.Segments))
			}
			for i, want := range tt.p.Segments {
				got := mp.Segments[i]
				if got.URI != want.URI || got.Duration != want.Duration.Round(time.Millisecond).Seconds() || got.Discontinuity != want.Discontinuity {
					t.Errorf("segment %d = %s %v disc %v, want %s %v disc %v", i, got.URI, got.Duration, got.Discontinuity, want.URI, want.Duration, want.Discontinuity)
				}
				if want.ByteRange != nil && (got.Limit != want.ByteRange.Length || got.Offset != want.ByteRange.Offset) {
					t.Errorf("segment %d byte range %d@%d, want %s", i, got.Limit, got.Offset, want.ByteRange)
				}
				if !want.ProgramDateTime.IsZero() && !got.ProgramDateTime.Equal(want.ProgramDateTime) {
					t.Errorf("segment %d date-time %v, want %v", i, got.ProgramDateTime, want.ProgramDateTime)
				}
			}
		})
	}
}

func TestTargetDurationIsTheCeilingOfTheLongestWrittenDuration(t *testing.T) {
	tests := []struct {
		name     string
		explicit int
		durs     []time.Duration
		want     int
	}{
		{"whole seconds", 0, []time.Duration{4 * time.Second, 4 * time.Second}, 4},
		{"a frame over rounds up", 0, []time.Duration{4 * time.Second, ms(4033)}, 5},
		{"sub-millisecond excess written as 4.000 stays 4", 0, []time.Duration{4*time.Second + 400*time.Microsecond}, 4},
		{"excess that rounds to 4.001 needs 5", 0, []time.Duration{4*time.Second + 600*time.Microsecond}, 5},
		{"explicit target above the segments is kept", 6, []time.Duration{2 * time.Second}, 6},
		{"explicit target below a long segment grows", 2, []time.Duration{ms(2500)}, 3},
		{"empty playlist gets 1", 0, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := MediaPlaylist{TargetDuration: tt.explicit}
			for i, d := range tt.durs {
				p.Segments = append(p.Segments, Segment{URI: string(rune('a'+i)) + ".ts", Duration: d})
			}
			if got := p.TargetDurationSeconds(); got != tt.want {
				t.Errorf("target duration %d, want %d", got, tt.want)
			}
		})
	}
}

func TestMediaPlaylistRejectsWhatItCannotWrite(t *testing.T) {
	seg := func(s Segment) MediaPlaylist { return MediaPlaylist{Segments: []Segment{s}} }
	tests := []struct {
		name string
		p    MediaPlaylist
		want string
	}{
		{"empty uri", seg(Segment{Duration: time.Second}), "empty URI"},
		{"uri with a line break", seg(Segment{URI: "a.ts\n#EXT-X-ENDLIST", Duration: time.Second}), "one playlist line"},
		{"uri that reads as a tag", seg(Segment{URI: "#a.ts", Duration: time.Second}), "one playlist line"},
		{"negative duration", seg(Segment{URI: "a.ts", Duration: -time.Second}), "negative duration"},
		{"title with a line break", seg(Segment{URI: "a.ts", Title: "x\ny"}), "title"},
		{"zero-length byte range", seg(Segment{URI: "a.ts", ByteRange: &ByteRange{}}), "positive length"},
		{"unknown type", MediaPlaylist{Type: "LIVE"}, "playlist type"},
		{"map uri with a quote", MediaPlaylist{Map: &Map{URI: `in"it.mp4`}}, "double quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Encode()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                    "0.000",
		ms(33):                               "0.033",
		4 * time.Second:                      "4.000",
		4*time.Second + 499*time.Microsecond: "4.000",
		4*time.Second + 500*time.Microsecond: "4.001",
		ms(3723004):                          "3723.004",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
