package mpegts

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// pesHeader is what the first packet of a PES packet says.
type pesHeader struct {
	// start: the payload begins with a PES start code.
	start  bool
	hasPTS bool
	// pts and dts are 33-bit timestamps; dts equals pts when absent.
	pts, dts int64
	// size is the PES payload's length from PES_packet_length, or -1
	// when unbounded (0 in the field, as for most video).
	size int
	// bad: the header could not be read, so the payload is unknown.
	bad     bool
	payload []byte
}

// parsePESHeader reads the header at the start of a PES packet. A payload
// that does not begin with a start code is an error; so is a header longer
// than the packet, which still counts as a start (without timestamps), as
// the PES did begin there.
func parsePESHeader(b []byte) (h pesHeader, err error) {
	if len(b) < 6 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return pesHeader{}, fmt.Errorf("payload unit start without a PES start code: %w", ErrPES)
	}
	h.start, h.size = true, -1
	length := int(b[4])<<8 | int(b[5])
	switch sid := b[3]; sid {
	case 0xbc, 0xbe, 0xbf, 0xf0, 0xf1, 0xff, 0xf2, 0xf8:
		// Streams without the optional header.
		h.payload = b[6:]
		if length > 0 {
			h.size = length
		}
		return h, nil
	}
	if len(b) < 9 || b[6]&0xc0 != 0x80 {
		// MPEG-1 system syntax, which MPEG-TS does not use: take it all
		// as payload.
		h.payload = b[6:]
		return h, nil
	}
	flags := b[7] >> 6
	hlen := int(b[8])
	if 9+hlen > len(b) {
		h.bad = true
		return h, fmt.Errorf("PES header of %d bytes in a packet payload of %d: %w", 9+hlen, len(b), ErrPES)
	}
	if length > 0 {
		h.size = max(length-3-hlen, 0)
	}
	h.payload = b[9+hlen:]
	opt := b[9 : 9+hlen]
	switch {
	case flags == 2 && len(opt) >= 5:
		h.hasPTS, h.pts = true, readTimestamp(opt)
		h.dts = h.pts
	case flags == 3 && len(opt) >= 10:
		h.hasPTS, h.pts, h.dts = true, readTimestamp(opt), readTimestamp(opt[5:])
	}
	return h, nil
}

