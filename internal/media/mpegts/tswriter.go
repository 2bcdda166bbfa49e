package mpegts

// The transport-stream side of the Muxer: PAT and PMT sections, PES
// headers and 188-byte packets, written straight into one reused buffer.
// It replaced mediacommon's mpegts.Writer (through go-astits), which built
// every packet bit by bit with allocations and, when the first frame a
// publisher sent was audio, took the audio as the clock's track and wrote
// the PAT and PMT in front of every audio frame: most of the RTMP remux's
// CPU (see docs/benchmarks.md, live path CPU).

const (
	packetSize   = 188
	patPID       = 0x0000
	pmtPID       = 0x1000
	firstESPID   = 0x0100
	programNum   = 1
	streamIDVid  = 0xe0
	streamIDAud  = 0xc0
	pcrLeadTicks = 90000 / 10 // the PCR runs 100 ms behind the DTS it goes with
	// tablesEvery is how many audio PES an audio-only stream writes
	// between two PAT/PMT pairs (about one second of AAC); a stream with
	// video writes them in front of every key frame instead.
	tablesEvery = 40
)

// esInfo is one elementary stream the writer carries.
type esInfo struct {
	pid        uint16
	streamType byte
	streamID   byte
	cc         byte // continuity counter of the next packet
}

// tsWriter packs PES into transport packets, appending to buf.
type tsWriter struct {
	buf        []byte
	es         []*esInfo
	pcrPID     uint16
	patCC      byte
	pmtCC      byte
	pat, pmt   []byte // the sections, CRC included
	sinceTable int    // audio PES since the last tables
}

func newTSWriter(es []*esInfo, pcrPID uint16) *tsWriter {
	w := &tsWriter{es: es, pcrPID: pcrPID, sinceTable: tablesEvery}
	w.pat = patSection()
	w.pmt = pmtSection(es, pcrPID)
	return w
}

// patSection returns the PAT: one program, its PMT on pmtPID.
func patSection() []byte {
	s := []byte{
		tablePAT, 0xb0, 0, // section_syntax_indicator, length below
		0x00, 0x01, // transport_stream_id
		0xc1,       // version 0, current_next_indicator
		0x00, 0x00, // section_number, last_section_number
		byte(programNum >> 8), byte(programNum),
		0xe0 | byte(pmtPID>>8), byte(pmtPID & 0xff),
	}
	return finishSection(s)
}

// pmtSection returns the PMT of es, with pcrPID as the clock's PID.
func pmtSection(es []*esInfo, pcrPID uint16) []byte {
	s := []byte{
		tablePMT, 0xb0, 0,
		byte(programNum >> 8), byte(programNum),
		0xc1, 0x00, 0x00,
		0xe0 | byte(pcrPID>>8), byte(pcrPID),
		0xf0, 0x00, // program_info_length 0
	}
	for _, e := range es {
		s = append(s, e.streamType, 0xe0|byte(e.pid>>8), byte(e.pid), 0xf0, 0x00)
	}
	return finishSection(s)
}

