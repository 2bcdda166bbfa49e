package hls

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// InspectTS reads an MPEG-TS media segment with internal/media/mpegts: the
// PAT and PMT, then the first access unit of the H.264 stream (or the first
// AAC PES when there is no H.264 video). It reports the codec strings (from
// the H.264 SPS and the ADTS header), the picture size, whether the first
// video access unit holds an IDR picture, where that access unit's packets
// end (the next video PES starts there) and the first presentation
// timestamp. Streams of other types are skipped. A segment that is not
// whole, clean transport packets is an error; so is one without the
// tables, the streams or the access unit it needs. Malformed input is an
// error, never a panic.
func InspectTS(data []byte) (info SegmentInfo, err error) {
	defer recoverParse(&err)
	if len(data) < mpegts.PacketSize || len(data)%mpegts.PacketSize != 0 {
		return SegmentInfo{}, fmt.Errorf("mpeg-ts segment of %d bytes is not a whole number of 188-byte packets", len(data))
	}
	var damage, psiErr error
	var video, audio *mpegts.PES
	var d *mpegts.Demuxer
	d = mpegts.NewDemuxer(
		mpegts.OnPES(func(p *mpegts.PES) {
			v, a := tsStreams(d.Program())
			switch {
			case p.Stream == v && video == nil:
				video = p
			case p.Stream == a && audio == nil:
				audio = p
			}
		}),
		mpegts.OnError(func(err error) {
			switch {
			case damage == nil && (errors.Is(err, mpegts.ErrSync) || errors.Is(err, mpegts.ErrMalformedPacket)):
				damage = err
			case psiErr == nil && errors.Is(err, mpegts.ErrPSI):
				psiErr = err
			}
		}))
	pkts := d.Flush(d.Feed(data, time.Time{}, nil))
	if damage != nil {
		return SegmentInfo{}, fmt.Errorf("segment is not clean mpeg-ts: %w", damage)
	}
	if d.Program() == nil {
		if psiErr != nil {
			return SegmentInfo{}, fmt.Errorf("segment has no readable pat and pmt: %w", psiErr)
		}
		return SegmentInfo{}, errors.New("segment has no pat and pmt")
	}
	v, a := tsStreams(d.Program())
	if v == nil && a == nil {
		return SegmentInfo{}, errors.New("pmt lists no h264 or aac stream")
	}
	if v != nil {
		if video == nil {
			return SegmentInfo{}, errors.New("segment has no video pes")
		}
		if info, err = inspectH264(video); err != nil {
			return SegmentInfo{}, err
		}
		info.KeyFrameEnd = int64(len(data))
		for _, p := range pkts {
			if p.Stream == v && p.Start && p.Offset > video.Offset {
				info.KeyFrameEnd = p.Offset
				break
			}
		}
	}
	if audio != nil {
		aot, err := adtsObjectType(audio.Data)
		if err != nil {
			return SegmentInfo{}, err
		}
		info.Codecs = append(info.Codecs, MP4ACodec(aot))
		if v == nil {
			info.Start = audio.PTS
			info.StartsWithKeyFrame = true // every AAC frame is independent
		}
	}
	return info, nil
}

// tsStreams returns the first H.264 and the first AAC stream of a program.
func tsStreams(p *mpegts.Program) (video, audio *mpegts.Stream) {
	if p == nil {
		return nil, nil
	}
	for _, s := range p.Streams {
		switch {
		case s.Codec == mpegts.CodecH264 && video == nil:
			video = s
		case s.Codec == mpegts.CodecAAC && audio == nil:
			audio = s
		}
	}
	return video, audio
}

// inspectH264 reads the codec string and picture size from the SPS of an
// access unit.
func inspectH264(au *mpegts.PES) (SegmentInfo, error) {
	info := SegmentInfo{HasVideo: true, Start: au.PTS, StartsWithKeyFrame: au.Key}
	for _, nalu := range splitAnnexB(au.Data) {
		if nalu[0]&0x1f != 7 || len(info.Codecs) > 0 {
			continue
		}
		vp, err := ParseSPS(nalu)
		if err != nil {
			return SegmentInfo{}, err
		}
		info.Codecs = append(info.Codecs, vp.Codec)
		info.Width, info.Height = vp.Width, vp.Height
	}
	if len(info.Codecs) == 0 {
		return SegmentInfo{}, errors.New("first video access unit has no sps")
	}
	return info, nil
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
