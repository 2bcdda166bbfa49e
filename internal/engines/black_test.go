package engines

import (
	"testing"

	"github.com/weir-media/weir/engine"
)

// blackClip writes 12 s of video at 30 fps with known stretches:
// moving 0-3 s, black 3-5 s, moving 5-7 s, one still picture 7-9 s,
// moving 9-11 s, black 11-12 s (still black at the end). It is encoded
// losslessly so the still frames are identical.
func blackClip(tb testing.TB, name, size string, codec ...string) string {
	tb.Helper()
	moving := func(d string) []string {
		return []string{"-f", "lavfi", "-i", "testsrc2=s=" + size + ":r=30:d=" + d}
	}
	black := func(d string) []string {
		return []string{"-f", "lavfi", "-i", "color=black:s=" + size + ":r=30:d=" + d}
	}
	still := []string{"-f", "lavfi", "-i", "testsrc2=s=" + size + ":r=30:d=1,trim=start_frame=15:end_frame=16,loop=loop=59:size=1:start=0,setpts=N/30/TB"}
	var args []string
	for _, in := range [][]string{moving("3"), black("2"), moving("2"), still, moving("2"), black("1")} {
		args = append(args, in...)
	}
	args = append(args, "-filter_complex", "[0][1][2][3][4][5]concat=n=6:v=1:a=0,format=yuv420p")
	return levelsMedia(tb, name, append(args, codec...)...)
}

var blackTruth = []interval{{3000, 5000}, {11000, 12000}}
var frozenTruth = []interval{{7000, 9000}}

var blackTestOptions = map[string]any{"freeze_min_duration": "1s"}

func TestBlackFindsBlackAndFrozenAtKnownTimes(t *testing.T) {
	path := blackClip(t, "clip.mkv", "320x240", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0")
	pieces, bound := runStreamEngine(t, "black", path, "matroska", blackTestOptions)
	assertIntervals(t, "black", seriesWithTag(pieces, "kind", "black"), blackTruth, 50)
	assertIntervals(t, "frozen", seriesWithTag(pieces, "kind", "frozen"), frozenTruth, 50)
	if bound < 11950 {
		t.Errorf("final bound %d ms, want the end of the input (12000)", bound)
	}
}

func TestBlackDetectsOnlyWhatItIsAskedTo(t *testing.T) {
	path := blackClip(t, "clip.mkv", "320x240", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0")
	pieces, _ := runStreamEngine(t, "black", path, "matroska", map[string]any{"detect": []any{"frozen"}, "freeze_min_duration": "900ms"})
	// Without black detection the black stretches are frozen pictures;
	// the last, still frozen at the end, is closed there.
	assertIntervals(t, "frozen", seriesWithTag(pieces, "kind", "frozen"), []interval{{3000, 5000}, {7000, 9000}, {11000, 12000}}, 50)
	pieces, _ = runStreamEngine(t, "black", path, "matroska", map[string]any{"detect": []any{"black"}, "min_duration": "1500ms"})
	assertIntervals(t, "black", seriesWithTag(pieces, "kind", "black"), []interval{{3000, 5000}}, 50)
	if n := len(seriesWithTag(pieces, "kind", "frozen")); n != 0 {
		t.Errorf("%d frozen intervals with detect=[black]", n)
	}
}

func TestBlackLive(t *testing.T) {
	path := blackClip(t, "clip.ts", "320x240", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-f", "mpegts")
	pieces, eof := levelsLive(t, "black", path, blackTestOptions)
	assertLiveBeforeEnd(t, pieces, eof)
	var ps []engine.Piece
	for _, p := range pieces {
		ps = append(ps, p.Piece)
	}
	assertIntervals(t, "black", seriesWithTag(ps, "kind", "black"), blackTruth, 50)
	assertIntervals(t, "frozen", seriesWithTag(ps, "kind", "frozen"), frozenTruth, 50)
}

func TestBlackNeedsVideo(t *testing.T) {
	path := levelsMedia(t, "audio.wav", "-f", "lavfi", "-i", "sine=d=1")
	if err := levelsRunErr(t, "black", path, "wav", nil); err == nil {
		t.Fatal("black on a file without video succeeded")
	}
}

func BenchmarkBlack720p30(b *testing.B) {
	path := blackClip(b, "clip.ts", "1280x720", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-f", "mpegts")
	benchStream(b, "black", path, "mpegts", 12, nil)
}

// Overlapping black and frozen stretches travel in one piece, and the
// bound never passes a run under way.
func TestBlackGroupsOverlappingIntervals(t *testing.T) {
	var pieces []engine.Piece
	emit := engine.NewEmitter(func(p engine.Piece) error { pieces = append(pieces, p); return nil })
	st := &blackState{emit: emit, detectBlack: true, freezeLag: 1100, black: -1, frozen: -1}
	for _, line := range []string{
		"out_time_us=2500000",
		"[Parsed_metadata_2 @ 0x1] lavfi.black_start=3",
		"[freezedetect @ 0x2] lavfi.freezedetect.freeze_start: 4",
		"[blackdetect @ 0x3] black_start:3 black_end:5 black_duration:2",
		"[Parsed_metadata_2 @ 0x1] lavfi.black_end=5",
		"out_time_us=5500000",
		"[freezedetect @ 0x2] lavfi.freezedetect.freeze_end: 6",
		"out_time_us=7000000",
	} {
		if err := st.line(line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if b := emit.BoundMs(); b > 3000 && len(pieces) == 0 {
			t.Fatalf("after %q the bound is %d, past the black run under way at 3000", line, b)
		}
	}
	if err := st.finish(); err != nil {
		t.Fatal(err)
	}
	if len(pieces) != 1 || pieces[0].StartMs != 3000 || pieces[0].EndMs != 6000 || len(pieces[0].Doc.Series) != 2 {
		t.Fatalf("want one piece [3000, 6000] with both intervals, got %+v", pieces)
	}
	if emit.BoundMs() != 7000 {
		t.Errorf("final bound %d, want 7000", emit.BoundMs())
	}
}
