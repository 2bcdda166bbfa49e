package push

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsOffset is added to every timestamp written to MPEG-TS: encoders start
// RTMP timestamps at 0, and the program clock reference runs 100 ms ahead of
// the first decode time, which must not be negative.
const tsOffset = 90000 // 1 s at 90 kHz

// errNoTracks: the publisher sent nothing weir can carry.
var errNoTracks = errors.New("no supported tracks (weir takes H.264 or H.265 video and AAC or MP3 audio)")

// tsMuxer turns the access units of an RTMP publisher into MPEG-TS, one
// call per access unit, returning the bytes to send on. H.264 and H.265
// parameter sets, which RTMP sends once out of band, are put in front of
// every key frame, so each segment cut there decodes on its own.
type tsMuxer struct {
	buf bytes.Buffer
	w   *mpegts.Writer

	video, audio *mpegts.Track
	params       [][]byte // SPS/PPS (H.264) or VPS/SPS/PPS (H.265)
	hevc         bool
}

// newTSMuxer builds a muxer for the publisher's tracks, keeping the first
// video and the first audio track it supports.
func newTSMuxer(tracks []*gortmplib.Track) (*tsMuxer, map[*gortmplib.Track]*mpegts.Track, error) {
	m := &tsMuxer{}
	mapping := map[*gortmplib.Track]*mpegts.Track{}
	var out []*mpegts.Track
	for _, t := range tracks {
		switch c := t.Codec.(type) {
		case *rtmpcodecs.H264:
			if m.video == nil {
				m.video = &mpegts.Track{Codec: &tscodecs.H264{}}
				m.params = [][]byte{c.SPS, c.PPS}
				mapping[t] = m.video
				out = append(out, m.video)
			}
		case *rtmpcodecs.H265:
			if m.video == nil {
				m.video = &mpegts.Track{Codec: &tscodecs.H265{}}
				m.params = [][]byte{c.VPS, c.SPS, c.PPS}
				m.hevc = true
				mapping[t] = m.video
				out = append(out, m.video)
			}
		case *rtmpcodecs.MPEG4Audio:
			if m.audio == nil && c.Config != nil {
				m.audio = &mpegts.Track{Codec: &tscodecs.MPEG4Audio{Config: *c.Config}}
				mapping[t] = m.audio
				out = append(out, m.audio)
			}
		case *rtmpcodecs.MPEG1Audio:
			if m.audio == nil {
				m.audio = &mpegts.Track{Codec: &tscodecs.MPEG1Audio{}}
				mapping[t] = m.audio
				out = append(out, m.audio)
			}
		}
	}
	if len(out) == 0 {
		return nil, nil, errNoTracks
	}
	m.w = &mpegts.Writer{W: &m.buf, Tracks: out}
	if err := m.w.Initialize(); err != nil {
		return nil, nil, fmt.Errorf("mpeg-ts writer: %w", err)
	}
	return m, mapping, nil
}

// take returns the bytes written since the last call.
func (m *tsMuxer) take() []byte {
	b := append([]byte(nil), m.buf.Bytes()...)
	m.buf.Reset()
	return b
}

// ticks converts a duration to 90 kHz clock ticks, offset by tsOffset.
func ticks(d time.Duration) int64 {
	return d.Microseconds()*9/100 + tsOffset
}

// writeVideo muxes one video access unit. An access unit that only carries
// parameter sets (RTMP's sequence header) updates them and writes nothing.
func (m *tsMuxer) writeVideo(pts, dts time.Duration, au [][]byte) ([]byte, error) {
	if m.hevc {
		return m.writeH265(pts, dts, au)
	}
	var sps, pps []byte
	picture := false
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeNonIDR, h264.NALUTypeIDR, h264.NALUTypeDataPartitionA:
			picture = true
		}
	}
	if sps != nil {
		m.params[0] = sps
	}
	if pps != nil {
		m.params[1] = pps
	}
	if !picture {
		return nil, nil
	}
	if h264.IsRandomAccess(au) && (sps == nil || pps == nil) && len(m.params[0]) > 0 && len(m.params[1]) > 0 {
		au = append([][]byte{m.params[0], m.params[1]}, au...)
	}
	if err := m.w.WriteH264(m.video, ticks(pts), ticks(dts), au); err != nil {
		return nil, fmt.Errorf("mux h264: %w", err)
	}
	return m.take(), nil
}

func (m *tsMuxer) writeH265(pts, dts time.Duration, au [][]byte) ([]byte, error) {
	var have [3]bool
	picture := false
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch t := h265.NALUType((n[0] >> 1) & 0x3f); {
		case t == h265.NALUType_VPS_NUT:
			m.params[0], have[0] = n, true
		case t == h265.NALUType_SPS_NUT:
			m.params[1], have[1] = n, true
		case t == h265.NALUType_PPS_NUT:
			m.params[2], have[2] = n, true
		case t <= 31:
			picture = true
		}
	}
	if !picture {
		return nil, nil
	}
	if h265.IsRandomAccess(au) && !(have[0] && have[1] && have[2]) &&
		len(m.params[0]) > 0 && len(m.params[1]) > 0 && len(m.params[2]) > 0 {
		au = append([][]byte{m.params[0], m.params[1], m.params[2]}, au...)
	}
	if err := m.w.WriteH265(m.video, ticks(pts), ticks(dts), au); err != nil {
		return nil, fmt.Errorf("mux h265: %w", err)
	}
	return m.take(), nil
}

// writeAAC muxes one AAC access unit.
func (m *tsMuxer) writeAAC(pts time.Duration, au []byte) ([]byte, error) {
	if err := m.w.WriteMPEG4Audio(m.audio, ticks(pts), [][]byte{au}); err != nil {
		return nil, fmt.Errorf("mux aac: %w", err)
	}
	return m.take(), nil
}

// writeMP3 muxes one MPEG-1 audio frame.
func (m *tsMuxer) writeMP3(pts time.Duration, frame []byte) ([]byte, error) {
	if err := m.w.WriteMPEG1Audio(m.audio, ticks(pts), [][]byte{frame}); err != nil {
		return nil, fmt.Errorf("mux mp3: %w", err)
	}
	return m.take(), nil
}
