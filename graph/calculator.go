package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// Calculator is a node's behaviour. The graph calls Open once, when the
// node's input side packets are available; Process whenever the node's input
// stream handler finds an input set ready (for a source node, one without
// input streams, repeatedly until it returns ErrStop); and Close once, when
// every input stream is done, when the run is stopped, or after an error.
// Calls on one node never overlap unless the node's calculator is declared
// Stateless and the node sets max_in_flight above 1, in which case Process
// calls may overlap (Open and Close never do).
//
// A returned error fails the run: the graph stops scheduling, calls Close
// on every opened node (CalculatorContext.GraphErr tells why) and
// WaitUntilDone returns the error prefixed with the node's name and
// calculator.
type Calculator interface {
	Open(cc *CalculatorContext) error
	Process(cc *CalculatorContext) error
	Close(cc *CalculatorContext) error
}

// Base gives a calculator no-op Open and Close; embed it and write Process.
type Base struct{}

// Open does nothing.
func (Base) Open(*CalculatorContext) error { return nil }

// Close does nothing.
func (Base) Close(*CalculatorContext) error { return nil }

// ProcessFunc adapts a function to a Calculator with no-op Open and Close.
type ProcessFunc func(cc *CalculatorContext) error

// Open does nothing.
func (ProcessFunc) Open(*CalculatorContext) error { return nil }

// Process calls f.
func (f ProcessFunc) Process(cc *CalculatorContext) error { return f(cc) }

// Close does nothing.
func (ProcessFunc) Close(*CalculatorContext) error { return nil }

type phase int

const (
	phaseOpen phase = iota
	phaseProcess
	phaseClose
)

func (p phase) String() string {
	return [...]string{"Open", "Process", "Close"}[p]
}

// CalculatorContext is a calculator's view of one call: the input set, the
// outputs, side packets and options. It is valid only during the call it
// was passed to.
type CalculatorContext struct {
	n         *node
	phase     phase
	ts        Timestamp
	inputs    []Packet // nil outside Process
	inputDone []bool
	outputs   []*OutputStream
	sideOut   map[int]any
	err       error // first misuse of an output, reported after the call
	graphErr  error

	// A context carries one call or a batch of a node's Process calls
	// that run back to back on one worker (see Graph.batch and
	// batch_size): calls[i] is call i, its inputs are
	// callIn[i*k:(i+1)*k] and callDone likewise (k inputs), cur is the
	// call running. The outputs are shared: each call's packets are
	// appended, and the batch is committed and delivered as one.
	calls    []call
	callIn   []Packet
	callDone []bool
	cur      int
	// held marks a running call batched behind another: its input
	// packets still count against their queues' max_queue_size.
	held bool
	// nheld counts, per input, the packets the calls keep counted in
	// their queues.
	nheld []int

	// Scheduling, owned by the graph.
	seq    uint64        // order among the node's Process runs
	order  uint64        // order among all queued runs
	end    time.Duration // monoNow when the batch returned, if it emitted
	ran    int           // calls that ran
	result error         // the error that ended the batch
	stop   bool          // a call returned ErrStop
	long   bool          // expected to take stealAfter or more
}

// call is one call of a context's batch.
type call struct {
	ts Timestamp
	// arrival is monoNow when the oldest stamped packet the call consumed
	// was produced, 0 for none; once a timed call starts, how long that
	// packet waited (at least 1ns).
	arrival time.Duration
	// dur is, for a timed call, monoNow when it started, then how long it
	// took.
	dur      time.Duration
	timed    bool // a Process call sampled for the profile
	held     bool
	consumed bool // took at least one packet
}

// NodeName returns the node's name in the graph.
func (cc *CalculatorContext) NodeName() string { return cc.n.name }

// Calculator returns the node's calculator name.
func (cc *CalculatorContext) Calculator() string { return cc.n.calcName }

// InputTimestamp is the timestamp of the current input set: Unstarted in
// Open, Done in Close, and Unset in a source node's Process.
func (cc *CalculatorContext) InputTimestamp() Timestamp { return cc.ts }

// Input returns the packet on input port tag (index 0) at the input
// timestamp. When no packet arrived at that timestamp the packet is empty
// and its timestamp is the stream's settled bound (the latest timestamp at
// which nothing more can arrive). Unknown ports give an empty packet.
func (cc *CalculatorContext) Input(tag string) Packet { return cc.InputAt(tag, 0) }

// InputAt is Input for a repeated port.
func (cc *CalculatorContext) InputAt(tag string, index int) Packet {
	if i, ok := portSlot(cc.n.inRefs, cc.n.inIndex, tag, index); ok && cc.inputs != nil {
		return cc.inputs[i]
	}
	return EmptyPacket(Unset)
}

// InputCount returns how many indexes of port tag are connected.
func (cc *CalculatorContext) InputCount(tag string) int { return cc.n.inCount[tag] }

// InputDone reports whether input port tag:index will carry nothing more:
// its stream is closed and its queue is empty.
func (cc *CalculatorContext) InputDone(tag string, index int) bool {
	if i, ok := portSlot(cc.n.inRefs, cc.n.inIndex, tag, index); ok && cc.inputDone != nil {
		return cc.inputDone[i]
	}
	return cc.phase == phaseClose
}

