package hls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Track is one track of a fragmented MP4 presentation, as its
// initialization segment describes it.
type Track struct {
	ID uint32
	// Kind is "video", "audio" or the handler type of anything else.
	Kind string
	// Codec is the RFC 6381 codec string ("avc1.64001f", "mp4a.40.2"); empty
	// for codecs this package does not describe.
	Codec string
	// Width and Height are the coded picture size (video only).
	Width, Height int
	// Timescale is the track's media timescale in ticks per second.
	Timescale uint32
	// SampleRate and Channels describe audio tracks.
	SampleRate, Channels int

	defaults mp4.TrexBox
}

// ParseInit reads a fragmented MP4 initialization segment (ftyp + moov)
// and returns its tracks. H.264 tracks get their codec string and picture
// size from the first SPS of the avcC box; AAC tracks get theirs from the
// AudioSpecificConfig. A file without a moov box is an error; malformed
// input never panics.
func ParseInit(data []byte) (tracks []Track, err error) {
	defer recoverParse(&err)
	var moov *mp4.MoovBox
	err = walkBoxes(data, func(typ string, start, end int) error {
		if typ != "moov" {
			return nil
		}
		b, err := mp4.DecodeBox(uint64(start), bytes.NewReader(data[start:end]))
		if err != nil {
			return fmt.Errorf("moov: %w", err)
		}
		moov, _ = b.(*mp4.MoovBox)
		return errStopWalk
	})
	if err != nil {
		return nil, err
	}
	if moov == nil {
		return nil, errors.New("init segment has no moov box")
	}
	for _, trak := range moov.Traks {
		if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Mdhd == nil {
			return nil, errors.New("init segment has a trak without tkhd, mdhd or hdlr")
		}
		t := Track{ID: trak.Tkhd.TrackID, Kind: trak.Mdia.Hdlr.HandlerType, Timescale: trak.Mdia.Mdhd.Timescale}
		switch t.Kind {
		case "vide":
			t.Kind = "video"
		case "soun":
			t.Kind = "audio"
		}
		var stsd *mp4.StsdBox
		if trak.Mdia.Minf != nil && trak.Mdia.Minf.Stbl != nil {
			stsd = trak.Mdia.Minf.Stbl.Stsd
		}
		switch {
		case stsd != nil && stsd.AvcX != nil:
			t.Width, t.Height = int(stsd.AvcX.Width), int(stsd.AvcX.Height)
			if stsd.AvcX.AvcC != nil && len(stsd.AvcX.AvcC.SPSnalus) > 0 {
				vp, err := ParseSPS(stsd.AvcX.AvcC.SPSnalus[0])
				if err != nil {
					return nil, fmt.Errorf("track %d: %w", t.ID, err)
				}
				t.Codec, t.Width, t.Height = vp.Codec, vp.Width, vp.Height
			}
		case stsd != nil && stsd.Mp4a != nil:
			t.SampleRate, t.Channels = int(stsd.Mp4a.SampleRate), int(stsd.Mp4a.ChannelCount)
			if e := stsd.Mp4a.Esds; e != nil && e.DecConfigDescriptor != nil && e.DecConfigDescriptor.DecSpecificInfo != nil {
				aot, err := AudioObjectType(e.DecConfigDescriptor.DecSpecificInfo.DecConfig)
				if err != nil {
					return nil, fmt.Errorf("track %d: %w", t.ID, err)
				}
				t.Codec = MP4ACodec(aot)
			}
		}
		if moov.Mvex != nil {
			for _, trex := range moov.Mvex.Trexs {
				if trex.TrackID == t.ID {
					t.defaults = *trex
				}
			}
		}
		tracks = append(tracks, t)
	}
	if len(tracks) == 0 {
		return nil, errors.New("init segment has no tracks")
	}
	return tracks, nil
}

