package graph

import (
	"fmt"
	"strings"
)

// Input stream handler names.
const (
	HandlerDefault   = "default"
	HandlerImmediate = "immediate"
	HandlerSyncSet   = "sync_set"
	HandlerFixedSize = "fixed_size"
	// HandlerEarlyClose is MediaPipe's EarlyCloseInputStreamHandler: the
	// default handler's synchronisation, but the node closes as soon as
	// any one input is done.
	HandlerEarlyClose = "early_close"
)

type handlerKind int

const (
	handlerDefault handlerKind = iota
	handlerImmediate
	handlerSyncSet
	handlerFixedSize
	handlerEarlyClose
)

// handlerSpec is a node's input policy. Every handler is a list of sync
// sets: inputs in one set are synchronised with each other (processed
// together at one timestamp), sets are independent of each other. The
// default handler is one set holding every input, the immediate handler one
// set per input. The fixed-size handler is the default handler that also
// drops the oldest queued packets. batchSize is the default handler's
// batch_size: how many input sets wait for each other before Process runs
// on them in a row.
type handlerSpec struct {
	kind      handlerKind
	sets      [][]int
	trigger   int
	target    int
	fixedMin  bool
	batchSize int
}

// parseHandler resolves a node's handler configuration.
func parseHandler(hc HandlerConfig, fallback string, inputs []PortRef) (handlerSpec, []string) {
	var problems []string
	name := hc.Name
	if name == "" {
		name = fallback
	}
	if name == "" {
		name = HandlerDefault
	}
	all := make([]int, len(inputs))
	for i := range all {
		all[i] = i
	}
	opts := hc.Options
	known := func(allowed ...string) {
		for _, k := range sortedKeys(opts) {
			ok := false
			for _, a := range allowed {
				ok = ok || a == k
			}
			if !ok {
				if len(allowed) == 0 {
					problems = append(problems, fmt.Sprintf("input stream handler %s takes no options, got %q", name, k))
				} else {
					problems = append(problems, fmt.Sprintf("input stream handler %s: unknown option %q (options: %s)", name, k, strings.Join(allowed, ", ")))
				}
			}
		}
	}
	h := handlerSpec{batchSize: 1}
	switch name {
	case HandlerDefault:
		known("batch_size")
		h.kind = handlerDefault
		if len(all) > 0 {
			h.sets = [][]int{all}
		}
		if v, ok := opts["batch_size"]; ok {
			i, err := convertOption(OptInt, v)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("input stream handler default: batch_size: %v", err))
			case i.(int64) < 1:
				problems = append(problems, fmt.Sprintf("input stream handler default: batch_size must be 1 or more, got %d", i))
			default:
				h.batchSize = int(i.(int64))
			}
		}
	case HandlerEarlyClose:
		known()
		h.kind = handlerEarlyClose
		if len(all) > 0 {
			h.sets = [][]int{all}
		}
	case HandlerImmediate:
		known()
		h.kind = handlerImmediate
		for _, i := range all {
			h.sets = append(h.sets, []int{i})
		}
	case HandlerFixedSize:
		known("trigger_queue_size", "target_queue_size", "fixed_min_size")
		h.kind = handlerFixedSize
		h.trigger, h.target = 2, 1
		if len(all) > 0 {
			h.sets = [][]int{all}
		}
		for _, o := range []struct {
			name string
			dst  *int
		}{{"trigger_queue_size", &h.trigger}, {"target_queue_size", &h.target}} {
			if v, ok := opts[o.name]; ok {
				i, err := convertOption(OptInt, v)
				if err != nil {
					problems = append(problems, fmt.Sprintf("input stream handler fixed_size: %s: %v", o.name, err))
					continue
				}
				*o.dst = int(i.(int64))
			}
		}
		if v, ok := opts["fixed_min_size"]; ok {
			b, err := convertOption(OptBool, v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("input stream handler fixed_size: fixed_min_size: %v", err))
			} else {
				h.fixedMin = b.(bool)
			}
		}
		if h.target < 1 || h.trigger <= h.target {
			problems = append(problems, fmt.Sprintf("input stream handler fixed_size: need 1 <= target_queue_size < trigger_queue_size, got %d and %d", h.target, h.trigger))
		}
	case HandlerSyncSet:
		known("sync_sets")
		h.kind = handlerSyncSet
		used := make([]bool, len(inputs))
		raw, _ := opts["sync_sets"].([]any)
		if raw == nil {
			problems = append(problems, "input stream handler sync_set needs option sync_sets: a list of lists of inputs (TAG, TAG:index or stream name)")
		}
		for _, rs := range raw {
			list, ok := rs.([]any)
			if !ok {
				problems = append(problems, fmt.Sprintf("input stream handler sync_set: each sync set must be a list of inputs, got %v", rs))
				continue
			}
			var set []int
			for _, e := range list {
				s, _ := e.(string)
				idx := findInput(inputs, s)
				switch {
				case idx < 0:
					problems = append(problems, fmt.Sprintf("input stream handler sync_set: %v names no input", e))
				case used[idx]:
					problems = append(problems, fmt.Sprintf("input stream handler sync_set: input %s is in two sync sets", inputs[idx]))
				default:
					used[idx] = true
					set = append(set, idx)
				}
			}
			if len(set) > 0 {
				h.sets = append(h.sets, set)
			}
		}
		var rest []int
		for i, u := range used {
			if !u {
				rest = append(rest, i)
			}
		}
		if len(rest) > 0 {
			h.sets = append(h.sets, rest)
		}
	default:
		problems = append(problems, fmt.Sprintf("unknown input stream handler %q (handlers: default, immediate, sync_set, fixed_size, early_close)", name))
	}
	return h, problems
}

