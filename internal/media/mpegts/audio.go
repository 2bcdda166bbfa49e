package mpegts

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// AudioRemuxer turns a bare audio byte stream, as an Icecast or SHOUTcast
// station sends it (ADTS AAC, or MPEG audio with ID3 tags), into MPEG-TS.
// The stream may be cut anywhere between calls. Frames are timed by their
// sample count from TimestampOffset: such streams carry no timestamps.
// Bytes that do not make a frame (ID3 tags, damage) are skipped.
//
// An AudioRemuxer is used by one goroutine.
type AudioRemuxer struct {
	codec   Codec
	split   frameSplitter
	mux     *Muxer
	cfg     mpeg4audio.AudioSpecificConfig
	rate    int
	samples int64
}

// NewAudioRemuxer returns a remuxer for an ADTS (CodecAAC) or MPEG audio
// (CodecMPEGAudio) byte stream.
func NewAudioRemuxer(codec Codec) (*AudioRemuxer, error) {
	switch codec {
	case CodecAAC:
		return &AudioRemuxer{codec: codec, split: frameSplitter{frameLen: adtsFrameLen}}, nil
	case CodecMPEGAudio:
		return &AudioRemuxer{codec: codec, split: frameSplitter{frameLen: mpegAudioFrameLen}}, nil
	}
	return nil, fmt.Errorf("no audio remuxer for %v", codec)
}

// Remux takes the next bytes of the stream and returns the MPEG-TS they
// complete. It fails when an AAC stream changes its format mid-way.
func (r *AudioRemuxer) Remux(data []byte) ([]byte, error) {
	var out []byte
	for _, frame := range r.split.push(data) {
		b, err := r.frame(frame)
		if err != nil {
			return out, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func (r *AudioRemuxer) frame(frame []byte) ([]byte, error) {
	if r.codec == CodecAAC {
		return r.adts(frame)
	}
	var h mpeg1audio.FrameHeader
	if err := h.Unmarshal(frame); err != nil || h.MPEG2 {
		return nil, nil // MPEG-2 (low sample rate) frames cannot go in MPEG-TS as MPEG-1 audio
	}
	if r.mux == nil {
		m, err := NewMuxer(MuxTrack{Codec: CodecMPEGAudio})
		if err != nil {
			return nil, err
		}
		r.mux, r.rate = m, h.SampleRate
	}
	if r.rate <= 0 {
		return nil, nil
	}
	b, err := r.mux.WriteMPEGAudio(r.elapsed(), frame)
	r.samples += int64(h.SampleCount())
	return b, err
}

func (r *AudioRemuxer) adts(frame []byte) ([]byte, error) {
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(frame); err != nil || len(pkts) != 1 {
		return nil, nil // a damaged frame; the splitter resyncs on the next one
	}
	p := pkts[0]
	cfg := mpeg4audio.AudioSpecificConfig{Type: p.Type, SampleRate: p.SampleRate, ChannelCount: p.ChannelCount} //nolint:staticcheck
	if r.mux == nil {
		m, err := NewMuxer(MuxTrack{Codec: CodecAAC, AACConfig: &cfg})
		if err != nil {
			return nil, err
		}
		r.mux, r.cfg, r.rate = m, cfg, cfg.SampleRate //nolint:staticcheck
	}
	if cfg.Type != r.cfg.Type || cfg.SampleRate != r.cfg.SampleRate || cfg.ChannelCount != r.cfg.ChannelCount { //nolint:staticcheck
		return nil, errors.New("the AAC stream changed its format mid-way")
	}
	b, err := r.mux.WriteAAC(r.elapsed(), p.AU)
	r.samples += mpeg4audio.SamplesPerAccessUnit
	return b, err
}

// elapsed is the media time of the samples written so far, computed in
// whole seconds first so that days of audio do not overflow.
func (r *AudioRemuxer) elapsed() time.Duration {
	rate := int64(r.rate)
	return time.Duration(r.samples/rate)*time.Second + time.Duration(r.samples%rate)*time.Second/time.Duration(rate)
}

// frameSplitter cuts a byte stream into the frames frameLen recognises,
// skipping bytes that do not start a frame (and ID3 tags).
type frameSplitter struct {
	buf []byte
	// frameLen returns the length of the frame at the start of b, 0 when
	// b does not start a frame, or -1 when more bytes are needed to tell.
	frameLen func(b []byte) int
}

// maxSplitterBuffer bounds what the splitter keeps while looking for a
// frame.
const maxSplitterBuffer = 1 << 20

func (s *frameSplitter) push(data []byte) [][]byte {
	s.buf = append(s.buf, data...)
	var frames [][]byte
	i := 0
	for i < len(s.buf) {
		if n := id3Len(s.buf[i:]); n != 0 {
			if n < 0 || i+n > len(s.buf) {
				break
			}
			i += n
			continue
		}
		n := s.frameLen(s.buf[i:])
		if n < 0 {
			break
		}
		if n == 0 {
			i++
			continue
		}
		if i+n > len(s.buf) {
			break
		}
		frames = append(frames, bytes.Clone(s.buf[i:i+n]))
		i += n
	}
	s.buf = append(s.buf[:0], s.buf[i:]...)
	if len(s.buf) > maxSplitterBuffer {
		s.buf = s.buf[:0]
	}
	return frames
}

// id3Len returns the length of an ID3v2 tag at the start of b, 0 when
// there is none, -1 when b is too short to tell.
func id3Len(b []byte) int {
	if len(b) < 3 || string(b[:3]) != "ID3" {
		if len(b) < 3 && len(b) > 0 && strings.HasPrefix("ID3", string(b)) {
			return -1
		}
		return 0
	}
	if len(b) < 10 {
		return -1
	}
	size := int(b[6]&0x7f)<<21 | int(b[7]&0x7f)<<14 | int(b[8]&0x7f)<<7 | int(b[9]&0x7f)
	n := 10 + size
	if b[5]&0x10 != 0 {
		n += 10 // footer
	}
	return n
}

// adtsFrameLen reads an ADTS header.
func adtsFrameLen(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	if b[0] != 0xff || b[1]&0xf6 != 0xf0 {
		return 0
	}
	if len(b) < 7 {
		return -1
	}
	n := int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
	hdr := 7
	if b[1]&0x01 == 0 {
		hdr = 9
	}
	if n <= hdr || (b[2]>>2)&0x0f >= 13 {
		return 0
	}
	return n
}

// mpegAudioFrameLen reads an MPEG audio frame header.
func mpegAudioFrameLen(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	if b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return 0
	}
	if len(b) < 4 {
		return -1
	}
	var h mpeg1audio.FrameHeader
	if err := h.Unmarshal(b); err != nil {
		return 0
	}
	n := h.FrameLen()
	if n < 4 {
		return 0
	}
	return n
}