// SegmentInfo describes the start of a media segment.
type SegmentInfo struct {
	// HasVideo reports whether the segment carries a video track.
	HasVideo bool
	// StartsWithKeyFrame reports whether the segment's first video frame
	// is a sync sample (fMP4) or holds an IDR picture (MPEG-TS).
	StartsWithKeyFrame bool
	// KeyFrameEnd is the byte offset where the first video frame ends:
	// the bytes [0, KeyFrameEnd) hold everything a player needs to decode
	// that frame (an I-frame playlist's EXT-X-BYTERANGE). 0 without video.
	KeyFrameEnd int64
	// Start is the decode time of the first video sample (or of the first
	// track's, without video), and Duration the video (or first) track's
	// total sample duration. MPEG-TS segments report Start from the first
	// PES timestamp and leave Duration 0.
	Start, Duration time.Duration
	// Codecs, Width and Height are read from the segment itself (MPEG-TS
	// only; fragmented MP4 keeps them in the initialization segment).
	Codecs        []string
	Width, Height int
}

// InspectFMP4 reads the first movie fragment (moof) of a fragmented MP4
// media segment, using tracks from ParseInit for timescales and sample
// defaults. Malformed input is an error, never a panic.
func InspectFMP4(data []byte, tracks []Track) (info SegmentInfo, err error) {
	defer recoverParse(&err)
	var moof *mp4.MoofBox
	moofStart := -1
	err = walkBoxes(data, func(typ string, start, end int) error {
		if typ != "moof" {
			return nil
		}
		b, err := mp4.DecodeBox(uint64(start), bytes.NewReader(data[start:end]))
		if err != nil {
			return fmt.Errorf("moof: %w", err)
		}
		moof, _ = b.(*mp4.MoofBox)
		moofStart = start
		return errStopWalk
	})
	if err != nil {
		return SegmentInfo{}, err
	}
	if moof == nil {
		return SegmentInfo{}, errors.New("segment has no moof box")
	}
	var lead *Track
	for i := range tracks {
		if tracks[i].Kind == "video" {
			lead = &tracks[i]
			break
		}
	}
	if lead == nil && len(tracks) > 0 {
		lead = &tracks[0]
	}
	if lead == nil {
		return SegmentInfo{}, errors.New("no tracks given to read the segment with")
	}
	info.HasVideo = lead.Kind == "video"

	// Walk the trafs in order: without an explicit base offset, the first
	// traf's data starts relative to the moof and each following one where
	// the previous traf's data ended (ISO/IEC 14496-12, 8.8.7.1).
	nextBase := int64(moofStart)
	for _, traf := range moof.Trafs {
		if traf.Tfhd == nil {
			return SegmentInfo{}, errors.New("traf without tfhd")
		}
		base := nextBase
		switch {
		case traf.Tfhd.HasBaseDataOffset():
			base = int64(traf.Tfhd.BaseDataOffset)
		case traf.Tfhd.DefaultBaseIfMoof():
			base = int64(moofStart)
		}
		track := findTrack(tracks, traf.Tfhd.TrackID)
		defSize, defDur, defFlags := uint32(0), uint32(0), uint32(0)
		if track != nil {
			defSize, defDur, defFlags = track.defaults.DefaultSampleSize, track.defaults.DefaultSampleDuration, track.defaults.DefaultSampleFlags
		}
		if traf.Tfhd.HasDefaultSampleSize() {
			defSize = traf.Tfhd.DefaultSampleSize
		}
		if traf.Tfhd.HasDefaultSampleDuration() {
			defDur = traf.Tfhd.DefaultSampleDuration
		}
		if traf.Tfhd.HasDefaultSampleFlags() {
			defFlags = traf.Tfhd.DefaultSampleFlags
		}
		dataPos := base
		var ticks uint64
		for ti, trun := range traf.Truns {
			if trun.HasDataOffset() {
				dataPos = base + int64(trun.DataOffset)
			}
			for si, s := range trun.Samples {
				size, dur, flags := s.Size, s.Dur, s.Flags
				if !trun.HasSampleSize() {
					size = defSize
				}
				if !trun.HasSampleDuration() {
					dur = defDur
				}
				if !trun.HasSampleFlags() {
					flags = defFlags
				}
				if si == 0 {
					if f, ok := trun.FirstSampleFlags(); ok {
						flags = f
					}
				}
				if track == lead && ti == 0 && si == 0 {
					info.StartsWithKeyFrame = !mp4.DecodeSampleFlags(flags).SampleIsNonSync
					if info.HasVideo {
						info.KeyFrameEnd = dataPos + int64(size)
						if info.KeyFrameEnd > int64(len(data)) {
							return SegmentInfo{}, fmt.Errorf("first video sample ends at byte %d, past the segment's %d bytes", info.KeyFrameEnd, len(data))
						}
					}
				}
				dataPos += int64(size)
				if ticks+uint64(dur) < ticks {
					return SegmentInfo{}, fmt.Errorf("track %d: sample durations add up past 2^64 ticks", track.ID)
				}
				ticks += uint64(dur)
			}
		}
		nextBase = dataPos
		if track == lead && track.Timescale > 0 {
			var ok bool
			if traf.Tfdt != nil {
				if info.Start, ok = ticksToDuration(traf.Tfdt.BaseMediaDecodeTime(), track.Timescale); !ok {
					return SegmentInfo{}, fmt.Errorf("track %d: decode time %d at timescale %d is out of range", track.ID, traf.Tfdt.BaseMediaDecodeTime(), track.Timescale)
				}
			}
			if info.Duration, ok = ticksToDuration(ticks, track.Timescale); !ok {
				return SegmentInfo{}, fmt.Errorf("track %d: duration of %d ticks at timescale %d is out of range", track.ID, ticks, track.Timescale)
			}
		}
	}
	return info, nil
}

