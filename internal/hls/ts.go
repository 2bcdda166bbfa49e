package hls

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

const tsPacketSize = 188

// MPEG-TS stream types weir reads (ISO/IEC 13818-1 table 2-34).
const (
	tsStreamH264 = 0x1b
	tsStreamAAC  = 0x0f
)

// InspectTS reads an MPEG-TS media segment: the PAT and PMT at its start,
// then the first access unit of the video stream (or the first audio
// frame when there is no video). It reports the codec strings (from the
// H.264 SPS and the ADTS header), the picture size, whether the first video
// access unit holds an IDR picture, where that access unit's packets end
// (the next video PES starts there) and the first presentation timestamp.
// Streams of other types are skipped. Malformed input is an error, never a
// panic.
func InspectTS(data []byte) (info SegmentInfo, err error) {
	defer recoverParse(&err)
	if len(data) < tsPacketSize || len(data)%tsPacketSize != 0 {
		return SegmentInfo{}, fmt.Errorf("mpeg-ts segment of %d bytes is not a whole number of 188-byte packets", len(data))
	}
	pmtPID, videoPID, audioPID := -1, -1, -1
	var videoAU, audioPES []byte
	videoStarted, videoDone, audioDone := false, false, false
	for off := 0; off < len(data); off += tsPacketSize {
		pkt := data[off : off+tsPacketSize]
		if pkt[0] != 0x47 {
			return SegmentInfo{}, fmt.Errorf("lost mpeg-ts sync at byte %d", off)
		}
		pusi := pkt[1]&0x40 != 0
		pid := int(pkt[1]&0x1f)<<8 | int(pkt[2])
		payload, ok := tsPayload(pkt)
		if !ok {
			return SegmentInfo{}, fmt.Errorf("packet at byte %d has a bad adaptation field", off)
		}
		switch {
		case pid == 0 && pusi && pmtPID < 0:
			if pmtPID, err = parsePAT(payload); err != nil {
				return SegmentInfo{}, fmt.Errorf("pat at byte %d: %w", off, err)
			}
		case pid == pmtPID && pusi && videoPID < 0 && audioPID < 0:
			if videoPID, audioPID, err = parsePMT(payload); err != nil {
				return SegmentInfo{}, fmt.Errorf("pmt at byte %d: %w", off, err)
			}
			if videoPID < 0 && audioPID < 0 {
				return SegmentInfo{}, errors.New("pmt lists no h264 or aac stream")
			}
		case pid == videoPID && videoPID >= 0 && !videoDone:
			if pusi && videoStarted {
				videoDone = true
				info.KeyFrameEnd = int64(off)
				break
			}
			if pusi {
				videoStarted = true
			}
			if videoStarted {
				videoAU = append(videoAU, payload...)
			}
		case pid == audioPID && audioPID >= 0 && !audioDone:
			if pusi && audioPES != nil {
				audioDone = true
				break
			}
			if pusi || audioPES != nil {
				audioPES = append(audioPES, payload...)
			}
		}
	}
	if pmtPID < 0 {
		return SegmentInfo{}, errors.New("segment has no pat")
	}
	if videoPID < 0 && audioPID < 0 {
		return SegmentInfo{}, errors.New("segment has no pmt")
	}
	if videoPID >= 0 {
		if !videoStarted {
			return SegmentInfo{}, errors.New("segment has no video pes")
		}
		if !videoDone {
			info.KeyFrameEnd = int64(len(data))
		}
		es, pts, err := parsePES(videoAU)
		if err != nil {
			return SegmentInfo{}, fmt.Errorf("video pes: %w", err)
		}
		info.HasVideo = true
		info.Start = pts
		for _, nalu := range splitAnnexB(es) {
			switch nalu[0] & 0x1f {
			case 5:
				info.StartsWithKeyFrame = true
			case 7:
				if len(info.Codecs) == 0 {
					vp, err := ParseSPS(nalu)
					if err != nil {
						return SegmentInfo{}, err
					}
					info.Codecs = append(info.Codecs, vp.Codec)
					info.Width, info.Height = vp.Width, vp.Height
				}
			}
		}
		if len(info.Codecs) == 0 {
			return SegmentInfo{}, errors.New("first video access unit has no sps")
		}
	}
	if audioPID >= 0 && audioPES != nil {
		es, pts, err := parsePES(audioPES)
		if err != nil {
			return SegmentInfo{}, fmt.Errorf("audio pes: %w", err)
		}
		aot, err := adtsObjectType(es)
		if err != nil {
			return SegmentInfo{}, err
		}
		info.Codecs = append(info.Codecs, MP4ACodec(aot))
		if videoPID < 0 {
			info.Start = pts
			info.StartsWithKeyFrame = true // every AAC frame is independent
		}
	}
	return info, nil
}

