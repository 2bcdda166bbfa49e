package mpegts

import (
	"errors"
	"fmt"
)

// PSI tables read here: the PAT (table id 0, PID 0) and the program's PMT
// (table id 2). Sections may span packets; a packet may end one section
// and start the next (its pointer field says where).

const (
	tablePAT      = 0x00
	tablePMT      = 0x02
	tableStuffing = 0xff
	// maxSectionLength is the largest section_length a PAT or PMT may
	// have (ISO/IEC 13818-1 2.4.4.11).
	maxSectionLength = 1021
)

// sectionReader gathers the sections of one PSI PID.
type sectionReader struct {
	buf    []byte // the section being gathered, from its table id
	active bool
	// pkts are the packets that carried the section being gathered;
	// done the ones of the last complete section.
	pkts, done []byte
}

// reset drops a partly gathered section (after a continuity error).
func (r *sectionReader) reset() {
	r.buf, r.pkts, r.active = r.buf[:0], r.pkts[:0], false
}

// add takes the payload of one packet of the PID and returns the sections
// it completes (copies), or an error for a malformed one; sections before
// the error are returned too.
func (r *sectionReader) add(pkt, payload []byte, pusi bool) ([][]byte, error) {
	if !pusi {
		if !r.active {
			return nil, nil // the middle of a section we did not see start
		}
		r.pkts = append(r.pkts, pkt...)
		return r.gather(payload, nil)
	}
	if len(payload) < 1 || 1+int(payload[0]) > len(payload) {
		r.reset()
		return nil, fmt.Errorf("pointer field points past the packet: %w", ErrPSI)
	}
	ptr := int(payload[0])
	var out [][]byte
	var err error
	if r.active && ptr > 0 {
		r.pkts = append(r.pkts, pkt...)
		if out, err = r.gather(payload[1:1+ptr], nil); err != nil {
			return out, err
		}
	}
	r.reset()
	r.active = true
	r.pkts = append(r.pkts, pkt...)
	return r.gather(payload[1+ptr:], out)
}

// gather appends b to the section being gathered and cuts every section
// that completes; what follows a section's end is another section unless
// it is stuffing.
func (r *sectionReader) gather(b []byte, out [][]byte) ([][]byte, error) {
	for r.active && len(b) > 0 {
		if len(r.buf) == 0 && b[0] == tableStuffing {
			r.active = false
			break
		}
		need := 3
		if len(r.buf) >= 3 {
			need = 3 + sectionLength(r.buf)
		}
		n := min(need-len(r.buf), len(b))
		r.buf = append(r.buf, b[:n]...)
		b = b[n:]
		if len(r.buf) == 3 {
			if l := sectionLength(r.buf); l > maxSectionLength || l < 9 {
				r.reset()
				return out, fmt.Errorf("section length %d: %w", l, ErrPSI)
			}
			continue
		}
		if len(r.buf) < need {
			break
		}
		sec := append([]byte(nil), r.buf...)
		r.buf = r.buf[:0]
		if crc32MPEG(sec) != 0 {
			r.reset()
			return out, fmt.Errorf("table %d: CRC mismatch: %w", sec[0], ErrPSI)
		}
		r.done = append(r.done[:0], r.pkts...)
		out = append(out, sec)
	}
	return out, nil
}

func sectionLength(sec []byte) int { return int(sec[1]&0x0f)<<8 | int(sec[2]) }

// parsePAT returns the program number and PMT PID of the first program in
// a PAT section (program 0, the network PID, is skipped).
func parsePAT(sec []byte) (program, pmtPID uint16, err error) {
	if sec[0] != tablePAT {
		return 0, 0, fmt.Errorf("table id %d on the PAT PID: %w", sec[0], ErrPSI)
	}
	entries := sec[8 : len(sec)-4] // header and CRC off
	for i := 0; i+4 <= len(entries); i += 4 {
		program = uint16(entries[i])<<8 | uint16(entries[i+1])
		if program != 0 {
			return program, uint16(entries[i+2]&0x1f)<<8 | uint16(entries[i+3]), nil
		}
	}
	return 0, 0, fmt.Errorf("PAT lists no program: %w", ErrPSI)
}

// errOtherProgram: a PMT section of a program weir does not read.
var errOtherProgram = errors.New("another program's PMT")

// parsePMT reads a PMT section of program number.
func parsePMT(sec []byte, number, pmtPID uint16) (*Program, error) {
	if sec[0] != tablePMT {
		return nil, fmt.Errorf("table id %d on the PMT PID: %w", sec[0], ErrPSI)
	}
	if n := uint16(sec[3])<<8 | uint16(sec[4]); n != number {
		return nil, errOtherProgram
	}
	if len(sec) < 16 {
		return nil, fmt.Errorf("PMT of %d bytes: %w", len(sec), ErrPSI)
	}
	p := &Program{Number: number, PMTPID: pmtPID, PCRPID: uint16(sec[8]&0x1f)<<8 | uint16(sec[9])}
	infoLen := int(sec[10]&0x0f)<<8 | int(sec[11])
	body := sec[12 : len(sec)-4]
	if infoLen > len(body) {
		return nil, fmt.Errorf("program info of %d bytes in a PMT of %d: %w", infoLen, len(sec), ErrPSI)
	}
	body = body[infoLen:]
	for len(body) >= 5 {
		pid := uint16(body[1]&0x1f)<<8 | uint16(body[2])
		n := int(body[3]&0x0f)<<8 | int(body[4])
		if 5+n > len(body) {
			return nil, fmt.Errorf("descriptors of pid %d run past the PMT: %w", pid, ErrPSI)
		}
		if p.Stream(pid) == nil {
			p.Streams = append(p.Streams, classifyStream(pid, body[0], body[5:5+n]))
		}
		body = body[5+n:]
	}
	if len(p.Streams) == 0 {
		return nil, fmt.Errorf("PMT lists no elementary stream: %w", ErrPSI)
	}
	p.pickPrimary()
	return p, nil
}

// crcTable is the MPEG-2 CRC-32 (polynomial 0x04c11db7, not reflected).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc32MPEG returns the CRC of b; over a whole section, CRC field
// included, it is 0 when the section is intact.
func crc32MPEG(b []byte) uint32 {
	c := uint32(0xffffffff)
	for _, v := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^v]
	}
	return c
}
