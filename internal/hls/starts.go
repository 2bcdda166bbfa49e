package hls

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// Starts are the presentation times of the first video and the first
// audio frame of a media segment, on the segment's own clock (MPEG-TS PTS
// or fragmented MP4 media time).
type Starts struct {
	Video, Audio       time.Duration
	HasVideo, HasAudio bool
}

// First is the presentation time of the first video frame, or of the
// first audio frame when there is no video: the time a WebVTT segment's
// X-TIMESTAMP-MAP ties to.
func (s Starts) First() time.Duration {
	if s.HasVideo {
		return s.Video
	}
	return s.Audio
}

// Earliest is the earlier of the two starts: where a decoder reading the
// segment from its first byte starts its timeline.
func (s Starts) Earliest() time.Duration {
	switch {
	case s.HasVideo && s.HasAudio:
		return min(s.Video, s.Audio)
	case s.HasVideo:
		return s.Video
	}
	return s.Audio
}

// TSStarts reads the PTS of the first H.264 and the first AAC PES of an
// MPEG-TS segment. A segment without either, or not made of clean
// transport packets, is an error; malformed input never panics.
func TSStarts(data []byte) (s Starts, err error) {
	defer recoverParse(&err)
	if len(data) < mpegts.PacketSize {
		return Starts{}, fmt.Errorf("mpeg-ts segment of %d bytes is shorter than a packet", len(data))
	}
	var damage error
	var d *mpegts.Demuxer
	d = mpegts.NewDemuxer(
		mpegts.OnPES(func(p *mpegts.PES) {
			if !p.HasPTS {
				return
			}
			v, a := tsStreams(d.Program())
			switch {
			case p.Stream == v && !s.HasVideo:
				s.Video, s.HasVideo = p.PTS, true
			case p.Stream == a && !s.HasAudio:
				s.Audio, s.HasAudio = p.PTS, true
			}
		}),
		mpegts.OnError(func(err error) {
			if damage == nil && (errors.Is(err, mpegts.ErrSync) || errors.Is(err, mpegts.ErrMalformedPacket)) {
				damage = err
			}
		}))
	d.Flush(d.Feed(data[:len(data)/mpegts.PacketSize*mpegts.PacketSize], time.Time{}, nil))
	switch {
	case damage != nil:
		return Starts{}, fmt.Errorf("segment is not clean mpeg-ts: %w", damage)
	case !s.HasVideo && !s.HasAudio:
		return Starts{}, errors.New("segment has no h264 or aac pes with a timestamp")
	}
	return s, nil
}

// FMP4Starts reads the presentation time of the first sample of the
// video and audio tracks in the first movie fragment of a fragmented MP4
// segment: its track fragment's base media decode time plus the sample's
// composition offset, at the track's timescale from tracks (ParseInit).
// Edit lists in the initialization segment are not applied (hls.js does
// not apply them either). A fragment without tfdt, or none of the given
// tracks, is an error.
func FMP4Starts(data []byte, tracks []Track) (s Starts, err error) {
	defer recoverParse(&err)
	var moof *mp4.MoofBox
	err = walkBoxes(data, func(typ string, start, end int) error {
		if typ != "moof" {
			return nil
		}
		b, err := mp4.DecodeBox(uint64(start), bytes.NewReader(data[start:end]))
		if err != nil {
			return fmt.Errorf("moof: %w", err)
		}
		moof, _ = b.(*mp4.MoofBox)
		return errStopWalk
	})
	if err != nil {
		return Starts{}, err
	}
	if moof == nil {
		return Starts{}, errors.New("segment has no moof box")
	}
	for _, traf := range moof.Trafs {
		if traf.Tfhd == nil || traf.Tfdt == nil || traf.Trun == nil {
			continue
		}
		track := findTrack(tracks, traf.Tfhd.TrackID)
		if track == nil || track.Timescale == 0 {
			continue
		}
		ticks := int64(traf.Tfdt.BaseMediaDecodeTime())
		if ticks < 0 {
			return Starts{}, fmt.Errorf("track %d: decode time out of range", track.ID)
		}
		if samples := traf.Trun.Samples; len(samples) > 0 && traf.Trun.HasSampleCompositionTimeOffset() {
			ticks += int64(samples[0].CompositionTimeOffset)
		}
		t, ok := ticksToDuration(uint64(max(ticks, 0)), track.Timescale)
		if !ok {
			return Starts{}, fmt.Errorf("track %d: presentation time %d at timescale %d is out of range", track.ID, ticks, track.Timescale)
		}
		switch {
		case track.Kind == "video" && !s.HasVideo:
			s.Video, s.HasVideo = t, true
		case track.Kind == "audio" && !s.HasAudio:
			s.Audio, s.HasAudio = t, true
		}
	}
	if !s.HasVideo && !s.HasAudio {
		return Starts{}, errors.New("first movie fragment has no video or audio track with a decode time")
	}
	return s, nil
}
