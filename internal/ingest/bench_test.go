package ingest

import (
	"fmt"
	"testing"

	"github.com/weir-media/weir/internal/bus"
)

// BenchmarkStreamWriter measures how fast a StreamWriter moves bytes into
// the embedded broker: random (incompressible, like encoded media) data
// written in pieces the size Pull reads, split into 10 KiB raw_stream
// records, each Write waiting for the broker's acknowledgement. MB/s is the
// stream's byte rate.
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
