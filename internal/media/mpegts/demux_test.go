package mpegts

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func keyStarts(pkts []Packet) []time.Duration {
	var keys []time.Duration
	for _, p := range pkts {
		if p.Key {
			keys = append(keys, p.PTS)
		}
	}
	return keys
}

func TestDemuxFindsKeyFramesWhateverTheChunking(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"libx264", "libx265"} {
		ts := makeTS(t, 4, 25, codec, 0)
		want, wantPES, _, d := demuxAll(ts, len(ts))
		if !d.Program().HasVideo() {
			t.Fatalf("%s: no video stream found", codec)
		}
		if keys := keyStarts(want); len(keys) != 4 {
			t.Fatalf("%s: key frames at %v, want 4 one second apart", codec, keys)
		} else {
			for i := 1; i < len(keys); i++ {
				if keys[i]-keys[i-1] != time.Second {
					t.Errorf("%s: key frames at %v, want one second apart", codec, keys)
				}
			}
		}
		for _, n := range []int{1, 7, 187, 188, 189, 1316, 10240} {
			got, gotPES, _, _ := demuxAll(ts, n)
			if len(got) != len(want) {
				t.Fatalf("%s in pieces of %d: %d packets, want %d", codec, n, len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if !bytes.Equal(g.Data, w.Data) || g.Key != w.Key || g.Start != w.Start || g.PTS != w.PTS ||
					g.PSI != w.PSI || g.Offset != w.Offset || g.Stream.String() != w.Stream.String() {
					t.Fatalf("%s in pieces of %d: packet %d differs: %+v vs %+v", codec, n, i, g, w)
				}
			}
			if len(gotPES) != len(wantPES) {
				t.Fatalf("%s in pieces of %d: %d PES, want %d", codec, n, len(gotPES), len(wantPES))
			}
			for i := range gotPES {
				if !bytes.Equal(gotPES[i].Data, wantPES[i].Data) || gotPES[i].PTS != wantPES[i].PTS || gotPES[i].Key != wantPES[i].Key {
					t.Fatalf("%s in pieces of %d: PES %d differs", codec, n, i)
				}
			}
		}
	}
}

func TestDemuxResyncsAfterGarbage(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 3, 25, "libx264", 0)
	junk := make([]byte, 1000)
	rand.Read(junk)
	for i := range junk {
		if junk[i] == SyncByte {
			junk[i] = 0
		}
	}
	// Garbage before the stream, and a packet and a half cut out of the
	// middle of its second second.
	mid := len(ts) / 2 / PacketSize * PacketSize
	damaged := append(append(append([]byte{}, junk...), ts[:mid]...), ts[mid+PacketSize+94:]...)
	pkts, _, errs, d := demuxAll(damaged, 4096)
	if d.Stats().Resyncs == 0 {
		t.Error("no resync counted")
	}
	for _, p := range pkts {
		if len(p.Data) != PacketSize || p.Data[0] != SyncByte {
			t.Fatalf("a packet of %d bytes starting %#x", len(p.Data), p.Data[0])
		}
		if !bytes.Equal(p.Data, damaged[p.Offset:p.Offset+PacketSize]) {
			t.Fatalf("packet at offset %d is not the bytes there", p.Offset)
		}
	}
	if keys := keyStarts(pkts); len(keys) != 3 {
		t.Fatalf("key frames at %v in the damaged stream, want 3", keys)
	}
	var first *Error
	if len(errs) == 0 || !errors.As(errs[0], &first) || !errors.Is(first, ErrSync) || first.Offset != 0 {
		t.Fatalf("first error %v, want lost sync at byte 0", errs)
	}
	if d.Stats().SkippedBytes < 1000 {
		t.Errorf("%d bytes skipped, want at least the 1000 of garbage", d.Stats().SkippedBytes)
	}
}

