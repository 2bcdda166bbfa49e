package live

import (
	"time"
)

// This file is the packager's MPEG-TS reader. It works on transport packets,
// never re-muxes: a segment is a run of the publisher's own packets, cut
// where a video PES carrying an IDR (H.264) or IRAP (HEVC) picture begins, so
// the bytes a viewer gets are the bytes the encoder made. The reader only
// needs to know, for every packet, which elementary stream it belongs to,
// whether it starts a PES, the PES timestamps, and whether that PES is a
// random access point.

const (
	tsPacketSize = 188
	tsSyncByte   = 0x47
	patPID       = 0
	nullPID      = 0x1fff

	// maxNALScan bounds how many bytes of a video PES are searched for its
	// first picture NAL unit. x264's first IDR carries a ~700-byte SEI
	// before the slice; 64 KiB covers anything sane.
	maxNALScan = 64 << 10

	// ptsWrap is the period of MPEG-TS 33-bit timestamps at 90 kHz.
	ptsWrap = int64(1) << 33
)

// trackKind says what an elementary stream carries.
type trackKind uint8

const (
	kindOther trackKind = iota
	kindPSI
	kindVideo
	kindAudio
)

// videoCodec selects how a video PES is searched for a key picture.
type videoCodec uint8

const (
	codecNone videoCodec = iota
	codecH264
	codecHEVC
)

// tsPiece is one transport packet as the segmenter sees it.
type tsPiece struct {
	// Data is the 188-byte packet.
	Data []byte
	Kind trackKind
	// Primary is set on packets of the stream segments are cut on: the
	// video stream when the program has H.264 or HEVC video, else the
	// first audio stream.
	Primary bool
	// Start is set when the packet begins a PES packet.
	Start bool
	// Key is set on the Start packet of a primary PES that is a random
	// access point: an IDR/IRAP picture, or any audio frame when audio is
	// primary.
	Key bool
	// HasPTS says PTS and DTS hold the PES timestamps (DTS equals PTS when
	// the PES has no DTS). They are unwrapped: a 33-bit wrap keeps them
	// increasing.
	HasPTS   bool
	PTS, DTS time.Duration
	// RecvAt is when the ingest received the bytes (zero when unknown).
	RecvAt time.Time
}

// esInfo describes one elementary stream of the program.
type esInfo struct {
	kind    trackKind
	codec   videoCodec
	primary bool
}

// tsDemuxer classifies the packets of one MPEG-TS byte stream. Bytes may be
// fed in pieces of any size; a packet split across two pieces is joined,
// and bytes that are not on a packet boundary (a stream picked up mid-way,
// corruption) are skipped until two sync bytes 188 bytes apart are found.
//
// Packets are reported once the program's PMT is known; earlier ones carry
// nothing a segment could start with. The start packet of a video PES is
// held, with every packet after it, until the PES's first picture NAL unit
// has arrived and tells whether it is a key picture, so the order of
// packets never changes.
type tsDemuxer struct {
	rem []byte // the start of a packet split across feeds

	pmtPID  int // -1 until the PAT names it
	pat     []byte
	pmt     []byte
	streams map[uint16]esInfo
	videoOK bool // the program has a video stream we can find key pictures in

	// pending is the held start of a video PES and what came after it.
	pending    []tsPiece
	pendingPID uint16
	nalBuf     []byte

	unwrap map[uint16]*ptsUnwrapper

	// resyncs counts skipped stretches of bytes; psiErrors counts PAT or
	// PMT sections that could not be read.
	resyncs, psiErrors int
}

func newTSDemuxer() *tsDemuxer {
	return &tsDemuxer{pmtPID: -1, streams: map[uint16]esInfo{}, unwrap: map[uint16]*ptsUnwrapper{}}
}

// ready reports whether the program map is known.
func (d *tsDemuxer) ready() bool { return d.pmt != nil }

// tables returns the latest PAT and PMT packets, to start a segment with.
func (d *tsDemuxer) tables() []byte {
	if d.pat == nil || d.pmt == nil {
		return nil
	}
	out := make([]byte, 0, 2*tsPacketSize)
	out = append(out, d.pat...)
	return append(out, d.pmt...)
}

// hasVideo reports whether segments are cut on video key pictures.
func (d *tsDemuxer) hasVideo() bool { return d.videoOK }

