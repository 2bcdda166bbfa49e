package fmp4

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/testenv"
)

// source is real ffmpeg output, demuxed into samples.
type source struct {
	video, audio []Sample
	vcfg         *H264Config
	acfg         *AACConfig
}

func makeSource(t testing.TB, seconds int) source {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "in.ts")
	d := strconv.Itoa(seconds)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + d,
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "2",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "1", "-b:a", "32k", "-f", "mpegts", out}
	if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, msg)
	}
	ts, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s source
	var failed error
	d2 := mpegts.NewDemuxer(mpegts.OnPES(func(p *mpegts.PES) {
		if failed != nil || !p.HasPTS {
			return
		}
		switch p.Stream.Codec {
		case mpegts.CodecH264:
			avcc, sps, pps, idr := AnnexBToAVCC(p.Data)
			if s.vcfg == nil && sps != nil && pps != nil {
				s.vcfg = &H264Config{SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}
			}
			s.video = append(s.video, Sample{DTS: p.DTS, PTS: p.PTS, Key: idr, Data: avcc})
		case mpegts.CodecAAC:
			frames, cfg, err := ADTSFrames(p.Data)
			if err != nil {
				failed = err
				return
			}
			s.acfg = &cfg
			for i, f := range frames {
				at := p.PTS + time.Duration(i)*AudioFrameSamples*time.Second/time.Duration(cfg.SampleRate)
				s.audio = append(s.audio, Sample{DTS: at, PTS: at, Key: true, Data: f})
			}
		}
	}))
	d2.Flush(d2.Feed(ts, time.Now(), nil))
	if failed != nil {
		t.Fatal(failed)
	}
	if s.vcfg == nil || s.acfg == nil || len(s.video) < 30*seconds-2 || len(s.audio) == 0 {
		t.Fatalf("demuxed %d video samples (config %v), %d audio", len(s.video), s.vcfg != nil, len(s.audio))
	}
	return s
}

// parts cuts the source into fragments of n video frames each, audio by
// decode time, as the live packager cuts parts.
func (s source) parts(t testing.TB, w *Writer, n int) [][]byte {
	t.Helper()
	var out [][]byte
	ai := 0
	for vi := 0; vi < len(s.video); vi += n {
		end := min(vi+n, len(s.video))
		vEnd := s.video[end-1].DTS + time.Second/30
		if end < len(s.video) {
			vEnd = s.video[end].DTS
		}
		aj := ai
		for aj < len(s.audio) && (s.audio[aj].DTS < vEnd || end == len(s.video)) {
			aj++
		}
		aEnd := vEnd
		if aj < len(s.audio) {
			aEnd = s.audio[aj].DTS
		} else if aj > 0 {
			aEnd = s.audio[aj-1].DTS + AudioFrameSamples*time.Second/time.Duration(s.acfg.SampleRate)
		}
		frag, err := w.Fragment(s.video[vi:end], vEnd, s.audio[ai:aj], aEnd)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frag)
		ai = aj
	}
	return out
}