// findInput finds the input named by s: "TAG", "TAG:index" or a stream name.
func findInput(inputs []PortRef, s string) int {
	for i, r := range inputs {
		if s == r.Key() || (s == r.Tag && s != "" && r.Index == 0) || s == r.Name {
			return i
		}
	}
	return -1
}

type readiness int

const (
	notReady readiness = iota
	readyProcess
	readyClose
)

// setReadiness applies MediaPipe's synchronisation rule to sync set i. A
// timestamp is settled on a stream once the stream's bound has passed it;
// a set whose streams can take no more packets is ready to close.
// Without bounds processing the set is ready at the lowest queued packet
// timestamp once every stream of the set has settled it; with bounds
// processing it is ready at every new settled timestamp, packet or not.
// The second result is the set's lowest queued timestamp or bound.
func (n *node) setReadiness(i int) (readiness, Timestamp) {
	minBound, minPacket := Done, Done
	for _, qi := range n.handler.sets[i] {
		ts, empty := n.inputs[qi].minTimestampOrBound()
		if empty {
			minBound = min(minBound, ts)
		} else {
			minPacket = min(minPacket, ts)
		}
	}
	ts := min(minPacket, minBound)
	if ts >= OneOverPostStream {
		// Nothing more can come (a packet at Max or PostStream leaves the
		// bound at OneOverPostStream): the set is done, as in MediaPipe,
		// without waiting for the producer to close the stream.
		// The immediate handler with bounds processing shows a set's end to
		// the calculator once, at the timestamp before Done (Max), as
		// MediaPipe does, so a calculator can react to one input finishing.
		if n.processBounds && n.handler.kind == handlerImmediate && n.lastProcessed[i] < Done.PreviousAllowedInStream() {
			return readyProcess, Done.PreviousAllowedInStream()
		}
		return readyClose, Done
	}
	if !n.processBounds {
		if minBound > minPacket {
			return readyProcess, ts
		}
		return notReady, ts
	}
	settled := minBound.PreviousAllowedInStream()
	if minPacket == PostStream && minBound > minPacket {
		settled = minPacket
	}
	in := min(minPacket, settled)
	if in > max(n.lastProcessed[i], Unstarted) {
		return readyProcess, in
	}
	return notReady, ts
}