func TestDemuxReportsContinuityErrors(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 2, 25, "libx264", 0)
	_, intact, _, d := demuxAll(ts, len(ts))
	video := d.Program().Primary.PID
	// Drop one video packet that neither starts a PES nor is the last of
	// one, from the middle of the stream.
	var cut int
	for off := len(ts) / 2 / PacketSize * PacketSize; off+2*PacketSize < len(ts); off += PacketSize {
		p, n := ts[off:], ts[off+PacketSize:]
		if pidOf(p) == video && p[1]&0x40 == 0 && pidOf(n) == video && n[1]&0x40 == 0 {
			cut = off
			break
		}
	}
	damaged := append(append([]byte{}, ts[:cut]...), ts[cut+PacketSize:]...)
	_, pes, errs, d := demuxAll(damaged, 1316)
	var ccErr *Error
	for _, err := range errs {
		if errors.Is(err, ErrContinuity) {
			if ccErr != nil {
				t.Fatalf("two continuity errors: %v and %v", ccErr, err)
			}
			ccErr = err.(*Error)
		}
	}
	if ccErr == nil || ccErr.PID != int(video) || ccErr.Offset != int64(cut) {
		t.Fatalf("continuity error %v, want one on pid %d at byte %d", ccErr, video, cut)
	}
	if d.Stats().ContinuityErrors != 1 {
		t.Errorf("%d continuity errors counted, want 1", d.Stats().ContinuityErrors)
	}
	// The damaged PES is dropped, the others are all there.
	if len(pes) != len(intact)-1 {
		t.Errorf("%d PES from the damaged stream, want %d (one dropped)", len(pes), len(intact)-1)
	}
}

func pidOf(pkt []byte) uint16 { return uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2]) }

func TestDemuxReportsUnsupportedStreams(t *testing.T) {
	t.Parallel()
	ts := makeMedia(t, "mpegts", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
		"-f", "lavfi", "-i", "sine=duration=1", "-c:v", "mpeg2video", "-c:a", "ac3")
	pkts, pes, errs, d := demuxAll(ts, 1316)
	prog := d.Program()
	if prog == nil || len(prog.Streams) != 2 {
		t.Fatalf("program %+v, want two streams", prog)
	}
	v, a := prog.Streams[0], prog.Streams[1]
	if v.Kind != KindVideo || v.Codec != CodecUnknown || a.Kind != KindAudio || a.Codec != CodecUnknown {
		t.Fatalf("streams %v and %v, want video and audio of unknown codecs", v, a)
	}
	if prog.HasVideo() || prog.Primary != a {
		t.Errorf("primary stream %v, want the audio (no key frames can be found in MPEG-2 video)", prog.Primary)
	}
	var reported []int
	for _, err := range errs {
		if errors.Is(err, ErrUnsupportedStream) {
			reported = append(reported, err.(*Error).PID)
		}
	}
	if len(reported) != 2 || reported[0] != int(v.PID) || reported[1] != int(a.PID) {
		t.Errorf("unsupported streams reported: %v, want pids %d and %d once each", reported, v.PID, a.PID)
	}
	seen := map[*Stream]int{}
	for _, p := range pkts {
		seen[p.Stream]++
	}
	if seen[v] == 0 || seen[a] == 0 {
		t.Errorf("packets per stream %v: the unknown streams' packets must pass through", seen)
	}
	if len(pes) == 0 {
		t.Error("no PES reassembled from the unknown streams")
	}
}

func TestDemuxReadsAPMTSpanningPackets(t *testing.T) {
	t.Parallel()
	// 40 audio streams make a PMT of more than one packet.
	args := []string{"-f", "lavfi", "-i", "sine=duration=0.5"}
	for range 40 {
		args = append(args, "-map", "0:a")
	}
	ts := makeMedia(t, "mpegts", append(args, "-c:a", "mp2", "-b:a", "32k")...)
	_, _, errs, d := demuxAll(ts, 100)
	if d.Program() == nil || len(d.Program().Streams) != 40 {
		t.Fatalf("program %+v (errors %v), want 40 streams", d.Program(), errs)
	}
	tables := d.Tables()
	if len(tables) < 3*PacketSize {
		t.Errorf("tables of %d bytes, want the PAT and a PMT of two packets or more", len(tables))
	}
	// The tables alone are enough to read the program again.
	d2 := NewDemuxer()
	d2.Feed(tables, time.Time{}, nil)
	if d2.Program() == nil || len(d2.Program().Streams) != 40 {
		t.Errorf("the tables alone give program %+v", d2.Program())
	}
}

