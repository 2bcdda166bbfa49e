package live

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	srt "github.com/datarhei/gosrt"

	"github.com/weir-media/weir/internal/metastore"
)

// BenchmarkConcurrentSRTPublishers measures how many live publishers one
// process (SRT listener, embedded bus, packager, file object store)
// sustains. The media is encoded once: 8 s of 1280x720 H.264 at a constant
// 3 Mbit/s (x264 CBR with filler) plus AAC, 2 s GOPs. Each publisher is a
// Go SRT client sending those MPEG-TS bytes at real-time speed (paced by
// byte offset every 10 ms; starts spread over one GOP), so no encoder
// competes for the CPU. Per
// sub-benchmark it reports the worst stream's publish-latency p99 and max
// (ms), the process CPU per stream (percent of one core, the load
// generator's SRT senders included) and the peak heap growth per stream.
//
//	go test -run '^$' -bench ConcurrentSRTPublishers -benchtime 1x ./internal/live
func BenchmarkConcurrentSRTPublishers(b *testing.B) {
	const seconds = 8
	ts := makeMedia(b, "mpegts",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=1280x720:rate=25:duration=%d", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "3M", "-minrate", "3M", "-maxrate", "3M", "-bufsize", "3M", "-x264-params", "nal-hrd=cbr",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k")
	b.Logf("media: %d bytes, %.2f Mbit/s", len(ts), float64(len(ts))*8/seconds/1e6)
	for _, n := range []int{1, 4, 8, 12} {
		b.Run(fmt.Sprintf("publishers=%d", n), func(b *testing.B) {
			var p99, worst, cpu, heap float64
			for i := 0; i < b.N; i++ {
				r := runPublishers(b, ts, seconds, n)
				p99, worst, cpu, heap = p99+r.p99, max(worst, r.max), cpu+r.cpuPerStream, heap+r.heapPerStream
			}
			k := float64(b.N)
			b.ReportMetric(p99/k, "worst-p99-ms")
			b.ReportMetric(worst, "max-ms")
			b.ReportMetric(cpu/k, "cpu%/stream")
			b.ReportMetric(heap/k, "heapMB/stream")
		})
	}
}

type publishersResult struct {
	p99, max      float64 // worst stream's latency figures, ms
	cpuPerStream  float64 // percent of one core
	heapPerStream float64 // MB
}

// runPublishers publishes ts from n SRT clients at once, ends every stream
// and collects the figures.
func runPublishers(b *testing.B, ts []byte, seconds, n int) publishersResult {
	e := newLiveEnv(b, envOptions{segment: 2 * time.Second, window: 10, timeout: time.Minute})
	streams := make([]metastore.Stream, n)
	for i := range streams {
		streams[i] = e.newStream("")
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapInuse
	peak := baseHeap
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	cpu0, wall0 := cpuTime(b), time.Now()

	addr := e.srt.Addr().(*net.UDPAddr).String()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Real publishers do not start in step: spread the starts
			// over one GOP so key frames do not all land at once.
			time.Sleep(time.Duration(i) * 2 * time.Second / time.Duration(n))
			errs <- sendRealTime(addr, "publish:"+st.PublishKey, ts, seconds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, st := range streams {
		e.end(st.ID)
	}
	var res publishersResult
	for _, st := range streams {
		vod := e.waitStatus(st.ID, metastore.StatusVOD, time.Minute)
		var d Details
		if err := json.Unmarshal(vod.Details, &d); err != nil {
			b.Fatal(err)
		}
		if vod.SegmentCount < int64(seconds/2) {
			b.Fatalf("stream %s: %d segments from %d s of media", st.ID, vod.SegmentCount, seconds)
		}
		res.p99, res.max = max(res.p99, d.Latency.P99), max(res.max, d.Latency.Max)
	}
	cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
	close(stopSampling)
	<-sampled
	res.cpuPerStream = 100 * cpu.Seconds() / wall.Seconds() / float64(n)
	res.heapPerStream = float64(peak-baseHeap) / 1e6 / float64(n)
	return res
}

// sendRealTime sends ts over one SRT connection in 1316-byte packets, as
// fast as seconds of media play.
func sendRealTime(addr, streamID string, ts []byte, seconds int) error {
	conf := srt.DefaultConfig()
	conf.StreamId = streamID
	conf.ConnectionTimeout = 5 * time.Second
	conn, err := srt.Dial("srt", addr, conf)
	if err != nil {
		return fmt.Errorf("srt dial %s: %w", streamID, err)
	}
	defer conn.Close()
	start := time.Now()
	total := time.Duration(seconds) * time.Second
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; sent < len(ts); {
		<-tick.C
		due := min(len(ts), int(float64(len(ts))*float64(time.Since(start))/float64(total)))
		for ; sent+1316 <= due || (due == len(ts) && sent < due); sent += 1316 {
			if _, err := conn.Write(ts[sent:min(sent+1316, len(ts))]); err != nil {
				return fmt.Errorf("srt write %s at %d: %w", streamID, sent, err)
			}
		}
	}
	// Let the last packets arrive before the connection closes.
	time.Sleep(500 * time.Millisecond)
	return nil
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