// feed adds bytes received at recvAt and appends the packets that are now
// classified to out. Packets handed out keep referring to data.
func (d *tsDemuxer) feed(data []byte, recvAt time.Time, out []tsPiece) []tsPiece {
	if len(d.rem) > 0 {
		data = append(d.rem, data...)
		d.rem = nil
	}
	for len(data) > 0 {
		if data[0] != tsSyncByte || len(data) > tsPacketSize && data[tsPacketSize] != tsSyncByte {
			d.resyncs++
			i := findSync(data)
			if i < 0 {
				// Keep a tail that might hold the start of a packet.
				if j := lastSync(data); j >= 0 {
					d.rem = append([]byte(nil), data[j:]...)
				}
				return out
			}
			data = data[i:]
			continue
		}
		if len(data) < tsPacketSize {
			d.rem = append([]byte(nil), data...)
			return out
		}
		out = d.packet(data[:tsPacketSize:tsPacketSize], recvAt, out)
		data = data[tsPacketSize:]
	}
	return out
}

// findSync returns the first offset in data that starts a packet: a sync
// byte followed by another one a packet later (or by the end of data), or
// -1.
func findSync(data []byte) int {
	for i := 1; i < len(data); i++ {
		if data[i] != tsSyncByte {
			continue
		}
		if i+tsPacketSize >= len(data) {
			return -1 // too close to the end to check; keep it for later
		}
		if data[i+tsPacketSize] == tsSyncByte {
			return i
		}
	}
	return -1
}

// lastSync returns the offset of a sync byte in the last packet's worth of
// data, or -1.
func lastSync(data []byte) int {
	for i := max(len(data)-tsPacketSize, 1); i < len(data); i++ {
		if data[i] == tsSyncByte {
			return i
		}
	}
	return -1
}

// flush releases a held video PES start, deciding with what arrived (not a
// key picture if its picture NAL never came).
func (d *tsDemuxer) flush(out []tsPiece) []tsPiece {
	return d.release(false, out)
}

func (d *tsDemuxer) release(key bool, out []tsPiece) []tsPiece {
	if len(d.pending) == 0 {
		return out
	}
	d.pending[0].Key = key
	out = append(out, d.pending...)
	d.pending = d.pending[:0]
	d.nalBuf = d.nalBuf[:0]
	return out
}

// packet handles one 188-byte packet starting with the sync byte.
func (d *tsDemuxer) packet(pkt []byte, recvAt time.Time, out []tsPiece) []tsPiece {
	if pkt[1]&0x80 != 0 {
		return out // transport error indicator: the packet is damaged
	}
	pusi := pkt[1]&0x40 != 0
	pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
	payload := tsPayload(pkt)

	switch {
	case pid == nullPID:
		return out
	case pid == patPID:
		if pusi && d.parsePAT(payload) {
			d.pat = append(d.pat[:0], pkt...)
		}
		return d.emit(tsPiece{Data: pkt, Kind: kindPSI, RecvAt: recvAt}, out)
	case d.pmtPID >= 0 && int(pid) == d.pmtPID:
		if pusi && d.parsePMT(payload) {
			d.pmt = append(d.pmt[:0], pkt...)
		}
		return d.emit(tsPiece{Data: pkt, Kind: kindPSI, RecvAt: recvAt}, out)
	}
	if !d.ready() {
		return out
	}
	es, known := d.streams[pid]
	if !known {
		return d.emit(tsPiece{Data: pkt, Kind: kindOther, RecvAt: recvAt}, out)
	}
	p := tsPiece{Data: pkt, Kind: es.kind, Primary: es.primary, RecvAt: recvAt}
	var body []byte
	if pusi {
		if pts, dts, ok, rest := parsePESHeader(payload); rest != nil {
			p.Start = true
			body = rest
			if ok {
				u := d.unwrap[pid]
				if u == nil {
					u = &ptsUnwrapper{}
					d.unwrap[pid] = u
				}
				p.HasPTS = true
				p.PTS = ticksToDuration(u.unwrap(pts))
				p.DTS = ticksToDuration(u.unwrapNear(dts))
			}
		}
	} else {
		body = payload
	}

	if es.kind == kindVideo && es.codec != codecNone {
		if p.Start {
			// A new video PES: whatever was held ends here without
			// having shown a key picture.
			out = d.release(false, out)
			d.pending = append(d.pending, p)
			d.pendingPID = pid
			return d.scan(body, es.codec, out)
		}
		if len(d.pending) > 0 && pid == d.pendingPID {
			d.pending = append(d.pending, p)
			return d.scan(body, es.codec, out)
		}
	}
	if p.Start && es.primary && es.kind == kindAudio {
		p.Key = true
	}
	return d.emit(p, out)
}

