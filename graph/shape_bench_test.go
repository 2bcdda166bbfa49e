package graph

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The shape benchmarks compare the graph runtime with its natural peer, a
// plain Go channel pipeline of the same shape (one goroutine per node,
// channels buffered like the graph's default max_queue_size), in the same
// benchmark iteration, so the ratio survives a noisy machine. Reported:
// graph-ns/packet and chan-ns/packet (wall time per packet through the
// whole pipeline), packets/s for the graph, ratio (graph ÷ channels), and
// graph-cpu-ns/packet and chan-cpu-ns/packet (the process's CPU time per
// packet, which other load on a shared machine disturbs far less than wall
// time).
//
//	go test -run '^$' -bench 'BenchmarkShape' -benchtime 20000x ./graph/

type chanPacket struct {
	v  any
	ts int64
}

// chainYAML is a graph input stream through n PassThrough nodes.
func chainYAML(n int) string {
	var b strings.Builder
	b.WriteString("input_streams: [s0]\nnodes:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - calculator: PassThrough\n    input_streams: [s%d]\n    output_streams: [s%d]\n", i, i+1)
	}
	return b.String()
}

// fanYAML splits a graph input stream into width PassThrough branches and
// joins them again in one node that synchronises all branches.
func fanYAML(width int) string {
	var b strings.Builder
	b.WriteString("input_streams: [in]\nnodes:\n")
	var joined []string
	for i := 0; i < width; i++ {
		fmt.Fprintf(&b, "  - calculator: PassThrough\n    input_streams: [in]\n    output_streams: [b%d]\n", i)
		joined = append(joined, fmt.Sprintf("b%d", i))
	}
	fmt.Fprintf(&b, "  - calculator: Merge\n    input_streams: [%s]\n    output_streams: [out]\n", strings.Join(joined, ", "))
	return b.String()
}

