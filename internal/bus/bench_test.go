package bus

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduceConsume10KiB measures end-to-end throughput of 10 KiB
// records (raw_stream's chunk size) through the embedded broker: one client
// produces asynchronously while a group consumer handles and commits.
// MB/s is reported by -benchmem's SetBytes; records/s as a custom metric.
//
// Random payloads defeat compression, like encoded media does; the codec
// dimension shows what compression costs on such data.
func BenchmarkProduceConsume10KiB(b *testing.B) {
	for _, tc := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for _, dir := range []string{"memory", "disk"} {
				b.Run(dir, func(b *testing.B) {
					var opts []BrokerOption
					if dir == "disk" {
						opts = append(opts, WithDataDir(b.TempDir()))
					}
					benchProduceConsume(b, tc.codec, opts...)
				})
			}
		})
	}
}

func benchProduceConsume(b *testing.B, codec kgo.CompressionCodec, opts ...BrokerOption) {
	const size = 10 << 10
	broker := startTestBroker(b, opts...)
	c := newTestClient(b, broker.Addr(), WithKgoOptions(kgo.ProducerBatchCompression(codec)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("bench-%d", b.N)
	if err := c.CreateTopic(ctx, topic, 4); err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = make([]byte, size)
		rand.Read(payloads[i])
	}

	// Join the group and fetch one warm-up record before timing, so the
	// measurement is the steady state, not the group join.
	var consumed atomic.Int64
	warm := make(chan struct{})
	done := make(chan struct{})
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		errc <- c.Consume(cctx, ConsumeOptions{Topics: []string{topic}, Group: "bench", FromBeginning: true,
			Handler: func(context.Context, *Record) error {
				switch consumed.Add(1) {
				case 1:
					close(warm)
				case int64(b.N) + 1:
					close(done)
				}
				return nil
			}})
	}()
	if err := c.Produce(ctx, &Record{Topic: topic, Value: payloads[0]}); err != nil {
		b.Fatal(err)
	}
	select {
	case <-warm:
	case <-ctx.Done():
		b.Fatal("warm-up record never consumed")
	}

	b.SetBytes(size)
	b.ResetTimer()
	start := time.Now()
	var failed atomic.Int64
	for i := 0; i < b.N; i++ {
		c.ProduceAsync(&Record{Topic: topic, Key: []byte{byte(i)}, Value: payloads[i%len(payloads)]}, func(_ *Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := c.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d records failed to produce", n)
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("consumed %d of %d records", consumed.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}
