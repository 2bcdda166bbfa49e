package hls

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

func livePlaylist() MediaPlaylist {
	pdt := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	return MediaPlaylist{
		TargetDuration: 3, MediaSequence: 41, DiscontinuitySequence: 2, IndependentSegments: true,
		Segments: []Segment{
			{URI: "seg_41.ts", Duration: ms(2000), ProgramDateTime: pdt},
			{URI: "seg_42.ts", Duration: ms(2040), ProgramDateTime: pdt.Add(2 * time.Second)},
			{URI: "seg_43.ts", Duration: ms(1960), Discontinuity: true, ProgramDateTime: pdt.Add(9 * time.Second)},
		},
	}
}

// TestParseMediaPlaylistReadsWhatEncodeWrites parses every shape weir's
// packagers write and encodes it again: the bytes must come back.
func TestParseMediaPlaylistReadsWhatEncodeWrites(t *testing.T) {
	ended := livePlaylist()
	ended.Ended = true
	cases := map[string]MediaPlaylist{
		"live window": livePlaylist(),
		"live ended":  ended,
		"vod event fmp4": {Type: Event, TargetDuration: 4, IndependentSegments: true, Map: &Map{URI: "init.mp4"}, Ended: true,
			Segments: []Segment{{URI: "seg_00000.m4s", Duration: ms(4000)}, {URI: "seg_00001.m4s", Duration: ms(1234), Title: "last"}}},
		"i-frames": {Type: VOD, IFramesOnly: true, Map: &Map{URI: "init.mp4", ByteRange: &ByteRange{Length: 800, Offset: 0}},
			Segments: []Segment{{URI: "seg_00000.m4s", Duration: ms(4000), ByteRange: &ByteRange{Length: 9000, Offset: 12}}}},
		"empty event": {Type: Event, TargetDuration: 2},
	}
	for name, pl := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := pl.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseMediaPlaylist(want)
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, want)
			}
			again, err := got.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, want) {
				t.Fatalf("encoded again as\n%s\nwant\n%s", again, want)
			}
		})
	}
}

