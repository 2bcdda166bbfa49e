package liveladder

import (
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media/mpegts"
)

// maxProbeBytes is how much of a session the prober reads for the
// picture size before it gives up: a session whose first key frame it
// has not found by then is not transcoded.
const maxProbeBytes = 16 << 20

// prober reads the start of a publisher session's MPEG-TS until it knows
// the picture size (from the first SPS of the first H.264 stream) or that
// there is no video to transcode.
type prober struct {
	d             *mpegts.Demuxer
	fed           int
	width, height int
	noVideo       bool
}

func newProber() *prober {
	p := &prober{}
	p.d = mpegts.NewDemuxer(mpegts.OnPES(p.pes))
	return p
}

func (p *prober) pes(pes *mpegts.PES) {
	if p.height > 0 || pes.Stream == nil || pes.Stream.Codec != mpegts.CodecH264 {
		return
	}
	for _, nalu := range nalUnits(pes.Data) {
		if nalu[0]&0x1f != 7 {
			continue
		}
		if vp, err := hls.ParseSPS(nalu); err == nil && vp.Width > 0 && vp.Height > 0 {
			p.width, p.height = vp.Width, vp.Height
			return
		}
	}
}

// feed reads more bytes. It reports done once the picture size is known
// (height > 0), the program has no H.264 stream (noVideo), or too much was
// read without finding either (noVideo too).
func (p *prober) feed(b []byte) (done bool) {
	p.fed += len(b)
	p.d.Feed(b, time.Time{}, nil)
	if p.height > 0 {
		return true
	}
	if prog := p.d.Program(); prog != nil {
		has := false
		for _, s := range prog.Streams {
			has = has || s.Codec == mpegts.CodecH264
		}
		if !has {
			p.noVideo = true
			return true
		}
	}
	if p.fed >= maxProbeBytes {
		p.noVideo = true
		return true
	}
	return false
}

// nalUnits splits an H.264 Annex B byte stream into NAL units without
// their start codes.
func nalUnits(b []byte) [][]byte {
	var out [][]byte
	start := -1
	add := func(end int) {
		for end > start && b[end-1] == 0 {
			end--
		}
		if end > start {
			out = append(out, b[start:end])
		}
	}
	for i := 0; i+3 <= len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				add(i)
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		add(len(b))
	}
	return out
}
