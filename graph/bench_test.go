package graph

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkGraphThroughput pushes packets through a 3-node chain
// (PassThrough → Counter → PassThrough) and reports packets per second
// delivered to an observer, fed from a graph input stream and from a
// source node.
func BenchmarkGraphThroughput(b *testing.B) {
	for _, feed := range []string{"input", "source"} {
		b.Run(feed, func(b *testing.B) {
			head := "input_streams: [in]\nnodes:\n"
			if feed == "source" {
				head = fmt.Sprintf("nodes:\n  - calculator: Sequence\n    output_streams: [in]\n    options: {count: %d}\n", b.N)
			}
			g, err := NewFromYAML([]byte(head + `
  - calculator: PassThrough
    input_streams: [in]
    output_streams: [a]
  - calculator: Counter
    input_streams: [a]
    output_streams: [b]
  - calculator: PassThrough
    input_streams: [b]
    output_streams: [out]
`))
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			if err := g.ObserveOutputStream("out", func(Packet) error { n.Add(1); return nil }); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			if err := g.StartRun(ctx, nil); err != nil {
				b.Fatal(err)
			}
			if feed == "input" {
				for i := 0; i < b.N; i++ {
					if err := g.AddPacketToInputStream("in", MakePacket(i, Timestamp(i))); err != nil {
						b.Fatal(err)
					}
				}
				if err := g.CloseAllInputStreams(); err != nil {
					b.Fatal(err)
				}
			}
			if err := g.WaitUntilDone(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n.Load() != int64(b.N) {
				b.Fatalf("%d packets out, want %d", n.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
		})
	}
}
