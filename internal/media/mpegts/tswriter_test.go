package mpegts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// TestMuxerOutputDecodesCleanlyWithAudioFirst muxes ffmpeg's H.264 + AAC
// as an RTMP publisher that sends its first audio frames before the first
// video frame would, and checks that ffmpeg decodes every frame without a
// word of complaint (continuity counters, PES and adaptation fields, the
// clock), that the PAT and PMT come once at the start and in front of each
// key frame only, and that each key frame's first packet has the random
// access indicator and a PCR.
func TestMuxerOutputDecodesCleanlyWithAudioFirst(t *testing.T) {
	t.Parallel()
	src := makeTS(t, 3, 25, "libx264", 0)
	_, pes, _, d := demuxAll(src, len(src))
	video := d.Program().Primary
	writes, params, cfg := rtmpLike(t, pes, video)
	// Audio first: move the first two audio writes to the front.
	var audio []rtmpWrite
	for i := 0; i < len(writes) && len(audio) < 2; i++ {
		if !writes[i].video {
			audio = append(audio, writes[i])
			writes = append(writes[:i], writes[i+1:]...)
			i--
		}
	}
	writes = append(audio, writes...)
	m, err := NewMuxer(MuxTrack{Codec: video.Codec, ParameterSets: params}, MuxTrack{Codec: CodecAAC, AACConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	keys := 0
	for _, w := range writes {
		var b []byte
		if w.video {
			b, err = m.WriteVideo(w.pts, w.dts, w.au)
			if w.key {
				keys++
				checkKeyPacket(t, b)
			}
		} else {
			b, err = m.WriteAAC(w.pts, w.au[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%packetSize != 0 {
			t.Fatalf("a write of %d bytes: not whole packets", len(b))
		}
		out = append(out, b...)
	}
	if pats := countPID(out, patPID); pats != keys+1 {
		t.Errorf("%d PATs for %d key frames, want one at the start and one per key frame", pats, keys)
	}
	ffmpegDecodesCleanly(t, out)
}

// checkKeyPacket checks that b (a key frame's write) starts with the PAT
// and PMT, then a video packet with the random access indicator and a PCR.
func checkKeyPacket(t *testing.T, b []byte) {
	t.Helper()
	i := 0
	for ; i+packetSize <= len(b); i += packetSize {
		if pid := uint16(b[i+1]&0x1f)<<8 | uint16(b[i+2]); pid != patPID && pid != pmtPID {
			break
		}
	}
	if i != 2*packetSize {
		t.Fatalf("key frame write starts with %d table packets, want 2", i/packetSize)
	}
	p := b[i:]
	if p[3]&0x20 == 0 || p[4] < 7 || p[5]&0x40 == 0 || p[5]&0x10 == 0 {
		t.Fatalf("key frame's first packet: adaptation field %x, want the random access indicator and a PCR", p[3:12])
	}
}

func countPID(b []byte, pid uint16) int {
	n := 0
	for i := 0; i+packetSize <= len(b); i += packetSize {
		if uint16(b[i+1]&0x1f)<<8|uint16(b[i+2]) == pid {
			n++
		}
	}
	return n
}

// ffmpegDecodesCleanly decodes ts with ffmpeg at its strictest log level
// for stream damage and fails on anything it prints.
func ffmpegDecodesCleanly(t *testing.T, ts []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "out.ts")
	if err := os.WriteFile(f, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", f, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("ffmpeg decoding the muxer's output: %v\n%s", err, out)
	}
}

// TestTSWriterPacketsEveryPayloadSize writes audio-only PES of every size
// from 1 to 600 bytes (every way a payload can end in a packet, stuffing
// included, with and without a PCR) and reads them back whole with the
// demuxer, checking the packets' continuity and the tables' cadence.
func TestTSWriterPacketsEveryPayloadSize(t *testing.T) {
	m, err := NewMuxer(MuxTrack{Codec: CodecMPEGAudio})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	var want [][]byte
	for n := 1; n <= 600; n++ {
		frame := bytes.Repeat([]byte{byte(n)}, n)
		b, err := m.WriteMPEGAudio(time.Duration(n)*time.Millisecond, frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%packetSize != 0 {
			t.Fatalf("frame of %d bytes: %d bytes written, not whole packets", n, len(b))
		}
		out = append(out, b...)
		want = append(want, frame)
	}
	_, pes, errs, _ := demuxAll(out, len(out))
	if len(errs) > 0 {
		t.Fatalf("reading the writer's output: %v", errs)
	}
	if len(pes) != len(want) {
		t.Fatalf("%d PES read back, want %d", len(pes), len(want))
	}
	for i, p := range pes {
		if !bytes.Equal(p.Data, want[i]) {
			t.Fatalf("PES %d: %d bytes back, want %d", i, len(p.Data), len(want[i]))
		}
		if d := p.PTS - pes[0].PTS; d != time.Duration(i)*time.Millisecond {
			t.Fatalf("PES %d at %v after the first, want %v", i, d, time.Duration(i)*time.Millisecond)
		}
	}
	if pats, want := countPID(out, patPID), 1+(600-1)/tablesEvery; pats != want {
		t.Errorf("%d PATs in 600 audio frames, want %d (the start, then every %d)", pats, want, tablesEvery)
	}
}

// TestMuxerRefusesAnAACConfigADTSCannotCarry: ADTS has no room for object
// types past 4 or unknown sample rates; the muxer says so when it is made,
// not at the first frame.
func TestMuxerRefusesAnAACConfigADTSCannotCarry(t *testing.T) {
	for _, c := range []mpeg4audio.AudioSpecificConfig{
		{Type: 5, SampleRate: 44100, ChannelConfig: 2},
		{Type: 2, SampleRate: 12345, ChannelConfig: 2},
	} {
		if _, err := NewMuxer(MuxTrack{Codec: CodecAAC, AACConfig: &c}); err == nil {
			t.Errorf("NewMuxer accepted AAC %+v", c)
		}
	}
}
