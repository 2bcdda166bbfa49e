package graph

import (
	"context"
	"flag"
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

// BenchmarkGraphOnlyChain10 runs the graph side of BenchmarkShapeChain10
// alone, for CPU profiles of the runtime:
//
//	go test -run '^$' -bench GraphOnly -benchtime 200000x -cpuprofile cpu.out ./graph/
//	go tool pprof -top graph.test cpu.out
func BenchmarkGraphOnlyChain10(b *testing.B) {
	b.ReportAllocs()
	runGraph(b, chainYAML(10), "s10", b.N)
}

// BenchmarkGraphOnlyFanOutFanIn is the graph side of
// BenchmarkShapeFanOutFanIn alone.
func BenchmarkGraphOnlyFanOutFanIn(b *testing.B) {
	b.ReportAllocs()
	runGraph(b, fanYAML(4), "out", b.N)
}

// benchThreads sizes the worker pool of the shape and graph-only
// benchmarks (0: the default, runtime.NumCPU()):
//
//	go test -run '^$' -bench GraphOnly ./graph/ -args -graph.threads=1
var benchThreads = flag.Int("graph.threads", 0, "worker threads for the shape benchmarks' graphs")

func benchOpts() []Option {
	if *benchThreads > 0 {
		return []Option{WithNumThreads(*benchThreads)}
	}
	return nil
}