// TestParseMediaPlaylistReadsFFmpeg reads a playlist another program
// wrote (ffmpeg's HLS muxer, with its own tag order), checked against
// the durations it lists.
func TestParseMediaPlaylistReadsFFmpeg(t *testing.T) {
	dir := encodeHLS(t, "mpegts", "high", "4.0", false)
	data := mustRead(t, filepath.Join(dir, "ff.m3u8"))
	p, err := ParseMediaPlaylist(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	strict, _, err := m3u8.Decode(*bytes.NewBuffer(data), true)
	if err != nil {
		t.Fatal(err)
	}
	ref := strict.(*m3u8.MediaPlaylist)
	if len(p.Segments) != int(ref.Count()) || !p.Ended {
		t.Fatalf("read %d segments (ended %v), want %d ended", len(p.Segments), p.Ended, ref.Count())
	}
	for i, s := range p.Segments {
		want := time.Duration(ref.Segments[i].Duration * float64(time.Second)).Round(time.Microsecond)
		if s.URI != ref.Segments[i].URI || s.Duration != want {
			t.Errorf("segment %d: %s %v, want %s %v", i, s.URI, s.Duration, ref.Segments[i].URI, want)
		}
	}
}

func TestParseMediaPlaylistRejectsHostileInput(t *testing.T) {
	for name, in := range map[string]string{
		"no header":          "#EXTINF:1,\na.ts\n",
		"uri without extinf": "#EXTM3U\na.ts\n",
		"negative duration":  "#EXTM3U\n#EXTINF:-1,\na.ts\n",
		"nan duration":       "#EXTM3U\n#EXTINF:NaN,\na.ts\n",
		"huge duration":      "#EXTM3U\n#EXTINF:1e300,\na.ts\n",
		"master":             "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n",
		"bad sequence":       "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-3\n",
		"bad type":           "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:LIVE\n",
		"dangling extinf":    "#EXTM3U\n#EXTINF:1,\n",
		"nul":                "#EXTM3U\n\x00",
		"unclosed map":       "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\n",
		"bad date":           "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n#EXTINF:1,\na.ts\n",
		"empty":              "",
	} {
		if p, err := ParseMediaPlaylist([]byte(in)); err == nil {
			t.Errorf("%s: parsed as %+v, want an error", name, p)
		}
	}
}

func TestExtendMasterAddsSubtitlesAndSessionData(t *testing.T) {
	m := ladderMaster()
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	subs := Rendition{Type: "SUBTITLES", GroupID: "subs", Name: "English (weir stt)", Language: "en", Autoselect: true, URI: "subs/1080p/index.m3u8"}
	got, err := ExtendMaster(data, MasterExtension{Subtitles: &subs, SessionData: []SessionData{{DataID: "io.weir.metadata", URI: "meta/index.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-DATA:DATA-ID="io.weir.metadata",URI="meta/index.json"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English (weir stt)",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,URI="subs/1080p/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=5612345,AVERAGE-BANDWIDTH=4987000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=30.000,NAME="1080p",SUBTITLES="subs"
1080p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=912000,AVERAGE-BANDWIDTH=801000,CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.970,SUBTITLES="subs"
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
	for _, v := range pl.(*m3u8.MasterPlaylist).Variants {
		if !v.Iframe && v.Subtitles != "subs" {
			t.Errorf("variant %s decoded with SUBTITLES %q", v.URI, v.Subtitles)
		}
	}
	// The same group again is refused rather than written twice.
	if _, err := ExtendMaster(got, MasterExtension{Subtitles: &subs}); err == nil {
		t.Error("adding the subtitles group twice was accepted")
	}
	info, err := ParseMasterPlaylist(got)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(info.Variants, " ") != "1080p/index.m3u8 360p/index.m3u8" || len(info.Groups["SUBTITLES"]) != 1 || info.SessionData[0] != "io.weir.metadata" {
		t.Errorf("parsed back as %+v", info)
	}
}

// TestExtendedMasterReadByFFprobe has ffprobe open a master with the
// subtitles rendition over files. ffmpeg 5.1's HLS demuxer reads the
// master (it names the subtitles rendition it does not play, and plays the
// video) and, given the subtitles playlist itself, reads its WebVTT
// segments.
func TestExtendedMasterReadByFFprobe(t *testing.T) {
	dir := encodeHLS(t, "mpegts", "high", "4.0", false)
	master := MasterPlaylist{Variants: []Variant{{URI: "ff.m3u8", Bandwidth: 500_000}}}
	data, err := master.Encode()
	if err != nil {
		t.Fatal(err)
	}
	data, err = ExtendMaster(data, MasterExtension{Subtitles: &Rendition{Type: "SUBTITLES", GroupID: "subs", Name: "English", Language: "en", URI: "subs.m3u8"}})
	if err != nil {
		t.Fatal(err)
	}
	subs := MediaPlaylist{Type: VOD, Segments: []Segment{{URI: "s0.vtt", Duration: 3 * time.Second}}}
	sp, _ := subs.Encode()
	writeFile(t, filepath.Join(dir, "master.m3u8"), data)
	writeFile(t, filepath.Join(dir, "subs.m3u8"), sp)
	writeFile(t, filepath.Join(dir, "s0.vtt"), []byte("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n00:00:00.500 --> 00:00:01.500\nhello\n"))
	out, err := exec.Command("ffprobe", "-hide_banner", "-show_entries", "stream=codec_name", "-of", "csv=p=0", filepath.Join(dir, "master.m3u8")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe master: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "h264") || !strings.Contains(string(out), "subs.m3u8") {
		t.Fatalf("ffprobe did not read the master's video and subtitles rendition:\n%s", out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-allowed_extensions", "ALL", "-show_entries", "stream=codec_name:packet=pts_time,duration_time", "-of", "csv=p=0", filepath.Join(dir, "subs.m3u8")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe subtitles: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "webvtt") || !strings.Contains(string(out), "0.500000,1.000000") {
		t.Fatalf("ffprobe did not read the cue from the subtitles playlist:\n%s", out)
	}
}

func TestStartsOfRealSegments(t *testing.T) {
	for _, typ := range []string{"mpegts", "fmp4"} {
		t.Run(typ, func(t *testing.T) {
			dir := encodeHLS(t, typ, "high", "4.0", true)
			ext := "ts"
			if typ == "fmp4" {
				ext = "m4s"
			}
			var tracks []Track
			if typ == "fmp4" {
				var err error
				if tracks, err = ParseInit(mustRead(t, filepath.Join(dir, "init.mp4"))); err != nil {
					t.Fatal(err)
				}
			}
			for i, seg := range segments(t, dir, ext) {
				var s Starts
				var err error
				if typ == "fmp4" {
					s, err = FMP4Starts(seg, tracks)
				} else {
					s, err = TSStarts(seg)
				}
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				v, a := probeStarts(t, dir, typ, seg)
				if !s.HasVideo || !s.HasAudio {
					t.Fatalf("segment %d: starts %+v lack a track", i, s)
				}
				if d := (s.Video - v).Abs(); d > time.Millisecond {
					t.Errorf("segment %d: video starts at %v, ffprobe says %v", i, s.Video, v)
				}
				if d := (s.Audio - a).Abs(); d > time.Millisecond {
					t.Errorf("segment %d: audio starts at %v, ffprobe says %v", i, s.Audio, a)
				}
				if s.First() != s.Video || s.Earliest() != min(s.Video, s.Audio) {
					t.Errorf("segment %d: First %v Earliest %v of %+v", i, s.First(), s.Earliest(), s)
				}
			}
		})
	}
}

// probeStarts has ffprobe read the first packet times of a segment (with
// the init section in front for fMP4).
func probeStarts(t *testing.T, dir, typ string, seg []byte) (video, audio time.Duration) {
	t.Helper()
	data := seg
	if typ == "fmp4" {
		data = append(mustRead(t, filepath.Join(dir, "init.mp4")), seg...)
	}
	p := filepath.Join(t.TempDir(), "seg")
	writeFile(t, p, data)
	args := []string{"-v", "error", "-show_entries", "stream=codec_type,start_time", "-of", "csv=p=0", p}
	if typ == "fmp4" {
		// The fragments' own times: ffmpeg's init section carries edit
		// lists (the AAC priming) that hls.js does not apply either.
		args = append([]string{"-ignore_editlist", "1"}, args...)
	}
	out, err := exec.Command("ffprobe", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue // the program's section
		}
		kind, v, _ := strings.Cut(line, ",")
		sec, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("ffprobe line %q", line)
		}
		d := time.Duration(sec * float64(time.Second)).Round(time.Microsecond)
		switch kind {
		case "video":
			video = d
		case "audio":
			audio = d
		}
	}
	return video, audio
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