// nextInput decides whether the node can run: Process at a timestamp, Close,
// or not yet (then the timestamp is the lowest input timestamp or bound,
// used to propagate offset bounds).
func (n *node) nextInput(st *settler) (readiness, Timestamp) {
	if len(n.inputs) == 1 && n.inputs[0].q.len() > 0 && n.handler.kind == handlerDefault && !n.processBounds {
		// The common case, one input with a packet waiting, which is
		// ready as soon as it is queued: the packet settles every
		// timestamp below its own.
		ts := n.inputs[0].q.at(0).p.ts
		n.setReady[0], n.setTS[0] = true, ts
		return readyProcess, ts
	}
	if n.handler.kind == handlerEarlyClose {
		return n.earlyCloseInput()
	}
	fixed := n.handler.kind == handlerFixedSize
	if fixed {
		n.eraseSurplus(st, false)
	}
	inputTS, minTS := Done, Done
	allClose, becameDone := true, false
	for i := range n.handler.sets {
		r, ts := n.setReadiness(i)
		n.setReady[i], n.setTS[i] = r == readyProcess, ts
		minTS = min(minTS, ts)
		switch r {
		case readyProcess:
			inputTS = min(inputTS, ts)
			allClose = false
		case notReady:
			allClose = false
		case readyClose:
			if n.handler.kind == handlerImmediate && !n.processBounds && n.lastProcessed[i] < Done {
				n.lastProcessed[i] = Done // shown once
				becameDone = true
			}
		}
	}
	switch {
	case allClose:
		return readyClose, Done
	case inputTS < Done:
		if fixed {
			// Process the newest packets that survive trimming.
			n.eraseSurplus(st, true)
			inputTS = n.minTimestampToProcess()
		}
		return readyProcess, inputTS
	case becameDone:
		// An input of an immediate node finished while the others wait:
		// like MediaPipe's immediate handler (its branch "kept for backward
		// compatibility"), Process runs once with empty inputs, so the
		// calculator sees InputDone without waiting for every input to
		// end. It runs at the lowest timestamp settled on the open inputs
		// (MediaPipe uses their lowest bound, where a packet may still
		// come).
		return readyProcess, minTS.PreviousAllowedInStream()
	}
	return notReady, minTS
}

// earlyCloseInput is MediaPipe's EarlyCloseInputStreamHandler: the node
// closes once any input is done (closed with nothing queued), dropping what
// waits on the others; otherwise it is ready at the lowest queued packet
// once every empty input has settled it. Like MediaPipe's, it runs Process
// for packets only, whatever the bounds processing setting.
func (n *node) earlyCloseInput() (readiness, Timestamp) {
	minBound, minTS := Done, Done
	for _, q := range n.inputs {
		ts, empty := q.minTimestampOrBound()
		if empty {
			if ts == Done {
				return readyClose, Done
			}
			minBound = min(minBound, ts)
		}
		minTS = min(minTS, ts)
	}
	ready := minBound > minTS
	n.setReady[0], n.setTS[0] = ready, minTS
	if ready {
		return readyProcess, minTS
	}
	return notReady, minTS
}

// fill adds to cc a call at ts and moves its input set there: sets ready
// at ts give up their packets at ts (an empty packet at the settled bound
// where a stream has none), the others show only their bounds. A held call
// (batched behind another) keeps the packets it took counted in their
// queues until it is committed.
func (n *node) fill(st *settler, cc *CalculatorContext, ts Timestamp, held bool) {
	c := cc.addCall(ts, held)
	k := len(n.inputs)
	in := cc.callIn[len(cc.callIn)-k:]
	done := cc.callDone[len(cc.callDone)-k:]
	single := len(n.handler.sets) == 1
	for i, set := range n.handler.sets {
		take := single || (n.setReady[i] && n.setTS[i] == ts)
		if take {
			n.lastProcessed[i] = ts
		}
		for _, qi := range set {
			q := n.inputs[qi]
			found := false
			if take {
				for q.q.len() > 0 && q.q.at(0).p.ts <= ts {
					e := q.q.pop()
					if e.p.ts == ts {
						in[qi], found = e.p, true
						if held {
							q.held++
							cc.nheld[qi]++
						}
						c.consumed = true
						if e.at != 0 && (c.arrival == 0 || e.at < c.arrival) {
							c.arrival = e.at
						}
					} else {
						q.dropped++
					}
				}
				if !held || q.full { // a held packet still counts
					n.g.updateFull(st, q)
				}
			}
			if !found {
				b, _ := q.minTimestampOrBound()
				in[qi] = EmptyPacket(b.PreviousAllowedInStream())
			}
			done[qi] = q.done()
		}
	}
}

