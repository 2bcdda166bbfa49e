package graph

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Profile is a snapshot of a graph's run-time statistics.
type Profile struct {
	Graph string
	Nodes []NodeProfile
}

// NodeProfile describes one node. Counts are exact. Times are sampled to
// keep clock reads off the hot path: a node's first 64 Process calls are
// all timed, later calls all while they take 5µs or more and otherwise
// one in 64 at random. Means are over the timed calls, percentiles over
// the latest 1024 timed calls. Observers and pollers appear as nodes
// named observer_<stream> and poller_<stream>.
type NodeProfile struct {
	Name       string
	Calculator string
	// ProcessCalls counts completed Process calls.
	ProcessCalls int64
	// ProcessTotal is the time spent in Process: exact while every call
	// was timed, then the mean times ProcessCalls.
	ProcessTotal time.Duration
	ProcessMean  time.Duration
	ProcessP50   time.Duration
	ProcessP99   time.Duration
	// InputLatency is how long the oldest packet of an input set waited
	// before Process started, from the end of the call that produced it
	// (or AddPacketToInputStream), measured on timed calls. Packets fed
	// to graph input streams carry the time they were fed only the first
	// 64 and then one in 16 at random (a clock read per packet would
	// cost the feeder more than the rest of the call); calls that consumed
	// none of those are left out of the latency figures. InputLatencyCount
	// counts every Process call that consumed at least one packet.
	InputLatencyMean  time.Duration
	InputLatencyP99   time.Duration
	InputLatencyCount int64
	Inputs            []QueueProfile
}

// QueueProfile describes one input queue of a node.
type QueueProfile struct {
	Stream string
	Port   string // TAG:index
	// Depth is the current number of queued packets, MaxDepth the
	// highest seen, MaxQueueSize the bound (-1: none; grown by deadlock
	// resolution).
	Depth        int
	MaxDepth     int
	MaxQueueSize int
	// Received counts packets queued, Dropped those discarded unprocessed
	// (by the fixed-size handler or skipped timestamps).
	Received int64
	Dropped  int64
}

// Profile returns the graph's statistics so far. Each node's figures are
// read together under its lock; while the graph runs, different nodes are
// read one after another, a moment apart.
func (g *Graph) Profile() Profile {
	p := Profile{Graph: g.name}
	for _, n := range g.nodes {
		p.Nodes = append(p.Nodes, n.profile())
	}
	return p
}

// profile takes the node's lock, so a snapshot is consistent per node.
func (n *node) profile() NodeProfile {
	n.mu.Lock()
	defer n.mu.Unlock()
	{
		s := &n.stats
		np := NodeProfile{Name: n.name, Calculator: n.calcName, ProcessCalls: s.calls, ProcessTotal: s.processTotal(),
			ProcessP50: s.durs.quantile(0.5), ProcessP99: s.durs.quantile(0.99),
			InputLatencyP99: s.latencies.quantile(0.99), InputLatencyCount: s.latCount}
		if s.timed > 0 {
			np.ProcessMean = s.timedSum / time.Duration(s.timed)
		}
		if s.latTimed > 0 {
			np.InputLatencyMean = s.latSum / time.Duration(s.latTimed)
		}
		for _, q := range n.inputs {
			np.Inputs = append(np.Inputs, QueueProfile{Stream: q.s.name, Port: q.port.Key(), Depth: q.q.len(),
				MaxDepth: q.maxDepth, MaxQueueSize: q.maxSize, Received: q.added, Dropped: q.dropped})
		}
		return np
	}
}

