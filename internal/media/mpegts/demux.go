package mpegts

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	mcmpegts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
)

// Transport packet constants.
const (
	PacketSize = 188
	SyncByte   = 0x47

	pidPAT  = 0
	pidNull = 0x1fff

	// maxNALScan bounds how many bytes of a video PES are searched for its
	// first picture NAL unit. x264's first IDR carries a ~700-byte SEI
	// before the slice; 64 KiB covers anything sane.
	maxNALScan = 64 << 10
	// maxPESSize bounds a reassembled PES packet (a 4K intra frame is a
	// few MiB); a larger one is dropped with ErrPES.
	maxPESSize = 16 << 20
)

// Packet is one transport packet as the demuxer classified it.
type Packet struct {
	// Data is the 188-byte packet. It refers to the bytes given to Feed
	// (or to the demuxer's copy, for a packet split across two feeds).
	Data []byte
	// Offset is where the packet starts in the stream: bytes fed since
	// the demuxer was made, skipped ones included.
	Offset int64
	// ReceivedAt is the time given to the Feed call that completed the
	// packet.
	ReceivedAt time.Time
	PID        uint16
	// PSI is set on packets of the PAT and of the program's PMT.
	PSI bool
	// Stream is the elementary stream the packet belongs to; nil for PSI
	// and for PIDs the PMT does not list.
	Stream *Stream
	// Primary is set on packets of the program's primary stream.
	Primary bool
	// Start is set when the packet begins a PES packet.
	Start bool
	// Key is set on the Start packet of a primary-stream PES that is a
	// random access point: a picture whose first slice is IDR (H.264) or
	// IRAP (H.265), or any audio PES when the program has no such video.
	Key bool
	// HasPTS says PTS and DTS hold the PES timestamps (DTS equals PTS when
	// the PES has none). They are unwrapped: a 33-bit wrap keeps them
	// increasing, past 2^33 ticks.
	HasPTS   bool
	PTS, DTS time.Duration
	// Width and Height are the picture size a key packet's access unit
	// declares in its sequence parameter set (H.264, H.265), when it
	// carries one ahead of its first picture; 0 otherwise. A change
	// between key frames is a change of format mid-stream.
	Width, Height int
}

// PES is a reassembled PES packet: for video, one access unit (Annex B
// NAL units); for AAC, one or more ADTS frames; for MPEG audio, one or
// more frames.
type PES struct {
	Stream *Stream
	// Offset and ReceivedAt are those of the packet that began it.
	Offset     int64
	ReceivedAt time.Time
	HasPTS     bool
	PTS, DTS   time.Duration // unwrapped, as in Packet
	// Key: an H.264 IDR or H.265 IRAP picture, or audio (every audio
	// frame decodes on its own).
	Key bool
	// Data is the PES payload; the demuxer does not touch it again.
	Data []byte
}

// Stats counts what a demuxer has seen.
type Stats struct {
	Packets          int64 // transport packets read, null packets included
	Resyncs          int64 // times sync was lost and found again
	SkippedBytes     int64 // bytes skipped while looking for sync
	TransportErrors  int64
	ContinuityErrors int64
	PSIErrors        int64
	PESErrors        int64
}

// Option configures a Demuxer.
type Option func(*Demuxer)

// OnPES makes the demuxer reassemble the PES packets of every elementary
// stream the PMT lists and hand each to fn once complete: when its
// PES_packet_length is reached, when its PID starts the next one (video
// PES packets are usually unbounded), or at Flush. fn runs inside Feed or
// Flush. Without OnPES nothing is copied or buffered.
func OnPES(fn func(*PES)) Option { return func(d *Demuxer) { d.onPES = fn } }

// OnError makes the demuxer hand every problem it meets to fn, as an
// *Error wrapping one of ErrSync, ErrTransport, ErrMalformedPacket,
// ErrContinuity, ErrPSI, ErrPES or ErrUnsupportedStream. fn runs inside
// Feed or Flush.
func OnError(fn func(error)) Option { return func(d *Demuxer) { d.onError = fn } }

