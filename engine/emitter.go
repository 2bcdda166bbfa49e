package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/weir-media/weir/protocol"
)

// ErrTiming is wrapped by the Emitter's errors for output that breaks the
// timing rules: a range that ends before it starts or starts before the
// bound, a series outside its piece's range, a bound moved back.
var ErrTiming = errors.New("output out of time order")

// Piece is one emitted output: a vtn-standard document covering the media
// from StartMs to EndMs. The host turns each into an engine_output with
// those offsets.
type Piece struct {
	StartMs, EndMs int64
	Doc            *protocol.Document
}

// Emitter takes a stream or batch engine's output and hands it to the
// host, enforcing the timing rules once for every engine:
//
//   - Pieces come in time order and do not overlap: a piece may not start
//     before the previous one ended.
//   - A piece's series lie within its range.
//   - The bound only moves forward. It is where the last piece ended, or
//     where Bound moved it: a promise that no later piece starts earlier,
//     which lets an aggregator finish that stretch of the timeline without
//     waiting for the stream to end (weir's job runner carries it on
//     heartbeats as timestampBoundMs, and as the task's timestamp_bound on
//     the job's results topic, which its aggregator reads).
//
// An engine that has found nothing in a stretch says so with Bound, so
// silence advances time as output does. A piece that breaks a rule is
// refused with an error wrapping ErrTiming and the host sees nothing of it.
//
// Engines give times from the start of their input; the Emitter adds the
// offset it was made with (WithOffset) before the host sees them. It is
// safe for concurrent use; pieces from several goroutines are still held
// to one order.
type Emitter struct {
	mu      sync.Mutex
	out     func(Piece) error
	onBound func(ms int64) error
	offset  int64
	bound   int64

	artifacts Artifacts
}

// EmitterOption configures an Emitter.
type EmitterOption func(*Emitter)

// WithOffset sets where the engine's input starts on the TDO timeline, in
// milliseconds: the stream's relativeStartOffsetMS. Hosts set it; pieces
// and bounds reach the host shifted by it.
func WithOffset(ms int64) EmitterOption { return func(e *Emitter) { e.offset = ms } }

// OnBound has f called whenever the bound moves forward, by a piece or by
// Bound, with the new bound on the TDO timeline. An error from f is
// returned to the engine.
func OnBound(f func(ms int64) error) EmitterOption { return func(e *Emitter) { e.onBound = f } }

// NewEmitter returns an Emitter handing pieces to out, which a host
// implements (writing engine_output messages, say); tests can collect
// them. out's error is returned to the engine, which should stop.
func NewEmitter(out func(Piece) error, opts ...EmitterOption) *Emitter {
	e := &Emitter{out: out}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Emit hands over the document found in the media from startMs to endMs
// (from the start of the input). See Emitter for the rules it checks.
func (e *Emitter) Emit(startMs, endMs int64, doc *protocol.Document) error {
	if doc == nil {
		return fmt.Errorf("emit [%d, %d] ms: nil document (use Bound to say nothing was found)", startMs, endMs)
	}
	if err := checkPiece(startMs, endMs, doc); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if startMs < e.bound {
		return fmt.Errorf("emit [%d, %d] ms: %w: starts before %d ms, where the previous output ended or the bound was set", startMs, endMs, ErrTiming, e.bound)
	}
	p := Piece{StartMs: startMs + e.offset, EndMs: endMs + e.offset, Doc: Shift(doc, e.offset)}
	if err := e.out(p); err != nil {
		return err
	}
	return e.advance(endMs)
}

// checkPiece applies the rules that need no state.
func checkPiece(startMs, endMs int64, doc *protocol.Document) error {
	if startMs < 0 || endMs < startMs {
		return fmt.Errorf("emit [%d, %d] ms: %w: want 0 <= start <= end", startMs, endMs, ErrTiming)
	}
	for i, s := range doc.Series {
		if s.StartTimeMs < startMs || s.StopTimeMs > endMs || s.StopTimeMs < s.StartTimeMs {
			return fmt.Errorf("emit [%d, %d] ms: %w: series[%d] [%d, %d] is not within the piece", startMs, endMs, ErrTiming, i, s.StartTimeMs, s.StopTimeMs)
		}
	}
	return nil
}

// Bound promises that no later piece starts before ms (from the start of
// the input). Moving the bound back is an error wrapping ErrTiming;
// repeating it does nothing.
func (e *Emitter) Bound(ms int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ms < e.bound {
		return fmt.Errorf("bound %d ms: %w: the bound is already %d ms", ms, ErrTiming, e.bound)
	}
	return e.advance(ms)
}

// advance moves the bound to ms and tells the host. e.mu is held.
func (e *Emitter) advance(ms int64) error {
	if ms == e.bound {
		return nil
	}
	e.bound = ms
	if e.onBound != nil {
		return e.onBound(ms + e.offset)
	}
	return nil
}

// BoundMs is the current bound, from the start of the input.
func (e *Emitter) BoundMs() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bound
}

// Shift returns a copy of doc with every series moved by ms: how a host
// puts an engine's answer on the TDO timeline (a chunk engine's by the
// chunk's startOffsetMs). doc itself is not changed; members other than
// the series times are shared with it.
func Shift(doc *protocol.Document, ms int64) *protocol.Document {
	if doc == nil {
		return nil
	}
	out := *doc
	out.Series = slices.Clone(doc.Series)
	for i := range out.Series {
		out.Series[i].StartTimeMs += ms
		out.Series[i].StopTimeMs += ms
	}
	return &out
}