type probeOut struct {
	Streams []struct {
		CodecType   string `json:"codec_type"`
		CodecName   string `json:"codec_name"`
		Width       int    `json:"width"`
		Channels    int    `json:"channels"`
		SampleRate  string `json:"sample_rate"`
		NbReadFrame string `json:"nb_read_frames"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, data []byte) probeOut {
	t.Helper()
	testenv.RequireTool(t, "ffprobe")
	f := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", f).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p probeOut
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInitAndPartsPlayInFFprobe writes ffmpeg's H.264 + AAC as an init
// segment and 10-frame fragments, and has ffprobe decode every frame of
// the concatenation.
func TestInitAndPartsPlayInFFprobe(t *testing.T) {
	src := makeSource(t, 3)
	w, err := NewWriter(src.vcfg, src.acfg)
	if err != nil {
		t.Fatal(err)
	}
	init, err := w.Init()
	if err != nil {
		t.Fatal(err)
	}
	tracks, err := hls.ParseInit(init)
	if err != nil || len(tracks) != 2 || tracks[0].Codec == "" || tracks[1].Codec != "mp4a.40.2" || tracks[0].Width != 160 || tracks[1].Channels != 1 {
		t.Fatalf("init tracks %+v (%v)", tracks, err)
	}
	parts := src.parts(t, w, 10)
	all := append([]byte{}, init...)
	for i, p := range parts {
		info, err := hls.InspectFMP4(p, tracks)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if want := src.video[i*10].DTS; info.Duration <= 0 || info.Start < 0 {
			t.Fatalf("part %d: start %v duration %v (first DTS %v)", i, info.Start, info.Duration, want)
		}
		all = append(all, p...)
	}
	got := ffprobe(t, all)
	if len(got.Streams) != 2 {
		t.Fatalf("ffprobe sees %+v", got)
	}
	v, a := got.Streams[0], got.Streams[1]
	if v.CodecName != "h264" || v.Width != 160 || v.NbReadFrame != strconv.Itoa(len(src.video)) {
		t.Errorf("video: %+v, want h264 160 wide with %d frames", v, len(src.video))
	}
	if a.CodecName != "aac" || a.Channels != 1 || a.SampleRate != "48000" || a.NbReadFrame != strconv.Itoa(len(src.audio)) {
		t.Errorf("audio: %+v, want mono 48 kHz aac with %d frames", a, len(src.audio))
	}
}

func TestWriterRefuses(t *testing.T) {
	if _, err := NewWriter(nil, nil); err == nil {
		t.Error("writer without tracks")
	}
	if _, err := NewWriter(nil, &AACConfig{ObjectType: 2, SampleRate: 0, Channels: 2}); err == nil {
		t.Error("zero sample rate")
	}
	w, _ := NewWriter(nil, &AACConfig{ObjectType: 2, SampleRate: 48000, Channels: 2})
	if _, err := w.Fragment([]Sample{{Data: []byte{1}}}, 1, nil, 0); err == nil {
		t.Error("video samples on an audio-only writer")
	}
	if _, err := w.Fragment(nil, 0, []Sample{{DTS: time.Second, Data: []byte{1}}}, 0); err == nil {
		t.Error("end before the last sample")
	}
	if _, err := w.Fragment(nil, 0, nil, 0); err == nil {
		t.Error("empty fragment")
	}
	if _, _, err := ADTSFrames([]byte{0xff, 0xf1, 0x50, 0x80, 0x10, 0x1f, 0xfc, 1, 2}); err == nil {
		t.Error("truncated ADTS frame")
	}
}

// FuzzWriter feeds hostile parameter sets, ADTS payloads and access units
// through the writer: errors, never panics, and a fragment that is written
// parses back.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0, 0, 0, 1, 0x65, 0x88, 0x84},
		[]byte{0xff, 0xf1, 0x50, 0x80, 0x01, 0x7f, 0xfc, 0x21, 0x10, 0x04})
	f.Fuzz(func(t *testing.T, au, adts []byte) {
		avcc, sps, pps, idr := AnnexBToAVCC(au)
		var vc *H264Config
		if sps != nil && pps != nil {
			vc = &H264Config{SPS: sps, PPS: pps}
		}
		frames, ac, aerr := ADTSFrames(adts)
		var acp *AACConfig
		if aerr == nil {
			acp = &ac
		}
		w, err := NewWriter(vc, acp)
		if err != nil {
			return
		}
		init, err := w.Init()
		if err != nil {
			return
		}
		tracks, err := hls.ParseInit(init)
		if err != nil {
			return // mp4ff wrote a parameter set ParseSPS refuses
		}
		var vs, as []Sample
		if vc != nil && len(avcc) > 0 {
			vs = []Sample{{DTS: 0, PTS: 0, Key: idr, Data: avcc}}
		}
		if acp != nil {
			for i, fr := range frames {
				if len(fr) > 0 {
					as = append(as, Sample{DTS: time.Duration(i) * 20 * time.Millisecond, Data: fr})
				}
			}
		}
		frag, err := w.Fragment(vs, 33*time.Millisecond, as, time.Duration(len(frames))*20*time.Millisecond)
		if err != nil {
			return
		}
		if _, err := hls.InspectFMP4(frag, tracks); err != nil {
			t.Fatalf("fragment written does not inspect: %v", err)
		}
	})
}