func (r *ring) quantile(q float64) time.Duration {
	if len(r.v) == 0 {
		return 0
	}
	v := slices.Clone(r.v)
	slices.Sort(v)
	i := int(q*float64(len(v))+0.5) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// Collector exports the graph's profile as Prometheus metrics, labelled
// with the graph name (WithName), node and calculator or stream:
// weir_graph_process_seconds (summary), weir_graph_input_latency_seconds
// (summary), weir_graph_queue_depth, weir_graph_queue_max_depth (gauges),
// weir_graph_packets_received_total and weir_graph_packets_dropped_total
// (counters). Register it with a prometheus.Registerer; unregister it when
// the graph is gone.
func (g *Graph) Collector() prometheus.Collector { return &collector{g: g} }

var (
	nodeLabels  = []string{"graph", "node", "calculator"}
	queueLabels = []string{"graph", "node", "stream"}
	descProcess = prometheus.NewDesc("weir_graph_process_seconds",
		"Time spent in Process calls per node.", nodeLabels, nil)
	descLatency = prometheus.NewDesc("weir_graph_input_latency_seconds",
		"Time packets waited in a node's input queues before Process.", nodeLabels, nil)
	descDepth = prometheus.NewDesc("weir_graph_queue_depth",
		"Packets queued on a node input.", queueLabels, nil)
	descMaxDepth = prometheus.NewDesc("weir_graph_queue_max_depth",
		"Highest number of packets queued on a node input.", queueLabels, nil)
	descReceived = prometheus.NewDesc("weir_graph_packets_received_total",
		"Packets queued on a node input.", queueLabels, nil)
	descDropped = prometheus.NewDesc("weir_graph_packets_dropped_total",
		"Packets dropped unprocessed from a node input.", queueLabels, nil)
)

type collector struct{ g *Graph }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProcess, descLatency, descDepth, descMaxDepth, descReceived, descDropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.g.Profile()
	for _, n := range p.Nodes {
		ch <- prometheus.MustNewConstSummary(descProcess, uint64(n.ProcessCalls), n.ProcessTotal.Seconds(),
			map[float64]float64{0.5: n.ProcessP50.Seconds(), 0.99: n.ProcessP99.Seconds()}, p.Graph, n.Name, n.Calculator)
		ch <- prometheus.MustNewConstSummary(descLatency, uint64(n.InputLatencyCount),
			n.InputLatencyMean.Seconds()*float64(n.InputLatencyCount),
			map[float64]float64{0.99: n.InputLatencyP99.Seconds()}, p.Graph, n.Name, n.Calculator)
		for _, q := range n.Inputs {
			ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(q.Depth), p.Graph, n.Name, q.Stream)
			ch <- prometheus.MustNewConstMetric(descMaxDepth, prometheus.GaugeValue, float64(q.MaxDepth), p.Graph, n.Name, q.Stream)
			ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(q.Received), p.Graph, n.Name, q.Stream)
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(q.Dropped), p.Graph, n.Name, q.Stream)
		}
	}
}

// Timing sampling: a node's first timingWarmup Process calls are all
// timed; after them, calls are all timed while they take timeAllAbove or
// more (two clock reads are then a small part of a call), and otherwise
// with probability 1/timingStride, so a busy node of fast calls spends few
// clock reads on its profile while short runs and slow nodes get exact
// figures. Counts are always exact.
const (
	timingWarmup = 64
	timingStride = 64
	timeAllAbove = 5 * time.Microsecond
)

// nodeStats collects a node's profile; guarded by the node's lock.
type nodeStats struct {
	issued    int64 // Process calls scheduled, for the sampling decision
	gap       int   // untimed calls before the next timed one
	calls     int64
	timed     int64 // calls whose duration was measured
	timedSum  time.Duration
	recent    [3]time.Duration // the latest timed calls, for batchLimit
	slow      bool             // they took timeAllAbove or more: time every call
	durs      ring
	latCount  int64 // calls that consumed at least one packet
	latTimed  int64 // of those, the ones whose latency was measured
	latSum    time.Duration
	latencies ring
}

const ringSize = 1024

// ring keeps the latest ringSize durations for percentiles.
type ring struct {
	v    []time.Duration
	next int
}

