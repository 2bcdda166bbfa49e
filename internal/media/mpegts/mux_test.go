package mpegts

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// rtmpLike turns demuxed PES into what gortmplib hands a publisher's
// callbacks: NAL units without start codes, access unit delimiters and
// parameter sets (which RTMP sends once, in its sequence header); raw AAC
// frames; timestamps from 0 (the first video decode time).
type rtmpWrite struct {
	video    bool
	pts, dts time.Duration
	au       [][]byte
	key      bool
}

func nalType(codec Codec, n []byte) int {
	if codec == CodecH265 {
		return int(n[0] >> 1 & 0x3f)
	}
	return int(n[0] & 0x1f)
}

func rtmpLike(t *testing.T, pes []*PES, video *Stream) (writes []rtmpWrite, params [][]byte, cfg *mpeg4audio.AudioSpecificConfig) {
	t.Helper()
	base := time.Duration(-1)
	for _, p := range pes {
		if p.Stream == video && base < 0 {
			base = p.DTS
		}
	}
	// In-band parameter sets, AUDs: H.264 7, 8, 9; H.265 32, 33, 34, 35.
	param := map[Codec][]int{CodecH264: {7, 8}, CodecH265: {32, 33, 34}}[video.Codec]
	aud := map[Codec]int{CodecH264: 9, CodecH265: 35}[video.Codec]
	for _, p := range pes {
		if p.Stream == video {
			var au h264.AnnexB
			if err := au.Unmarshal(p.Data); err != nil {
				t.Fatal(err)
			}
			var kept [][]byte
			for _, n := range au {
				switch typ := nalType(video.Codec, n); {
				case typ == aud:
				case slices.Contains(param, typ):
					if len(params) < len(param) {
						params = append(params, n)
					}
				default:
					kept = append(kept, n)
				}
			}
			writes = append(writes, rtmpWrite{video: true, pts: p.PTS - base, dts: p.DTS - base, au: kept, key: p.Key})
			continue
		}
		var frames mpeg4audio.ADTSPackets
		if err := frames.Unmarshal(p.Data); err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			cfg = &mpeg4audio.AudioSpecificConfig{Type: f.Type, SampleRate: f.SampleRate, ChannelCount: f.ChannelCount} //nolint:staticcheck
			at := p.PTS - base + time.Duration(i)*mpeg4audio.SamplesPerAccessUnit*time.Second/time.Duration(f.SampleRate)
			writes = append(writes, rtmpWrite{pts: at, dts: at, au: [][]byte{f.AU}})
		}
	}
	sort.SliceStable(writes, func(i, j int) bool { return writes[i].dts < writes[j].dts })
	return writes, params, cfg
}

// TestMuxerRoundTripAgreesWithFFprobe demuxes ffmpeg's output, muxes its
// access units again as an RTMP publisher would deliver them (parameter
// sets out of band), and checks ffprobe's view of the result: the codecs,
// every video timestamp moved by TimestampOffset, the key frames, every
// audio frame; and that every key frame carries its parameter sets.
func TestMuxerRoundTripAgreesWithFFprobe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ encoder, codec string }{{"libx264", "h264"}, {"libx265", "hevc"}} {
		t.Run(tc.codec, func(t *testing.T) {
			t.Parallel()
			src := makeTS(t, 3, 25, tc.encoder, 0)
			_, pes, _, d := demuxAll(src, len(src))
			video := d.Program().Primary
			writes, params, cfg := rtmpLike(t, pes, video)
			m, err := NewMuxer(MuxTrack{Codec: video.Codec, ParameterSets: params}, MuxTrack{Codec: CodecAAC, AACConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			var out []byte
			var wantPTS []int64
			var wantKey []bool
			audioFrames := 0
			for _, w := range writes {
				var b []byte
				if w.video {
					b, err = m.WriteVideo(w.pts, w.dts, w.au)
					wantPTS = append(wantPTS, toTicks(w.pts+TimestampOffset))
					wantKey = append(wantKey, w.key)
				} else {
					b, err = m.WriteAAC(w.pts, w.au[0])
					audioFrames++
				}
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b...)
			}

			got := probe(t, out)
			if len(got.Streams) != 2 || got.Streams[0].CodecName != tc.codec || got.Streams[1].CodecName != "aac" {
				t.Fatalf("ffprobe sees streams %+v, want %s and aac", got.Streams, tc.codec)
			}
			var gotPTS []int64
			var gotKey []bool
			gotAudio := 0
			for _, p := range got.Packets {
				if p.StreamIndex == 0 {
					gotPTS = append(gotPTS, *p.PTS)
					gotKey = append(gotKey, p.Flags[0] == 'K')
				} else {
					gotAudio++
				}
			}
			if !slices.Equal(gotPTS, wantPTS) || !slices.Equal(gotKey, wantKey) {
				t.Errorf("video packets\n%v\n%v\nwant\n%v\n%v", gotPTS, gotKey, wantPTS, wantKey)
			}
			if gotAudio != audioFrames {
				t.Errorf("ffprobe counts %d audio frames, %d were written", gotAudio, audioFrames)
			}

			_, again, errs, _ := demuxAll(out, len(out))
			if len(errs) > 0 {
				t.Errorf("reading the muxer's output: %v", errs)
			}
			keys := 0
			for _, p := range again {
				if p.Stream.Kind == KindVideo && p.Key {
					keys++
					for _, ps := range params {
						if !bytes.Contains(p.Data, ps) {
							t.Fatalf("key frame at %v lacks a parameter set", p.PTS)
						}
					}
				}
			}
			if keys != 3 {
				t.Errorf("%d key frames in the muxer's output, want 3", keys)
			}
		})
	}
}

