package vod

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media"
)

func videoInfo(w, h int, audio bool) *media.Info {
	info := &media.Info{Duration: 10 * time.Second, Streams: []media.Stream{{CodecType: "video", CodecName: "h264", Width: w, Height: h, FrameRate: 30}}}
	if audio {
		info.Streams = append(info.Streams, media.Stream{CodecType: "audio", CodecName: "aac", SampleRate: 48000, Channels: 2})
	}
	return info
}

func TestPlanLadderNeverUpscales(t *testing.T) {
	tests := []struct {
		name  string
		info  *media.Info
		want  string
		audio bool
	}{
		{"1080p source gets every rung", videoInfo(1920, 1080, true), "1080p,720p,480p,360p", true},
		{"4k source stops at the top rung", videoInfo(3840, 2160, true), "1080p,720p,480p,360p", true},
		{"720p source skips 1080p", videoInfo(1280, 720, true), "720p,480p,360p", true},
		{"cinemascope 1920x800 is sized by its short side", videoInfo(1920, 800, true), "720p,480p,360p", true},
		{"portrait phone video is sized by its width", videoInfo(1080, 1920, true), "1080p,720p,480p,360p", true},
		{"exactly 360 lines keeps the bottom rung", videoInfo(640, 360, false), "360p", false},
		{"smaller than the ladder gets one rendition at its own size", videoInfo(320, 240, true), "240p", true},
		{"odd sizes round down to even", videoInfo(321, 241, true), "240p", true},
		{"audio only", &media.Info{Streams: []media.Stream{{CodecType: "audio", CodecName: "mp3", SampleRate: 44100}}}, "audio", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := planLadder(DefaultLadder(), tt.info, 128_000)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rs {
				names = append(names, r.Name)
				if r.Audio != tt.audio {
					t.Errorf("%s: audio %v, want %v", r.Name, r.Audio, tt.audio)
				}
				if r.Video != (r.Name != audioRendition) {
					t.Errorf("%s: video %v", r.Name, r.Video)
				}
			}
			if got := strings.Join(names, ","); got != tt.want {
				t.Errorf("renditions %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := planLadder(DefaultLadder(), &media.Info{}, 128_000); err == nil {
		t.Error("no error for a source without streams")
	}
	if _, err := planLadder(DefaultLadder(), videoInfo(0, 0, true), 128_000); err == nil {
		t.Error("no error for a video without a size")
	}
}

func TestGroupRenditions(t *testing.T) {
	rs := []*rendition{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}}
	tests := []struct {
		per  int
		want string
	}{
		{0, "a b c d"},
		{1, "a|b|c|d"},
		{3, "a b c|d"},
		{4, "a b c d"},
		{9, "a b c d"},
	}
	for _, tt := range tests {
		var groups []string
		for _, g := range groupRenditions(rs, tt.per) {
			groups = append(groups, strings.Join(groupNames(g), " "))
		}
		if got := strings.Join(groups, "|"); got != tt.want {
			t.Errorf("per process %d: %s, want %s", tt.per, got, tt.want)
		}
	}
}

// The ffmpeg command is what makes segments align: a fixed GOP, no
// scene-cut keyframes, forced IDR frames on the segment grid, one decode
// split to every encoder.
func TestFFmpegArgsFixTheGOPAndDecodeOnce(t *testing.T) {
	cfg := Config{Preset: "veryfast", SegmentDuration: 4 * time.Second, Format: FormatFMP4}
	info := videoInfo(1920, 1080, true)
	rs, _ := planLadder(DefaultLadder(), info, 128_000)
	for _, r := range rs {
		r.Dir = "/work/" + r.Name
	}
	args := strings.Join(ffmpegArgs(&cfg, "/work/source.mp4", info, rs), " ")
	for _, want := range []string{
		"-i /work/source.mp4 -filter_complex [0:v:0]split=4[s0][s1][s2][s3];",
		"[s3]scale=w='if(gte(iw,ih),-2,360)':h='if(gte(iw,ih),360,-2)',format=yuv420p[v3]",
		"-map [v0] -c:v libx264 -preset veryfast -profile:v high -b:v 5000000 -maxrate 5350000 -bufsize 7500000 -g 120 -keyint_min 120 -sc_threshold 0 -force_key_frames expr:gte(t,n_forced*4) -forced-idr 1",
		"-map [v3] -c:v libx264 -preset veryfast -profile:v main -b:v 800000",
		"-map 0:a:0 -c:a aac -b:a 96000 -ac 2",
		"-hls_time 4 -hls_list_size 0 -hls_playlist_type event -hls_flags independent_segments+temp_file -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -hls_segment_filename /work/720p/seg_%05d.m4s /work/720p/ffmpeg.m3u8",
		"-progress pipe:1",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("missing %q in\n%s", want, args)
		}
	}
	if n := strings.Count(args, " -i "); n != 1 {
		t.Errorf("%d inputs, want the source decoded once", n)
	}

	cfg.Format = FormatTS
	audio := &media.Info{Streams: []media.Stream{{CodecType: "audio", CodecName: "mp3", SampleRate: 44100}}}
	rs, _ = planLadder(DefaultLadder(), audio, 128_000)
	rs[0].Dir = "/work/audio"
	args = strings.Join(ffmpegArgs(&cfg, "/work/source.mp3", audio, rs), " ")
	if strings.Contains(args, "filter_complex") || strings.Contains(args, "libx264") || !strings.Contains(args, "-hls_segment_type mpegts -hls_segment_filename /work/audio/seg_%05d.ts") {
		t.Errorf("audio-only command: %s", args)
	}
}

func TestPredictTargetDuration(t *testing.T) {
	tests := []struct {
		name string
		info *media.Info
		seg  time.Duration
		want int
	}{
		{"30 fps divides 4 s", videoInfo(640, 360, false), 4 * time.Second, 4},
		{"29.97 fps makes 4.004 s segments", &media.Info{Streams: []media.Stream{{CodecType: "video", FrameRate: 30000.0 / 1001}}}, 4 * time.Second, 5},
		{"25 fps divides 2 s", &media.Info{Streams: []media.Stream{{CodecType: "video", FrameRate: 25}}}, 2 * time.Second, 2},
		{"aac frames overrun 4 s", &media.Info{Streams: []media.Stream{{CodecType: "audio", SampleRate: 48000}}}, 4 * time.Second, 5},
		{"unknown rate", &media.Info{Streams: []media.Stream{{CodecType: "video"}}}, 6 * time.Second, 6},
	}
	for _, tt := range tests {
		if got := predictTargetDuration(tt.info, tt.seg); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestConfigRejectsBadSettings(t *testing.T) {
	e := newEnv(t)
	bad := map[string]func(*Config){
		"no stores":        func(c *Config) { c.Meta = nil },
		"unknown format":   func(c *Config) { c.Format = "webm" },
		"tiny segments":    func(c *Config) { c.SegmentDuration = time.Millisecond },
		"rung named audio": func(c *Config) { c.Ladder = []Rung{{Name: "audio", Height: 360, VideoBitrate: 1, AudioBitrate: 1}} },
		"rung with a slash": func(c *Config) {
			c.Ladder = []Rung{{Name: "a/b", Height: 360, VideoBitrate: 1, AudioBitrate: 1}}
		},
		"rungs going up": func(c *Config) {
			c.Ladder = []Rung{{Name: "a", Height: 360, VideoBitrate: 1, AudioBitrate: 1}, {Name: "b", Height: 720, VideoBitrate: 1, AudioBitrate: 1}}
		},
		"duplicate rung": func(c *Config) {
			c.Ladder = []Rung{{Name: "a", Height: 720, VideoBitrate: 1, AudioBitrate: 1}, {Name: "a", Height: 360, VideoBitrate: 1, AudioBitrate: 1}}
		},
	}
	for name, mutate := range bad {
		cfg := e.config(t)
		mutate(&cfg)
		if _, err := NewWorker(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// ffmpeg reads the source with the demuxer the probe checked and the file
// protocol alone, so bytes that probe as one container cannot be read as a
// playlist of other files by the transcode or the thumbnail.
func TestFFmpegReadsTheSourceOnlyWithTheProbedDemuxer(t *testing.T) {
	cfg := Config{Preset: "veryfast", SegmentDuration: 4 * time.Second, Format: FormatFMP4}
	info := videoInfo(1280, 720, true)
	info.FormatName = "mov,mp4,m4a,3gp,3g2,mj2"
	rs, _ := planLadder(DefaultLadder(), info, 128_000)
	want := strings.Join(media.InputArgs(media.ProtocolsFile, "mov"), " ") + " -i /work/source.mp4 "
	for name, args := range map[string][]string{
		"transcode": ffmpegArgs(&cfg, "/work/source.mp4", info, rs),
		"thumbnail": thumbnailArgs("/work/source.mp4", info, "/work/thumb.jpg"),
	} {
		joined := strings.Join(args, " ")
		if !strings.Contains(joined, want) || !strings.Contains(joined, "-protocol_whitelist file -format_whitelist mov,") {
			t.Errorf("%s: want %q before the input in\n%s", name, want, joined)
		}
		if strings.Count(joined, " -i ") != 1 {
			t.Errorf("%s: more than one input in\n%s", name, joined)
		}
	}
}

// TestPlanLadderCapsRungsAtTheSourcesBitRate: a rung never asks for more
// than the source's video bit rate (the stream's as ffprobe reports it,
// else the container's less the audio's); maxrate and buffer follow.
func TestPlanLadderCapsRungsAtTheSourcesBitRate(t *testing.T) {
	withRates := func(video, format, audio int64) *media.Info {
		info := videoInfo(1920, 1080, true)
		info.Streams[0].BitRate, info.Streams[1].BitRate, info.BitRate = video, audio, format
		return info
	}
	tests := []struct {
		name string
		info *media.Info
		want map[string][3]int64 // b:v, maxrate, bufsize
	}{
		{"a 2 Mb/s video stream caps 1080p and 720p", withRates(2_000_000, 0, 0), map[string][3]int64{
			"1080p": {2_000_000, 2_140_000, 3_000_000}, "720p": {2_000_000, 2_140_000, 3_000_000},
			"480p": {1_400_000, 1_498_000, 2_100_000}, "360p": {800_000, 856_000, 1_200_000}}},
		{"the container's rate less the audio's when the stream has none", withRates(0, 1_128_000, 128_000), map[string][3]int64{
			"1080p": {1_000_000, 1_070_000, 1_500_000}, "480p": {1_000_000, 1_070_000, 1_500_000}, "360p": {800_000, 856_000, 1_200_000}}},
		{"unknown rates change nothing", withRates(0, 0, 0), map[string][3]int64{
			"1080p": {5_000_000, 5_350_000, 7_500_000}, "360p": {800_000, 856_000, 1_200_000}}},
		{"a rich source changes nothing", withRates(20_000_000, 0, 0), map[string][3]int64{
			"1080p": {5_000_000, 5_350_000, 7_500_000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ladder := DefaultLadder()
			rs, err := planLadder(ladder, tt.info, 128_000)
			if err != nil {
				t.Fatal(err)
			}
			if ladder[0].VideoBitrate != 5_000_000 || ladder[0].BufSize != 7_500_000 {
				t.Fatalf("planLadder changed the configured ladder: %+v", ladder[0])
			}
			got := map[string][3]int64{}
			for _, r := range rs {
				got[r.Name] = [3]int64{r.Rung.VideoBitrate, r.Rung.MaxBitrate, r.Rung.BufSize}
			}
			for name, w := range tt.want {
				if got[name] != w {
					t.Errorf("%s: b:v, maxrate, bufsize %v, want %v", name, got[name], w)
				}
			}
		})
	}
}