func findTrack(tracks []Track, id uint32) *Track {
	for i := range tracks {
		if tracks[i].ID == id {
			return &tracks[i]
		}
	}
	return nil
}

// ticksToDuration converts ticks of timescale per second to a Duration.
// ok is false when the time is past what a Duration holds (about 292
// years), which only a corrupt or hostile segment declares; converting it
// anyway would wrap into a negative or arbitrary start.
func ticksToDuration(ticks uint64, timescale uint32) (d time.Duration, ok bool) {
	const maxSec = (math.MaxInt64 - int64(time.Second)) / int64(time.Second)
	sec := ticks / uint64(timescale)
	if sec > uint64(maxSec) {
		return 0, false
	}
	rem := ticks % uint64(timescale)
	return time.Duration(sec)*time.Second + time.Duration(rem*uint64(time.Second)/uint64(timescale)), true
}

var errStopWalk = errors.New("stop")

// walkBoxes calls fn for each top-level ISO-BMFF box of data with its
// type and byte span, checking that every box fits in data.
func walkBoxes(data []byte, fn func(typ string, start, end int) error) error {
	for pos := 0; pos < len(data); {
		if len(data)-pos < 8 {
			return fmt.Errorf("truncated box header at byte %d", pos)
		}
		size := uint64(binary.BigEndian.Uint32(data[pos:]))
		typ := string(data[pos+4 : pos+8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(data) - pos)
		case 1:
			if len(data)-pos < 16 {
				return fmt.Errorf("truncated %s box header at byte %d", typ, pos)
			}
			size = binary.BigEndian.Uint64(data[pos+8:])
			hdr = 16
		}
		if size < hdr || size > uint64(len(data)-pos) {
			return fmt.Errorf("%s box at byte %d claims %d bytes, %d remain", typ, pos, size, len(data)-pos)
		}
		end := pos + int(size)
		if err := fn(typ, pos, end); err != nil {
			if errors.Is(err, errStopWalk) {
				return nil
			}
			return err
		}
		pos = end
	}
	return nil
}

// recoverParse turns a panic inside a third-party decoder into an error,
// so hostile input cannot crash the process.
func recoverParse(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("malformed media: %v", r)
	}
}
