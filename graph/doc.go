// Package graph runs calculator graphs: the in-process timing model of
// weir's tasks and engines, following MediaPipe's framework semantics.
//
// A graph is a set of nodes, each running a [Calculator], connected by
// streams. A stream carries [Packet]s (a value and a [Timestamp] in
// microseconds) from one producer to any number of consumers. The graph's
// runtime owns all the timing rules below; calculators stay small.
//
// # Timestamps and bounds
//
// Timestamps on a stream must increase. Every stream also has a timestamp
// bound: the lowest timestamp its next packet may have. A packet at t moves
// the bound to t+1 ([Timestamp.NextAllowedInStream]); a producer can also
// move it without sending anything, with [OutputStream.SetNextTimestampBound]
// or by adding an empty packet at t (a nil value), which means bound t+1.
// Bounds never move back: a packet below the bound, or a bound below the
// current one, fails the run with a [*TimestampError] such as
//
//	stream "out": packet timestamp mismatch: minimum expected timestamp is 21 but received 10
//
// A timestamp t is settled on a stream once the stream's bound is above t:
// from then on it is known whether a packet exists at t. Bounds are what let
// a node with several inputs run at t as soon as every input has settled t,
// instead of waiting for the next packet on a silent input.
//
// Reserved timestamps sit at both ends of the int64 range, ordered Unset <
// Unstarted < PreStream < Min ... Max < PostStream < OneOverPostStream <
// Done. A PreStream or PostStream packet must be the only packet of its
// stream. Unstarted is the input timestamp in Open, Done the input timestamp
// in Close and the bound of a closed stream.
//
// # Calculators
//
// A calculator is registered with a [Spec]: a name, a constructor, a
// [Contract] declaring its ports (input and output streams, input and output
// side packets, each addressed by TAG and index, with optional payload
// types) and the options it takes. The graph checks configurations against
// the contract before running (see [Validate]).
//
// The runtime calls Open once the node's input side packets are available
// (its inputs are empty and [CalculatorContext.InputTimestamp] is
// Unstarted; packets it emits go downstream), Process for each input set
// its input stream handler releases, and Close once every input stream is
// done (InputTimestamp is Done): closed, or unable to take another packet
// (bound OneOverPostStream, after a packet at Max or PostStream). A node without input streams is a source:
// Process runs repeatedly until it returns [ErrStop]. ErrStop from any
// other node closes every source and graph input stream so the graph drains
// and finishes cleanly. Any other error fails the run: nothing new is
// scheduled, every opened node is closed ([CalculatorContext.GraphErr]
// says why) and [Graph.WaitUntilDone] returns the error, prefixed with the
// node, as in
//
//	node "detector" (Detector): frame 3: model not loaded
//
// Side packets are values fixed for a run (a model path, a task payload):
// graph input side packets are given to [Graph.StartRun]; a node can set
// output side packets that open the nodes consuming them.
//
// # Timestamp offset and bounds processing
//
// Most calculators emit at their input timestamp. Declaring
// [CalculatorContext.SetTimestampOffset] in Open lets the graph propagate
// bounds for them: after Process at t the outputs' bound becomes t+1+offset,
// and when input bounds move with no packet (so Process is not called) the
// outputs' bound follows the lowest input bound plus offset. An explicit
// bound or later packet wins when larger. A calculator that computes its own
// bounds can instead ask for [CalculatorContext.SetProcessTimestampBounds]:
// Process then runs once for every newly settled timestamp, with empty
// inputs where no packet arrived.
//
// # Input stream handlers
//
// A node's input stream handler decides when Process runs and with what:
//
//   - default: inputs are synchronised. Process runs at the lowest timestamp
//     that is settled on every input and carries at least one packet, with
//     all inputs' packets at that timestamp (empty where none). Input sets
//     are processed strictly in timestamp order, nothing is dropped, and the
//     result is deterministic.
//   - immediate: every input on its own. Process runs as soon as any input
//     has a packet; input timestamps may go back across inputs. When one
//     input finishes while others are open, Process runs once more with
//     empty inputs (at the lowest timestamp settled on the open inputs, or
//     at Max with bounds processing) so the calculator sees it done.
//   - sync_set: inputs are grouped (option sync_sets: [[A, B], [C]]); each
//     group is synchronised like the default handler, groups are
//     independent.
//   - fixed_size: the default handler that sheds load. When a queue reaches
//     trigger_queue_size (default 2) while the node is busy, the oldest
//     packets are dropped down to target_queue_size (default 1), aligned
//     across inputs. This is how a slow engine keeps up with live video: it
//     always processes the newest frame.
//   - early_close: the default handler's synchronisation (packets only),
//     but the node closes as soon as any one input is done, dropping what
//     waits on the others.
//
// The default handler's batch_size option collects that many input sets
// before Process runs on them in a row; a partial batch runs before Close.
//
// Inputs listed in a node's back_edges come from downstream and close a
// loop; they are left out of cycle checks and scheduling order. The
// PreviousLoopback calculator answers each timestamp with the loop's
// previous result (just a bound the first time), so a loop never waits on
// itself.
//
// # Scheduling and flow control
//
// Calls run on a worker pool (num_threads, default runtime.NumCPU()). Every
// node has a home worker (the nodes, in topological order, cut into one
// stretch per worker) whose queue takes its ready calls, so a packet moves
// between cores only where a stretch ends; a worker with nothing of its own
// takes calls queued behind another worker's long or stuck call. A worker's
// calls are ordered by depth: nodes nearer the graph's outputs first,
// sources last, so packets in flight are finished before new ones are
// made. A node
// runs one call at a time unless its calculator is declared Stateless and
// the node sets max_in_flight: then Process runs on several input
// timestamps at once and outputs are still delivered in timestamp order.
// Each node has its own lock: workers running different nodes do not wait
// for each other, and a node's packets reach each consumer under that
// consumer's lock alone.
//
// When packets pile up in front of a fast node (one call at a time, the
// default handler, no bounds processing), one worker runs up to 64 of its
// ready calls in a row and hands their outputs downstream together, so the
// node's and each consumer's lock are taken once for the lot. Each call
// still sees exactly the inputs and output bounds it would see alone. A
// batch is sized to take about 20µs, judged by the node's latest timed
// calls, so a node whose calls take 20µs or more never batches and
// delivers each output as soon as it is made.
//
// Every input queue is bounded by max_queue_size (default 100, -1 for no
// bound). While a queue is full, the sources upstream of it (source nodes
// and graph input streams) are throttled: source nodes are not scheduled,
// and [Graph.AddPacketToInputStream] waits ([WaitTillNotFull], the default)
// or fails at once with an error wrapping [ErrUnavailable]
// ([AddIfNotFull]); [Graph.AddPacketToInputStreamContext] gives up, adding
// nothing, when its context ends first. Queues of nodes in the middle of the graph are not
// throttled; they can exceed the bound.
//
// Throttling can deadlock: a node waits on one input while another fills
// up, and nothing runs. When every worker is idle and a live source is
// throttled, the graph grows each full queue by one packet and logs a
// warning; with report_deadlock it fails the run with [ErrDeadlock] naming
// the full queues instead.
//
// # Declaring graphs
//
// Graphs are written in YAML ([ParseConfig], [NewFromYAML]) or built in Go
// ([NewBuilder]). Streams are bound to ports as "TAG:index:name",
// "TAG:name" or "name":
//
//	input_streams: [frames]
//	output_streams: [sampled]
//	max_queue_size: 30
//	nodes:
//	  - name: sample
//	    calculator: Throttle
//	    input_streams: [frames]
//	    output_streams: [sampled]
//	    options: {interval: 1s}
//	    input_stream_handler: fixed_size
//
// [Validate] reports every problem with its line; [Dot] draws the graph;
// [Registered] lists the calculators. The built-in calculators are
// PassThrough, TimestampShift, Counter, Gate, Merge, Throttle,
// PreviousLoopback and Sequence.
//
// # Running
//
// Build with [New] or [NewFromYAML], attach [Graph.ObserveOutputStream]
// callbacks or [Graph.AddOutputStreamPoller]s, [Graph.StartRun], feed
// [Graph.AddPacketToInputStream], [Graph.CloseAllInputStreams], then
// [Graph.WaitUntilDone]. [Graph.WaitUntilIdle] waits until everything fed so
// far has been processed; [Graph.Cancel] aborts. Once a packet is consumed
// the graph keeps no reference to it, so an idle graph holds no payloads
// (but those collected into an unfinished batch_size batch).
// [Graph.Profile] and [Graph.Collector] report per-node call counts and
// times, queue depths and input latency.
package graph
