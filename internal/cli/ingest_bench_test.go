package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// weirChildEnv, set in a process started from this test binary, makes it
// run the weir command line it holds (arguments separated by the byte 0x1f) instead
// of the tests: BenchmarkIngestPull runs `weir ingest` as a process of its
// own, as kcat runs, so each producer's CPU time is its own.
const weirChildEnv = "WEIR_BENCH_WEIR_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(weirChildEnv); ok {
		os.Exit(runChild(strings.Split(args, "\x1f"), os.Getenv(childProfileEnv)))
	}
	os.Exit(m.Run())
}

// childProfileEnv, with weirChildEnv, names a file for the child's CPU
// profile: WEIR_BENCH_INGEST_PROFILE=/tmp/ingest.pprof go test -bench
// BenchmarkIngestPull writes the last weir ingest run's profile there.
const childProfileEnv = "WEIR_BENCH_INGEST_PROFILE"

// runChild runs the weir command line args, with a CPU profile written to
// profile unless it is empty.
func runChild(args []string, profile string) int {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	return Main(args)
}

// BenchmarkIngestPull is the `weir ingest` figure of docs/benchmarks.md
// ("Ingest and VOD overhead"): `weir ingest FILE --kafka ADDR` (this test
// binary running weir's command line in a process of its own) publishes a
// 1 GiB MPEG-TS file (a short ffmpeg clip repeated) into a fresh embedded
// broker with a data dir in this process, and kcat produces the same bytes,
// cut into the same 10 KiB records keyed raw_stream, into another fresh
// one, and so does `weir ingest --no-md5` (the stream's MD5 is most of
// weir's CPU); the three take turns going first. weir's run includes everything
// `weir ingest` does: ffprobe, stream_init, heartbeats, the stream MD5,
// stream_eof and the wait for every acknowledgement. The printed MD5 and
// byte count are checked against the file, and kcat's record count
// against the topic's end offset.
//
// Reported: MB/s of each producer (process start to exit), the ratios
// weir ÷ kcat and weir --no-md5 ÷ kcat, each producer's CPU-s per GiB (user + system of the
// process and its children, ffprobe included) and the broker's (this
// process's CPU while the producer ran). WEIR_BENCH_INGEST_MIB sets
// another size for a quick run, WEIR_BENCH_INGEST_CHUNK another record
// size in bytes for both (weir's --chunk-size; kcat refuses records over
// about 1 MB).
func BenchmarkIngestPull(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg", "ffprobe", "kcat")
	size := int64(1 << 30)
	if v := os.Getenv("WEIR_BENCH_INGEST_MIB"); v != "" {
		mib, err := strconv.Atoi(v)
		if err != nil || mib < 1 {
			b.Fatalf("WEIR_BENCH_INGEST_MIB=%q: want a positive number of MiB", v)
		}
		size = int64(mib) << 20
	}
	chunk := protocol.DefaultChunkSize
	if v := os.Getenv("WEIR_BENCH_INGEST_CHUNK"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > protocol.MaxChunkSize {
			b.Fatalf("WEIR_BENCH_INGEST_CHUNK=%q: want a record size from 1 to %d bytes", v, protocol.MaxChunkSize)
		}
		chunk = n
	}
	dir := b.TempDir()
	file, kcatInput := filepath.Join(dir, "big.ts"), filepath.Join(dir, "kcat.in")
	records, sum := writeIngestBenchInputs(b, dir, file, kcatInput, size, chunk)

	var weir, nomd5, kcat ingestRun
	runs := []func(){
		func() { weir.add(benchWeirIngest(b, file, size, chunk, sum)) },
		func() { nomd5.add(benchWeirIngest(b, file, size, chunk, "", "--no-md5")) },
		func() { kcat.add(benchKcatProduce(b, kcatInput, records)) },
	}
	for i := 0; b.Loop(); i++ {
		for j := range runs {
			runs[(i+j)%len(runs)]()
		}
	}
	gib := float64(weir.runs) * float64(size) / (1 << 30)
	mbps := func(r ingestRun) float64 { return float64(r.runs) * float64(size) / 1e6 / r.wall.Seconds() }
	b.ReportMetric(mbps(weir), "weir-MB/s")
	b.ReportMetric(mbps(nomd5), "weir-nomd5-MB/s")
	b.ReportMetric(mbps(kcat), "kcat-MB/s")
	b.ReportMetric(mbps(weir)/mbps(kcat), "ratio")
	b.ReportMetric(mbps(nomd5)/mbps(kcat), "nomd5-ratio")
	b.ReportMetric(weir.cpu.Seconds()/gib, "weir-CPU-s/GiB")
	b.ReportMetric(nomd5.cpu.Seconds()/gib, "weir-nomd5-CPU-s/GiB")
	b.ReportMetric(kcat.cpu.Seconds()/gib, "kcat-CPU-s/GiB")
	b.ReportMetric(weir.broker.Seconds()/gib, "weir-broker-CPU-s/GiB")
	b.ReportMetric(kcat.broker.Seconds()/gib, "kcat-broker-CPU-s/GiB")
}

// ingestRun sums one producer's runs.
type ingestRun struct {
	runs              int
	wall, cpu, broker time.Duration
}

func (r *ingestRun) add(o ingestRun) {
	r.runs++
	r.wall += o.wall
	r.cpu += o.cpu
	r.broker += o.broker
}

// ingestBenchDelim separates kcat's input records; writeIngestBenchInputs
// checks that the media never contains it.
var ingestBenchDelim = []byte("\x01weir\xfe-record-\xff\x02")

