package vod

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// benchSource makes (once, kept in the temp dir between runs) the
// benchmark's source: 60 s of 1080p30 H.264 at about 8 Mb/s with AAC audio.
func benchSource(b *testing.B) string {
	b.Helper()
	needFFmpeg(b)
	path := filepath.Join(os.TempDir(), "weir-bench-1080p30-60s.mp4")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".part.mp4"
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8M", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", tmp).CombinedOutput()
	if err != nil {
		b.Fatalf("making the benchmark source: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// handWrittenLadder is the peer weir is measured against: the single ffmpeg
// command a person would write for the same ladder — one decode split four
// ways, the same encoder settings, fMP4 HLS with 4 s segments — with no
// probing, uploading, hashing, playlists or metadata.
func handWrittenLadder(src, out string) []string {
	rung := func(v, name, profile, b, max, buf, ab string) []string {
		return []string{"-map", v, "-map", "0:a:0",
			"-c:v", "libx264", "-preset", "veryfast", "-profile:v", profile, "-b:v", b, "-maxrate", max, "-bufsize", buf,
			"-g", "120", "-keyint_min", "120", "-sc_threshold", "0", "-force_key_frames", "expr:gte(t,n_forced*4)",
			"-c:a", "aac", "-b:a", ab, "-ac", "2",
			"-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
			"-hls_segment_filename", filepath.Join(out, name, "seg_%05d.m4s"), filepath.Join(out, name, "index.m3u8")}
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", src, "-filter_complex",
		"[0:v]split=4[a][b][c][d];[a]scale=-2:1080[v0];[b]scale=-2:720[v1];[c]scale=-2:480[v2];[d]scale=-2:360[v3]"}
	args = append(args, rung("[v0]", "1080p", "high", "5000k", "5350k", "7500k", "128k")...)
	args = append(args, rung("[v1]", "720p", "high", "3000k", "3210k", "4500k", "128k")...)
	args = append(args, rung("[v2]", "480p", "main", "1400k", "1498k", "2100k", "96k")...)
	args = append(args, rung("[v3]", "360p", "main", "800k", "856k", "1200k", "96k")...)
	return args
}

// childCPU is the CPU time (user + system) used by this process's waited-for
// children, ffmpeg included.
func childCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLadder1080p60s times weir's whole VOD job on a 60-second 1080p
// clip (probe, the four-rung transcode, uploads, hashing, playlists,
// metadata) next to the hand-written ffmpeg command for the same ladder, in
// the same run, alternating which goes first. It reports both wall times,
// their ratio (aim: ≤ 1.05), the ratio of CPU time spent in child
// processes (less sensitive to a busy machine), and the time from job start
// until the title was playable (every rendition had its first segment and
// the master playlist was written).
func BenchmarkLadder1080p60s(b *testing.B) {
	src := benchSource(b)
	var weirWall, peerWall, weirCPU, peerCPU, firstPlayable time.Duration
	for i := 0; i < b.N; i++ {
		runWeir := func() {
			e := newEnv(b)
			cfg := e.config(b)
			cfg.Preset, cfg.SegmentDuration = "", 0 // the defaults: veryfast, 4 s
			cfg.PollInterval, cfg.ProgressInterval = 0, 0
			w := e.worker(b, cfg)
			id, job := e.upload(b, src)
			cpu0, t0 := childCPU(), time.Now()
			if err := w.Handle(context.Background(), job); err != nil {
				b.Fatal(err)
			}
			weirWall += time.Since(t0)
			weirCPU += childCPU() - cpu0
			st := e.stream(b, id)
			if st.Status != metastore.StatusReady {
				b.Fatalf("status %s: %s", st.Status, st.Error)
			}
			firstPlayable += time.Duration(detailInt(st.Details, "first_playable_ms")) * time.Millisecond
		}
		runPeer := func() {
			out := b.TempDir()
			for _, r := range []string{"1080p", "720p", "480p", "360p"} {
				os.MkdirAll(filepath.Join(out, r), 0o755)
			}
			cpu0, t0 := childCPU(), time.Now()
			if msg, err := exec.Command("ffmpeg", handWrittenLadder(src, out)...).CombinedOutput(); err != nil {
				b.Fatalf("hand-written ffmpeg: %v\n%s", err, msg)
			}
			peerWall += time.Since(t0)
			peerCPU += childCPU() - cpu0
		}
		if i%2 == 0 {
			runWeir()
			runPeer()
		} else {
			runPeer()
			runWeir()
		}
	}
	n := float64(b.N)
	b.ReportMetric(weirWall.Seconds()/n, "weir-s/op")
	b.ReportMetric(peerWall.Seconds()/n, "ffmpeg-s/op")
	b.ReportMetric(weirWall.Seconds()/peerWall.Seconds(), "ratio")
	b.ReportMetric(weirCPU.Seconds()/peerCPU.Seconds(), "cpu-ratio")
	b.ReportMetric(firstPlayable.Seconds()/n, "first-playable-s")
	b.Logf("%d CPUs; per run: weir %.1f s (%.1f s CPU), hand-written ffmpeg %.1f s (%.1f s CPU), first playable after %.1f s",
		runtime.NumCPU(), weirWall.Seconds()/n, weirCPU.Seconds()/n, peerWall.Seconds()/n, peerCPU.Seconds()/n, firstPlayable.Seconds()/n)
}
