package graph

import (
	"math"
	"strconv"
)

// Timestamp is a point in media time, in microseconds. By convention a
// real-time graph uses the presentation time of each frame (or its recording
// time, in microseconds since the Unix epoch), but the runtime only requires
// that every stream's timestamps increase.
//
// A handful of values at both ends of the int64 range are reserved, with
// MediaPipe's meaning and ordering:
//
//	Unset < Unstarted < PreStream < Min <= (ordinary timestamps) <= Max < PostStream < OneOverPostStream < Done
//
// Only PreStream, the range [Min, Max] and PostStream may be carried by a
// packet (see [Timestamp.IsAllowedInStream]); the others describe stream
// states: Unstarted is the input timestamp during Open, Done the input
// timestamp during Close and the bound of a closed stream.
type Timestamp int64

// Reserved timestamps, in increasing order.
const (
	// Unset is the timestamp of a packet that has not been given one.
	Unset Timestamp = math.MinInt64
	// Unstarted is the input timestamp seen in Open.
	Unstarted Timestamp = math.MinInt64 + 1
	// PreStream marks a packet that applies to the whole stream and comes
	// before everything else (a header, a configuration). A PreStream
	// packet must be the only packet of its stream.
	PreStream Timestamp = math.MinInt64 + 2
	// Min is the smallest ordinary timestamp.
	Min Timestamp = math.MinInt64 + 3
	// Max is the largest ordinary timestamp.
	Max Timestamp = math.MaxInt64 - 3
	// PostStream marks a packet that summarises the whole stream (a
	// total, a final result). A PostStream packet must be the only packet
	// of its stream.
	PostStream Timestamp = math.MaxInt64 - 2
	// OneOverPostStream is the bound of a stream that can take no more
	// packets: it follows PostStream, PreStream and Max.
	OneOverPostStream Timestamp = math.MaxInt64 - 1
	// Done is the bound of a closed stream and the input timestamp seen in
	// Close.
	Done Timestamp = math.MaxInt64
)

// IsSpecial reports whether t is one of the reserved values outside the
// ordinary range [Min, Max].
func (t Timestamp) IsSpecial() bool { return t < Min || t > Max }

// IsRangeValue reports whether t is an ordinary timestamp, in [Min, Max].
func (t Timestamp) IsRangeValue() bool { return t >= Min && t <= Max }

// IsAllowedInStream reports whether a packet may carry t: PreStream, any
// ordinary timestamp, or PostStream.
func (t Timestamp) IsAllowedInStream() bool { return t >= PreStream && t <= PostStream }

// NextAllowedInStream returns the smallest timestamp a stream may carry
// after a packet at t: t+1 for ordinary timestamps, and OneOverPostStream
// (nothing more may follow) after PreStream, Max and PostStream. For values
// that packets cannot carry it returns t unchanged.
func (t Timestamp) NextAllowedInStream() Timestamp {
	switch {
	case t == PreStream || t == Max || t == PostStream:
		return OneOverPostStream
	case t.IsRangeValue():
		return t + 1
	default:
		return t
	}
}

// PreviousAllowedInStream is the inverse of NextAllowedInStream for bounds:
// given a stream's bound t, it returns the latest timestamp that is settled
// (no packet can still arrive at it), as MediaPipe defines it: t-1 for
// ordinary bounds above Min; Max for OneOverPostStream and Done (a finished
// stream has settled every ordinary timestamp, and the input timestamp
// that reports it must be one a packet could carry); Unstarted for bounds
// at or below Min and for PostStream (nothing is settled).
func (t Timestamp) PreviousAllowedInStream() Timestamp {
	switch {
	case t <= Min || t == PostStream:
		return Unstarted
	case t > Max:
		return Max
	}
	return t - 1
}

// Add returns t shifted by d microseconds, saturating inside [Min, Max] so
// that an ordinary timestamp never turns into a reserved one. Reserved
// timestamps are returned unchanged.
func (t Timestamp) Add(d int64) Timestamp {
	if !t.IsRangeValue() {
		return t
	}
	switch {
	case d > 0 && int64(t) > int64(Max)-d:
		return Max
	case d < 0 && int64(t) < int64(Min)-d:
		return Min
	}
	return t + Timestamp(d)
}

// String returns the microsecond count for ordinary timestamps and the
// constant's name (for example "PreStream") for reserved ones.
func (t Timestamp) String() string {
	switch t {
	case Unset:
		return "Unset"
	case Unstarted:
		return "Unstarted"
	case PreStream:
		return "PreStream"
	case Min:
		return "Min"
	case Max:
		return "Max"
	case PostStream:
		return "PostStream"
	case OneOverPostStream:
		return "OneOverPostStream"
	case Done:
		return "Done"
	}
	return strconv.FormatInt(int64(t), 10)
}
