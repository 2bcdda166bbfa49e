package live

import (
	"testing"
	"time"
)

// FuzzTSDemux feeds arbitrary bytes, split in two, to the MPEG-TS demuxer
// and a segmenter: nothing may panic, every packet handed out must be a
// whole transport packet, and only PES starts of the primary stream may
// be key frames.
func FuzzTSDemux(f *testing.F) {
	f.Add([]byte{0x47, 0x40, 0x00, 0x10, 0x00}, uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		at := time.Unix(1, 0)
		d := newTSDemuxer()
		s := newSegmenter(time.Second)
		k := min(int(split), len(data))
		var pieces []tsPiece
		pieces = d.feed(data[:k], at, pieces)
		pieces = d.feed(data[k:], at, pieces)
		pieces = d.flush(pieces)
		for _, p := range pieces {
			if len(p.Data) != tsPacketSize || p.Data[0] != tsSyncByte {
				t.Fatalf("piece of %d bytes starting %#x", len(p.Data), p.Data)
			}
			if p.Key && (!p.Start || !p.Primary) {
				t.Fatalf("key piece that is not a primary PES start: %+v", p)
			}
		}
		segs := s.flush(at, s.add(pieces, d.tables(), nil))
		for _, seg := range segs {
			if len(seg.Data)%tsPacketSize != 0 || seg.Duration < 0 {
				t.Fatalf("segment of %d bytes lasting %v", len(seg.Data), seg.Duration)
			}
		}
	})
}

// FuzzAudioConverters feeds arbitrary bytes to the ADTS and MP3 frame
// splitters and converters: nothing may panic and every frame must be
// exactly as long as its header says.
func FuzzAudioConverters(f *testing.F) {
	f.Add([]byte{0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc, 0x21, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fl := range []func([]byte) int{adtsFrameLen, mp3FrameLen} {
			s := frameSplitter{frameLen: fl}
			for _, fr := range s.push(data) {
				if fl(fr) != len(fr) {
					t.Fatalf("frame of %d bytes, header says %d", len(fr), fl(fr))
				}
			}
		}
		if _, err := newADTSToTS().convert(data); err != nil {
			t.Logf("adts: %v", err)
		}
		if _, err := newMP3ToTS().convert(data); err != nil {
			t.Logf("mp3: %v", err)
		}
	})
}