func TestDemuxUnwrapsTimestampsAcrossTheWrap(t *testing.T) {
	t.Parallel()
	// 95443.7 s is 2^33 ticks: the stream starts 2 s before the wrap.
	ts := makeTS(t, 4, 25, "libx264", 95441.7)
	pkts, pes, _, _ := demuxAll(ts, 1316)
	keys := keyStarts(pkts)
	if len(keys) != 4 {
		t.Fatalf("key frames at %v, want 4", keys)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i]-keys[i-1] != time.Second {
			t.Errorf("key frames at %v, want one second apart across the wrap", keys)
		}
	}
	if wrap := ticksToDuration(1 << 33); keys[0] >= wrap || keys[3] <= wrap {
		t.Errorf("key frames at %v, want the wrap (%v) between the first and the last", keys, wrap)
	}
	last := map[*Stream]time.Duration{}
	for _, p := range pes {
		if p.DTS < last[p.Stream]-time.Second {
			t.Fatalf("%v: decode time went back from %v to %v", p.Stream, last[p.Stream], p.DTS)
		}
		last[p.Stream] = p.DTS
	}
}

func TestTimestampsUnwrapStepByStep(t *testing.T) {
	const wrap = int64(1) << 33
	d := NewDemuxer()
	steps := []int64{wrap - 3000, wrap - 1000, 500, 2500, 1000, wrap - 500}
	want := []int64{wrap - 3000, wrap - 1000, wrap + 500, wrap + 2500, wrap + 1000, wrap - 500}
	for i, v := range steps {
		if got := toTicks(d.unwrap(v)); got != want[i] {
			t.Fatalf("step %d: unwrap(%d) = %d, want %d", i, v, got, want[i])
		}
	}
}

func TestFirstPictureIsKey(t *testing.T) {
	tests := []struct {
		name         string
		codec        Codec
		buf          []byte
		key, decided bool
	}{
		{"h264 idr after sps pps", CodecH264, []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88}, true, true},
		{"h264 idr after aud and sei", CodecH264, []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x06, 5, 5, 0, 0, 1, 0x25}, true, true},
		{"h264 non-idr slice", CodecH264, []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a}, false, true},
		{"h264 parameter sets only", CodecH264, []byte{0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2}, false, false},
		{"h264 start code cut short", CodecH264, []byte{0, 0, 1}, false, false},
		{"hevc idr_w_radl", CodecH265, []byte{0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 1, 0, 0, 1, 0x26, 1}, true, true},
		{"hevc cra", CodecH265, []byte{0, 0, 1, 0x2a, 1}, true, true},
		{"hevc trail_r", CodecH265, []byte{0, 0, 1, 0x02, 1}, false, true},
		{"hevc vps only", CodecH265, []byte{0, 0, 1, 0x40, 1}, false, false},
	}
	for _, tc := range tests {
		key, decided := firstPictureIsKey(tc.buf, tc.codec)
		if key != tc.key || decided != tc.decided {
			t.Errorf("%s: key %v decided %v, want %v %v", tc.name, key, decided, tc.key, tc.decided)
		}
	}
}

func TestDemuxDropsDamagedAndNullPackets(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 1, 25, "libx264", 0)
	want, _, _, _ := demuxAll(ts, len(ts))
	null := make([]byte, PacketSize)
	null[0], null[1], null[2], null[3] = SyncByte, 0x1f, 0xff, 0x10
	damaged := bytes.Clone(ts[len(ts)-PacketSize:])
	damaged[1] |= 0x80 // transport error indicator
	in := append(append(bytes.Clone(ts), null...), damaged...)
	got, _, errs, d := demuxAll(in, 1316)
	if len(got) != len(want) {
		t.Errorf("%d packets, want %d: a null packet and a damaged one must be dropped", len(got), len(want))
	}
	if d.Stats().TransportErrors != 1 || len(errs) == 0 || !errors.Is(errs[len(errs)-1], ErrTransport) {
		t.Errorf("transport errors %d, errors %v: want the damaged packet reported", d.Stats().TransportErrors, errs)
	}
}

// Key packets carry the picture size their sequence parameter set declares,
// so a consumer can tell a format change from an ordinary key frame.
func TestKeyPacketsCarryThePictureSize(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"libx264", "libx265"} {
		t.Run(codec, func(t *testing.T) {
			pkts, _, _, _ := demuxAll(makeTS(t, 2, 25, codec, 0), 1316)
			keys := 0
			for _, p := range pkts {
				if p.Key && p.Primary {
					keys++
					if p.Width != 160 || p.Height != 120 {
						t.Fatalf("key packet at %d: size %dx%d, want 160x120", p.Offset, p.Width, p.Height)
					}
				} else if p.Width != 0 || p.Height != 0 {
					t.Fatalf("packet at %d (not a key frame) has a size %dx%d", p.Offset, p.Width, p.Height)
				}
			}
			if keys < 2 {
				t.Fatalf("%d key packets, want one per second", keys)
			}
		})
	}
}