// Demuxer reads one MPEG-TS byte stream fed in pieces of any size. See the
// package documentation for what it does with damaged input.
//
// A Demuxer is used by one goroutine.
type Demuxer struct {
	onPES   func(*PES)
	onError func(error)

	pos          int64     // stream offset of the next byte fed
	rem          []byte    // the start of a packet split across feeds
	inSync       bool      // the last packet read started on a sync byte
	at           time.Time // given to the last Feed
	skipped      int64     // bytes skipped since sync was lost
	skipFrom     int64
	cc           [8192]uint8 // per PID: 0x10 once seen, plus the last counter
	patRd, pmtRd sectionReader
	number       uint16 // program number the PAT names
	pmtPID       int    // -1 until the PAT names one
	patPkts      []byte
	pmtPkts      []byte
	pmtSection   []byte // the PMT in force, to spot a new version
	program      *Program
	pending      []Packet // the held start of a primary video PES, and what followed
	nalBuf       []byte
	pes          map[uint16]*pesBuilder
	pesSize      map[uint16]int // per PID, the size of the last PES
	times        mcmpegts.TimeDecoder
	timeBase     int64
	timeStarted  bool
	stats        Stats
}

// NewDemuxer returns a demuxer for one stream.
func NewDemuxer(opts ...Option) *Demuxer {
	d := &Demuxer{pmtPID: -1, pes: map[uint16]*pesBuilder{}, pesSize: map[uint16]int{}}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Program returns the program in force, or nil until a PAT and its PMT
// have been read.
func (d *Demuxer) Program() *Program { return d.program }

// Tables returns the packets of the latest PAT and PMT, to start a segment
// or chunk with; nil until the program is known.
func (d *Demuxer) Tables() []byte {
	if d.program == nil || d.patPkts == nil || d.pmtPkts == nil {
		return nil
	}
	out := make([]byte, 0, len(d.patPkts)+len(d.pmtPkts))
	out = append(out, d.patPkts...)
	return append(out, d.pmtPkts...)
}

// Stats returns what the demuxer has counted so far.
func (d *Demuxer) Stats() Stats { return d.stats }

// Feed adds bytes received at at and appends to out the packets that are
// now classified, in stream order. Packets are handed out once the program
// is known (PSI packets always); null packets and packets flagged with a
// transport error are dropped. The start of a primary video PES is held,
// with every packet after it, until its first picture NAL unit has arrived
// and shows whether it is a key picture, so the order of packets never
// changes. The packets refer to data: do not reuse it while they are held.
//
// How the stream is cut into pieces changes nothing but when packets come
// out: sync is first found (and found again after it is lost) where two
// sync bytes lie a packet apart, waiting for more bytes when a candidate
// is too close to the end of what was fed; once in sync, each packet only
// needs its own sync byte.
func (d *Demuxer) Feed(data []byte, at time.Time, out []Packet) []Packet {
	off := d.pos - int64(len(d.rem))
	d.pos += int64(len(data))
	d.at = at
	if len(d.rem) > 0 {
		data = append(d.rem, data...)
		d.rem = nil
	}
	for len(data) > 0 {
		if !d.inSync || data[0] != SyncByte {
			d.inSync = false
			i, wait := findSync(data)
			d.skip(off, i)
			data, off = data[i:], off+int64(i)
			if wait {
				d.rem = append([]byte(nil), data...)
				return out
			}
			d.inSync = true
		}
		if len(data) < PacketSize {
			d.rem = append([]byte(nil), data...)
			return out
		}
		d.synced()
		out = d.packet(data[:PacketSize:PacketSize], off, at, out)
		data, off = data[PacketSize:], off+PacketSize
	}
	return out
}

// Flush ends the input: a packet waiting for the next one to confirm sync
// is taken (with the time of the last Feed), a partial packet left over is reported as skipped, a held
// video PES start is released (not a key picture, if its picture NAL unit
// never came), and PES packets being gathered are handed to OnPES.
func (d *Demuxer) Flush(out []Packet) []Packet {
	if rem := d.rem; len(rem) == PacketSize && rem[0] == SyncByte {
		d.rem, d.inSync = nil, true
		d.synced()
		out = d.packet(rem, d.pos-PacketSize, d.at, out)
	}
	if len(d.rem) > 0 {
		d.skip(d.pos-int64(len(d.rem)), len(d.rem))
		d.rem = nil
	}
	d.synced()
	out = d.release(false, out)
	builders := make([]*pesBuilder, 0, len(d.pes))
	for _, b := range d.pes {
		builders = append(builders, b)
	}
	slices.SortFunc(builders, func(a, b *pesBuilder) int { return cmp.Compare(a.pes.Offset, b.pes.Offset) })
	for _, b := range builders {
		d.finishPES(b)
	}
	return out
}

// findSync returns the first offset in data of a sync byte followed by
// another one a packet later. When there is none, it returns the offset of
// the first sync byte too close to the end to check, with wait set, or
// len(data).
func findSync(data []byte) (i int, wait bool) {
	for i = range data {
		if data[i] != SyncByte {
			continue
		}
		if i+PacketSize >= len(data) {
			return i, true
		}
		if data[i+PacketSize] == SyncByte {
			return i, false
		}
	}
	return len(data), true
}

func (d *Demuxer) skip(off int64, n int) {
	if n == 0 {
		return
	}
	if d.skipped == 0 {
		d.skipFrom = off
	}
	d.skipped += int64(n)
}

// synced reports the bytes skipped before the packet about to be read.
func (d *Demuxer) synced() {
	if d.skipped == 0 {
		return
	}
	d.stats.Resyncs++
	d.stats.SkippedBytes += d.skipped
	d.report(d.skipFrom, -1, fmt.Errorf("skipped %d bytes: %w", d.skipped, ErrSync))
	d.skipped = 0
}

func (d *Demuxer) report(off int64, pid int, err error) {
	if d.onError != nil {
		d.onError(&Error{Offset: off, PID: pid, Err: err})
	}
}

// packetPayload returns the payload of a packet (nil when it has none);
// ok is false when the adaptation field runs past the packet.
func packetPayload(pkt []byte) (payload []byte, ok bool) {
	afc := pkt[3] >> 4 & 0x3
	start := 4
	if afc&0x2 != 0 {
		start += 1 + int(pkt[4])
		if start > len(pkt) {
			return nil, false
		}
	}
	if afc&0x1 == 0 {
		return nil, true
	}
	return pkt[start:], true
}

// continuity checks pkt's continuity counter: lost is set when packets
// of the PID went missing, dup when pkt repeats the previous one.
func (d *Demuxer) continuity(pkt []byte, pid uint16, off int64) (lost, dup bool) {
	if pkt[3]&0x10 == 0 {
		return false, false // no payload: the counter does not move
	}
	cc := pkt[3] & 0x0f
	prev := d.cc[pid]
	d.cc[pid] = 0x10 | cc
	discontinuity := pkt[3]&0x20 != 0 && pkt[4] > 0 && pkt[5]&0x80 != 0
	if prev&0x10 == 0 || discontinuity {
		return false, false
	}
	switch prev &= 0x0f; cc {
	case prev:
		return false, true
	case (prev + 1) & 0x0f:
		return false, false
	}
	d.stats.ContinuityErrors++
	d.report(off, int(pid), fmt.Errorf("counter %d after %d: %w", cc, prev, ErrContinuity))
	return true, false
}

// packet handles one 188-byte packet starting with the sync byte.
func (d *Demuxer) packet(pkt []byte, off int64, at time.Time, out []Packet) []Packet {
	d.stats.Packets++
	pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
	if pkt[1]&0x80 != 0 {
		d.stats.TransportErrors++
		d.report(off, int(pid), ErrTransport)
		return out
	}
	if pid == pidNull {
		return out
	}
	pusi := pkt[1]&0x40 != 0
	payload, ok := packetPayload(pkt)
	if !ok {
		d.report(off, int(pid), ErrMalformedPacket)
	}
	lost, dup := d.continuity(pkt, pid, off)
	p := Packet{Data: pkt, Offset: off, ReceivedAt: at, PID: pid}

	switch {
	case pid == pidPAT:
		p.PSI = true
		if !dup {
			d.readPAT(pkt, payload, pusi, lost, off)
		}
		return d.emit(p, out)
	case d.pmtPID >= 0 && int(pid) == d.pmtPID:
		p.PSI = true
		if !dup && d.readPMT(pkt, payload, pusi, lost, off) {
			out = d.release(false, out) // the primary stream may have changed
		}
		return d.emit(p, out)
	}
	if d.program == nil {
		return out
	}
	st := d.program.Stream(pid)
	if st == nil {
		return d.emit(p, out)
	}
	p.Stream, p.Primary = st, st == d.program.Primary
	if dup {
		return d.emit(p, out) // a repeated packet passes through, read once
	}

	body := payload
	var hdr pesHeader
	if pusi && ok {
		var err error
		if hdr, err = parsePESHeader(payload); err != nil {
			d.stats.PESErrors++
			d.report(off, int(pid), err)
		}
		p.Start = hdr.start
		body = hdr.payload
		if hdr.hasPTS {
			p.HasPTS = true
			p.PTS, p.DTS = d.unwrap(hdr.pts), d.unwrap(hdr.dts)
		}
	}
	if d.onPES != nil {
		d.gatherPES(&p, pusi, hdr, body, lost)
	}

	if p.Primary && st.keyed() {
		if p.Start {
			// A new video PES: whatever was held ends here without
			// having shown a key picture.
			out = d.release(false, out)
			d.pending = append(d.pending, p)
			return d.scan(body, st.Codec, out)
		}
		if len(d.pending) > 0 && pid == d.pending[0].PID {
			d.pending = append(d.pending, p)
			return d.scan(body, st.Codec, out)
		}
	}
	if p.Start && p.Primary && st.Kind == KindAudio {
		p.Key = true
	}
	return d.emit(p, out)
}

// emit appends p to out, or to the held packets while a video PES start
// waits for its verdict.
func (d *Demuxer) emit(p Packet, out []Packet) []Packet {
	if len(d.pending) > 0 {
		d.pending = append(d.pending, p)
		return out
	}
	return append(out, p)
}

// release hands out the held packets, the first marked key or not.
func (d *Demuxer) release(key bool, out []Packet) []Packet {
	if len(d.pending) == 0 {
		return out
	}
	d.pending[0].Key = key
	if key && d.pending[0].Stream != nil {
		d.pending[0].Width, d.pending[0].Height = spsDimensions(d.nalBuf, d.pending[0].Stream.Codec)
	}
	out = append(out, d.pending...)
	clear(d.pending)
	d.pending = d.pending[:0]
	d.nalBuf = d.nalBuf[:0]
	return out
}

// scan adds PES payload bytes of the held video PES and releases it once
// its first picture NAL unit shows whether it is a key picture.
func (d *Demuxer) scan(body []byte, codec Codec, out []Packet) []Packet {
	from := max(len(d.nalBuf)-4, 0) // a start code may straddle packets
	d.nalBuf = append(d.nalBuf, body...)
	if key, decided := firstPictureIsKey(d.nalBuf[from:], codec); decided {
		return d.release(key, out)
	}
	if len(d.nalBuf) > maxNALScan {
		return d.release(false, out)
	}
	return out
}

// unwrap turns a 33-bit timestamp into a duration on a timeline that keeps
// increasing across the wrap: the first timestamp of the stream plus
// mediacommon's decoded distance from it. One timeline serves every PID,
// so streams that wrap at slightly different moments stay aligned.
func (d *Demuxer) unwrap(ts int64) time.Duration {
	if !d.timeStarted {
		d.timeBase, d.timeStarted = ts, true
	}
	return ticksToDuration(d.timeBase + d.times.Decode(ts))
}

// ticksToDuration converts 90 kHz ticks to a duration (1 tick is 100000/9
// ns; multiplying by 1e9 first would overflow past the wrap).
func ticksToDuration(t int64) time.Duration {
	return time.Duration(t) * 100000 / 9
}

// readPAT reads the PAT's sections, switching to a new program when the
// PAT names a different one.
func (d *Demuxer) readPAT(pkt, payload []byte, pusi, lost bool, off int64) {
	if lost {
		d.patRd.reset()
	}
	secs, err := d.patRd.add(pkt, payload, pusi)
	for _, sec := range secs {
		number, pmtPID, err := parsePAT(sec)
		if err != nil {
			d.psiError(off, pidPAT, err)
			continue
		}
		d.patPkts = append(d.patPkts[:0], d.patRd.done...)
		if number != d.number || int(pmtPID) != d.pmtPID {
			d.number, d.pmtPID = number, int(pmtPID)
			d.program, d.pmtSection, d.pmtPkts = nil, nil, nil
			d.pmtRd = sectionReader{}
		}
	}
	if err != nil {
		d.psiError(off, pidPAT, err)
	}
}

// readPMT reads the PMT's sections and reports whether the program
// changed.
func (d *Demuxer) readPMT(pkt, payload []byte, pusi, lost bool, off int64) (changed bool) {
	if lost {
		d.pmtRd.reset()
	}
	secs, err := d.pmtRd.add(pkt, payload, pusi)
	for _, sec := range secs {
		if d.pmtSection != nil && bytes.Equal(sec, d.pmtSection) {
			d.pmtPkts = append(d.pmtPkts[:0], d.pmtRd.done...)
			continue
		}
		prog, err := parsePMT(sec, d.number, uint16(d.pmtPID))
		if errors.Is(err, errOtherProgram) {
			continue
		}
		if err != nil {
			d.psiError(off, d.pmtPID, err)
			continue
		}
		d.program, d.pmtSection, changed = prog, sec, true
		d.pmtPkts = append(d.pmtPkts[:0], d.pmtRd.done...)
		for _, s := range prog.Streams {
			if s.Codec == CodecUnknown {
				d.report(off, int(s.PID), fmt.Errorf("%v: %w", s, ErrUnsupportedStream))
			}
		}
	}
	if err != nil {
		d.psiError(off, d.pmtPID, err)
	}
	return changed
}

func (d *Demuxer) psiError(off int64, pid int, err error) {
	d.stats.PSIErrors++
	d.report(off, pid, err)
}