// writeIngestBenchInputs makes a 3 s MPEG-TS clip with ffmpeg and writes it
// repeated to file up to size bytes (MPEG-TS stays valid when
// concatenated), and the same bytes cut into records of chunkSize bytes
// separated by ingestBenchDelim to kcatInput. It returns the number of
// records and the file's hex MD5.
func writeIngestBenchInputs(b *testing.B, dir, file, kcatInput string, size int64, chunkSize int) (int, string) {
	b.Helper()
	clip := filepath.Join(dir, "clip.ts")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "mpegts", clip).CombinedOutput()
	if err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		b.Fatal(err)
	}
	if bytes.Contains(append(bytes.Clone(data), data...), ingestBenchDelim) {
		b.Fatal("the clip contains the kcat record delimiter")
	}
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	k, err := os.Create(kcatInput)
	if err != nil {
		b.Fatal(err)
	}
	fw, kw := bufio.NewWriterSize(f, 1<<20), bufio.NewWriterSize(k, 1<<20)
	h := md5.New()
	chunk := make([]byte, 0, chunkSize)
	records := 0
	flushChunk := func() {
		if records > 0 {
			kw.Write(ingestBenchDelim)
		}
		kw.Write(chunk)
		chunk = chunk[:0]
		records++
	}
	for written := int64(0); written < size; {
		piece := data[:min(int64(len(data)), size-written)]
		fw.Write(piece)
		h.Write(piece)
		written += int64(len(piece))
		for len(piece) > 0 {
			n := copy(chunk[len(chunk):cap(chunk)], piece)
			chunk, piece = chunk[:len(chunk)+n], piece[n:]
			if len(chunk) == cap(chunk) {
				flushChunk()
			}
		}
	}
	if len(chunk) > 0 {
		flushChunk()
	}
	for _, err := range []error{fw.Flush(), kw.Flush(), f.Close(), k.Close()} {
		if err != nil {
			b.Fatal(err)
		}
	}
	return records, fmt.Sprintf("%x", h.Sum(nil))
}

// benchBrokerFor starts a fresh broker with a data dir, with topic created
// (one partition) so neither producer pays for creating it. stop closes
// both and removes the data dir, so that one run's gigabyte of page cache
// is freed before the next run instead of making the later runs write into
// memory the machine has not used yet (on a VM, every such page faults on
// the host first, which taxes whichever producer runs later).
func benchBrokerFor(b *testing.B, topic string) (*bus.Broker, *bus.Client, func()) {
	b.Helper()
	dir, err := os.MkdirTemp(b.TempDir(), "broker-")
	if err != nil {
		b.Fatal(err)
	}
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(dir), bus.WithLogger(discardLogger()))
	if err != nil {
		b.Fatal(err)
	}
	c, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(discardLogger()))
	if err != nil {
		b.Fatal(err)
	}
	stop := func() {
		c.Close()
		broker.Close()
		if err := os.RemoveAll(dir); err != nil {
			b.Error(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateTopic(ctx, topic, 1); err != nil {
		stop()
		b.Fatal(err)
	}
	return broker, c, stop
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runProducer runs cmd to its end and times it: wall time, its CPU (its
// children's included) and this process's CPU meanwhile.
func runProducer(b *testing.B, cmd *exec.Cmd) (ingestRun, []byte) {
	b.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	self0, t0 := selfCPU(), time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd.Args[0], err, out.Bytes())
	}
	r := ingestRun{wall: time.Since(t0), broker: selfCPU() - self0}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, out.Bytes()
}

var (
	ingestBytesLine = regexp.MustCompile(`(?m)^bytes +(\d+) in `)
	ingestMD5Line   = regexp.MustCompile(`(?m)^md5 +([0-9a-f]{32})$`)
)

// benchWeirIngest runs `weir ingest file` with extra flags into a fresh
// broker and checks that it reports every byte and the file's MD5 (sum),
// or with sum empty that it computed none.
func benchWeirIngest(b *testing.B, file string, size int64, chunkSize int, sum string, extra ...string) ingestRun {
	b.Helper()
	const topic = "stream_bench_weir"
	broker, _, stop := benchBrokerFor(b, topic)
	defer stop()
	cmd := exec.Command(os.Args[0])
	args := append([]string{"ingest", file, "--kafka", broker.Addr(), "--topic", topic, "--chunk-size", strconv.Itoa(chunkSize)}, extra...)
	cmd.Env = append(os.Environ(), weirChildEnv+"="+strings.Join(args, "\x1f"))
	r, out := runProducer(b, cmd)
	m, s := ingestBytesLine.FindSubmatch(out), ingestMD5Line.FindSubmatch(out)
	if m == nil || string(m[1]) != strconv.FormatInt(size, 10) || (s == nil) != (sum == "") || (s != nil && string(s[1]) != sum) {
		b.Fatalf("weir ingest: want bytes %d and md5 %s, got:\n%s", size, sum, out)
	}
	return r
}

// benchKcatProduce runs kcat producing the records of input into a fresh
// broker and checks that they all landed.
func benchKcatProduce(b *testing.B, input string, records int) ingestRun {
	b.Helper()
	const topic = "stream_bench_kcat"
	broker, c, stop := benchBrokerFor(b, topic)
	defer stop()
	in, err := os.Open(input)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command("kcat", "-P", "-b", broker.Addr(), "-t", topic, "-k", "raw_stream", "-D", string(ingestBenchDelim))
	cmd.Stdin = in
	r, _ := runProducer(b, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := c.Admin().ListEndOffsets(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	if o, ok := ends.Lookup(topic, 0); !ok || o.Err != nil || o.Offset != int64(records) {
		b.Fatalf("kcat: the topic ends at offset %+v, want %d", o, records)
	}
	return r
}
