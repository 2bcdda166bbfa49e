package engines

import (
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// toneAt23 writes 20 s of a stereo 1 kHz sine at -23 dBFS peak in each
// channel: -23.0 LUFS by EBU Tech 3341's first test case, with a true
// peak of -23 dBTP.
func toneAt23(tb testing.TB, name string, codec ...string) string {
	args := append([]string{"-f", "lavfi", "-i", "aevalsrc=0.0707946*sin(2*PI*1000*t)|0.0707946*sin(2*PI*1000*t):s=48000:d=20"}, codec...)
	return levelsMedia(tb, name, args...)
}

// programmeAt23 writes 30 s of a varying programme (pink noise and a
// swept tone whose levels change) brought to -23 LUFS: the raw mix is
// measured with ffmpeg's ebur128 and scaled by the difference, which
// moves integrated loudness by exactly that gain.
func programmeAt23(tb testing.TB, name string, codec ...string) string {
	raw := levelsMedia(tb, "raw.wav", "-f", "lavfi", "-i", "anoisesrc=color=pink:r=48000:a=0.2:d=30",
		"-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*(300+200*sin(t))*t)*(0.3+0.7*gt(mod(t\\,6)\\,3)):s=48000:d=30",
		"-filter_complex", "[0][1]amix=inputs=2,volume='0.5+0.5*gt(mod(t,10),5)':eval=frame,pan=stereo|c0=c0|c1=c0",
		"-c:a", "pcm_f32le")
	gain := -23 - referenceIntegrated(tb, raw)
	args := []string{"-i", raw, "-af", "volume=" + strconv.FormatFloat(gain, 'f', 2, 64) + "dB"}
	return levelsMedia(tb, name, append(args, codec...)...)
}

var ffmpegIntegrated = regexp.MustCompile(`(?s)Summary:.*?I:\s*(-?[0-9.]+) LUFS`)

// referenceIntegrated is ffmpeg's own ebur128 summary of the file, run
// apart from the engine.
func referenceIntegrated(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostats", "-i", path, "-af", "ebur128", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg ebur128: %v", err)
	}
	m := ffmpegIntegrated.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in ffmpeg's ebur128 log:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// tagFloat reads tag key of tags as a number.
func tagFloat(t *testing.T, tags []protocol.Tag, key string) float64 {
	t.Helper()
	for _, tag := range tags {
		if tag.Key == key {
			v, err := strconv.ParseFloat(tag.Value, 64)
			if err != nil {
				t.Fatalf("tag %s=%q is not a number", key, tag.Value)
			}
			return v
		}
	}
	t.Fatalf("no tag %s in %+v", key, tags)
	return 0
}

// loudnessResult splits the pieces into the time series and the summary,
// checking their shape.
func loudnessResult(t *testing.T, pieces []engine.Piece) (series []protocol.Series, summary []protocol.Tag) {
	t.Helper()
	if len(pieces) < 2 {
		t.Fatalf("got %d pieces, want a time series and a summary", len(pieces))
	}
	last := pieces[len(pieces)-1]
	if last.StartMs != last.EndMs || len(last.Doc.Series) != 0 || len(last.Doc.Tags) == 0 || last.Doc.Tags[0].Key != "summary" {
		t.Fatalf("last piece [%d, %d] should be the zero-length summary: %+v", last.StartMs, last.EndMs, last.Doc)
	}
	for _, p := range pieces[:len(pieces)-1] {
		if len(p.Doc.Series) != 1 {
			t.Fatalf("piece [%d, %d] holds %d series, want 1", p.StartMs, p.EndMs, len(p.Doc.Series))
		}
		series = append(series, p.Doc.Series[0])
	}
	return series, last.Doc.Tags
}

func TestLoudnessToneAtMinus23(t *testing.T) {
	path := toneAt23(t, "tone.wav", "-c:a", "pcm_s16le")
	pieces, bound := runStreamEngine(t, "loudness", path, "wav", nil)
	series, summary := loudnessResult(t, pieces)
	if len(series) != 20 {
		t.Errorf("got %d pieces of 1 s for 20 s, want 20", len(series))
	}
	for i, s := range series {
		if s.StartTimeMs != int64(i)*1000 || s.StopTimeMs != int64(i+1)*1000 {
			t.Errorf("piece %d is [%d, %d], want [%d, %d]", i, s.StartTimeMs, s.StopTimeMs, i*1000, (i+1)*1000)
		}
	}
	if bound != 20000 {
		t.Errorf("final bound %d, want 20000", bound)
	}
	ref := referenceIntegrated(t, path)
	got := tagFloat(t, summary, "integrated_lufs")
	t.Logf("integrated %.1f LUFS, ffmpeg's summary %.1f, truth -23.0", got, ref)
	if math.Abs(got-ref) > 0.5 || math.Abs(got+23) > 0.5 {
		t.Errorf("integrated %.1f LUFS, want -23 ±0.5 and within 0.5 LU of ffmpeg's %.1f", got, ref)
	}
	if tp := tagFloat(t, summary, "true_peak_dbtp"); math.Abs(tp+23) > 0.5 {
		t.Errorf("true peak %.1f dBTP, want -23 ±0.5", tp)
	}
	mid := series[10].Tags
	for _, key := range []string{"momentary_lufs", "short_term_lufs", "integrated_lufs"} {
		if v := tagFloat(t, mid, key); math.Abs(v+23) > 0.5 {
			t.Errorf("at 10 s %s = %.1f, want -23 ±0.5", key, v)
		}
	}
	if v := tagFloat(t, mid, "true_peak_dbtp"); math.Abs(v+23) > 0.5 {
		t.Errorf("at 10 s true_peak_dbtp = %.1f, want -23 ±0.5", v)
	}
}

