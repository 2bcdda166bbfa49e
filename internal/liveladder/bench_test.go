package liveladder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/internal/vod"
)

// benchSeconds is the length of the benchmark's source.
const benchSeconds = 10

// benchSource makes benchSeconds of a 1280x720 25 fps test pattern with a
// 1 s GOP and a tone, as an RTMP publisher's MPEG-TS would carry it.
func benchSource(b *testing.B) []byte {
	b.Helper()
	testenv.RequireTool(b, "ffmpeg")
	out := filepath.Join(b.TempDir(), "src.ts")
	d := "10"
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration="+d,
		"-f", "lavfi", "-i", "sine=frequency=440:duration="+d,
		"-c:v", "libx264", "-preset", "veryfast", "-b:v", "3000k", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// cpuOf runs cmd to completion on input and returns the CPU time (user and
// system) it used.
func cpuOf(b *testing.B, s *session, input []byte) time.Duration {
	b.Helper()
	if err := s.write(input); err != nil {
		b.Fatal(err)
	}
	if err := s.finish(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := s.cmd.ProcessState
	return st.UserTime() + st.SystemTime()
}

// BenchmarkRungCPU measures what a live ladder costs per second of media:
// decoding the 720p source alone, and one ffmpeg making each rung (decode,
// scale, x264 veryfast with the source's key frames, AAC), reported as
// CPU-seconds per media-second (cpu-s/media-s). A rung's own cost is its
// figure less decode's. docs/benchmarks.md keeps the figures.
func BenchmarkRungCPU(b *testing.B) {
	src := benchSource(b)
	ladder, err := ParseSpec("480p=1400k,360p=800k")
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, cpu time.Duration) {
		b.ReportMetric(cpu.Seconds()/float64(b.N)/benchSeconds, "cpu-s/media-s")
	}
	b.Run("decode", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0",
				"-map", "0:v:0", "-f", "null", "-")
			in, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			in.Write(src)
			in.Close()
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		report(b, cpu)
	})
	for _, r := range ladder {
		b.Run(r.Name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				s, err := startSession(context.Background(), "ffmpeg", DefaultPreset, []vod.Rung{r}, false,
					func(int, []byte) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				cpu += cpuOf(b, s, src)
			}
			report(b, cpu)
		})
	}
	b.Run("all", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			s, err := startSession(context.Background(), "ffmpeg", DefaultPreset, ladder, false,
				func(int, []byte) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			cpu += cpuOf(b, s, src)
		}
		report(b, cpu)
	})
}