// tsPayload returns the payload of a 188-byte packet (empty when the
// packet carries only an adaptation field).
func tsPayload(pkt []byte) ([]byte, bool) {
	afc := (pkt[3] >> 4) & 0x3
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

// psiSection skips the pointer field and returns the section bytes after
// the table id check, bounded by section_length.
func psiSection(payload []byte, tableID byte) ([]byte, error) {
	if len(payload) < 1 || int(payload[0])+1 > len(payload) {
		return nil, errors.New("bad pointer field")
	}
	s := payload[1+int(payload[0]):]
	if len(s) < 3 || s[0] != tableID {
		return nil, fmt.Errorf("want table id %d", tableID)
	}
	n := int(s[1]&0x0f)<<8 | int(s[2])
	if n < 9 || 3+n > len(s) {
		return nil, fmt.Errorf("section length %d does not fit in one packet", n)
	}
	// Drop the header (8 bytes) and the trailing CRC (4 bytes).
	return s[8 : 3+n-4], nil
}

func parsePAT(payload []byte) (int, error) {
	s, err := psiSection(payload, 0x00)
	if err != nil {
		return -1, err
	}
	for i := 0; i+4 <= len(s); i += 4 {
		program := int(s[i])<<8 | int(s[i+1])
		if program != 0 {
			return int(s[i+2]&0x1f)<<8 | int(s[i+3]), nil
		}
	}
	return -1, errors.New("no program")
}

func parsePMT(payload []byte) (video, audio int, err error) {
	s, err := psiSection(payload, 0x02)
	if err != nil {
		return -1, -1, err
	}
	if len(s) < 4 {
		return -1, -1, errors.New("short pmt")
	}
	infoLen := int(s[2]&0x0f)<<8 | int(s[3])
	video, audio = -1, -1
	for i := 4 + infoLen; i+5 <= len(s); {
		typ := s[i]
		pid := int(s[i+1]&0x1f)<<8 | int(s[i+2])
		esLen := int(s[i+3]&0x0f)<<8 | int(s[i+4])
		switch {
		case typ == tsStreamH264 && video < 0:
			video = pid
		case typ == tsStreamAAC && audio < 0:
			audio = pid
		}
		i += 5 + esLen
	}
	return video, audio, nil
}

// parsePES returns the elementary stream bytes of a PES packet and its PTS
// (0 when absent).
func parsePES(p []byte) ([]byte, time.Duration, error) {
	if len(p) < 9 || p[0] != 0 || p[1] != 0 || p[2] != 1 {
		return nil, 0, errors.New("no pes start code")
	}
	hdrLen := int(p[8])
	if 9+hdrLen > len(p) {
		return nil, 0, errors.New("pes header longer than the packet")
	}
	var pts time.Duration
	if p[7]&0x80 != 0 && hdrLen >= 5 {
		t := int64(p[9]&0x0e)<<29 | int64(p[10])<<22 | int64(p[11]&0xfe)<<14 | int64(p[12])<<7 | int64(p[13])>>1
		pts = time.Duration(t) * time.Second / 90000
	}
	return p[9+hdrLen:], pts, nil
}

// splitAnnexB splits an H.264 Annex B byte stream into NAL units (without
// start codes), dropping empty ones.
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+3 <= len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				out = appendNALU(out, bytes.TrimRight(b[start:i], "\x00"))
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 {
		out = appendNALU(out, b[start:])
	}
	return out
}

func appendNALU(out [][]byte, n []byte) [][]byte {
	if len(n) > 0 {
		out = append(out, n)
	}
	return out
}

// adtsObjectType reads the audio object type from an ADTS header
// (ISO/IEC 13818-7): the two profile bits plus one.
func adtsObjectType(b []byte) (int, error) {
	if len(b) < 7 || b[0] != 0xff || b[1]&0xf0 != 0xf0 {
		return 0, errors.New("audio pes does not start with an adts header")
	}
	return int(b[2]>>6) + 1, nil
}