func (r *ring) add(d time.Duration) {
	if len(r.v) < ringSize {
		r.v = append(r.v, d)
		return
	}
	r.v[r.next] = d
	r.next = (r.next + 1) % ringSize
}

// clockBase anchors monoNow.
var clockBase = time.Now()

// monoNow reads the monotonic clock as an offset from clockBase, never 0. It
// is one clock read where time.Now takes two (wall and monotonic).
func monoNow() time.Duration { return time.Since(clockBase) + 1 }

// sample decides whether the next Process call is timed: during the
// warm-up and while calls take timeAllAbove or more (judged like
// batchLimit), every one; otherwise one call in timingStride on average,
// the gaps drawn at random so that a periodic workload (a key frame every
// N frames) cannot alias with them.
func (s *nodeStats) sample() bool {
	s.issued++
	if s.issued <= timingWarmup || s.slow {
		return true
	}
	if s.gap > 0 {
		s.gap--
		return false
	}
	s.gap = rand.IntN(2*timingStride - 1)
	return true
}

// record counts a Process call that ran.
func (s *nodeStats) record(c *call) {
	s.calls++
	if c.consumed {
		s.latCount++
	}
	if !c.timed {
		return
	}
	s.timed++
	s.timedSum += c.dur
	s.recent[s.timed%3] = c.dur
	s.slow = s.estimate() >= timeAllAbove
	s.durs.add(c.dur)
	if lat := c.arrival; lat != 0 {
		s.latTimed++
		s.latSum += lat
		s.latencies.add(lat)
	}
}

// stamper decides which packets fed to a graph input stream carry the
// time they were fed, for input latency: the first timingWarmup, then
// one in stampStride at random, so that feeding a packet rarely reads the
// clock. Packets that nodes emit are all stamped, with one clock read per
// batch of calls.
type stamper struct {
	fed int64
	gap int
}

const stampStride = 16

// stamp returns the time to stamp the next packet with, 0 for none.
func (s *stamper) stamp() time.Duration {
	s.fed++
	if s.fed > timingWarmup {
		if s.gap > 0 {
			s.gap--
			return 0
		}
		s.gap = rand.IntN(2*stampStride - 1)
	}
	return monoNow()
}

// batchLimit is how many calls the node may run back to back (see
// Graph.batch) without holding back its outputs for more than about
// batchBudget, judged by its latest timed calls: the middle one of the
// last three, so that one call slowed down by something else (a
// preempted worker, a collection) neither stops batching nor lets a
// calculator that became slow go on batching; the slowest while fewer
// than three were timed. An untimed node does not batch.
func (s *nodeStats) batchLimit() int {
	if s.timed == 0 {
		return 1
	}
	return min(int(batchBudget/max(s.estimate(), 1)), batchSize)
}

// estimate is how long the node's calls take, judged by its latest timed
// calls: the middle one of the last three, so that one call slowed down
// by something else (a preempted worker, a collection) does not count;
// the slowest while fewer than three were timed; 0 before any.
func (s *nodeStats) estimate() time.Duration {
	switch r := s.recent; s.timed {
	case 0:
		return 0
	case 1, 2:
		return max(r[0], r[1], r[2])
	default:
		return max(min(r[0], r[1]), min(max(r[0], r[1]), r[2]))
	}
}

// expected is how long calls Process calls of the node are expected to
// take (see estimate); the maximum duration while no call was timed.
func (s *nodeStats) expected(calls int) time.Duration {
	if s.timed == 0 {
		return math.MaxInt64
	}
	return s.estimate() * time.Duration(calls)
}

// processTotal is the total Process time: exact while every call was
// timed, else the sampled mean times the number of calls.
func (s *nodeStats) processTotal() time.Duration {
	if s.timed == 0 || s.timed == s.calls {
		return s.timedSum
	}
	return time.Duration(float64(s.timedSum) / float64(s.timed) * float64(s.calls))
}
