package hls

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

func needFFmpeg(t testing.TB) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
}

// encodeHLS makes a 3-second HLS rendition with one-second segments from
// lavfi sources, with the x264 profile and level asked for, and returns
// its directory.
func encodeHLS(t testing.TB, segType, profile, level string, audio bool) string {
	t.Helper()
	needFFmpeg(t)
	dir := t.TempDir()
	ext := "ts"
	if segType == "fmp4" {
		ext = "m4s"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"}
	if audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000")
	}
	args = append(args, "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", profile, "-level:v", level,
		"-pix_fmt", "yuv420p", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0")
	if audio {
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	}
	args = append(args, "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_segment_type", segType,
		"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", filepath.Join(dir, "seg_%05d."+ext), filepath.Join(dir, "ff.m3u8"))
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return dir
}

func segments(t testing.TB, dir, ext string) [][]byte {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "seg_*."+ext))
	if len(names) < 2 {
		t.Fatalf("ffmpeg wrote %d segments, want at least 2", len(names))
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// probeFrames decodes data with ffprobe and returns the video frames'
// key-frame flags.
func probeFrames(t *testing.T, data []byte) []bool {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe.bin")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_frames",
		"-show_entries", "frame=key_frame", "-of", "json", f).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var res struct {
		Frames []struct {
			KeyFrame int `json:"key_frame"`
		} `json:"frames"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	keys := make([]bool, len(res.Frames))
	for i, fr := range res.Frames {
		keys[i] = fr.KeyFrame == 1
	}
	return keys
}

func TestParseInitReadsCodecsFromTheBitstream(t *testing.T) {
	tests := []struct {
		profile, level string
		audio          bool
		want           []string
	}{
		{"high", "4.0", true, []string{"avc1.640028", "mp4a.40.2"}},
		{"main", "3.1", true, []string{"avc1.4d401f", "mp4a.40.2"}},
		{"baseline", "3.0", false, []string{"avc1.42c01e"}},
	}
	for _, tt := range tests {
		t.Run(tt.profile+" "+tt.level, func(t *testing.T) {
			dir := encodeHLS(t, "fmp4", tt.profile, tt.level, tt.audio)
			init, err := os.ReadFile(filepath.Join(dir, "init.mp4"))
			if err != nil {
				t.Fatal(err)
			}
			tracks, err := ParseInit(init)
			if err != nil {
				t.Fatal(err)
			}
			var codecs []string
			for _, tr := range tracks {
				codecs = append(codecs, tr.Codec)
			}
			if strings.Join(codecs, ",") != strings.Join(tt.want, ",") {
				t.Errorf("codecs %v, want %v", codecs, tt.want)
			}
			if tracks[0].Kind != "video" || tracks[0].Width != 320 || tracks[0].Height != 180 || tracks[0].Timescale == 0 {
				t.Errorf("video track %+v, want 320x180 video with a timescale", tracks[0])
			}
			if tt.audio && (tracks[1].Kind != "audio" || tracks[1].SampleRate != 48000) {
				t.Errorf("audio track %+v, want 48 kHz audio", tracks[1])
			}
		})
	}
}

func TestInspectFMP4FindsTheKeyFrameOfEverySegment(t *testing.T) {
	dir := encodeHLS(t, "fmp4", "high", "4.0", true)
	init, _ := os.ReadFile(filepath.Join(dir, "init.mp4"))
	tracks, err := ParseInit(init)
	if err != nil {
		t.Fatal(err)
	}
	var prevEnd time.Duration
	for i, seg := range segments(t, dir, "m4s") {
		info, err := InspectFMP4(seg, tracks)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if !info.HasVideo || !info.StartsWithKeyFrame {
			t.Errorf("segment %d: video %v, starts with key frame %v", i, info.HasVideo, info.StartsWithKeyFrame)
		}
		if info.KeyFrameEnd <= 0 || info.KeyFrameEnd >= int64(len(seg)) {
			t.Errorf("segment %d: key frame ends at %d of %d bytes", i, info.KeyFrameEnd, len(seg))
		}
		if d := info.Duration - time.Second; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("segment %d: duration %v, want 1s", i, info.Duration)
		}
		if i > 0 && info.Start != prevEnd {
			t.Errorf("segment %d starts at %v, previous ended at %v", i, info.Start, prevEnd)
		}
		prevEnd = info.Start + info.Duration

		// The byte range must hold exactly one decodable key frame.
		keys := probeFrames(t, append(append([]byte{}, init...), seg[:info.KeyFrameEnd]...))
		if len(keys) != 1 || !keys[0] {
			t.Errorf("segment %d: init + range [0,%d) decodes to frames %v, want one key frame", i, info.KeyFrameEnd, keys)
		}
	}
}

func TestInspectTSFindsCodecsAndTheKeyFrame(t *testing.T) {
	tests := []struct {
		name  string
		audio bool
		want  []string
	}{
		{"video and audio", true, []string{"avc1.64001f", "mp4a.40.2"}},
		{"video only", false, []string{"avc1.64001f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := encodeHLS(t, "mpegts", "high", "3.1", tt.audio)
			for i, seg := range segments(t, dir, "ts") {
				info, err := InspectTS(seg)
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				if strings.Join(info.Codecs, ",") != strings.Join(tt.want, ",") || info.Width != 320 || info.Height != 180 {
					t.Errorf("segment %d: codecs %v %dx%d, want %v 320x180", i, info.Codecs, info.Width, info.Height, tt.want)
				}
				if !info.StartsWithKeyFrame || info.KeyFrameEnd%188 != 0 || info.KeyFrameEnd <= 0 || info.KeyFrameEnd >= int64(len(seg)) {
					t.Errorf("segment %d: key frame %v ending at %d of %d", i, info.StartsWithKeyFrame, info.KeyFrameEnd, len(seg))
				}
				if want := time.Duration(i) * time.Second; info.Start < want || info.Start > want+2*time.Second {
					t.Errorf("segment %d starts at %v, want about %v plus the muxer's offset", i, info.Start, want)
				}
				keys := probeFrames(t, seg[:info.KeyFrameEnd])
				if len(keys) != 1 || !keys[0] {
					t.Errorf("segment %d: range [0,%d) decodes to frames %v, want one key frame", i, info.KeyFrameEnd, keys)
				}
			}
		})
	}
}

func TestInspectorsRejectGarbage(t *testing.T) {
	ts := bytes.Repeat([]byte{0x47, 0, 0, 0x10}, 47)
	inputs := map[string]func() error{
		"ts of the wrong size":   func() error { _, err := InspectTS(make([]byte, 100)); return err },
		"ts without sync":        func() error { _, err := InspectTS(make([]byte, 188)); return err },
		"ts without pat":         func() error { _, err := InspectTS(ts); return err },
		"init without moov":      func() error { _, err := ParseInit([]byte("\x00\x00\x00\x08free")); return err },
		"init with a huge box":   func() error { _, err := ParseInit([]byte("\x7f\x00\x00\x08moov")); return err },
		"segment without moof":   func() error { _, err := InspectFMP4([]byte("\x00\x00\x00\x08mdat"), []Track{{ID: 1}}); return err },
		"sps that is not an sps": func() error { _, err := ParseSPS([]byte{0x68, 1, 2, 3}); return err },
		"empty asc":              func() error { _, err := AudioObjectType(nil); return err },
	}
	for name, f := range inputs {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAudioObjectType(t *testing.T) {
	tests := []struct {
		asc  []byte
		want int
	}{
		{[]byte{0x11, 0x90}, 2},       // AAC-LC, 48 kHz, stereo
		{[]byte{0x2b, 0x92, 0x08}, 5}, // SBR (HE-AAC)
		{[]byte{0xf8, 0x20}, 33},      // escape: 32 + 1
	}
	for _, tt := range tests {
		got, err := AudioObjectType(tt.asc)
		if err != nil || got != tt.want {
			t.Errorf("AudioObjectType(% x) = %d, %v; want %d", tt.asc, got, err, tt.want)
		}
	}
}

// A decode time past what a time.Duration holds (about 292 years) is an
// error, not a start that wraps to a negative or arbitrary time. The
// FuzzInspectFMP4 corpus keeps the segment that found it (tfdt_overflow).
func TestTicksToDurationRefusesTimesBeyondADuration(t *testing.T) {
	tests := []struct {
		ticks     uint64
		timescale uint32
		want      time.Duration
		ok        bool
	}{
		{0, 90000, 0, true},
		{90000, 90000, time.Second, true},
		{45000, 90000, 500 * time.Millisecond, true},
		{9223372035 * 10240, 10240, 9223372035 * time.Second, true}, // the last whole second that fits
		{9223372037 * 10240, 10240, 0, false},                       // wrapped negative before
		{0xFFFFFFFFFFFFFF00, 10240, 0, false},                       // wrapped to a positive before
		{math.MaxUint64, 1, 0, false},
		{math.MaxUint64, math.MaxUint32, 4294967297 * time.Second, true},
	}
	for _, tt := range tests {
		got, ok := ticksToDuration(tt.ticks, tt.timescale)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ticksToDuration(%d, %d) = %v, %v; want %v, %v", tt.ticks, tt.timescale, got, ok, tt.want, tt.ok)
		}
	}
}