// fillRun fills cc, for a simple node (one input, the default handler
// without batch_size, no bounds processing, one call at a time), with a
// call for each of the first limit packets queued on its input: each
// packet settles every timestamp below its own, so it is an input set by
// itself. It does what nextInput and fill would do call by call: the
// first call takes its packet out of the queue, those batched behind it
// keep theirs counted until they are committed.
func (n *node) fillRun(st *settler, cc *CalculatorContext, limit int) {
	q := n.inputs[0]
	m := min(q.q.len(), max(limit, 1))
	cc.calls, cc.callIn, cc.callDone = resize(cc.calls, m), resize(cc.callIn, m), resize(cc.callDone, m)
	for i := range m {
		e := q.q.pop()
		// Field by field: a composite literal is built on the stack and
		// copied, and reading it back right after its byte-sized fields
		// were written stalls the copy (no store-to-load forwarding).
		c := &cc.calls[i]
		c.ts, c.arrival, c.dur = e.p.ts, e.at, 0
		c.timed, c.held, c.consumed = n.stats.sample(), i > 0, true
		cc.callIn[i], cc.callDone[i] = e.p, false
	}
	cc.callDone[m-1] = q.done()
	n.setReady[0], n.setTS[0], n.lastProcessed[0] = true, cc.calls[m-1].ts, cc.calls[m-1].ts
	if m > 1 {
		q.held += m - 1
		cc.nheld[0] += m - 1
	}
	n.g.updateFull(st, q)
}

// resize returns s with length m, its elements to be overwritten.
func resize[T any](s []T, m int) []T {
	if m <= cap(s) {
		return s[:m]
	}
	return append(s[:cap(s)], make([]T, m-cap(s))...)
}

// prevRange is the fixed-size handler's notion of the timestamp before a
// bound: one less for ordinary values, the value itself otherwise.
func prevRange(b Timestamp) Timestamp {
	if b.IsRangeValue() {
		return b - 1
	}
	return b
}

// minAmongLatest returns the timestamp of the k-th newest queued packet
// (the oldest among the k newest), Unset for an empty queue.
func (q *inputQueue) minAmongLatest(k int) Timestamp {
	if q.q.len() == 0 {
		return Unset
	}
	return q.q.at(q.q.len() - min(k, q.q.len())).p.ts
}

// eraseSurplus trims the queues of a fixed-size node: once a queue holds
// trigger_queue_size packets the oldest are dropped until target_queue_size
// remain, and the same timestamps are dropped from every input so the
// inputs stay aligned. With keepOne, at least one processable timestamp is
// kept.
func (n *node) eraseSurplus(st *settler, keepOne bool) {
	h := &n.handler
	if h.fixedMin {
		floor := Max
		for _, q := range n.inputs {
			if q.q.len() < h.trigger {
				return
			}
			floor = min(floor, q.minAmongLatest(h.target))
		}
		for _, q := range n.inputs {
			n.eraseBefore(st, q, floor)
		}
		return
	}
	for _, q := range n.inputs {
		size := h.trigger - 1
		if q.q.len() >= h.trigger {
			size = h.target
		}
		if q.q.len() > size {
			n.keptTS = max(n.keptTS, q.minAmongLatest(size+1).NextAllowedInStream())
		}
	}
	if keepOne {
		n.keptTS = min(n.keptTS, prevRange(n.minStreamBound()))
	}
	for _, q := range n.inputs {
		n.eraseBefore(st, q, n.keptTS)
	}
}

func (n *node) eraseBefore(st *settler, q *inputQueue, ts Timestamp) {
	dropped := false
	for q.q.len() > 0 && q.q.at(0).p.ts < ts {
		q.q.pop()
		q.dropped++
		dropped = true
	}
	if dropped {
		n.g.updateFull(st, q)
	}
}

// minStreamBound is the lowest bound any input will have once its queued
// packets are consumed.
func (n *node) minStreamBound() Timestamp {
	b := Done
	for _, q := range n.inputs {
		if q.q.len() > 0 {
			b = min(b, q.q.at(q.q.len()-1).p.ts.NextAllowedInStream())
		} else {
			b = min(b, q.bound)
		}
	}
	return b
}

// minTimestampToProcess is the timestamp a fixed-size node processes after
// trimming: the lowest queued packet, or the last settled timestamp of an
// empty input.
func (n *node) minTimestampToProcess() Timestamp {
	ts := Done
	for _, q := range n.inputs {
		t, empty := q.minTimestampOrBound()
		if empty {
			t = prevRange(t)
		}
		ts = min(ts, t)
	}
	return ts
}
