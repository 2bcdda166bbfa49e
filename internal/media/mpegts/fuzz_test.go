package mpegts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// demuxed is everything a demuxer hands out for one input.
type demuxed struct {
	pkts   []Packet
	pes    []*PES
	errs   []error
	tables []byte
	prog   *Program
}

func demuxPieces(pieces ...[]byte) demuxed {
	var r demuxed
	d := NewDemuxer(OnPES(func(p *PES) { r.pes = append(r.pes, p) }), OnError(func(err error) { r.errs = append(r.errs, err) }))
	at := time.Unix(1, 0)
	for _, p := range pieces {
		r.pkts = d.Feed(p, at, r.pkts)
	}
	r.pkts = d.Flush(r.pkts)
	r.tables, r.prog = d.Tables(), d.Program()
	return r
}

// FuzzDemux feeds arbitrary bytes to the demuxer whole and split in two:
// nothing may panic; the split must not change what comes out; every
// packet handed out must be the 188 input bytes at its offset, in order;
// only PES starts of the primary stream may be key frames; every error
// must say where in the input it was found; and the tables alone must give
// the same program again. The seeds are small ffmpeg outputs in
// testdata/fuzz/ts: H.264 with AAC, H.264 across the timestamp wrap,
// H.265, MP3, MPEG-2 video with AC-3, and a PMT spanning two packets.
func FuzzDemux(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/fuzz/ts/*.ts")
	if len(seeds) == 0 {
		f.Fatal("no seed files in testdata/fuzz/ts")
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(1000))
		f.Add(b[PacketSize/2:], uint16(3*PacketSize+17)) // picked up mid-packet
	}
	f.Add([]byte("GGGjunkG\x00\x00\x10"), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		k := min(int(split), len(data))
		whole, cut := demuxPieces(data), demuxPieces(data[:k], data[k:])
		checkSame(t, whole, cut)
		last := int64(-1)
		for _, p := range cut.pkts {
			if p.Offset <= last || p.Offset+PacketSize > int64(len(data)) || !bytes.Equal(p.Data, data[p.Offset:p.Offset+PacketSize]) {
				t.Fatalf("packet at offset %d (after %d) is not the input's bytes there", p.Offset, last)
			}
			last = p.Offset
			if p.Key && (!p.Start || !p.Primary) {
				t.Fatalf("key packet that is not a primary PES start: %+v", p)
			}
		}
		for _, p := range cut.pes {
			if len(p.Data) > maxPESSize || p.Offset < 0 || p.Offset >= int64(len(data)) {
				t.Fatalf("PES of %d bytes at offset %d", len(p.Data), p.Offset)
			}
		}
		for _, err := range cut.errs {
			var e *Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > int64(len(data)) {
				t.Fatalf("error %v does not say where in %d bytes", err, len(data))
			}
		}
		if cut.tables != nil {
			again := demuxPieces(cut.tables)
			if again.prog == nil || len(again.prog.Streams) != len(cut.prog.Streams) {
				t.Fatalf("the tables give program %+v, the stream %+v", again.prog, cut.prog)
			}
			for i, s := range again.prog.Streams {
				if s.String() != cut.prog.Streams[i].String() {
					t.Fatalf("the tables give stream %v, the stream %v", s, cut.prog.Streams[i])
				}
			}
		}
	})
}

func checkSame(t *testing.T, a, b demuxed) {
	t.Helper()
	if len(a.pkts) != len(b.pkts) || len(a.pes) != len(b.pes) || len(a.errs) != len(b.errs) {
		t.Fatalf("split input: %d packets, %d PES, %d errors; whole: %d, %d, %d",
			len(b.pkts), len(b.pes), len(b.errs), len(a.pkts), len(a.pes), len(a.errs))
	}
	for i := range a.pkts {
		x, y := a.pkts[i], b.pkts[i]
		if x.Offset != y.Offset || x.Key != y.Key || x.Start != y.Start || x.PTS != y.PTS || x.DTS != y.DTS || x.PSI != y.PSI {
			t.Fatalf("packet %d differs when the input is split: %+v vs %+v", i, y, x)
		}
	}
	for i := range a.pes {
		if !bytes.Equal(a.pes[i].Data, b.pes[i].Data) || a.pes[i].PTS != b.pes[i].PTS || a.pes[i].Key != b.pes[i].Key {
			t.Fatalf("PES %d differs when the input is split", i)
		}
	}
	for i := range a.errs {
		if a.errs[i].Error() != b.errs[i].Error() {
			t.Fatalf("error %d differs when the input is split: %v vs %v", i, b.errs[i], a.errs[i])
		}
	}
}

// FuzzAudioRemuxer feeds arbitrary bytes to the ADTS and MPEG audio frame
// splitters and remuxers: nothing may panic, every frame must be exactly
// as long as its header says, and whatever the remuxers write must be
// whole transport packets.
func FuzzAudioRemuxer(f *testing.F) {
	f.Add([]byte{0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc, 0x21, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fl := range []func([]byte) int{adtsFrameLen, mpegAudioFrameLen} {
			s := frameSplitter{frameLen: fl}
			for _, fr := range s.push(data) {
				if fl(fr) != len(fr) {
					t.Fatalf("frame of %d bytes, header says %d", len(fr), fl(fr))
				}
			}
		}
		for _, c := range []Codec{CodecAAC, CodecMPEGAudio} {
			r, err := NewAudioRemuxer(c)
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Remux(data)
			if err != nil {
				t.Logf("%v: %v", c, err)
			}
			if len(out)%PacketSize != 0 {
				t.Fatalf("%v: %d bytes written, not whole packets", c, len(out))
			}
		}
	})
}

// FuzzMuxer writes arbitrary frames of arbitrary sizes and timestamps
// (video as one NAL unit, audio as AAC or MPEG audio) and checks that every
// write is whole transport packets and that the demuxer reads the result
// without a continuity or section error.
func FuzzMuxer(f *testing.F) {
	f.Add([]byte{0x65, 1, 2, 3}, uint16(100), int64(0), true)
	f.Add(bytes.Repeat([]byte{0x41}, 500), uint16(183), int64(1<<40), false)
	f.Add([]byte{}, uint16(0), int64(-5), true)
	f.Fuzz(func(t *testing.T, nal []byte, audioLen uint16, pts int64, mp3 bool) {
		audio := MuxTrack{Codec: CodecAAC, AACConfig: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}}
		if mp3 {
			audio = MuxTrack{Codec: CodecMPEGAudio}
		}
		m, err := NewMuxer(MuxTrack{Codec: CodecH264, ParameterSets: [][]byte{{0x67, 1}, {0x68, 2}}}, audio)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Duration(pts % int64(time.Hour))
		var out []byte
		for i := range 3 {
			b, err := m.WriteVideo(at, at, [][]byte{nal})
			if err == nil {
				out = append(out, b...)
			}
			frame := bytes.Repeat([]byte{byte(i)}, int(audioLen%4000))
			if mp3 {
				b, err = m.WriteMPEGAudio(at, frame)
			} else {
				b, err = m.WriteAAC(at, frame)
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
			if len(out)%packetSize != 0 {
				t.Fatalf("%d bytes written: not whole packets", len(out))
			}
		}
		_, _, errs, _ := demuxAll(out, len(out))
		for _, e := range errs {
			if errors.Is(e, ErrContinuity) || errors.Is(e, ErrPSI) || errors.Is(e, ErrSync) {
				t.Fatalf("reading the muxer's output: %v", e)
			}
		}
	})
}
