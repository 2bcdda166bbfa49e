package mpegts

import (
	"errors"
	"fmt"
)

// The problems the demuxer reports through OnError. Each comes wrapped in
// an *Error that says where; errors.Is tells them apart. None stops the
// demuxer: it skips what it cannot read and carries on.
var (
	// ErrSync: bytes that are not on a packet boundary were skipped (a
	// stream picked up mid-way, or corruption) until two sync bytes a
	// packet apart were found.
	ErrSync = errors.New("lost packet sync")
	// ErrTransport: a packet had its transport error indicator set and
	// was dropped.
	ErrTransport = errors.New("transport error indicator set")
	// ErrMalformedPacket: a packet's adaptation field runs past its end;
	// its payload is ignored.
	ErrMalformedPacket = errors.New("adaptation field longer than the packet")
	// ErrContinuity: a PID's continuity counter skipped, so packets were
	// lost; the PES or section being gathered on that PID is dropped.
	ErrContinuity = errors.New("continuity counter skipped")
	// ErrPSI: a PAT or PMT section could not be read (bad length, CRC
	// mismatch, no program); the previous table stays in force.
	ErrPSI = errors.New("malformed PSI section")
	// ErrPES: a PES packet could not be read (no start code, a header
	// longer than its packet, a PES over the size limit) and is dropped.
	ErrPES = errors.New("malformed PES packet")
	// ErrUnsupportedStream: the PMT lists a stream whose codec weir does
	// not read. It is reported once per PMT that lists it; its packets
	// still pass through, with CodecUnknown.
	ErrUnsupportedStream = errors.New("stream type not supported")
)

// Error is a problem found at a place in the byte stream.
type Error struct {
	// Offset is the byte offset in the stream (bytes fed since the
	// demuxer was made) of the packet concerned, or where skipped bytes
	// began.
	Offset int64
	// PID is the packet's PID, or -1 when the problem is not a packet's.
	PID int
	Err error
}

func (e *Error) Error() string {
	if e.PID < 0 {
		return fmt.Sprintf("mpeg-ts byte %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("mpeg-ts byte %d, pid %d: %v", e.Offset, e.PID, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
