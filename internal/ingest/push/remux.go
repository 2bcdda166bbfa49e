package push

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// errNoTracks: the publisher sent nothing weir can carry.
var errNoTracks = errors.New("no supported tracks (weir takes H.264 or H.265 video and AAC or MP3 audio)")

// newTSMuxer builds the MPEG-TS muxer for an RTMP publisher's tracks,
// keeping the first video and the first audio track it supports, and
// returns the tracks kept.
func newTSMuxer(tracks []*gortmplib.Track) (*mpegts.Muxer, []*gortmplib.Track, error) {
	var kept []*gortmplib.Track
	var mux []mpegts.MuxTrack
	video, audio := false, false
	for _, t := range tracks {
		var mt mpegts.MuxTrack
		switch c := t.Codec.(type) {
		case *rtmpcodecs.H264:
			mt = mpegts.MuxTrack{Codec: mpegts.CodecH264, ParameterSets: [][]byte{c.SPS, c.PPS}}
		case *rtmpcodecs.H265:
			mt = mpegts.MuxTrack{Codec: mpegts.CodecH265, ParameterSets: [][]byte{c.VPS, c.SPS, c.PPS}}
		case *rtmpcodecs.MPEG4Audio:
			if c.Config == nil {
				continue
			}
			mt = mpegts.MuxTrack{Codec: mpegts.CodecAAC, AACConfig: c.Config}
		case *rtmpcodecs.MPEG1Audio:
			mt = mpegts.MuxTrack{Codec: mpegts.CodecMPEGAudio}
		default:
			continue
		}
		isVideo := mt.Codec == mpegts.CodecH264 || mt.Codec == mpegts.CodecH265
		if isVideo && video || !isVideo && audio {
			continue
		}
		video, audio = video || isVideo, audio || !isVideo
		kept, mux = append(kept, t), append(mux, mt)
	}
	if len(kept) == 0 {
		return nil, nil, errNoTracks
	}
	m, err := mpegts.NewMuxer(mux...)
	if err != nil {
		return nil, nil, fmt.Errorf("mpeg-ts muxer: %w", err)
	}
	return m, kept, nil
}