// runGraph feeds n packets through the graph built from yaml and waits
// until the observer of out saw all of them.
func runGraph(b *testing.B, yaml, out string, n int) time.Duration {
	b.Helper()
	g, err := NewFromYAML([]byte(yaml), benchOpts()...)
	if err != nil {
		b.Fatal(err)
	}
	seen := 0
	if err := g.ObserveOutputStream(out, func(Packet) error { seen++; return nil }); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	in := g.cfg.InputStreams[0].Name
	t0 := time.Now()
	if err := g.StartRun(ctx, nil); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := g.AddPacketToInputStream(in, MakePacket(i, Timestamp(i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := g.CloseAllInputStreams(); err != nil {
		b.Fatal(err)
	}
	if err := g.WaitUntilDone(ctx); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	if seen != n {
		b.Fatalf("graph delivered %d packets, want %d", seen, n)
	}
	return d
}

// runChanChain pushes n packets through depth forwarding goroutines.
func runChanChain(b *testing.B, depth, n int) time.Duration {
	b.Helper()
	t0 := time.Now()
	head := make(chan chanPacket, DefaultMaxQueueSize)
	cur := head
	for i := 0; i < depth; i++ {
		next := make(chan chanPacket, DefaultMaxQueueSize)
		go func(in <-chan chanPacket, out chan<- chanPacket) {
			for p := range in {
				out <- p
			}
			close(out)
		}(cur, next)
		cur = next
	}
	done := make(chan int)
	go func(in <-chan chanPacket) {
		seen := 0
		for range in {
			seen++
		}
		done <- seen
	}(cur)
	for i := 0; i < n; i++ {
		head <- chanPacket{v: i, ts: int64(i)}
	}
	close(head)
	seen := <-done
	d := time.Since(t0)
	if seen != n {
		b.Fatalf("channels delivered %d packets, want %d", seen, n)
	}
	return d
}

// runChanFan splits n packets into width forwarding goroutines and joins
// them by reading one packet from every branch per timestamp.
func runChanFan(b *testing.B, width, n int) time.Duration {
	b.Helper()
	t0 := time.Now()
	head := make(chan chanPacket, DefaultMaxQueueSize)
	branches := make([]chan chanPacket, width)
	outs := make([]chan chanPacket, width)
	var wg sync.WaitGroup
	for i := range branches {
		branches[i] = make(chan chanPacket, DefaultMaxQueueSize)
		outs[i] = make(chan chanPacket, DefaultMaxQueueSize)
		wg.Add(1)
		go func(in <-chan chanPacket, out chan<- chanPacket) {
			defer wg.Done()
			for p := range in {
				out <- p
			}
			close(out)
		}(branches[i], outs[i])
	}
	go func() { // fan out
		for p := range head {
			for _, br := range branches {
				br <- p
			}
		}
		for _, br := range branches {
			close(br)
		}
	}()
	done := make(chan int)
	go func() { // fan in: one packet per branch per timestamp
		seen := 0
		for {
			var first chanPacket
			for i, o := range outs {
				p, ok := <-o
				if !ok {
					done <- seen
					return
				}
				if i == 0 {
					first = p
				} else if p.ts != first.ts {
					panic("branches out of step")
				}
			}
			seen++
		}
	}()
	for i := 0; i < n; i++ {
		head <- chanPacket{v: i, ts: int64(i)}
	}
	close(head)
	seen := <-done
	wg.Wait()
	d := time.Since(t0)
	if seen != n {
		b.Fatalf("channels delivered %d packets, want %d", seen, n)
	}
	return d
}

// shapeTimes accumulates one side's wall and CPU time.
type shapeTimes struct{ wall, cpu time.Duration }

func (t *shapeTimes) run(f func() time.Duration) {
	c0 := processCPU()
	t.wall += f()
	t.cpu += processCPU() - c0
}

func reportShape(b *testing.B, graph, chans shapeTimes) {
	n := float64(b.N)
	b.ReportMetric(float64(graph.wall.Nanoseconds())/n, "graph-ns/packet")
	b.ReportMetric(float64(chans.wall.Nanoseconds())/n, "chan-ns/packet")
	b.ReportMetric(n/graph.wall.Seconds(), "packets/s")
	b.ReportMetric(graph.wall.Seconds()/chans.wall.Seconds(), "ratio")
	if graph.cpu > 0 {
		b.ReportMetric(float64(graph.cpu.Nanoseconds())/n, "graph-cpu-ns/packet")
		b.ReportMetric(float64(chans.cpu.Nanoseconds())/n, "chan-cpu-ns/packet")
	}
}

// BenchmarkShapeChain10 sends b.N packets through a chain of 10
// pass-through nodes, in the graph and in a channel pipeline, alternating
// which goes first.
func BenchmarkShapeChain10(b *testing.B) {
	yaml := chainYAML(10)
	var graph, chans shapeTimes
	for round := 0; round < 2; round++ { // half the packets each way round
		n := b.N / 2
		if round == 0 {
			graph.run(func() time.Duration { return runGraph(b, yaml, "s10", n) })
			chans.run(func() time.Duration { return runChanChain(b, 10, n) })
		} else {
			chans.run(func() time.Duration { return runChanChain(b, 10, b.N-n) })
			graph.run(func() time.Duration { return runGraph(b, yaml, "s10", b.N-n) })
		}
	}
	reportShape(b, graph, chans)
}

// BenchmarkShapeFanOutFanIn sends b.N packets into 4 parallel branches
// joined again at every timestamp, in the graph (4 PassThrough nodes and a
// Merge with 4 synchronised inputs) and in a channel pipeline.
func BenchmarkShapeFanOutFanIn(b *testing.B) {
	const width = 4
	yaml := fanYAML(width)
	var graph, chans shapeTimes
	for round := 0; round < 2; round++ {
		n := b.N / 2
		if round == 0 {
			graph.run(func() time.Duration { return runGraph(b, yaml, "out", n) })
			chans.run(func() time.Duration { return runChanFan(b, width, n) })
		} else {
			chans.run(func() time.Duration { return runChanFan(b, width, b.N-n) })
			graph.run(func() time.Duration { return runGraph(b, yaml, "out", b.N-n) })
		}
	}
	reportShape(b, graph, chans)
}
