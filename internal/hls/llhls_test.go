package hls

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func llPlaylist() MediaPlaylist {
	return MediaPlaylist{
		TargetDuration: 2,
		MediaSequence:  9,
		PartTarget:     ms(333),
		ServerControl:  &ServerControl{CanBlockReload: true, CanSkipUntil: 12 * time.Second, PartHoldBack: ms(999)},
		Map:            &Map{URI: "init_0.mp4"},
		Segments: []Segment{
			{URI: "seg_9.m4s", Duration: ms(1000)},
			{URI: "seg_10.m4s", Duration: ms(1000), Parts: []Part{
				{URI: "part_30.m4s", Duration: ms(500), Independent: true},
				{URI: "part_31.m4s", Duration: ms(500)},
			}},
			{URI: "seg_11.m4s", Duration: ms(1000), Discontinuity: true, Map: &Map{URI: "init_1.mp4"}, Parts: []Part{
				{URI: "part_32.m4s", Duration: ms(333), Independent: true, ByteRange: &ByteRange{Length: 100, Offset: 0}},
			}},
		},
		TrailingParts:    []Part{{URI: "part_33.m4s", Duration: ms(300), Independent: true}},
		PreloadHint:      &PreloadHint{Type: "PART", URI: "part_34.m4s"},
		RenditionReports: []RenditionReport{{URI: "../720p/live.m3u8", LastMSN: 11, LastPart: 0}, {URI: "../a/live.m3u8", LastMSN: 11, LastPart: -1}},
	}
}

func TestLowLatencyPlaylistIsExact(t *testing.T) {
	p := llPlaylist()
	got, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=0.999
#EXT-X-PART-INF:PART-TARGET=0.333
#EXT-X-MEDIA-SEQUENCE:9
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="init_0.mp4"
#EXTINF:1.000,
seg_9.m4s
#EXT-X-PART:DURATION=0.500,URI="part_30.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="part_31.m4s"
#EXTINF:1.000,
seg_10.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init_1.mp4"
#EXT-X-PART:DURATION=0.333,URI="part_32.m4s",INDEPENDENT=YES,BYTERANGE="100@0"
#EXTINF:1.000,
seg_11.m4s
#EXT-X-PART:DURATION=0.300,URI="part_33.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_34.m4s"
#EXT-X-RENDITION-REPORT:URI="../720p/live.m3u8",LAST-MSN=11,LAST-PART=0
#EXT-X-RENDITION-REPORT:URI="../a/live.m3u8",LAST-MSN=11
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	mp := decodeMedia(t, got)
	if mp.SeqNo != 9 || mp.Count() != 3 || len(mp.PartialSegments) != 4 || mp.PreloadHints == nil {
		t.Errorf("independent parser read seq %d, %d segments", mp.SeqNo, mp.Count())
	}
	back, err := ParseMediaPlaylist(got)
	if err != nil {
		t.Fatal(err)
	}
	back.Version = 0
	if !reflect.DeepEqual(*back, p) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *back, p)
	}
}

func TestLowLatencyDeltaUpdate(t *testing.T) {
	p := llPlaylist()
	p.SkippedSegments = 2
	p.Segments = p.Segments[2:]
	got, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "#EXT-X-VERSION:9\n") || !strings.Contains(string(got), "\n#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n#EXT-X-DISCONTINUITY\n") {
		t.Fatalf("delta update lacks version 9 or EXT-X-SKIP before the first listed segment:\n%s", got)
	}
	back, err := ParseMediaPlaylist(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.SkippedSegments != 2 || len(back.Segments) != 1 || back.Segments[0].Map == nil || back.Segments[0].Map.URI != "init_1.mp4" {
		t.Errorf("parsed back %+v", back)
	}
}

func TestLowLatencyEncodeRefuses(t *testing.T) {
	for name, mod := range map[string]func(*MediaPlaylist){
		"part hold back under three targets": func(p *MediaPlaylist) { p.ServerControl.PartHoldBack = ms(900) },
		"quote in part URI":                  func(p *MediaPlaylist) { p.Segments[1].Parts[0].URI = `a"b` },
		"negative part":                      func(p *MediaPlaylist) { p.TrailingParts[0].Duration = -1 },
		"hint type":                          func(p *MediaPlaylist) { p.PreloadHint.Type = "SEGMENT" },
		"empty report URI":                   func(p *MediaPlaylist) { p.RenditionReports[0].URI = "" },
		"bad part range":                     func(p *MediaPlaylist) { p.Segments[2].Parts[0].ByteRange.Length = 0 },
	} {
		p := llPlaylist()
		mod(&p)
		if b, err := p.Encode(); err == nil {
			t.Errorf("%s: encoded\n%s", name, b)
		}
	}
}

func TestLowLatencyParseRefuses(t *testing.T) {
	head := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
	for _, body := range []string{
		"#EXT-X-PART-INF:PART-TARGET=0\n",
		"#EXT-X-PART-INF:FOO=1\n",
		"#EXT-X-PART:URI=\"a.m4s\"\n#EXTINF:1,\na.ts\n",
		"#EXT-X-PART:DURATION=-1,URI=\"a.m4s\"\n#EXTINF:1,\na.ts\n",
		"#EXT-X-PART:DURATION=0.3,URI=\"a.m4s\",INDEPENDENT=MAYBE\n#EXTINF:1,\na.ts\n",
		"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=1\n",
		"#EXT-X-SKIP:SKIPPED-SEGMENTS=x\n",
		"#EXT-X-PRELOAD-HINT:TYPE=SEGMENT,URI=\"a\"\n",
		"#EXT-X-RENDITION-REPORT:URI=\"a\",LAST-MSN=-1\n",
		"#EXTINF:1,\na.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.3,URI=\"b.m4s\"\n",
	} {
		if p, err := ParseMediaPlaylist([]byte(head + body)); err == nil {
			t.Errorf("parsed %q as %+v", body, p)
		}
	}
}

func TestLowLatencyParseForeignOrder(t *testing.T) {
	// Another server's layout: MEDIA-SEQUENCE before SERVER-CONTROL, a
	// PROGRAM-DATE-TIME before the trailing parts, unknown attributes.
	in := "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:3\n" +
		"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=12,CAN-SKIP-DATERANGES=YES\n#EXT-X-PART-INF:PART-TARGET=1.004\n" +
		"#EXTINF:4.0,\ns3.mp4\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z\n#EXT-X-PART:DURATION=1,URI=\"p.mp4\",GAP=YES\n"
	p, err := ParseMediaPlaylist([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if p.PartTarget != ms(1004) || p.ServerControl.HoldBack != 12*time.Second || len(p.TrailingParts) != 1 || p.MediaSequence != 3 {
		t.Fatalf("parsed %+v", p)
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseMediaPlaylist(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := q.Encode()
	if !bytes.Equal(enc, again) {
		t.Fatalf("not stable:\n%s\n---\n%s", enc, again)
	}
}
