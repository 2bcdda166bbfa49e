package mpegts

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// TimestampOffset is added to every timestamp the muxer writes: sources
// start their clocks at 0, and the program clock reference, which runs
// 100 ms ahead of the first decode time, must not be negative.
const TimestampOffset = time.Second

// MuxTrack describes a track for NewMuxer.
type MuxTrack struct {
	// Codec is CodecH264, CodecH265, CodecAAC or CodecMPEGAudio.
	Codec Codec
	// ParameterSets are H.264's SPS and PPS, or H.265's VPS, SPS and PPS,
	// as an RTMP sequence header carries them; nil when they come in
	// band only.
	ParameterSets [][]byte
	// AACConfig is AAC's AudioSpecificConfig (required for CodecAAC).
	AACConfig *mpeg4audio.AudioSpecificConfig
}

// Muxer writes access units into MPEG-TS, one call per access unit,
// returning the bytes to send on. It carries at most one video and one
// audio track, on PIDs 0x100 and up in the order given, and writes the
// PAT and the PMT at the start, in front of every video key frame, and,
// without video, about every second of audio. H.264 and H.265 parameter
// sets, which RTMP sends once out of band, are put in front of every key
// frame that lacks them, so each segment cut there decodes on its own.
// Every access unit gets an access unit delimiter when it has none; video
// key frames set the random access indicator; the program clock rides on
// the video track (every video PES) or, without video, on the audio.
//
// A Muxer is used by one goroutine.
type Muxer struct {
	w            *tsWriter
	video, audio *esInfo
	videoCodec   Codec
	audioCodec   Codec
	params       [][]byte // SPS/PPS (H.264) or VPS/SPS/PPS (H.265)
	adts         [7]byte  // the ADTS header of every AAC frame, length aside
	pes          []byte   // the PES being built, reused
	started      bool     // the first tables are written
}

// NewMuxer returns a muxer for tracks: at most one video track (H.264 or
// H.265) and one audio track (AAC or MPEG audio).
func NewMuxer(tracks ...MuxTrack) (*Muxer, error) {
	m := &Muxer{}
	var es []*esInfo
	for _, t := range tracks {
		var err error
		switch t.Codec {
		case CodecH264, CodecH265:
			err = m.addVideo(t)
		case CodecAAC, CodecMPEGAudio:
			err = m.addAudio(t)
		default:
			err = fmt.Errorf("cannot mux %v", t.Codec)
		}
		if err != nil {
			return nil, err
		}
		e := m.video
		if t.Codec == CodecAAC || t.Codec == CodecMPEGAudio {
			e = m.audio
		}
		e.pid = firstESPID + uint16(len(es))
		es = append(es, e)
	}
	if len(es) == 0 {
		return nil, errors.New("no tracks to mux")
	}
	pcr := m.audio
	if m.video != nil {
		pcr = m.video
	}
	m.w = newTSWriter(es, pcr.pid)
	return m, nil
}

func (m *Muxer) addVideo(t MuxTrack) error {
	if m.video != nil {
		return errors.New("more than one video track")
	}
	n, st := 2, byte(0x1b)
	if t.Codec == CodecH265 {
		n, st = 3, 0x24
	}
	m.params = make([][]byte, n)
	copy(m.params, t.ParameterSets)
	m.video, m.videoCodec = &esInfo{streamType: st, streamID: streamIDVid}, t.Codec
	return nil
}

func (m *Muxer) addAudio(t MuxTrack) error {
	if m.audio != nil {
		return errors.New("more than one audio track")
	}
	st := byte(0x03) // MPEG-1 audio
	if t.Codec == CodecAAC {
		if t.AACConfig == nil {
			return errors.New("aac track without an AudioSpecificConfig")
		}
		c := t.AACConfig
		hdr, err := mpeg4audio.ADTSPackets{{Type: c.Type, SampleRate: c.SampleRate,
			ChannelConfig: c.ChannelConfig, ChannelCount: c.ChannelCount}}.Marshal() //nolint:staticcheck // ChannelCount as the config gives it
		if err != nil {
			return fmt.Errorf("aac track: %w", err)
		}
		copy(m.adts[:], hdr)
		st = 0x0f
	}
	m.audio, m.audioCodec = &esInfo{streamType: st, streamID: streamIDAud}, t.Codec
	return nil
}

// begin starts the output of one call: the tables first, if none were
// written yet.
func (m *Muxer) begin() {
	m.w.buf = m.w.buf[:0]
	if !m.started {
		m.w.writeTables()
		m.started = true
	}
}

// ticks converts a duration to 90 kHz clock ticks, offset by
// TimestampOffset.
func ticks(d time.Duration) int64 {
	return (d.Microseconds() + TimestampOffset.Microseconds()) * 9 / 100
}

