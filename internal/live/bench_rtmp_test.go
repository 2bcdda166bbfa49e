package live

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/ingest/push"
	"github.com/weir-media/weir/internal/metastore"
)

// BenchmarkLiveRTMPPublishers runs the load of issue 18 against one
// process (RTMP listener, embedded bus keeping its log in files as weir
// serve does, packager, SQLite, file object store; weir serve's default
// timings): N
// real ffmpeg processes, each publishing a pre-encoded 1280x720 30 fps
// H.264 stream at about 3 Mbit/s plus AAC over RTMP with
// `-re -stream_loop -1 -c copy`, so no encoder runs during the window and
// the publishers' CPU is not this process's. The media is encoded once,
// with lavfi, before the first window.
//
// Per publisher count it reports:
//
//   - cpu-s/stream-min: this process's user+system CPU (getrusage; ffmpeg
//     runs in child processes and is not counted) over the window, divided
//     by publishers × window minutes. MediaMTX measured at 0.62 on the
//     issue's machine; the aim is ≤ 0.95.
//   - peak-rss-MB: the process's peak resident set over the window
//     (VmHWM, reset through /proc/self/clear_refs when allowed).
//   - lat-p50-ms, lat-p99-ms: segment availability latency over every
//     segment of every stream listed in the window, from the ingest
//     receiving the key frame that closes a segment (the frame after the
//     segment's last; on loopback the publisher's send time) to the live
//     playlist listing the segment being readable: the packager's
//     weir_live_segment_publish_latency_seconds histogram, interpolated
//     within its buckets.
//
// The window starts once every stream has its first segment listed, so
// stream starts are left out.
//
// Settings, from the environment:
//
//	WEIR_BENCH_LIVE_WINDOW      window length (default 20s; 60s for docs/benchmarks.md)
//	WEIR_BENCH_LIVE_PUBLISHERS  publisher counts (default "1,4,8,16")
//	WEIR_BENCH_LIVE_CPUPROFILE  write a CPU profile of each window to this path
//	WEIR_BENCH_LIVE_MEMPROFILE  write an allocation profile (alloc_space over the window) to this path
//	                            (suffixed -N with the publisher count)
//	WEIR_BENCH_LIVE_LL          1: every stream is Low-Latency HLS ("ll_hls": true,
//	                            fMP4 parts of the default part target, 333 ms)
//
//	WEIR_BENCH_LIVE_WINDOW=60s go test -run '^$' -bench LiveRTMPPublishers -benchtime 1x ./internal/live
func BenchmarkLiveRTMPPublishers(b *testing.B) {
	window := 20 * time.Second
	if v := os.Getenv("WEIR_BENCH_LIVE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 4*time.Second {
			b.Fatalf("WEIR_BENCH_LIVE_WINDOW=%q: want a duration of at least 4s", v)
		}
		window = d
	}
	counts := []int{1, 4, 8, 16}
	if v := os.Getenv("WEIR_BENCH_LIVE_PUBLISHERS"); v != "" {
		counts = counts[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("WEIR_BENCH_LIVE_PUBLISHERS=%q: want publisher counts like 1,4,8,16", v)
			}
			counts = append(counts, n)
		}
	}
	const seconds = 10
	media := filepath.Join(b.TempDir(), "720p30.flv")
	encodeMediaFile(b, media, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=1280x720:rate=30:duration=%d", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
		"-b:v", "3M", "-minrate", "3M", "-maxrate", "3M", "-bufsize", "3M", "-x264-params", "nal-hrd=cbr",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv")
	if fi, err := os.Stat(media); err == nil {
		b.Logf("media: %d bytes, %.2f Mbit/s; window %v", fi.Size(), float64(fi.Size())*8/seconds/1e6, window)
	}
	profile := os.Getenv("WEIR_BENCH_LIVE_CPUPROFILE")
	ll := os.Getenv("WEIR_BENCH_LIVE_LL") == "1"
	if ll {
		b.Logf("LL-HLS: every stream packaged as Low-Latency HLS, part target %v", DefaultPartTarget)
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("publishers=%d", n), func(b *testing.B) {
			var cpu, rss, p50, p99 float64
			for i := 0; i < b.N; i++ {
				prof := ""
				if profile != "" {
					prof = fmt.Sprintf("%s-%d", profile, n)
				}
				r := runRTMPPublishers(b, media, n, window, prof, ll)
				cpu, rss, p50, p99 = cpu+r.cpuPerStreamMin, max(rss, r.peakRSSMB), p50+r.p50, max(p99, r.p99)
			}
			k := float64(b.N)
			b.ReportMetric(cpu/k, "cpu-s/stream-min")
			b.ReportMetric(rss, "peak-rss-MB")
			b.ReportMetric(p50/k, "lat-p50-ms")
			b.ReportMetric(p99, "lat-p99-ms")
		})
	}
}

type rtmpLoadResult struct {
	cpuPerStreamMin float64
	peakRSSMB       float64
	p50, p99        float64 // ms
}

// encodeMediaFile encodes media with ffmpeg into out.
func encodeMediaFile(t testing.TB, out string, args ...string) {
	t.Helper()
	needTool(t, "ffmpeg")
	r := startFFmpeg(t, append(args, out)...)
	r.wait(t, 5*time.Minute)
}