// readTimestamp decodes a 33-bit PES timestamp from its 5-byte form.
func readTimestamp(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// pesBuilder gathers one PES packet for OnPES.
type pesBuilder struct {
	pes  PES
	size int // expected payload length, -1 when unbounded
}

// gatherPES adds the payload of packet p to its PID's PES, handing out
// the PES that a payload unit start ends.
func (d *Demuxer) gatherPES(p *Packet, pusi bool, hdr pesHeader, body []byte, lost bool) {
	b := d.pes[p.PID]
	if lost && b != nil {
		delete(d.pes, p.PID) // continuity error, reported already
		b = nil
	}
	if pusi {
		if b != nil {
			d.finishPES(b)
		}
		if !p.Start || hdr.bad {
			return
		}
		// Size the buffer like the PID's last PES, so it rarely grows.
		hint := hdr.size
		if hint < 0 {
			hint = d.pesSize[p.PID] + d.pesSize[p.PID]/4
		}
		b = &pesBuilder{size: hdr.size, pes: PES{
			Stream: p.Stream, Offset: p.Offset, ReceivedAt: p.ReceivedAt,
			HasPTS: p.HasPTS, PTS: p.PTS, DTS: p.DTS,
			Data: make([]byte, 0, min(max(hint, len(body)), maxPESSize)),
		}}
		d.pes[p.PID] = b
	}
	if b == nil {
		return
	}
	b.pes.Data = append(b.pes.Data, body...)
	switch {
	case b.size >= 0 && len(b.pes.Data) >= b.size:
		b.pes.Data = b.pes.Data[:b.size]
		d.finishPES(b)
	case len(b.pes.Data) > maxPESSize:
		delete(d.pes, p.PID)
		d.stats.PESErrors++
		d.report(b.pes.Offset, int(p.PID), fmt.Errorf("PES longer than %d bytes dropped: %w", maxPESSize, ErrPES))
	}
}

// finishPES hands a gathered PES to OnPES.
func (d *Demuxer) finishPES(b *pesBuilder) {
	delete(d.pes, b.pes.Stream.PID)
	p := &b.pes
	d.pesSize[p.Stream.PID] = len(p.Data)
	switch {
	case p.Stream.keyed():
		p.Key, _ = firstPictureIsKey(p.Data, p.Stream.Codec)
	case p.Stream.Kind == KindAudio:
		p.Key = true
	}
	d.onPES(p)
}

// firstPictureIsKey looks for the first picture (VCL) NAL unit in an Annex B
// byte stream and reports whether it is a key picture: IDR for H.264, IRAP
// (BLA, IDR, CRA and the reserved IRAP types) for H.265. decided is false
// when no picture NAL unit header is in buf yet.
func firstPictureIsKey(buf []byte, codec Codec) (key, decided bool) {
	for i := 0; i+3 < len(buf); i++ {
		if buf[i] != 0 || buf[i+1] != 0 || buf[i+2] != 1 {
			continue
		}
		hdr := buf[i+3]
		switch codec {
		case CodecH264:
			t := h264.NALUType(hdr & 0x1f)
			if t >= h264.NALUTypeNonIDR && t <= h264.NALUTypeIDR {
				return t == h264.NALUTypeIDR, true
			}
		case CodecH265:
			t := h265.NALUType(hdr >> 1 & 0x3f)
			if t < h265.NALUType_VPS_NUT { // 0–31 are VCL
				return t >= h265.NALUType_BLA_W_LP && t <= h265.NALUType_RSV_IRAP_VCL23, true
			}
		}
		i += 2
	}
	return false, false
}

// spsDimensions returns the picture size declared by the first sequence
// parameter set in an Annex B byte stream that comes before its first
// picture NAL unit (0, 0 when there is none, or it does not parse).
func spsDimensions(buf []byte, codec Codec) (width, height int) {
	for i := 0; i+3 < len(buf); i++ {
		if buf[i] != 0 || buf[i+1] != 0 || buf[i+2] != 1 {
			continue
		}
		start := i + 3
		end := nextStartCode(buf, start)
		nal := buf[start:end]
		if len(nal) == 0 {
			continue
		}
		switch {
		case codec == CodecH264 && h264.NALUType(nal[0]&0x1f) == h264.NALUTypeSPS:
			var sps h264.SPS
			if sps.Unmarshal(nal) == nil {
				return sps.Width(), sps.Height()
			}
			return 0, 0
		case codec == CodecH264 && h264.NALUType(nal[0]&0x1f) <= h264.NALUTypeIDR && h264.NALUType(nal[0]&0x1f) >= h264.NALUTypeNonIDR:
			return 0, 0 // a picture before any SPS
		case codec == CodecH265 && len(nal) > 1 && h265.NALUType(nal[0]>>1&0x3f) == h265.NALUType_SPS_NUT:
			var sps h265.SPS
			if sps.Unmarshal(nal) == nil {
				return sps.Width(), sps.Height()
			}
			return 0, 0
		case codec == CodecH265 && h265.NALUType(nal[0]>>1&0x3f) < h265.NALUType_VPS_NUT:
			return 0, 0
		}
		i = end - 1
	}
	return 0, 0
}

// nextStartCode returns where the next 00 00 01 (or 00 00 00 01) start
// code at or after from begins, or len(buf).
func nextStartCode(buf []byte, from int) int {
	for j := from; j+2 < len(buf); j++ {
		if buf[j] == 0 && buf[j+1] == 0 && buf[j+2] == 1 {
			if j > from && buf[j-1] == 0 {
				return j - 1
			}
			return j
		}
	}
	return len(buf)
}
