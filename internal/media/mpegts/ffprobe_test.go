package mpegts

import (
	"fmt"
	"slices"
	"testing"
)

// ffprobeCodec is ffprobe's name for a codec.
var ffprobeCodec = map[Codec]string{CodecH264: "h264", CodecH265: "hevc", CodecAAC: "aac", CodecMPEGAudio: "mp3"}

// countFrames counts the audio frames in a PES payload.
func countFrames(t *testing.T, p *PES) int {
	frameLen := adtsFrameLen
	if p.Stream.Codec == CodecMPEGAudio {
		frameLen = mpegAudioFrameLen
	}
	n := 0
	for b := p.Data; len(b) > 0; n++ {
		l := frameLen(b)
		if l <= 0 || l > len(b) {
			t.Fatalf("%v: PES at byte %d holds %d whole frames, then %d bytes that are not one", p.Stream, p.Offset, n, len(b))
		}
		b = b[l:]
	}
	return n
}

// TestDemuxAgreesWithFFprobe reads real ffmpeg output and checks codecs,
// timestamps and key frames against ffprobe's packets: the video PES one
// for one (PTS and key flag), and the audio PES as runs of ffprobe's audio
// frames, starting at the PES timestamp.
func TestDemuxAgreesWithFFprobe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		make func(t *testing.T) []byte
	}{
		{"h264 and aac", func(t *testing.T) []byte { return makeTS(t, 3, 25, "libx264", 0) }},
		{"h265 and aac", func(t *testing.T) []byte { return makeTS(t, 3, 12, "libx265", 10) }},
		{"mp3 only", func(t *testing.T) []byte { return makeMP3TS(t, 3) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := tc.make(t)
			want := probe(t, ts)
			pkts, pes, errs, d := demuxAll(ts, 1000)
			if len(errs) > 0 {
				t.Errorf("errors reading ffmpeg's output: %v", errs)
			}
			prog := d.Program()
			if prog == nil || len(prog.Streams) != len(want.Streams) {
				t.Fatalf("program %+v, ffprobe sees %d streams", prog, len(want.Streams))
			}
			for i, ws := range want.Streams {
				s := prog.Stream(want.pid(t, i))
				if s == nil || ffprobeCodec[s.Codec] != ws.CodecName || s.Kind.String() != ws.CodecType {
					t.Fatalf("ffprobe stream %d: %s %s on %s; demuxer: %v", i, ws.CodecType, ws.CodecName, ws.ID, s)
				}
				compareStream(t, want, i, s, pes)
			}
			// Packet key flags agree with ffprobe's key frames of the
			// primary stream (every audio frame is one, for audio).
			var keys []int64
			for _, p := range pkts {
				if p.Key {
					keys = append(keys, toTicks(p.PTS))
				}
			}
			var pesKeys []int64
			for _, p := range pes {
				if p.Stream == prog.Primary && p.Key {
					pesKeys = append(pesKeys, toTicks(p.PTS))
				}
			}
			if !slices.Equal(keys, pesKeys) || len(keys) == 0 {
				t.Errorf("key packets at %v, key PES of the primary stream at %v", keys, pesKeys)
			}
		})
	}
}

func compareStream(t *testing.T, want probed, index int, s *Stream, pes []*PES) {
	t.Helper()
	var wantPTS []int64
	var wantKey []bool
	for _, p := range want.Packets {
		if p.StreamIndex == index && p.PTS != nil {
			wantPTS = append(wantPTS, *p.PTS)
			wantKey = append(wantKey, p.Flags[0] == 'K')
		}
	}
	var mine []*PES
	for _, p := range pes {
		if p.Stream == s {
			mine = append(mine, p)
		}
	}
	if s.Kind == KindVideo {
		var gotPTS []int64
		var gotKey []bool
		for _, p := range mine {
			gotPTS = append(gotPTS, toTicks(p.PTS))
			gotKey = append(gotKey, p.Key)
		}
		if !slices.Equal(gotPTS, wantPTS) || !slices.Equal(gotKey, wantKey) {
			t.Errorf("%v: PES\n%v\n%v\nffprobe\n%v\n%v", s, gotPTS, gotKey, wantPTS, wantKey)
		}
		if !slices.Contains(gotKey, true) || !slices.Contains(gotKey, false) {
			t.Errorf("%v: key flags %v, want both key and other frames", s, gotKey)
		}
		return
	}
	// Audio: each PES holds a run of frames; ffprobe lists frames.
	frame := 0
	for _, p := range mine {
		if frame >= len(wantPTS) || toTicks(p.PTS) != wantPTS[frame] || !p.Key {
			t.Fatalf("%v: PES at %d (key %v) should start at ffprobe's frame %d of %d (%v)", s, toTicks(p.PTS), p.Key, frame, len(wantPTS), fmt.Sprint(wantPTS[min(frame, len(wantPTS)-1)]))
		}
		frame += countFrames(t, p)
	}
	if frame != len(wantPTS) {
		t.Errorf("%v: %d frames in the PES, ffprobe counts %d", s, frame, len(wantPTS))
	}
}
