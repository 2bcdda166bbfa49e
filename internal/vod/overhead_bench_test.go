package vod

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// selfCPU is the CPU time (user + system) this process used so far, its
// children's not included.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkVODOverhead is the VOD figure of docs/benchmarks.md ("Ingest
// and VOD overhead"): weir's whole VOD job on BenchmarkLadder1080p60s's
// title (60 s of 1080p30 H.264 with AAC, the default four-rung ladder,
// veryfast, 4 s segments), with the CPU time weir itself spends (this
// process: job handling, segment hashing and uploads, playlists,
// metadata, progress) set against the CPU time of its ffprobe and ffmpeg
// children. Reported: overhead-% (weir's CPU as a percentage of the
// children's), weir-CPU-s and ffmpeg-CPU-s per title, and s/op.
func BenchmarkVODOverhead(b *testing.B) {
	src := benchSource(b)
	var self, children time.Duration
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b)
		cfg := e.config(b)
		cfg.Preset, cfg.SegmentDuration = "", 0 // the defaults: veryfast, 4 s
		cfg.PollInterval, cfg.ProgressInterval = 0, 0
		w := e.worker(b, cfg)
		id, job := e.upload(b, src)
		b.StartTimer()
		self0, child0 := selfCPU(), childCPU()
		if err := w.Handle(context.Background(), job); err != nil {
			b.Fatal(err)
		}
		self += selfCPU() - self0
		children += childCPU() - child0
		b.StopTimer()
		if st := e.stream(b, id); st.Status != metastore.StatusReady {
			b.Fatalf("status %s: %s", st.Status, st.Error)
		}
		b.StartTimer()
	}
	if children <= 0 {
		b.Fatal("no CPU time was spent in child processes: ffmpeg did not run")
	}
	n := float64(b.N)
	b.ReportMetric(100*self.Seconds()/children.Seconds(), "overhead-%")
	b.ReportMetric(self.Seconds()/n, "weir-CPU-s")
	b.ReportMetric(children.Seconds()/n, "ffmpeg-CPU-s")
}
