package media

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeMedia renders a short clip with ffmpeg's lavfi sources.
func makeMedia(t *testing.T, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	full = append(full, out)
	if b, err := exec.Command("ffmpeg", full...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

func TestProbeRecognisesContainersAndCodecs(t *testing.T) {
	av := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1"}
	tests := []struct {
		name, file           string
		args                 []string
		format, mime, vcodec string
		acodec               string
		width, height        int
	}{
		{"mp4 h264 aac", "a.mp4", append(av, "-c:v", "libx264", "-c:a", "aac"), "mp4", "video/mp4", "h264", "aac", 320, 240},
		{"mpegts h264 aac", "a.ts", append(av, "-c:v", "libx264", "-c:a", "aac"), "mpegts", "video/mp2t", "h264", "aac", 320, 240},
		{"matroska", "a.mkv", append(av, "-c:v", "libx264", "-c:a", "aac"), "matroska", "video/x-matroska", "h264", "aac", 320, 240},
		{"adts aac audio only", "a.aac", []string{"-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac"}, "aac", "audio/aac", "", "aac", 0, 0},
		{"wav audio only", "a.wav", []string{"-f", "lavfi", "-i", "sine=frequency=440", "-t", "1"}, "wav", "audio/wav", "", "pcm_s16le", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeMedia(t, tt.file, tt.args...)
			info, err := Probe(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.FFmpegFormat(); got != tt.format {
				t.Errorf("FFmpegFormat = %q, want %q", got, tt.format)
			}
			if got := info.MimeType(); got != tt.mime {
				t.Errorf("MimeType = %q, want %q", got, tt.mime)
			}
			v, hasV := info.Video()
			if hasV != (tt.vcodec != "") || v.CodecName != tt.vcodec || v.Width != tt.width || v.Height != tt.height {
				t.Errorf("video = %+v (present %v), want %s %dx%d", v, hasV, tt.vcodec, tt.width, tt.height)
			}
			if hasV && (v.FrameRate < 24.9 || v.FrameRate > 25.1) {
				t.Errorf("frame rate = %v, want 25", v.FrameRate)
			}
			a, _ := info.Audio()
			if a.CodecName != tt.acodec {
				t.Errorf("audio codec = %q, want %q", a.CodecName, tt.acodec)
			}
			if info.Duration < 900*time.Millisecond || info.Duration > 1200*time.Millisecond {
				t.Errorf("duration = %v, want about 1s", info.Duration)
			}
		})
	}
}

func TestProbeBytesReadsAStreamPrefix(t *testing.T) {
	path := makeMedia(t, "live.ts", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine", "-t", "2", "-c:v", "libx264", "-c:a", "aac")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ProbeBytes(context.Background(), data[:len(data)/2])
	if err != nil {
		t.Fatal(err)
	}
	if info.FFmpegFormat() != "mpegts" || len(info.Streams) != 2 {
		t.Fatalf("got %s with %d streams, want mpegts with 2", info.FormatName, len(info.Streams))
	}
}

func TestProbeRejectsNonMedia(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte(strings.Repeat("this is not a video\n", 200)), 0o644)
	empty := filepath.Join(dir, "empty.mp4")
	os.WriteFile(empty, nil, 0o644)
	for _, path := range []string{text, empty, filepath.Join(dir, "missing.mp4")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, err := Probe(context.Background(), path)
			if !errors.Is(err, ErrNoMedia) {
				t.Fatalf("err = %v, want ErrNoMedia", err)
			}
			if !strings.Contains(err.Error(), filepath.Base(path)) {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
}

func TestParseProbeSkipsCoverArtAndJunk(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		streams int
		err     error
	}{
		{"cover art only is not media", `{"streams":[{"index":0,"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}],"format":{"format_name":"mp3"}}`, 0, ErrNoMedia},
		{"audio with cover art", `{"streams":[{"index":0,"codec_type":"audio","codec_name":"mp3","sample_rate":"44100"},{"index":1,"codec_type":"video","codec_name":"png","disposition":{"attached_pic":1}}],"format":{"format_name":"mp3","duration":"3.5"}}`, 1, nil},
		{"zero frame rate", `{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","avg_frame_rate":"0/0","r_frame_rate":"30000/1001"}],"format":{"format_name":"mpegts"}}`, 1, nil},
		{"not json", `ffprobe said something`, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := parseProbe([]byte(tt.json))
			if tt.name == "not json" {
				if err == nil {
					t.Fatal("want an error for non-JSON output")
				}
				return
			}
			if !errors.Is(err, tt.err) && !(err == nil && tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && len(info.Streams) != tt.streams {
				t.Fatalf("streams = %d, want %d", len(info.Streams), tt.streams)
			}
			if tt.name == "zero frame rate" && (info.Streams[0].FrameRate < 29.9 || info.Streams[0].FrameRate > 30) {
				t.Fatalf("frame rate %v, want r_frame_rate fallback 29.97", info.Streams[0].FrameRate)
			}
		})
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add([]byte(`{"streams":[{"index":0,"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"aac","duration":"1.0"}}`))
	f.Add([]byte(`{"streams":[{"codec_type":"video","avg_frame_rate":"1/0"}],"format":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseProbe(data)
		if err == nil {
			_ = info.MimeType()
			_ = info.FFmpegFormat()
		}
	})
}
