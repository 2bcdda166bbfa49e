package live

import (
	"os/exec"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// FuzzTSDemux feeds arbitrary bytes, split in two, to the MPEG-TS demuxer
// and a segmenter: nothing may panic, every packet handed out must be a
// whole transport packet, only PES starts of the primary stream may be key
// frames, and every segment must be whole packets lasting no longer than
// the longest segment. (The demuxer's own fuzz target is in
// internal/media/mpegts.)
func FuzzTSDemux(f *testing.F) {
	f.Add([]byte{0x47, 0x40, 0x00, 0x10, 0x00}, uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		at := time.Unix(1, 0)
		d := mpegts.NewDemuxer()
		const maxSpan = 2 * time.Second
		s := newSegmenter(time.Second, maxSpan)
		k := min(int(split), len(data))
		var pieces []mpegts.Packet
		pieces = d.Feed(data[:k], at, pieces)
		pieces = d.Feed(data[k:], at, pieces)
		pieces = d.Flush(pieces)
		for _, p := range pieces {
			if len(p.Data) != mpegts.PacketSize || p.Data[0] != mpegts.SyncByte {
				t.Fatalf("piece of %d bytes starting %#x", len(p.Data), p.Data)
			}
			if p.Key && (!p.Start || !p.Primary) {
				t.Fatalf("key piece that is not a primary PES start: %+v", p)
			}
		}
		segs := s.flush(at, s.add(pieces, d.Tables(), nil))
		for _, seg := range segs {
			if len(seg.Data)%mpegts.PacketSize != 0 || seg.Duration < 0 || seg.Duration > maxSpan {
				t.Fatalf("segment of %d bytes lasting %v", len(seg.Data), seg.Duration)
			}
		}
	})
}

// FuzzLLCutter feeds arbitrary bytes through the demuxer's access units
// into the low-latency cutter: nothing may panic, no part or segment may
// have a negative duration or run past the longest segment, and a segment
// is never empty. The seed is real ffmpeg output (H.264 + AAC) when ffmpeg
// is installed.
func FuzzLLCutter(f *testing.F) {
	f.Add([]byte{0x47, 0x40, 0x00, 0x10, 0x00})
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		ts := makeTS30(f, 2)
		f.Add(ts[:min(len(ts), 64<<10)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxSpan = 2 * time.Second
		c := newLLCutter(time.Second, maxSpan, DefaultPartTarget)
		var pes []*mpegts.PES
		d := mpegts.NewDemuxer(mpegts.OnPES(func(p *mpegts.PES) { pes = append(pes, p) }))
		d.Flush(d.Feed(data, time.Unix(1, 0), nil))
		var evs []llEvent
		for _, p := range pes {
			if !p.HasPTS || p.Stream == nil {
				continue
			}
			ev, _ := c.add(p, d.Program(), time.Unix(1, 0))
			evs = append(evs, ev...)
		}
		ev, _ := c.flush(time.Unix(2, 0))
		evs = append(evs, ev...)
		for _, e := range evs {
			if e.part != nil && (e.part.duration < 0 || len(e.part.data) == 0) {
				t.Fatalf("part of %d bytes lasting %v", len(e.part.data), e.part.duration)
			}
			if e.seg != nil && (e.seg.Duration < 0 || e.seg.Duration > maxSpan+time.Second || len(e.seg.Data) == 0) {
				t.Fatalf("segment of %d bytes lasting %v", len(e.seg.Data), e.seg.Duration)
			}
		}
	})
}
