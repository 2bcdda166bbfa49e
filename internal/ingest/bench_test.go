package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// BenchmarkStreamWriter measures how fast a StreamWriter moves bytes into
// the embedded broker: random (incompressible, like encoded media) data
// written in pieces the size Pull reads, split into 10 KiB raw_stream
// records, with up to DefaultMaxInFlightBytes on their way to the broker
// (Close waits for the rest). MB/s is the stream's byte rate.
func BenchmarkStreamWriter(b *testing.B) {
	for _, dir := range []string{"memory", "disk"} {
		for _, write := range []int{16 << 10, readBufSize, 1 << 20} {
			b.Run(fmt.Sprintf("%s/write=%dKiB", dir, write>>10), func(b *testing.B) {
				opts := []bus.BrokerOption{bus.WithListenAddr("127.0.0.1:0"), bus.WithLogger(quietLogger())}
				if dir == "disk" {
					opts = append(opts, bus.WithDataDir(b.TempDir()))
				}
				broker, err := bus.StartBroker(opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer broker.Close()
				client, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(quietLogger()))
				if err != nil {
					b.Fatal(err)
				}
				defer client.Close()
				w, err := NewStreamWriter(client, fmt.Sprintf("stream_bench_%d", b.N), StreamOptions{MimeType: "video/mp2t"})
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Init(testCtx(b)); err != nil {
					b.Fatal(err)
				}
				data := randomBytes(write, 3)
				b.SetBytes(int64(write))
				b.ResetTimer()
				for b.Loop() {
					if _, err := w.Write(data); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := w.Close(testCtx(b), false); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(w.Stats().RawMessages)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkIngest1GiB is the ingest figure of docs/benchmarks.md: Pull of a
// 1 GiB MPEG-TS file (a short ffmpeg clip repeated) into a fresh embedded
// broker with a data dir, as `weir ingest FILE` does it (ffprobe,
// stream_init, 10 KiB raw_stream records, heartbeats, stream_eof), while a
// consumer reads the topic. In the same iteration kcat, the peer, produces
// the same bytes cut into the same 10 KiB records, keyed raw_stream, into
// another fresh broker read by the same kind of consumer; the two sides
// alternate which goes first.
//
// Reported: MB/s and raw_stream records/s of each producer (from its start
// until every record is acknowledged; kcat's from process start to exit),
// ratio (weir MB/s ÷ kcat MB/s), and produce-to-consume latency p50/p99 of
// the raw_stream records: the consumer's clock minus the record's
// producer-set timestamp, which Kafka keeps in whole milliseconds, so the
// figures are up to 1 ms high. WEIR_BENCH_INGEST_MIB sets another size
// for a quick run.
func BenchmarkIngest1GiB(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg", "ffprobe", "kcat")
	size := int64(1 << 30)
	if v := os.Getenv("WEIR_BENCH_INGEST_MIB"); v != "" {
		mib, err := strconv.Atoi(v)
		if err != nil || mib < 1 {
			b.Fatalf("WEIR_BENCH_INGEST_MIB=%q: want a positive number of MiB", v)
		}
		size = int64(mib) << 20
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "big.ts")
	kcatInput := filepath.Join(dir, "kcat.in")
	records := writeBenchInputs(b, testMedia(b, "av.ts"), file, kcatInput, size)

	var weir, kcat []benchSide
	for i := 0; b.Loop(); i++ {
		runWeir := func() { weir = append(weir, benchPull(b, file, size, records)) }
		runKcat := func() { kcat = append(kcat, benchKcat(b, kcatInput, size, records)) }
		if i%2 == 0 {
			runWeir()
			runKcat()
		} else {
			runKcat()
			runWeir()
		}
	}
	w, k := mergeSides(weir), mergeSides(kcat)
	mbps := func(s benchSide) float64 { return float64(s.bytes) / 1e6 / s.elapsed.Seconds() }
	b.ReportMetric(mbps(w), "weir-MB/s")
	b.ReportMetric(float64(w.records)/w.elapsed.Seconds(), "weir-records/s")
	b.ReportMetric(mbps(k), "kcat-MB/s")
	b.ReportMetric(float64(k.records)/k.elapsed.Seconds(), "kcat-records/s")
	b.ReportMetric(mbps(w)/mbps(k), "ratio")
	b.ReportMetric(percentile(w.latencies, 0.50), "weir-p50-ms")
	b.ReportMetric(percentile(w.latencies, 0.99), "weir-p99-ms")
	b.ReportMetric(percentile(k.latencies, 0.50), "kcat-p50-ms")
	b.ReportMetric(percentile(k.latencies, 0.99), "kcat-p99-ms")
}

// benchDelim separates kcat's input records; writeBenchInputs checks that
// the media never contains it.
var benchDelim = []byte("\x01weir\xfe-record-\xff\x02")

// benchSide is one producer's run (or several, merged).
type benchSide struct {
	bytes     int64
	records   int
	elapsed   time.Duration
	latencies []float64 // ms, one per raw_stream record
}

func mergeSides(runs []benchSide) benchSide {
	var m benchSide
	for _, r := range runs {
		m.bytes += r.bytes
		m.records += r.records
		m.elapsed += r.elapsed
		m.latencies = append(m.latencies, r.latencies...)
	}
	return m
}

// percentile returns the q quantile of ms (nearest rank).
func percentile(ms []float64, q float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// writeBenchInputs writes size bytes of clip repeated (MPEG-TS stays valid
// when concatenated) to file, and the same bytes cut into
// DefaultChunkSize records separated by benchDelim to kcatInput. It
// returns the number of records.
func writeBenchInputs(b *testing.B, clip, file, kcatInput string, size int64) int {
	b.Helper()
	data := readFile(b, clip)
	if bytes.Contains(append(slices.Clone(data), data...), benchDelim) {
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
	chunk := make([]byte, 0, protocol.DefaultChunkSize)
	records := 0
	flushChunk := func() {
		if records > 0 {
			kw.Write(benchDelim)
		}
		kw.Write(chunk)
		chunk = chunk[:0]
		records++
	}
	for written := int64(0); written < size; {
		piece := data[:min(int64(len(data)), size-written)]
		fw.Write(piece)
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
	return records
}

// benchBroker starts a broker with a data dir and a consumer that reads
// topic from the beginning, timing each raw_stream record, until it has
// size bytes of them. wait returns the latencies. stop closes both and
// removes the data dir, so that one run's page cache is freed before the
// next instead of the later runs writing into memory the machine has not
// used yet (on a VM each such page faults on the host first).
func benchBroker(b *testing.B, topic string, size int64) (addr string, wait func() []float64, stop func()) {
	b.Helper()
	dir, err := os.MkdirTemp(b.TempDir(), "broker-")
	if err != nil {
		b.Fatal(err)
	}
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(dir), bus.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	consumer, err := bus.NewClient([]string{broker.Addr()}, bus.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	if err := consumer.CreateTopic(ctx, topic, 1); err != nil {
		b.Fatal(err)
	}
	latencies := make([]float64, 0, size/protocol.DefaultChunkSize+1)
	var got int64
	done := make(chan error, 1)
	cctx, cancelConsume := context.WithCancel(ctx)
	go func() {
		done <- consumer.Consume(cctx, bus.ConsumeOptions{Topics: []string{topic}, FromBeginning: true,
			Handler: func(_ context.Context, rec *bus.Record) error {
				if string(rec.Key) != "raw_stream" {
					return nil
				}
				latencies = append(latencies, float64(time.Since(rec.Timestamp).Microseconds())/1000)
				if got += int64(len(rec.Value)); got >= size {
					cancelConsume()
				}
				return nil
			}})
	}()
	wait = func() []float64 {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			b.Fatalf("consumer: %v", err)
		}
		if got != size {
			b.Fatalf("consumer read %d raw_stream bytes, want %d", got, size)
		}
		return latencies
	}
	stop = func() {
		cancelConsume()
		cancel()
		consumer.Close()
		broker.Close()
		if err := os.RemoveAll(dir); err != nil {
			b.Error(err)
		}
	}
	return broker.Addr(), wait, stop
}

// benchPull times Pull of file into a fresh broker.
func benchPull(b *testing.B, file string, size int64, records int) benchSide {
	b.Helper()
	addr, wait, stop := benchBroker(b, "stream_bench_weir", size)
	defer stop()
	producer, err := bus.NewClient([]string{addr}, bus.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	res, err := Pull(context.Background(), PullOptions{Source: file, Topic: "stream_bench_weir", Logger: quietLogger()}, producer)
	if err != nil {
		b.Fatalf("Pull: %v", err)
	}
	if res.Stats.Bytes != size || res.Stats.RawMessages != int64(records) {
		b.Fatalf("Pull sent %d bytes in %d records, want %d in %d", res.Stats.Bytes, res.Stats.RawMessages, size, records)
	}
	return benchSide{bytes: size, records: records, elapsed: res.Elapsed, latencies: wait()}
}

// benchKcat times kcat producing the same records into a fresh broker.
func benchKcat(b *testing.B, input string, size int64, records int) benchSide {
	b.Helper()
	addr, wait, stop := benchBroker(b, "stream_bench_kcat", size)
	defer stop()
	in, err := os.Open(input)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command("kcat", "-P", "-b", addr, "-t", "stream_bench_kcat", "-k", "raw_stream", "-D", string(benchDelim))
	cmd.Stdin = in
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("kcat: %v\n%s", err, out)
	}
	elapsed := time.Since(start)
	lat := wait()
	if len(lat) != records {
		b.Fatalf("kcat produced %d records, want %d", len(lat), records)
	}
	return benchSide{bytes: size, records: records, elapsed: elapsed, latencies: lat}
}