// WriteVideo muxes one video access unit (NAL units without start codes,
// as gortmplib delivers them). An access unit that only carries parameter
// sets (RTMP's sequence header) updates them and writes nothing. The bytes
// returned are valid until the next call.
func (m *Muxer) WriteVideo(pts, dts time.Duration, au [][]byte) ([]byte, error) {
	var key bool
	switch m.videoCodec {
	case CodecH264:
		if au = m.h264Params(au); au == nil {
			return nil, nil
		}
		key = h264.IsRandomAccess(au)
		if len(au[0]) == 0 || h264.NALUType(au[0][0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
			au = append([][]byte{{byte(h264.NALUTypeAccessUnitDelimiter), 0xf0}}, au...)
		}
	case CodecH265:
		if au = m.h265Params(au); au == nil {
			return nil, nil
		}
		key = h265.IsRandomAccess(au)
		if len(au[0]) == 0 || h265.NALUType(au[0][0]>>1&0x3f) != h265.NALUType_AUD_NUT {
			au = append([][]byte{{byte(h265.NALUType_AUD_NUT) << 1, 1, 0x50}}, au...)
		}
	default:
		return nil, errors.New("the muxer has no video track")
	}
	n := 0
	for _, nalu := range au {
		n += 4 + len(nalu)
	}
	p, d := ticks(pts), ticks(dts)
	if p == d {
		d = -1
	}
	m.pes = appendPESHeader(m.pes[:0], streamIDVid, p, d, n)
	for _, nalu := range au {
		m.pes = append(append(m.pes, 0, 0, 0, 1), nalu...)
	}
	m.begin()
	if key {
		m.w.writeTables()
	}
	m.w.writePES(m.video, m.pes, key, ticks(dts)-pcrLeadTicks)
	return m.w.buf, nil
}

// h264Params records the SPS and PPS au carries and returns au with them
// in front when it is a key frame without them, or nil when au holds no
// picture.
func (m *Muxer) h264Params(au [][]byte) [][]byte {
	var have [2]bool
	picture := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			m.params[0], have[0] = n, true
		case h264.NALUTypePPS:
			m.params[1], have[1] = n, true
		case h264.NALUTypeNonIDR, h264.NALUTypeIDR, h264.NALUTypeDataPartitionA:
			picture = true
		}
	}
	if !picture {
		return nil
	}
	if h264.IsRandomAccess(au) && !(have[0] && have[1]) && len(m.params[0]) > 0 && len(m.params[1]) > 0 {
		au = append([][]byte{m.params[0], m.params[1]}, au...)
	}
	return au
}

// h265Params is h264Params for H.265's VPS, SPS and PPS.
func (m *Muxer) h265Params(au [][]byte) [][]byte {
	var have [3]bool
	picture := false
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch t := h265.NALUType(n[0] >> 1 & 0x3f); {
		case t == h265.NALUType_VPS_NUT:
			m.params[0], have[0] = n, true
		case t == h265.NALUType_SPS_NUT:
			m.params[1], have[1] = n, true
		case t == h265.NALUType_PPS_NUT:
			m.params[2], have[2] = n, true
		case t < h265.NALUType_VPS_NUT:
			picture = true
		}
	}
	if !picture {
		return nil
	}
	if h265.IsRandomAccess(au) && !(have[0] && have[1] && have[2]) &&
		len(m.params[0]) > 0 && len(m.params[1]) > 0 && len(m.params[2]) > 0 {
		au = append([][]byte{m.params[0], m.params[1], m.params[2]}, au...)
	}
	return au
}

// WriteAAC muxes one AAC access unit (raw, without an ADTS header). The
// bytes returned are valid until the next call.
func (m *Muxer) WriteAAC(pts time.Duration, au []byte) ([]byte, error) {
	if m.audioCodec != CodecAAC {
		return nil, errors.New("the muxer has no aac track")
	}
	n := 7 + len(au)
	if n > 1<<13-1 {
		return nil, fmt.Errorf("mux aac: a frame of %d bytes is too long for ADTS", len(au))
	}
	hdr := m.adts
	hdr[3] = hdr[3]&0xfc | byte(n>>11)
	hdr[4] = byte(n >> 3)
	hdr[5] = byte(n&0x07)<<5 | hdr[5]&0x1f
	m.pes = appendPESHeader(m.pes[:0], streamIDAud, ticks(pts), -1, n)
	m.pes = append(append(m.pes, hdr[:]...), au...)
	return m.writeAudio(pts), nil
}

// WriteMPEGAudio muxes one MPEG audio frame (header included). The bytes
// returned are valid until the next call.
func (m *Muxer) WriteMPEGAudio(pts time.Duration, frame []byte) ([]byte, error) {
	if m.audioCodec != CodecMPEGAudio {
		return nil, errors.New("the muxer has no mpeg audio track")
	}
	m.pes = appendPESHeader(m.pes[:0], streamIDAud, ticks(pts), -1, len(frame))
	m.pes = append(m.pes, frame...)
	return m.writeAudio(pts), nil
}

// writeAudio writes the audio PES in m.pes; without video, the audio
// carries the clock and, now and then, the tables.
func (m *Muxer) writeAudio(pts time.Duration) []byte {
	m.begin()
	pcr := int64(-1)
	if m.video == nil {
		pcr = ticks(pts) - pcrLeadTicks
		if m.w.sinceTable >= tablesEvery {
			m.w.writeTables()
		}
		m.w.sinceTable++
	}
	m.w.writePES(m.audio, m.pes, m.video == nil, pcr)
	return m.w.buf
}