// InputPorts lists the node's connected input streams, in configuration
// order. The slice is shared: do not modify it.
func (cc *CalculatorContext) InputPorts() []PortRef { return cc.n.inRefs }

// OutputPorts lists the node's connected output streams, in configuration
// order. The slice is shared: do not modify it.
func (cc *CalculatorContext) OutputPorts() []PortRef { return cc.n.outRefs }

// Output returns output port tag (index 0). Using a port the node does not
// have fails the call with an error naming it.
func (cc *CalculatorContext) Output(tag string) *OutputStream { return cc.OutputAt(tag, 0) }

// OutputAt is Output for a repeated port.
func (cc *CalculatorContext) OutputAt(tag string, index int) *OutputStream {
	if i, ok := portSlot(cc.n.outRefs, cc.n.outIndex, tag, index); ok {
		return cc.outputs[i]
	}
	return &OutputStream{cc: cc, missing: portKey(tag, index)}
}

// OutputCount returns how many indexes of output port tag are connected.
func (cc *CalculatorContext) OutputCount(tag string) int { return cc.n.outCount[tag] }

// InputSidePacket returns the value of input side packet port tag (index 0),
// nil when it is not connected.
func (cc *CalculatorContext) InputSidePacket(tag string) any {
	return cc.InputSidePacketAt(tag, 0)
}

// InputSidePacketAt is InputSidePacket for a repeated port.
func (cc *CalculatorContext) InputSidePacketAt(tag string, index int) any {
	for _, b := range cc.n.sideIn {
		if b.ref.Tag == tag && b.ref.Index == index {
			return b.sp.value
		}
	}
	return nil
}

// SetOutputSidePacket sets output side packet port tag (index 0). Side
// packets are set once per run; consumers open once all their side packets
// are set. The value becomes visible when the current call returns.
func (cc *CalculatorContext) SetOutputSidePacket(tag string, v any) error {
	return cc.SetOutputSidePacketAt(tag, 0, v)
}

// SetOutputSidePacketAt is SetOutputSidePacket for a repeated port.
func (cc *CalculatorContext) SetOutputSidePacketAt(tag string, index int, v any) error {
	for i, b := range cc.n.sideOut {
		if b.ref.Tag == tag && b.ref.Index == index {
			if err := checkValueType(v, b.typ); err != nil {
				return cc.fail(fmt.Errorf("output side packet %q: %w", b.ref.Name, err))
			}
			if cc.sideOut == nil {
				cc.sideOut = map[int]any{}
			}
			if _, twice := cc.sideOut[i]; twice { // by two calls of a batch_size batch
				return cc.fail(fmt.Errorf("output side packet %q is set twice", b.sp.name))
			}
			cc.sideOut[i] = v
			return nil
		}
	}
	return cc.fail(fmt.Errorf("node has no output side packet %s", portKey(tag, index)))
}

// Options returns the node's options, typed and defaulted per the
// calculator's spec.
func (cc *CalculatorContext) Options() Options { return cc.n.options }

// SetTimestampOffset declares that every output packet's timestamp is its
// input timestamp plus offset (or later), so the graph can advance the
// outputs' bounds by itself: after each Process at t to t+1+offset, and,
// when input bounds move without packets, to the lowest input bound plus
// offset, without calling Process. An explicit SetNextTimestampBound or a
// later packet still wins when larger. Call it in Open; elsewhere it fails
// the call. Note that with an offset the outputs are done as soon as the
// inputs are, so Close cannot emit packets.
func (cc *CalculatorContext) SetTimestampOffset(offset int64) {
	if cc.phase != phaseOpen {
		cc.fail(errors.New("SetTimestampOffset must be called from Open"))
		return
	}
	cc.n.offset, cc.n.offsetSet = offset, true
}

// SetProcessTimestampBounds asks for a Process call at every new settled
// timestamp, even when no packet arrived: the calculator then sees empty
// inputs whose timestamps are the settled bounds and can compute its own
// output bounds. Call it in Open (or declare it in the Contract).
func (cc *CalculatorContext) SetProcessTimestampBounds(on bool) {
	if cc.phase != phaseOpen {
		cc.fail(errors.New("SetProcessTimestampBounds must be called from Open"))
		return
	}
	cc.n.processBounds = on
}

// Context is cancelled when the run is cancelled or fails, so long calls
// (I/O, waiting on an external process) can give up early.
func (cc *CalculatorContext) Context() context.Context { return cc.n.g.ctx }

// Logger returns the graph's logger with the node's name attached.
func (cc *CalculatorContext) Logger() *slog.Logger { return cc.n.log }

// GraphErr returns, in a Close that follows a failure or Cancel, the run's
// error; nil otherwise.
func (cc *CalculatorContext) GraphErr() error { return cc.graphErr }

func (cc *CalculatorContext) fail(err error) error {
	if cc.err == nil {
		cc.err = err
	}
	return err
}