// finishSection sets the section length of s (header written, CRC to come)
// and appends the CRC.
func finishSection(s []byte) []byte {
	n := len(s) - 3 + 4
	s[1] |= byte(n >> 8 & 0x0f)
	s[2] = byte(n)
	c := crc32MPEG(s)
	return append(s, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
}

// writeTables appends the PAT and the PMT, a packet each.
func (w *tsWriter) writeTables() {
	w.writeSection(patPID, &w.patCC, w.pat)
	w.writeSection(pmtPID, &w.pmtCC, w.pmt)
	w.sinceTable = 0
}

func (w *tsWriter) writeSection(pid uint16, cc *byte, sec []byte) {
	start := len(w.buf)
	w.buf = append(w.buf, 0x47, 0x40|byte(pid>>8), byte(pid), 0x10|*cc, 0) // PUSI, payload only, pointer_field 0
	*cc = (*cc + 1) & 0x0f
	w.buf = append(w.buf, sec...)
	for len(w.buf)-start < packetSize {
		w.buf = append(w.buf, 0xff)
	}
}

// appendPESHeader appends a PES header for a payload of n bytes; dts < 0 means
// PTS only. A video PES longer than a PES length can say declares 0
// (unbounded), as MPEG-TS allows for video.
func appendPESHeader(b []byte, streamID byte, pts, dts int64, n int) []byte {
	hdrData := 5
	flags := byte(0x80)
	if dts >= 0 {
		hdrData, flags = 10, 0xc0
	}
	length := 3 + hdrData + n
	if length > 0xffff {
		length = 0
	}
	b = append(b, 0, 0, 1, streamID, byte(length>>8), byte(length),
		0x84, flags, byte(hdrData)) // marker bits '10', data_alignment_indicator
	if dts >= 0 {
		b = appendTimestamp(b, 0x30, pts)
		return appendTimestamp(b, 0x10, dts)
	}
	return appendTimestamp(b, 0x20, pts)
}

// appendTimestamp appends a 33-bit PTS or DTS with its 4-bit prefix.
func appendTimestamp(b []byte, prefix byte, ts int64) []byte {
	ts &= 1<<33 - 1
	return append(b,
		prefix|byte(ts>>29)&0x0e|1,
		byte(ts>>22),
		byte(ts>>14)|1,
		byte(ts>>7),
		byte(ts<<1)|1)
}

// writePES appends one PES (header already at the front of pes) as
// transport packets on e's PID. key marks a random access point; pcr >= 0
// puts a program clock reference in the first packet.
func (w *tsWriter) writePES(e *esInfo, pes []byte, key bool, pcr int64) {
	first := true
	for len(pes) > 0 {
		var af [8]byte // flags and PCR
		afn := 0
		if first {
			if key {
				af[0] |= 0x40
				afn = 1
			}
			if pcr >= 0 {
				af[0] |= 0x10
				putPCR(af[1:7], pcr)
				afn = 7
			}
		}
		w.writePacket(e, pes, first, af[:afn])
		n := packetSize - 4
		if afn > 0 {
			n -= 1 + afn
		}
		pes = pes[min(n, len(pes)):]
		first = false
	}
}

// writePacket appends one transport packet carrying as much of payload as
// fits, with the adaptation field af (flags first; none when empty),
// stuffed to fill the packet when payload is short.
func (w *tsWriter) writePacket(e *esInfo, payload []byte, start bool, af []byte) {
	room := packetSize - 4
	afLen := -1 // no adaptation field
	if len(af) > 0 {
		afLen = len(af)
		room -= 1 + afLen
	}
	if len(payload) < room {
		// Stuff: the adaptation field grows to fill the packet.
		if afLen < 0 {
			afLen = 0
			room--
		}
		afLen += room - len(payload)
		room = len(payload)
	}
	b0 := byte(e.pid >> 8 & 0x1f)
	if start {
		b0 |= 0x40
	}
	ctl := byte(0x10) // payload only
	if afLen >= 0 {
		ctl = 0x30
	}
	w.buf = append(w.buf, 0x47, b0, byte(e.pid), ctl|e.cc)
	e.cc = (e.cc + 1) & 0x0f
	if afLen >= 0 {
		w.buf = append(w.buf, byte(afLen))
		if afLen > 0 {
			flags := af
			if len(flags) == 0 {
				flags = []byte{0}
			}
			w.buf = append(w.buf, flags...)
			for range afLen - len(flags) {
				w.buf = append(w.buf, 0xff)
			}
		}
	}
	w.buf = append(w.buf, payload[:room]...)
}

// putPCR writes a program clock reference (base, no extension) into b[:6].
func putPCR(b []byte, base int64) {
	base &= 1<<33 - 1
	b[0] = byte(base >> 25)
	b[1] = byte(base >> 17)
	b[2] = byte(base >> 9)
	b[3] = byte(base >> 1)
	b[4] = byte(base<<7) | 0x7e
	b[5] = 0
}