func TestLoudnessProgrammeMatchesFFmpegSummary(t *testing.T) {
	path := programmeAt23(t, "programme.wav", "-c:a", "pcm_s16le")
	pieces, _ := runStreamEngine(t, "loudness", path, "wav", map[string]any{"interval": "250ms"})
	series, summary := loudnessResult(t, pieces)
	// 250ms is rounded up to 300ms: 100 pieces in 30 s.
	if n := len(series); n != 100 || series[1].StartTimeMs != 300 {
		t.Errorf("got %d pieces, the second at %d ms; want 100 of 300 ms", n, series[1].StartTimeMs)
	}
	ref := referenceIntegrated(t, path)
	got := tagFloat(t, summary, "integrated_lufs")
	t.Logf("integrated %.1f LUFS, ffmpeg's summary %.1f, truth -23.0", got, ref)
	if math.Abs(got-ref) > 0.5 || math.Abs(got+23) > 0.5 {
		t.Errorf("integrated %.1f LUFS, want -23 ±0.5 and within 0.5 LU of ffmpeg's %.1f", got, ref)
	}
	if last := tagFloat(t, series[len(series)-1].Tags, "integrated_lufs"); math.Abs(last-got) > 0.5 {
		t.Errorf("the last piece's integrated-so-far %.1f differs from the summary's %.1f", last, got)
	}
	if lra := tagFloat(t, summary, "lra_lu"); lra <= 0 {
		t.Errorf("loudness range %.1f LU of a varying programme, want > 0", lra)
	}
	for _, key := range []string{"integrated_threshold_lufs", "lra_threshold_lufs", "lra_low_lufs", "lra_high_lufs"} {
		tagFloat(t, summary, key)
	}
}

func TestLoudnessLive(t *testing.T) {
	path := toneAt23(t, "tone.ts", "-c:a", "aac", "-b:a", "192k", "-f", "mpegts")
	pieces, eof := levelsLive(t, "loudness", path, nil)
	assertLiveBeforeEnd(t, pieces, eof)
	var ps []engine.Piece
	for _, p := range pieces {
		ps = append(ps, p.Piece)
	}
	_, summary := loudnessResult(t, ps)
	if v := tagFloat(t, summary, "integrated_lufs"); math.Abs(v+23) > 0.5 {
		t.Errorf("integrated %.1f LUFS over AAC in MPEG-TS, want -23 ±0.5", v)
	}
}

func TestLoudnessNeedsAudio(t *testing.T) {
	path := levelsMedia(t, "video.ts", "-f", "lavfi", "-i", "testsrc2=s=160x120:d=1", "-c:v", "libx264", "-f", "mpegts")
	if err := levelsRunErr(t, "loudness", path, "mpegts", nil); err == nil {
		t.Fatal("loudness of a file without audio succeeded")
	}
}

func TestLoudnessParsesEbur128Lines(t *testing.T) {
	f, ok := parseEbur128Frame("t: 4.69998    TARGET:-23 LUFS    M: -21.1 S:   nan     I: -70.0 LUFS       LRA:   0.0 LU  FTPK: -21.4 -19.2 dBFS  TPK:  -inf -18.0 dBFS")
	if !ok || f.tMs != 4700 || f.m != -21.1 || !math.IsInf(f.s, -1) || f.i != -70 || f.ftpk != -19.2 || f.tpk != -18 {
		t.Fatalf("parsed %+v, %v", f, ok)
	}
	if _, ok := parseEbur128Frame("Summary:"); ok {
		t.Fatal("a summary line parsed as a frame")
	}
}

func BenchmarkLoudness(b *testing.B) {
	path := programmeAt23(b, "programme.wav", "-c:a", "pcm_s16le")
	benchStream(b, "loudness", path, "wav", 30, nil)
}
