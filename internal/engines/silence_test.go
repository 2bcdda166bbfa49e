package engines

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
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

// TestSilenceReportsOpenSilencesAsTheyLast: with report_every, a silence
// fed at real time comes in consecutive pieces while it lasts, all but
// its last tagged open, the first long before the silence ends; joined,
// they are the silences found without the option.
func TestSilenceReportsOpenSilencesAsTheyLast(t *testing.T) {
	path := silenceClip(t, "gaps.ts", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts")
	pieces, _ := levelsLive(t, "silence", path, map[string]any{"report_every": "300ms"})
	var joined []protocol.Series
	var firstOpen, ended time.Time
	open := 0
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			if hasOpenTag(s) {
				open++
				if s.StopTimeMs-s.StartTimeMs < 300 {
					t.Errorf("an open piece [%d, %d] shorter than report_every", s.StartTimeMs, s.StopTimeMs)
				}
				if s.StartTimeMs < 4000 && firstOpen.IsZero() {
					firstOpen = p.at
				}
			} else if s.StartTimeMs < 4600 && s.StopTimeMs > 4000 {
				ended = p.at
			}
			if n := len(joined); n > 0 && s.StartTimeMs == joined[n-1].StopTimeMs && hasOpenTag(joined[n-1]) {
				joined[n-1].StopTimeMs, joined[n-1].Tags = s.StopTimeMs, s.Tags
				continue
			}
			joined = append(joined, s)
		}
	}
	if open < 3 {
		t.Errorf("%d open pieces, want the 1.5 s and 1 s silences in several", open)
	}
	if firstOpen.IsZero() || ended.IsZero() || ended.Sub(firstOpen) < 500*time.Millisecond {
		t.Errorf("the 3–4.5 s silence: first open piece at %v, its end at %v; want the first well before the end", firstOpen, ended)
	}
	for _, s := range joined {
		if hasOpenTag(s) {
			t.Errorf("silence [%d, %d] ends with an open piece", s.StartTimeMs, s.StopTimeMs)
		}
	}
	assertIntervals(t, "silence", joined, silenceTruth, 50)
}

func hasOpenTag(s protocol.Series) bool {
	for _, tag := range s.Tags {
		if tag.Key == "open" {
			return true
		}
	}
	return false
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
