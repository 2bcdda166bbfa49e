package hls

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// VideoParams is what an H.264 sequence parameter set says about a stream.
type VideoParams struct {
	// Codec is the RFC 6381 string, "avc1." and the hex of profile_idc,
	// the constraint flags byte and level_idc: "avc1.640028" is High
	// profile, level 4.0.
	Codec         string
	Width, Height int
	// FrameRate is the SPS's timing information, 0 when absent.
	FrameRate float64
}

// ParseSPS reads an H.264 sequence parameter set NAL unit (with its
// one-byte NAL header, without a start code) and returns the codec string
// and picture size it describes. The picture size honours the SPS's
// cropping rectangle, so a 1080-line stream coded as 1088 lines reports
// 1080.
func ParseSPS(nalu []byte) (VideoParams, error) {
	if len(nalu) < 4 {
		return VideoParams{}, fmt.Errorf("h264 sps of %d bytes is too short", len(nalu))
	}
	if t := h264.NALUType(nalu[0] & 0x1f); t != h264.NALUTypeSPS {
		return VideoParams{}, fmt.Errorf("h264 nal unit type %d is not an sps (7)", t)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(nalu); err != nil {
		return VideoParams{}, fmt.Errorf("h264 sps: %w", err)
	}
	var constraints byte
	for i, set := range []bool{sps.ConstraintSet0Flag, sps.ConstraintSet1Flag, sps.ConstraintSet2Flag,
		sps.ConstraintSet3Flag, sps.ConstraintSet4Flag, sps.ConstraintSet5Flag} {
		if set {
			constraints |= 0x80 >> i
		}
	}
	return VideoParams{
		Codec:     fmt.Sprintf("avc1.%02x%02x%02x", sps.ProfileIdc, constraints, sps.LevelIdc),
		Width:     sps.Width(),
		Height:    sps.Height(),
		FrameRate: sps.FPS(),
	}, nil
}

// MP4ACodec is the RFC 6381 string of MPEG-4 audio with the given audio
// object type: "mp4a.40.2" for AAC-LC, "mp4a.40.5" for HE-AAC.
func MP4ACodec(objectType int) string { return fmt.Sprintf("mp4a.40.%d", objectType) }

// AudioObjectType reads the audio object type from the start of an MPEG-4
// AudioSpecificConfig (ISO/IEC 14496-3): five bits, with the escape value
// 31 followed by six more bits for types 32 to 95.
func AudioObjectType(asc []byte) (int, error) {
	if len(asc) < 1 {
		return 0, fmt.Errorf("audio specific config is empty")
	}
	aot := int(asc[0] >> 3)
	if aot == 31 {
		if len(asc) < 2 {
			return 0, fmt.Errorf("audio specific config escape without extension bits")
		}
		aot = 32 + (int(asc[0]&0x07)<<3 | int(asc[1]>>5))
	}
	if aot == 0 {
		return 0, fmt.Errorf("audio object type 0 is invalid")
	}
	return aot, nil
}