// TestAudioRemuxerMakesPlayableMPEGTS wraps an ADTS stream and an MP3
// stream with an ID3 tag, cut at random places, and checks ffprobe's view:
// the codec, the duration, and the first frame at TimestampOffset.
func TestAudioRemuxerMakesPlayableMPEGTS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, format, encoder, probeCodec string
		codec                             Codec
	}{
		{"aac in adts", "adts", "aac", "aac", CodecAAC},
		{"mp3 with an id3 tag", "mp3", "libmp3lame", "mp3", CodecMPEGAudio},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := makeMedia(t, tc.format, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3",
				"-c:a", tc.encoder, "-b:a", "64k")
			r, err := NewAudioRemuxer(tc.codec)
			if err != nil {
				t.Fatal(err)
			}
			var ts []byte
			rng := rand.New(rand.NewPCG(1, 2))
			for rest := src; len(rest) > 0; {
				n := min(1+rng.IntN(3000), len(rest))
				out, err := r.Remux(rest[:n])
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, out...)
				rest = rest[n:]
			}
			got := probe(t, ts)
			if len(got.Streams) != 1 || got.Streams[0].CodecName != tc.probeCodec {
				t.Fatalf("streams %+v, want one %s stream", got.Streams, tc.probeCodec)
			}
			frames := len(got.Packets)
			first, last := *got.Packets[0].PTS, *got.Packets[frames-1].PTS
			if first != toTicks(TimestampOffset) {
				t.Errorf("first frame at %d, want %d", first, toTicks(TimestampOffset))
			}
			if d := time.Duration(last-first) * time.Second / 90000; d < 2900*time.Millisecond || d > 3100*time.Millisecond {
				t.Errorf("%d frames spanning %v, want about 3 s", frames, d)
			}
		})
	}
}

func TestMuxerRefusesWhatItCannotWrite(t *testing.T) {
	cfg := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelCount: 2} //nolint:staticcheck
	for name, tracks := range map[string][]MuxTrack{
		"no tracks":          nil,
		"two video tracks":   {{Codec: CodecH264}, {Codec: CodecH265}},
		"two audio tracks":   {{Codec: CodecAAC, AACConfig: cfg}, {Codec: CodecMPEGAudio}},
		"aac without config": {{Codec: CodecAAC}},
		"unknown codec":      {{Codec: CodecUnknown}},
	} {
		if _, err := NewMuxer(tracks...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	m, err := NewMuxer(MuxTrack{Codec: CodecMPEGAudio})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAAC(0, []byte{1}); err == nil {
		t.Error("aac written to a muxer with an mp3 track")
	}
	if _, err := m.WriteVideo(0, 0, [][]byte{{0x65}}); err == nil {
		t.Error("video written to a muxer without a video track")
	}
	if _, err := NewAudioRemuxer(CodecH264); err == nil {
		t.Error("an audio remuxer for h264")
	}
}