// portSlot finds port tag:index among a node's ports. Most nodes have a
// handful of ports, where comparing the tags beats hashing them on every
// Input and Output call.
func portSlot(refs []PortRef, index map[portID]int, tag string, idx int) (int, bool) {
	if len(refs) > 8 {
		i, ok := index[portID{tag, idx}]
		return i, ok
	}
	for i, r := range refs {
		if r.Index == idx && r.Tag == tag {
			return i, true
		}
	}
	return 0, false
}

func portKey(tag string, index int) string { return PortRef{Tag: tag, Index: index}.Key() }

// OutputStream is a calculator's handle on one output during one call.
// Packets added are delivered downstream when the call returns, in order.
// Misuse (a timestamp going back, a closed stream, a wrong payload type)
// returns an error and also fails the call, so an ignored error is not
// lost.
type OutputStream struct {
	cc      *CalculatorContext
	s       *stream
	missing string
	packets []Packet
	next    Timestamp // lowest timestamp the next packet may have
	updated Timestamp // explicit bound, Unset if none
	closed  bool
	typ     reflect.Type
	// prior counts the stream's packets before this context's calls,
	// onlyPre tells whether the only one was at PreStream; packets holds
	// those of every call of a batch so far.
	prior   int
	onlyPre bool
	// base is the stream's bound when the running call started, mark how
	// many packets earlier calls of the batch added.
	base Timestamp
	mark int
}

// Name returns the stream's name.
func (o *OutputStream) Name() string {
	if o.s == nil {
		return ""
	}
	return o.s.name
}

func (o *OutputStream) usable() error {
	if o.missing != "" {
		return o.cc.fail(fmt.Errorf("node has no output stream %s", o.missing))
	}
	if o.closed {
		return o.cc.fail(fmt.Errorf("stream %q: packet sent to a closed stream", o.s.name))
	}
	return nil
}

// Add emits value at timestamp ts. A nil value is an empty packet: it
// emits nothing and advances the bound to ts+1, like
// SetNextTimestampBound(ts.NextAllowedInStream()).
func (o *OutputStream) Add(value any, ts Timestamp) error { return o.AddPacket(MakePacket(value, ts)) }

// AddPacket emits p. Timestamps on a stream must increase: a packet below
// the stream's bound fails with a *TimestampError; PreStream and PostStream
// packets must be the only packet of their stream.
func (o *OutputStream) AddPacket(p Packet) error {
	if err := o.usable(); err != nil {
		return err
	}
	if p.IsEmpty() {
		return o.SetNextTimestampBound(p.ts.NextAllowedInStream())
	}
	ts := p.ts
	switch {
	case !ts.IsAllowedInStream():
		return o.cc.fail(fmt.Errorf("stream %q: timestamp not set or set to a value packets cannot carry: %v", o.s.name, ts))
	case ts == PostStream && (o.prior > 0 || len(o.packets) > 0):
		return o.cc.fail(fmt.Errorf("stream %q: a packet at PostStream must be the only packet in the stream", o.s.name))
	case ts < o.next:
		if o.next == OneOverPostStream && (o.onlyPre || (len(o.packets) > 0 && o.packets[0].ts == PreStream)) {
			return o.cc.fail(fmt.Errorf("stream %q: a packet at PreStream must be the only packet in the stream, but another came at %v", o.s.name, ts))
		}
		return o.cc.fail(&TimestampError{Stream: o.s.name, Expected: o.next, Received: ts})
	}
	if err := checkValueType(p.value, o.typ); err != nil {
		return o.cc.fail(fmt.Errorf("stream %q: %w", o.s.name, err))
	}
	o.packets = append(o.packets, p)
	o.next = ts.NextAllowedInStream()
	return nil
}

// SetNextTimestampBound promises that no packet below bound will follow on
// this stream, letting downstream nodes run at earlier timestamps without
// waiting. The bound is the lowest timestamp the next packet may have:
// after deciding to emit nothing at t, set t.NextAllowedInStream(). Done
// closes the stream. The stream's bound never moves back: a bound below
// what it already promised fails the call with a *TimestampError when the
// call returns (a later packet or offset bound in the same call wins).
func (o *OutputStream) SetNextTimestampBound(bound Timestamp) error {
	if err := o.usable(); err != nil {
		return err
	}
	if bound == Done {
		o.Close()
		return nil
	}
	if !bound.IsAllowedInStream() && bound != OneOverPostStream {
		return o.cc.fail(fmt.Errorf("stream %q: timestamp bound set to a value streams cannot have: %v", o.s.name, bound))
	}
	o.updated = bound
	if bound > o.next {
		o.next = bound
	}
	return nil
}

// NextTimestampBound returns the lowest timestamp the next packet may have,
// as far as this call knows.
func (o *OutputStream) NextTimestampBound() Timestamp { return o.next }

// Close ends the stream: its bound becomes Done and downstream inputs see
// it finish. Packets added before Close in the same call are delivered.
func (o *OutputStream) Close() {
	if o.missing != "" || o.closed {
		return
	}
	o.closed = true
	o.next = Done
}