// emit appends p to out, or to the held packets while a video PES start
// waits for its verdict.
func (d *tsDemuxer) emit(p tsPiece, out []tsPiece) []tsPiece {
	if len(d.pending) > 0 {
		d.pending = append(d.pending, p)
		return out
	}
	return append(out, p)
}

// scan adds PES payload bytes of the held video PES and releases it once
// its first picture NAL unit shows whether it is a key picture.
func (d *tsDemuxer) scan(body []byte, codec videoCodec, out []tsPiece) []tsPiece {
	from := max(len(d.nalBuf)-4, 0) // a start code may straddle feeds
	d.nalBuf = append(d.nalBuf, body...)
	if key, decided := firstPictureIsKey(d.nalBuf[from:], codec); decided {
		return d.release(key, out)
	}
	if len(d.nalBuf) > maxNALScan {
		return d.release(false, out)
	}
	return out
}

// firstPictureIsKey looks for the first picture (VCL) NAL unit in an Annex B
// byte stream and reports whether it is a key picture. decided is false
// when no picture NAL unit header is in buf yet.
func firstPictureIsKey(buf []byte, codec videoCodec) (key, decided bool) {
	for i := 0; i+3 < len(buf); i++ {
		if buf[i] != 0 || buf[i+1] != 0 || buf[i+2] != 1 {
			continue
		}
		h := buf[i+3]
		switch codec {
		case codecH264:
			t := h & 0x1f
			if t >= 1 && t <= 5 {
				return t == 5, true
			}
		case codecHEVC:
			t := (h >> 1) & 0x3f
			if t <= 31 {
				return t >= 16 && t <= 23, true
			}
		}
		i += 2
	}
	return false, false
}

// tsPayload returns the payload of a packet, nil when it has none or the
// adaptation field is malformed.
func tsPayload(pkt []byte) []byte {
	afc := (pkt[3] >> 4) & 0x3
	switch afc {
	case 1:
		return pkt[4:]
	case 3:
		n := int(pkt[4])
		if 5+n > len(pkt) {
			return nil
		}
		return pkt[5+n:]
	}
	return nil
}

// parsePESHeader reads the header at the start of a PES packet. rest is the
// PES payload (nil when payload does not start a PES); ok reports whether
// timestamps were present.
func parsePESHeader(payload []byte) (pts, dts int64, ok bool, rest []byte) {
	if len(payload) < 6 || payload[0] != 0 || payload[1] != 0 || payload[2] != 1 {
		return 0, 0, false, nil
	}
	switch sid := payload[3]; {
	case sid == 0xbc || sid == 0xbe || sid == 0xbf || sid == 0xf0 || sid == 0xf1 || sid == 0xff || sid == 0xf2 || sid == 0xf8:
		// Streams without the optional header.
		return 0, 0, false, payload[6:]
	}
	if len(payload) < 9 || payload[6]&0xc0 != 0x80 {
		return 0, 0, false, payload[6:]
	}
	flags := payload[7] >> 6
	hlen := int(payload[8])
	if 9+hlen > len(payload) {
		return 0, 0, false, payload[len(payload):]
	}
	rest = payload[9+hlen:]
	opt := payload[9 : 9+hlen]
	switch flags {
	case 2:
		if len(opt) >= 5 {
			pts = readTimestamp(opt)
			return pts, pts, true, rest
		}
	case 3:
		if len(opt) >= 10 {
			return readTimestamp(opt), readTimestamp(opt[5:]), true, rest
		}
	}
	return 0, 0, false, rest
}

