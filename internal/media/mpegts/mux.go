package mpegts

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mcmpegts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mccodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
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

// Muxer writes access units into MPEG-TS with mediacommon's writer, one
// call per access unit, returning the bytes to send on. It carries at most
// one video and one audio track. H.264 and H.265 parameter sets, which RTMP
// sends once out of band, are put in front of every key frame that lacks
// them, so each segment cut there decodes on its own; the writer puts the
// PAT and PMT in front of key frames too.
//
// A Muxer is used by one goroutine.
type Muxer struct {
	buf          bytes.Buffer
	w            *mcmpegts.Writer
	video, audio *mcmpegts.Track
	videoCodec   Codec
	audioCodec   Codec
	params       [][]byte // SPS/PPS (H.264) or VPS/SPS/PPS (H.265)
}

// NewMuxer returns a muxer for tracks: at most one video track (H.264 or
// H.265) and one audio track (AAC or MPEG audio).
func NewMuxer(tracks ...MuxTrack) (*Muxer, error) {
	m := &Muxer{}
	var out []*mcmpegts.Track
	for _, t := range tracks {
		var err error
		switch t.Codec {
		case CodecH264, CodecH265:
			err = m.addVideo(t)
			out = append(out, m.video)
		case CodecAAC, CodecMPEGAudio:
			err = m.addAudio(t)
			out = append(out, m.audio)
		default:
			err = fmt.Errorf("cannot mux %v", t.Codec)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no tracks to mux")
	}
	m.w = &mcmpegts.Writer{W: &m.buf, Tracks: out}
	if err := m.w.Initialize(); err != nil {
		return nil, fmt.Errorf("mpeg-ts writer: %w", err)
	}
	return m, nil
}

func (m *Muxer) addVideo(t MuxTrack) error {
	if m.video != nil {
		return errors.New("more than one video track")
	}
	n := 2
	var codec mccodecs.Codec = &mccodecs.H264{}
	if t.Codec == CodecH265 {
		n, codec = 3, &mccodecs.H265{}
	}
	m.params = make([][]byte, n)
	copy(m.params, t.ParameterSets)
	m.video, m.videoCodec = &mcmpegts.Track{Codec: codec}, t.Codec
	return nil
}

func (m *Muxer) addAudio(t MuxTrack) error {
	if m.audio != nil {
		return errors.New("more than one audio track")
	}
	var codec mccodecs.Codec = &mccodecs.MPEG1Audio{}
	if t.Codec == CodecAAC {
		if t.AACConfig == nil {
			return errors.New("aac track without an AudioSpecificConfig")
		}
		codec = &mccodecs.MPEG4Audio{Config: *t.AACConfig}
	}
	m.audio, m.audioCodec = &mcmpegts.Track{Codec: codec}, t.Codec
	return nil
}

// take returns the bytes written since the last call.
func (m *Muxer) take() []byte {
	b := bytes.Clone(m.buf.Bytes())
	m.buf.Reset()
	return b
}

// ticks converts a duration to 90 kHz clock ticks, offset by
// TimestampOffset.
func ticks(d time.Duration) int64 {
	return (d.Microseconds() + TimestampOffset.Microseconds()) * 9 / 100
}

// WriteVideo muxes one video access unit (NAL units without start codes,
// as gortmplib delivers them). An access unit that only carries parameter
// sets (RTMP's sequence header) updates them and writes nothing.
func (m *Muxer) WriteVideo(pts, dts time.Duration, au [][]byte) ([]byte, error) {
	var err error
	switch m.videoCodec {
	case CodecH264:
		if au = m.h264Params(au); au != nil {
			err = m.w.WriteH264(m.video, ticks(pts), ticks(dts), au)
		}
	case CodecH265:
		if au = m.h265Params(au); au != nil {
			err = m.w.WriteH265(m.video, ticks(pts), ticks(dts), au)
		}
	default:
		return nil, errors.New("the muxer has no video track")
	}
	if err != nil {
		return nil, fmt.Errorf("mux %v: %w", m.videoCodec, err)
	}
	return m.take(), nil
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

// WriteAAC muxes one AAC access unit (raw, without an ADTS header).
func (m *Muxer) WriteAAC(pts time.Duration, au []byte) ([]byte, error) {
	if m.audioCodec != CodecAAC {
		return nil, errors.New("the muxer has no aac track")
	}
	if err := m.w.WriteMPEG4Audio(m.audio, ticks(pts), [][]byte{au}); err != nil {
		return nil, fmt.Errorf("mux aac: %w", err)
	}
	return m.take(), nil
}

// WriteMPEGAudio muxes one MPEG audio frame (header included).
func (m *Muxer) WriteMPEGAudio(pts time.Duration, frame []byte) ([]byte, error) {
	if m.audioCodec != CodecMPEGAudio {
		return nil, errors.New("the muxer has no mpeg audio track")
	}
	if err := m.w.WriteMPEG1Audio(m.audio, ticks(pts), [][]byte{frame}); err != nil {
		return nil, fmt.Errorf("mux mp3: %w", err)
	}
	return m.take(), nil
}