// runRTMPPublishers publishes media from n looping ffmpeg processes for
// window, ends every stream and collects the figures; with ll the streams
// are Low-Latency HLS.
func runRTMPPublishers(b *testing.B, media string, n int, window time.Duration, profile string, ll bool) rtmpLoadResult {
	e := newLiveEnv(b, envOptions{segment: 2 * time.Second, window: 6, timeout: time.Minute, persist: true,
		statusInterval: push.DefaultStatusInterval})
	streams := make([]metastore.Stream, n)
	for i := range streams {
		if ll {
			streams[i] = e.newLLStream() // as POST /streams/start with "ll_hls": true does
		} else {
			streams[i] = e.newStream("")
		}
	}
	runs := make([]*ffmpegRun, n)
	for i, st := range streams {
		runs[i] = startFFmpeg(b, "-re", "-stream_loop", "-1", "-i", media, "-c", "copy", "-f", "flv", e.rtmpURL(st.PublishKey))
	}
	// Warm up: the window starts once every stream has a segment listed,
	// so a stream's start (the packager's group taking the new topic up)
	// is in neither the CPU nor the latency figures.
	waitFor(b, time.Minute, "every stream's first segment", func() bool {
		for _, st := range streams {
			rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
			if len(rows) == 0 {
				return false
			}
		}
		return true
	})
	debug.FreeOSMemory()
	resetPeakRSS(b)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
	}
	memProfile := ""
	if mp := os.Getenv("WEIR_BENCH_LIVE_MEMPROFILE"); mp != "" {
		memProfile = fmt.Sprintf("%s-%d", mp, n)
		runtime.MemProfileRate = 64 << 10
		writeHeapProfile(b, memProfile+".before")
	}
	lat0 := readLatencyHistogram(b, e)
	cpu0 := cpuTime(b)
	time.Sleep(window)
	cpu := cpuTime(b) - cpu0
	if memProfile != "" {
		writeHeapProfile(b, memProfile)
	}
	lat := readLatencyHistogram(b, e)
	if profile != "" {
		pprof.StopCPUProfile()
	}
	rss := peakRSS(b)
	for i, r := range runs {
		select {
		case err := <-r.done:
			b.Fatalf("publisher %d exited during the window: %v\n%s", i, err, r.out.String())
		default:
		}
		r.cmd.Process.Kill()
	}
	for i := range lat {
		lat[i].count -= lat0[i].count
	}
	var res rtmpLoadResult
	res.p50, res.p99 = bucketQuantile(lat, 0.50), bucketQuantile(lat, 0.99)
	for _, st := range streams {
		e.end(st.ID)
	}
	for _, st := range streams {
		vod := e.waitStatus(st.ID, metastore.StatusVOD, 2*time.Minute)
		if least := int64(window/(2*time.Second)) - 2; vod.SegmentCount < least {
			b.Fatalf("stream %s: %d segments from %v of media, want at least %d", st.ID, vod.SegmentCount, window, least)
		}
		var d Details
		if ll && (json.Unmarshal(vod.Details, &d) != nil || !d.LowLatency || d.NextPart == 0) {
			b.Fatalf("stream %s was started as LL-HLS but its details say %s", st.ID, vod.Details)
		}
	}
	res.cpuPerStreamMin = cpu.Seconds() / (float64(n) * window.Minutes())
	res.peakRSSMB = rss
	return res
}

type latencyBucket struct {
	upper float64 // seconds
	count float64 // cumulative
}

// readLatencyHistogram reads the packager's publish latency histogram.
func readLatencyHistogram(b *testing.B, e *liveEnv) []latencyBucket {
	fams, err := e.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "weir_live_segment_publish_latency_seconds" {
			continue
		}
		var out []latencyBucket
		for _, bk := range f.GetMetric()[0].GetHistogram().GetBucket() {
			out = append(out, latencyBucket{upper: bk.GetUpperBound(), count: float64(bk.GetCumulativeCount())})
		}
		out = append(out, latencyBucket{upper: math.Inf(1), count: float64(f.GetMetric()[0].GetHistogram().GetSampleCount())})
		return out
	}
	b.Fatal("no weir_live_segment_publish_latency_seconds histogram")
	return nil
}

// bucketQuantile is the q quantile of cumulative buckets in ms,
// interpolated linearly within the bucket holding it; past the last finite
// bound it is that bound.
func bucketQuantile(bs []latencyBucket, q float64) float64 {
	total := bs[len(bs)-1].count
	if total == 0 {
		return 0
	}
	rank, lower, below := q*total, 0.0, 0.0
	for _, bk := range bs {
		if bk.count >= rank {
			if math.IsInf(bk.upper, 1) {
				return lower * 1000
			}
			frac := 0.0
			if bk.count > below {
				frac = (rank - below) / (bk.count - below)
			}
			return (lower + frac*(bk.upper-lower)) * 1000
		}
		lower, below = bk.upper, bk.count
	}
	return lower * 1000
}

// resetPeakRSS resets the process's VmHWM where the kernel allows it.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset (%v): the figure is the process's peak so far", err)
	}
}

// peakRSS is the process's VmHWM in MB.
func peakRSS(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Logf("no /proc/self/status: %v", err)
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// writeHeapProfile writes the heap profile (allocations since the start
// included) to path; compare two with go tool pprof -base.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
