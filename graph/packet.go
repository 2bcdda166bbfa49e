package graph

import "fmt"

// Packet is the unit of data on a stream: an immutable value and the
// Timestamp it belongs to. Packets are small values; copying one copies the
// reference to its payload, never the payload, so a payload sent to several
// consumers is shared and must not be mutated after it is sent.
//
// A packet with a nil value is empty. Empty packets carry no data; on an
// output an empty packet at t means "nothing at t" and advances the stream's
// bound to t+1, and on an input an empty packet tells the calculator that no
// packet arrived at the input timestamp.
type Packet struct {
	value any
	ts    Timestamp
}

// MakePacket returns a packet holding v at timestamp ts. A nil v makes an
// empty packet.
func MakePacket(v any, ts Timestamp) Packet { return Packet{value: v, ts: ts} }

// EmptyPacket returns an empty packet at ts.
func EmptyPacket(ts Timestamp) Packet { return Packet{ts: ts} }

// At returns a copy of p that carries timestamp ts.
func (p Packet) At(ts Timestamp) Packet { p.ts = ts; return p }

// Timestamp returns the packet's timestamp.
func (p Packet) Timestamp() Timestamp { return p.ts }

// Value returns the payload, nil for an empty packet.
func (p Packet) Value() any { return p.value }

// IsEmpty reports whether the packet carries no payload.
func (p Packet) IsEmpty() bool { return p.value == nil }

// String formats the packet for logs and test failures.
func (p Packet) String() string {
	if p.IsEmpty() {
		return fmt.Sprintf("Packet(empty @%v)", p.ts)
	}
	return fmt.Sprintf("Packet(%T %v @%v)", p.value, p.value, p.ts)
}

// As returns the payload of p as a T. It reports false when p is empty or
// holds a value of another type.
func As[T any](p Packet) (T, bool) {
	v, ok := p.value.(T)
	return v, ok
}