// readTimestamp decodes a 33-bit PES timestamp from its 5-byte form.
func readTimestamp(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// psiSection returns the section a PSI payload starts (after its pointer
// field), bounded by section_length, checking the table id.
func psiSection(payload []byte, tableID byte) []byte {
	if len(payload) < 1 {
		return nil
	}
	ptr := int(payload[0])
	if 1+ptr+3 > len(payload) {
		return nil
	}
	sec := payload[1+ptr:]
	if sec[0] != tableID {
		return nil
	}
	n := int(sec[1]&0x0f)<<8 | int(sec[2])
	if n < 9 || 3+n > len(sec) {
		return nil // sections spanning packets are not supported
	}
	return sec[:3+n]
}

// parsePAT records the PMT PID of the first program.
func (d *tsDemuxer) parsePAT(payload []byte) bool {
	sec := psiSection(payload, 0x00)
	if sec == nil {
		d.psiErrors++
		return false
	}
	entries := sec[8 : len(sec)-4] // minus the CRC
	for i := 0; i+4 <= len(entries); i += 4 {
		program := int(entries[i])<<8 | int(entries[i+1])
		pid := int(entries[i+2]&0x1f)<<8 | int(entries[i+3])
		if program != 0 {
			if pid != d.pmtPID {
				d.pmtPID = pid
				d.pmt = nil
			}
			return true
		}
	}
	d.psiErrors++
	return false
}

// parsePMT records the program's elementary streams and picks the primary
// one: the first H.264 or HEVC video stream, else the first audio stream.
func (d *tsDemuxer) parsePMT(payload []byte) bool {
	sec := psiSection(payload, 0x02)
	if sec == nil || len(sec) < 16 {
		d.psiErrors++
		return false
	}
	infoLen := int(sec[10]&0x0f)<<8 | int(sec[11])
	body := sec[12 : len(sec)-4]
	if infoLen > len(body) {
		d.psiErrors++
		return false
	}
	body = body[infoLen:]
	streams := map[uint16]esInfo{}
	var order []uint16
	for len(body) >= 5 {
		st := body[0]
		pid := uint16(body[1]&0x1f)<<8 | uint16(body[2])
		n := int(body[3]&0x0f)<<8 | int(body[4])
		if 5+n > len(body) {
			break
		}
		desc := body[5 : 5+n]
		body = body[5+n:]
		streams[pid] = classifyStream(st, desc)
		order = append(order, pid)
	}
	if len(order) == 0 {
		d.psiErrors++
		return false
	}
	video, audio := -1, -1
	for _, pid := range order {
		es := streams[pid]
		if es.kind == kindVideo && es.codec != codecNone && video < 0 {
			video = int(pid)
		}
		if es.kind == kindAudio && audio < 0 {
			audio = int(pid)
		}
	}
	primary := video
	if primary < 0 {
		primary = audio
	}
	if primary >= 0 {
		es := streams[uint16(primary)]
		es.primary = true
		streams[uint16(primary)] = es
	}
	d.streams = streams
	d.videoOK = video >= 0
	return true
}

// classifyStream maps a PMT stream type (and, for private data, its
// descriptors) to a kind.
func classifyStream(streamType byte, desc []byte) esInfo {
	switch streamType {
	case 0x1b:
		return esInfo{kind: kindVideo, codec: codecH264}
	case 0x24:
		return esInfo{kind: kindVideo, codec: codecHEVC}
	case 0x01, 0x02, 0x10, 0x42, 0xea:
		return esInfo{kind: kindVideo} // video we cannot find key pictures in
	case 0x03, 0x04, 0x0f, 0x11, 0x81, 0x87:
		return esInfo{kind: kindAudio}
	case 0x06:
		// Private data: AC-3, E-AC-3 and Opus announce themselves with a
		// descriptor.
		for len(desc) >= 2 {
			tag, n := desc[0], int(desc[1])
			if 2+n > len(desc) {
				break
			}
			switch tag {
			case 0x6a, 0x7a:
				return esInfo{kind: kindAudio}
			case 0x05:
				if n >= 4 && string(desc[2:6]) == "Opus" {
					return esInfo{kind: kindAudio}
				}
			}
			desc = desc[2+n:]
		}
	}
	return esInfo{kind: kindOther}
}

// ptsUnwrapper extends 33-bit timestamps to 64 bits.
type ptsUnwrapper struct {
	started bool
	last    int64 // last unwrapped value
}

// unwrap returns v (33 bits) moved by whole wrap periods to the value
// nearest the previous one.
func (u *ptsUnwrapper) unwrap(v int64) int64 {
	v &= ptsWrap - 1
	if !u.started {
		u.started = true
		u.last = v
		return v
	}
	u.last = nearest(v, u.last)
	return u.last
}

// unwrapNear unwraps v relative to the last value without moving the
// reference (for a DTS that accompanies a PTS).
func (u *ptsUnwrapper) unwrapNear(v int64) int64 {
	return nearest(v&(ptsWrap-1), u.last)
}

// nearest returns v plus the multiple of ptsWrap that brings it closest to
// ref.
func nearest(v, ref int64) int64 {
	base := ref - ref%ptsWrap
	if ref < 0 {
		base -= ptsWrap
	}
	best := base + v
	for _, c := range []int64{best - ptsWrap, best + ptsWrap} {
		if abs64(c-ref) < abs64(best-ref) {
			best = c
		}
	}
	return best
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// ticksToDuration converts 90 kHz ticks to a duration.
func ticksToDuration(t int64) time.Duration {
	return time.Duration(t) * time.Second / 90000
}
