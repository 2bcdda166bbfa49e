package chunker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// fixtures are real clips made with ffmpeg's lavfi sources in TestMain.
var fixtures struct {
	dir       string
	av        string // 8 s 320x240 25 fps H.264 (key frame every 1.2 s, B-frames) + 48 kHz AAC, MPEG-TS
	videoOnly string // 2 s H.264, no audio, MPEG-TS
	scene     string // red 1.52 s, blue 2 s, green 2 s; H.264 MPEG-TS
	// mp4 is 8 s 320x240 25 fps H.264 (key frame every 1 s) + AAC as
	// "ffmpeg -i x out.mp4" writes it: the index (moov) after the media.
	mp4 string
	// mp4Faststart is the same with -movflags +faststart: the index first.
	mp4Faststart string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chunker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fixtures.dir = dir
	fixtures.av = filepath.Join(dir, "av.ts")
	fixtures.videoOnly = filepath.Join(dir, "video-only.ts")
	fixtures.scene = filepath.Join(dir, "scene.ts")
	fixtures.mp4 = filepath.Join(dir, "index-at-end.mp4")
	fixtures.mp4Faststart = filepath.Join(dir, "faststart.mp4")
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"}
	jobs := [][]string{
		append(append([]string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8"}, x264...),
			"-x264-params", "keyint=30:min-keyint=30:scenecut=0:bframes=2", "-c:a", "aac", "-b:a", "64k",
			"-f", "mpegts", fixtures.av),
		append(append([]string{"-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2"}, x264...),
			"-g", "25", "-f", "mpegts", fixtures.videoOnly),
		append(append([]string{"-f", "lavfi", "-i", "color=c=red:s=160x120:r=25:d=1.52",
			"-f", "lavfi", "-i", "color=c=blue:s=160x120:r=25:d=2",
			"-f", "lavfi", "-i", "color=c=green:s=160x120:r=25:d=2",
			"-filter_complex", "[0][1][2]concat=n=3:v=1:a=0"}, x264...),
			"-g", "25", "-f", "mpegts", fixtures.scene),
		mp4Args(fixtures.mp4),
		mp4Args(fixtures.mp4Faststart, "-movflags", "+faststart"),
	}
	for _, args := range jobs {
		cmd := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "fixture %s: %v: %s\n", args[len(args)-1], err, out)
			return 1
		}
	}
	return m.Run()
}

// mp4Args make an 8 s MP4 the way the commonest uploads are made, with
// extra output options.
func mp4Args(out string, extra ...string) []string {
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac"}
	return append(append(args, extra...), out)
}

// bench1080p is a 1080p clip made once for the benchmarks.
var bench1080p = sync.OnceValues(func() (string, error) {
	path := filepath.Join(fixtures.dir, "bench-1080p.ts")
	cmd := exec.Command("ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=6",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-f", "mpegts", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return path, nil
})

// probePacket is one packet as ffprobe reports it.
type probePacket struct {
	PTS      float64
	Duration float64
	Key      bool
}

type probeOut struct {
	Format struct {
		FormatName string `json:"format_name"`
		StartTime  string `json:"start_time"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		SampleRate string `json:"sample_rate"`
		Channels   int    `json:"channels"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		Duration   string `json:"duration"`
	} `json:"streams"`
	Packets []struct {
		PTSTime      string `json:"pts_time"`
		DurationTime string `json:"duration_time"`
		Flags        string `json:"flags"`
	} `json:"packets"`
}

// ffprobe runs ffprobe with the given selection on a file.
func ffprobe(t testing.TB, path string, args ...string) probeOut {
	t.Helper()
	all := append([]string{"-v", "error", "-of", "json"}, args...)
	out, err := exec.Command("ffprobe", append(all, path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var po probeOut
	if err := json.Unmarshal(out, &po); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return po
}

// packets returns a stream's packets ("v" or "a") in presentation order.
func packets(t testing.TB, path, stream string) []probePacket {
	t.Helper()
	po := ffprobe(t, path, "-select_streams", stream, "-show_entries", "packet=pts_time,duration_time,flags")
	var ps []probePacket
	for _, p := range po.Packets {
		ps = append(ps, probePacket{PTS: atof(t, p.PTSTime), Duration: atof(t, p.DurationTime), Key: len(p.Flags) > 0 && p.Flags[0] == 'K'})
	}
	for i := 1; i < len(ps); i++ { // insertion sort: B-frames arrive out of order
		for j := i; j > 0 && ps[j].PTS < ps[j-1].PTS; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	return ps
}

func startTime(t testing.TB, path string) float64 {
	t.Helper()
	return atof(t, ffprobe(t, path, "-show_entries", "format=start_time").Format.StartTime)
}

func atof(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("ffprobe number %q: %v", s, err)
	}
	return v
}

// collect runs the chunker on a stream of the file and keeps a copy of
// every chunk's file.
func collect(t *testing.T, path string, opts Options) ([]Chunk, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return gather(t, func(emit func(context.Context, Chunk) error) error {
		return Run(context.Background(), f, opts, emit)
	})
}

// collectFile is collect through RunFile.
func collectFile(t *testing.T, path string, opts Options) ([]Chunk, error) {
	t.Helper()
	return gather(t, func(emit func(context.Context, Chunk) error) error {
		return RunFile(context.Background(), path, opts, emit)
	})
}

// gather calls run with an emit that checks each chunk's size, refuses
// an empty one and keeps a copy of it.
func gather(t *testing.T, run func(emit func(context.Context, Chunk) error) error) ([]Chunk, error) {
	t.Helper()
	keep := t.TempDir()
	var chunks []Chunk
	err := run(func(_ context.Context, c Chunk) error {
		data, err := os.ReadFile(c.Path)
		if err != nil {
			return err
		}
		if int64(len(data)) != c.Size {
			t.Errorf("%s chunk %d: Size %d, file has %d bytes", c.Kind, c.Index, c.Size, len(data))
		}
		if len(data) == 0 || c.EndMs < c.StartMs || c.Kind != KindFrame && c.EndMs == c.StartMs {
			t.Errorf("%s chunk %d is empty: %d bytes, %d-%d ms", c.Kind, c.Index, len(data), c.StartMs, c.EndMs)
		}
		c.Path = filepath.Join(keep, fmt.Sprintf("%s-%06d%s", c.Kind, c.Index, filepath.Ext(c.Path)))
		chunks = append(chunks, c)
		return os.WriteFile(c.Path, data, 0o600)
	})
	return chunks, err
}

func ofKind(chunks []Chunk, k Kind) []Chunk {
	var out []Chunk
	for _, c := range chunks {
		if c.Kind == k {
			out = append(out, c)
		}
	}
	return out
}

// decodesAlone decodes a file with nothing else and fails on any error.
func decodesAlone(t *testing.T, path string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("%s does not decode on its own: %v %s", filepath.Base(path), err, stderr.String())
	}
}
