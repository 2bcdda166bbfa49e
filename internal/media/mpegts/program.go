package mpegts

import "fmt"

// Kind says what an elementary stream carries.
type Kind uint8

// Kinds of elementary stream.
const (
	KindOther Kind = iota // data, subtitles, or a stream type weir does not know
	KindVideo
	KindAudio
)

func (k Kind) String() string {
	switch k {
	case KindVideo:
		return "video"
	case KindAudio:
		return "audio"
	}
	return "other"
}

// Codec is the codec of an elementary stream, as far as weir reads it.
// Streams of other types are still listed, with CodecUnknown and their
// Kind guessed from the stream type, and their packets still pass through.
type Codec uint8

// Codecs the demuxer recognises and the muxer writes.
const (
	CodecUnknown   Codec = iota
	CodecH264            // stream type 0x1b, Annex B byte stream
	CodecH265            // stream type 0x24, Annex B byte stream
	CodecAAC             // stream type 0x0f, ADTS frames
	CodecMPEGAudio       // stream types 0x03 and 0x04: MPEG-1/2 audio layers I–III (MP3)
)

func (c Codec) String() string {
	switch c {
	case CodecH264:
		return "h264"
	case CodecH265:
		return "h265"
	case CodecAAC:
		return "aac"
	case CodecMPEGAudio:
		return "mp3"
	}
	return "unknown"
}

// Stream types (ISO/IEC 13818-1 table 2-34) weir gives a codec to.
const (
	streamTypeMPEG1Audio = 0x03
	streamTypeMPEG2Audio = 0x04
	streamTypeAAC        = 0x0f
	streamTypeH264       = 0x1b
	streamTypeH265       = 0x24
)

// Stream is one elementary stream of a program, as its PMT lists it.
type Stream struct {
	PID   uint16
	Type  uint8 // stream_type from the PMT
	Kind  Kind
	Codec Codec
}

func (s *Stream) String() string {
	if s == nil {
		return "no stream"
	}
	return fmt.Sprintf("pid %d (%s %s, stream type %#02x)", s.PID, s.Kind, s.Codec, s.Type)
}

// keyed reports whether the demuxer can find key pictures in the stream.
func (s *Stream) keyed() bool { return s.Codec == CodecH264 || s.Codec == CodecH265 }

// Program is the program the demuxer reads: the first one the PAT lists.
type Program struct {
	Number uint16
	PMTPID uint16
	PCRPID uint16
	// Streams are the elementary streams in PMT order, unknown types
	// included.
	Streams []*Stream
	// Primary is the stream to cut on: the first H.264 or H.265 stream,
	// else the first audio stream; nil when there is neither.
	Primary *Stream
}

// Stream returns the elementary stream on pid, or nil.
func (p *Program) Stream(pid uint16) *Stream {
	for _, s := range p.Streams {
		if s.PID == pid {
			return s
		}
	}
	return nil
}

// HasVideo reports whether the program has a video stream key pictures
// can be found in (H.264 or H.265).
func (p *Program) HasVideo() bool { return p.Primary != nil && p.Primary.keyed() }

// classifyStream maps a PMT stream type (and, for private data, its
// descriptors) to a kind and codec.
func classifyStream(pid uint16, streamType byte, desc []byte) *Stream {
	s := &Stream{PID: pid, Type: streamType}
	switch streamType {
	case streamTypeH264:
		s.Kind, s.Codec = KindVideo, CodecH264
	case streamTypeH265:
		s.Kind, s.Codec = KindVideo, CodecH265
	case streamTypeAAC:
		s.Kind, s.Codec = KindAudio, CodecAAC
	case streamTypeMPEG1Audio, streamTypeMPEG2Audio:
		s.Kind, s.Codec = KindAudio, CodecMPEGAudio
	case 0x01, 0x02, 0x10, 0x42, 0xea:
		// MPEG-1/2 video, MPEG-4 part 2, AVS, VC-1: video without
		// key-picture detection.
		s.Kind = KindVideo
	case 0x11, 0x81, 0x87:
		// AAC in LATM, AC-3 and E-AC-3 (ATSC).
		s.Kind = KindAudio
	case 0x06:
		// Private data: AC-3, E-AC-3 and Opus announce themselves with a
		// descriptor (DVB, and the Opus registration descriptor).
		if audioDescriptor(desc) {
			s.Kind = KindAudio
		}
	}
	return s
}

func audioDescriptor(desc []byte) bool {
	for len(desc) >= 2 {
		tag, n := desc[0], int(desc[1])
		if 2+n > len(desc) {
			return false
		}
		switch tag {
		case 0x6a, 0x7a:
			return true
		case 0x05:
			if n >= 4 && string(desc[2:6]) == "Opus" {
				return true
			}
		}
		desc = desc[2+n:]
	}
	return false
}

// pickPrimary sets p.Primary.
func (p *Program) pickPrimary() {
	for _, s := range p.Streams {
		if s.keyed() {
			p.Primary = s
			return
		}
	}
	for _, s := range p.Streams {
		if s.Kind == KindAudio {
			p.Primary = s
			return
		}
	}
}
