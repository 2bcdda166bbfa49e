package engines

import (
	"strings"
	"testing"

	"github.com/weir-media/weir/engine"
)

// silenceClip writes 11 s of audio with silences at known times: tone
// 0-3 s, silence 3-4.5 s, tone 4.5-7 s, silence 7-7.8 s, tone 7.8-10 s,
// silence 10-11 s (still open at the end).
func silenceClip(tb testing.TB, name string, codec ...string) string {
	tb.Helper()
	tone := func(d string) []string {
		return []string{"-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*440*t)+0.05*sin(2*PI*3000*t):s=48000:d=" + d}
	}
	gap := func(d string) []string {
		return []string{"-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono:d=" + d}
	}
	var args []string
	for _, in := range [][]string{tone("3"), gap("1.5"), tone("2.5"), gap("0.8"), tone("2.2"), gap("1")} {
		args = append(args, in...)
	}
	args = append(args, "-filter_complex", "[0][1][2][3][4][5]concat=n=6:v=0:a=1")
	args = append(args, codec...)
	return levelsMedia(tb, name, args...)
}

var silenceTruth = []interval{{3000, 4500}, {7000, 7800}, {10000, 11000}}

func TestSilenceFindsGapsAtKnownTimes(t *testing.T) {
	path := silenceClip(t, "gaps.wav", "-c:a", "pcm_s16le")
	pieces, bound := runStreamEngine(t, "silence", path, "wav", nil)
	assertIntervals(t, "silence", seriesWithTag(pieces, "silence", ""), silenceTruth, 50)
	if bound < 10950 {
		t.Errorf("final bound %d ms, want the end of the input (11000)", bound)
	}
	for _, p := range pieces {
		if len(p.Doc.Series) != 1 || p.StartMs != p.Doc.Series[0].StartTimeMs || p.EndMs != p.Doc.Series[0].StopTimeMs {
			t.Errorf("piece [%d, %d] should hold exactly its silence: %+v", p.StartMs, p.EndMs, p.Doc.Series)
		}
	}
}

func TestSilenceOptionsChangeWhatCounts(t *testing.T) {
	path := silenceClip(t, "gaps.wav", "-c:a", "pcm_s16le")
	// The 0.8 s gap is shorter than 1 s.
	pieces, _ := runStreamEngine(t, "silence", path, "wav", map[string]any{"min_duration": "1s"})
	assertIntervals(t, "silence", seriesWithTag(pieces, "silence", ""), []interval{{3000, 4500}, {10000, 11000}}, 50)
	// At +0 dBFS nothing is loud enough to be sound: the whole clip is silent.
	pieces, _ = runStreamEngine(t, "silence", path, "wav", map[string]any{"threshold": 0.0})
	assertIntervals(t, "silence", seriesWithTag(pieces, "silence", ""), []interval{{0, 11000}}, 50)
}

func TestSilenceLive(t *testing.T) {
	path := silenceClip(t, "gaps.ts", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts")
	pieces, eof := levelsLive(t, "silence", path, nil)
	assertLiveBeforeEnd(t, pieces, eof)
	var ps []engine.Piece
	for _, p := range pieces {
		ps = append(ps, p.Piece)
	}
	assertIntervals(t, "silence", seriesWithTag(ps, "silence", ""), silenceTruth, 50)
}

func TestSilenceNeedsAudio(t *testing.T) {
	path := levelsMedia(t, "video.ts", "-f", "lavfi", "-i", "testsrc2=s=160x120:d=1", "-c:v", "libx264", "-f", "mpegts")
	err := levelsRunErr(t, "silence", path, "mpegts", nil)
	if err == nil || !strings.Contains(err.Error(), "no audio stream") {
		t.Fatalf("got %v, want an error saying the input has no audio stream", err)
	}
}

func BenchmarkSilence(b *testing.B) {
	path := silenceClip(b, "gaps.wav", "-c:a", "pcm_s16le")
	benchStream(b, "silence", path, "wav", 11, nil)
}
