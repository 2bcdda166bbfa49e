package engines

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// The fingerprint engine's test media: a 10 s jingle (a melody over a
// bass line that never repeats within it), a decoy of the same make with
// other notes, and a programme of other audio (a different melody, a
// drifting tone and pink noise) with the jingle inserted at known times.

// jingleExpr is a melody of quarter-second notes over a one-second bass.
const jingleExpr = "0.3*sin(2*PI*523.25*pow(2,mod(floor(t*4)*floor(t*4)*7+floor(t*4)*3,17)/12)*t)*(0.7+0.3*sin(2*PI*3*t))" +
	"+0.2*sin(2*PI*130.81*pow(2,mod(floor(t)*5,7)/12)*t)"

// decoyExpr is another melody, never in the programme.
const decoyExpr = "0.3*sin(2*PI*392*pow(2,mod(floor(t*3)*floor(t*3)*5+floor(t*3)*2,11)/12)*t)" +
	"+0.2*sin(2*PI*98*pow(2,mod(floor(t*2)*3,5)/12)*t)"

// backgroundExpr is the programme's other audio.
const backgroundExpr = "0.2*sin(2*PI*220*pow(2,mod(floor(t/0.37)*7,19)/12)*t)+0.12*sin(2*PI*(330+110*sin(2*PI*0.05*t))*t)"

// fpClip writes a clip of an aevalsrc expression.
func fpClip(tb testing.TB, name, expr string, seconds float64) string {
	tb.Helper()
	return levelsMedia(tb, name, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='%s':s=44100:d=%g", expr, seconds), "-c:a", "pcm_s16le")
}

// fpProgramme writes seconds of background audio with the jingle at the
// given starts (seconds), as codec args say.
func fpProgramme(tb testing.TB, name string, seconds float64, starts []float64, codec ...string) string {
	tb.Helper()
	args := []string{
		"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='%s':s=44100:d=%g", backgroundExpr, seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("anoisesrc=color=pink:amplitude=0.06:r=44100:d=%g", seconds),
	}
	if len(starts) == 0 {
		args = append(args, "-filter_complex", "[0][1]amix=inputs=2:normalize=0", "-t", fmt.Sprint(seconds))
		return levelsMedia(tb, name, append(args, codec...)...)
	}
	args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='%s':s=44100:d=10", jingleExpr))
	// The background with the jingle's spans cut out, then the jingle
	// laid into them.
	var cut []string
	for _, s := range starts {
		cut = append(cut, fmt.Sprintf("between(t,%g,%g)", s, s+10))
	}
	gate := "1-(" + strings.Join(cut, "+") + ")"
	f := fmt.Sprintf("[0][1]amix=inputs=2:normalize=0,volume='%s':eval=frame[bg];", gate)
	f += fmt.Sprintf("[2]asplit=%d", len(starts))
	for i := range starts {
		f += fmt.Sprintf("[j%d]", i)
	}
	f += ";"
	mix := "[bg]"
	for i, s := range starts {
		ms := int64(math.Round(s * 1000))
		f += fmt.Sprintf("[j%d]adelay=%d:all=1[d%d];", i, ms, i)
		mix += fmt.Sprintf("[d%d]", i)
	}
	f += fmt.Sprintf("%samix=inputs=%d:normalize=0:duration=first", mix, len(starts)+1)
	args = append(args, "-filter_complex", f, "-t", fmt.Sprint(seconds))
	args = append(args, codec...)
	return levelsMedia(tb, name, args...)
}

// fpLibraryOf fingerprints clips into references and makes them the
// engine's library for the test.
func fpLibraryOf(t testing.TB, clips map[string]string) []FingerprintReference {
	t.Helper()
	testenv.RequireTool(t, "fpcalc")
	var refs []FingerprintReference
	for name, path := range clips {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		items, dur, err := FingerprintClip(context.Background(), f, "", MaxFingerprintClip)
		f.Close()
		if err != nil {
			t.Fatalf("fingerprint %s: %v", name, err)
		}
		refs = append(refs, FingerprintReference{ID: "fp-" + name, Name: name, DurationMs: dur, Items: items})
	}
	SetFingerprintLibrary(func(context.Context) ([]FingerprintReference, error) { return refs, nil })
	t.Cleanup(func() { SetFingerprintLibrary(nil) })
	return refs
}

// fpMatches returns the fingerprint objects the pieces hold.
func fpMatches(pieces []engine.Piece) []protocol.Series {
	var out []protocol.Series
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			if s.Object != nil && s.Object.Type == "fingerprint" {
				out = append(out, s)
			}
		}
	}
	return out
}

// assertOccurrences checks the jingle is found at every start within
// 500 ms, with nothing else reported.
func assertOccurrences(t *testing.T, got []protocol.Series, starts []float64) {
	t.Helper()
	for _, s := range got {
		t.Logf("match %s [%d, %d] score %.3f", s.Object.Label, s.StartTimeMs, s.StopTimeMs, s.Object.Confidence)
	}
	if len(got) != len(starts) {
		t.Fatalf("found %d occurrences, want %d (at %v s)", len(got), len(starts), starts)
	}
	for i, s := range got {
		want := int64(math.Round(starts[i] * 1000))
		if s.Object.Label != "jingle" || s.Object.EntityID != "fp-jingle" {
			t.Errorf("occurrence %d is %q (%s), want the jingle", i, s.Object.Label, s.Object.EntityID)
		}
		if d := s.StartTimeMs - want; d < -500 || d > 500 {
			t.Errorf("occurrence %d starts at %d ms, want %d ±500", i, s.StartTimeMs, want)
		}
		if d := s.StopTimeMs - (want + 10000); d < -500 || d > 500 {
			t.Errorf("occurrence %d stops at %d ms, want %d ±500", i, s.StopTimeMs, want+10000)
		}
		if s.Object.Confidence < 0.7 || s.Object.Confidence > 1 {
			t.Errorf("occurrence %d scores %.3f, want at least 0.7", i, s.Object.Confidence)
		}
	}
}

// fpStarts are where the jingle is in the 10-minute programme, s.
var fpStarts = []float64{20, 75.3, 131.7, 166, 240.25, 301.9, 388, 455.55, 512.1, 577}

func TestFingerprintFindsEveryOccurrenceAndNothingElse(t *testing.T) {
	fpLibraryOf(t, map[string]string{
		"jingle": fpClip(t, "jingle.wav", jingleExpr, 10),
		"decoy":  fpClip(t, "decoy.wav", decoyExpr, 10),
	})
	// AAC in MPEG-TS, as a live stream carries it; the references are WAV.
	path := fpProgramme(t, "programme.ts", 600, fpStarts, "-c:a", "aac", "-b:a", "96k", "-f", "mpegts")
	pieces, bound := runStreamEngine(t, "fingerprint", path, "mpegts", nil)
	assertOccurrences(t, fpMatches(pieces), fpStarts)
	if bound < 599000 {
		t.Errorf("final bound %d ms, want the end of the input (600000)", bound)
	}
}

func TestFingerprintWithoutTheJingleFindsNothing(t *testing.T) {
	fpLibraryOf(t, map[string]string{
		"jingle": fpClip(t, "jingle.wav", jingleExpr, 10),
		"decoy":  fpClip(t, "decoy.wav", decoyExpr, 10),
	})
	path := fpProgramme(t, "programme.wav", 60, nil, "-c:a", "pcm_s16le")
	pieces, bound := runStreamEngine(t, "fingerprint", path, "wav", nil)
	if got := fpMatches(pieces); len(got) != 0 {
		t.Fatalf("reported %d matches in audio without the references: %+v", len(got), got)
	}
	if bound < 59000 {
		t.Errorf("final bound %d ms, want the end of the input", bound)
	}
}

func TestFingerprintOptionSelectsReferences(t *testing.T) {
	fpLibraryOf(t, map[string]string{"jingle": fpClip(t, "jingle.wav", jingleExpr, 10)})
	path := fpProgramme(t, "programme.wav", 40, []float64{12}, "-c:a", "pcm_s16le")
	pieces, _ := runStreamEngine(t, "fingerprint", path, "wav", map[string]any{"references": []any{"fp-jingle"}})
	assertOccurrences(t, fpMatches(pieces), []float64{12})
	pieces, _ = runStreamEngine(t, "fingerprint", path, "wav", map[string]any{"references": []any{"other"}})
	if got := fpMatches(pieces); len(got) != 0 {
		t.Fatalf("references [other] still reported %+v", got)
	}
}

func TestFingerprintWithoutLibraryReportsNothing(t *testing.T) {
	testenv.RequireTool(t, "fpcalc")
	SetFingerprintLibrary(nil)
	path := fpProgramme(t, "programme.wav", 20, []float64{5}, "-c:a", "pcm_s16le")
	pieces, bound := runStreamEngine(t, "fingerprint", path, "wav", nil)
	if len(pieces) != 0 {
		t.Fatalf("no library, yet %d pieces", len(pieces))
	}
	if bound < 19000 {
		t.Errorf("final bound %d ms, want the end of the input", bound)
	}
}

func TestFingerprintLive(t *testing.T) {
	fpLibraryOf(t, map[string]string{
		"jingle": fpClip(t, "jingle.wav", jingleExpr, 10),
		"decoy":  fpClip(t, "decoy.wav", decoyExpr, 10),
	})
	starts := []float64{3, 17.5}
	path := fpProgramme(t, "live.ts", 36, starts, "-c:a", "aac", "-b:a", "96k", "-f", "mpegts")
	pieces, eof := levelsLive(t, "fingerprint", path, nil)
	// The second occurrence ends at 27.5 s; the first must come well
	// before the stream's end at 36 s.
	assertLiveBeforeEnd(t, pieces, eof)
	var ps []engine.Piece
	for _, p := range pieces {
		ps = append(ps, p.Piece)
	}
	assertOccurrences(t, fpMatches(ps), starts)
}

func TestFingerprintClipRefusesWhatIsNotAReference(t *testing.T) {
	testenv.RequireTool(t, "fpcalc")
	ctx := context.Background()
	_, _, err := FingerprintClip(ctx, strings.NewReader(strings.Repeat("not media at all ", 1000)), "", MaxFingerprintClip)
	if !errors.Is(err, ErrNotAudio) {
		t.Errorf("text: got %v, want ErrNotAudio", err)
	}
	video := levelsMedia(t, "video.ts", "-f", "lavfi", "-i", "testsrc2=s=160x120:d=6", "-c:v", "libx264", "-f", "mpegts")
	f, _ := os.Open(video)
	_, _, err = FingerprintClip(ctx, f, "", MaxFingerprintClip)
	f.Close()
	if !errors.Is(err, ErrNotAudio) || !strings.Contains(err.Error(), "no audio stream") {
		t.Errorf("video only: got %v, want ErrNotAudio saying there is no audio stream", err)
	}
	short := fpClip(t, "short.wav", jingleExpr, 2)
	f, _ = os.Open(short)
	_, _, err = FingerprintClip(ctx, f, "", MaxFingerprintClip)
	f.Close()
	if !errors.Is(err, ErrNotAudio) || !strings.Contains(err.Error(), "too short") {
		t.Errorf("2 s: got %v, want ErrNotAudio saying it is too short", err)
	}
	long := fpClip(t, "long.wav", jingleExpr, 12)
	f, _ = os.Open(long)
	_, _, err = FingerprintClip(ctx, f, "", 11*time.Second)
	f.Close()
	if !errors.Is(err, ErrNotAudio) || !strings.Contains(err.Error(), "longer than 11s") {
		t.Errorf("12 s with a limit of 11 s: got %v, want ErrNotAudio saying it is too long", err)
	}
	f, _ = os.Open(long)
	items, dur, err := FingerprintClip(ctx, f, "", MaxFingerprintClip)
	f.Close()
	if err != nil || dur < 11950 || dur > 12050 || len(items) < 70 {
		t.Errorf("12 s clip: %d items, %d ms, %v; want about 75 items and 12000 ms", len(items), dur, err)
	}
}

func TestFingerprintNeedsAudio(t *testing.T) {
	testenv.RequireTool(t, "fpcalc")
	path := levelsMedia(t, "video.ts", "-f", "lavfi", "-i", "testsrc2=s=160x120:d=1", "-c:v", "libx264", "-f", "mpegts")
	err := levelsRunErr(t, "fingerprint", path, "mpegts", nil)
	if err == nil || !strings.Contains(err.Error(), "no audio stream") {
		t.Fatalf("got %v, want an error saying the input has no audio stream", err)
	}
}

func BenchmarkFingerprint(b *testing.B) {
	fpLibraryOf(b, map[string]string{
		"jingle": fpClip(b, "jingle.wav", jingleExpr, 10),
		"decoy":  fpClip(b, "decoy.wav", decoyExpr, 10),
	})
	path := fpProgramme(b, "programme.ts", 600, fpStarts, "-c:a", "aac", "-b:a", "96k", "-f", "mpegts")
	benchStream(b, "fingerprint", path, "mpegts", 600, nil)
}

func TestFingerprintLibraryOfTheMetadataStore(t *testing.T) {
	refs := fpLibraryOf(t, map[string]string{"jingle": fpClip(t, "jingle.wav", jingleExpr, 10)})
	meta, err := metastore.OpenSQLite(filepath.Join(t.TempDir(), "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	r := refs[0]
	if _, err := meta.CreateFingerprint(context.Background(), metastore.Fingerprint{ID: r.ID, Name: r.Name, DurationMs: r.DurationMs, Items: r.Items}); err != nil {
		t.Fatal(err)
	}
	SetFingerprintLibrary(FingerprintLibraryOf(meta))
	path := fpProgramme(t, "programme.wav", 30, []float64{8.5}, "-c:a", "pcm_s16le")
	pieces, _ := runStreamEngine(t, "fingerprint", path, "wav", nil)
	assertOccurrences(t, fpMatches(pieces), []float64{8.5})
}

// TestFingerprintOverlappingMatchesShareAPiece checks the emission rules
// on made-up fingerprints: two references heard at overlapping times come
// out as one piece, once neither can match earlier any more.
func TestFingerprintOverlappingMatchesShareAPiece(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	stream := make([]uint32, 800)
	for i := range stream {
		stream[i] = rnd.Uint32()
	}
	a := FingerprintReference{ID: "a", Name: "a", DurationMs: 10000, Items: slices.Clone(stream[100:160])}
	b := FingerprintReference{ID: "b", Name: "b", DurationMs: 5000, Items: slices.Clone(stream[130:170])}
	c := FingerprintReference{ID: "c", Name: "c", DurationMs: 5000, Items: slices.Clone(stream[500:540])}
	var pieces []engine.Piece
	emit := engine.NewEmitter(func(p engine.Piece) error { pieces = append(pieces, p); return nil })
	st := &fpState{emit: emit, match: &fpMatcher{threshold: 0.3, maxRun: 16}, run: &fpRun{}}
	st.match.setReferences([]FingerprintReference{a, b, c}, 0)
	for i := 0; i < len(stream); i += 8 {
		st.run.samples.Store(int64(i+8) * fpHop)
		if err := st.line(fpcalcLine{Fingerprint: stream[i : i+8]}); err != nil {
			t.Fatal(err)
		}
		if i == 600 && len(pieces) != 2 {
			t.Fatalf("at item 600 %d pieces were out, want 2 (a+b together, then c)", len(pieces))
		}
	}
	if err := st.finish(); err != nil {
		t.Fatal(err)
	}
	if len(pieces) != 2 || len(pieces[0].Doc.Series) != 2 || len(pieces[1].Doc.Series) != 1 {
		t.Fatalf("pieces %+v", pieces)
	}
	want := []struct {
		name  string
		start int64
	}{{"a", fpItemMs(100)}, {"b", fpItemMs(130)}, {"c", fpItemMs(500)}}
	got := fpMatches(pieces)
	for i, w := range want {
		if got[i].Object.Label != w.name || got[i].StartTimeMs != w.start || got[i].Object.Confidence != 1 {
			t.Errorf("match %d = %s at %d score %v, want %s at %d score 1", i, got[i].Object.Label, got[i].StartTimeMs, got[i].Object.Confidence, w.name, w.start)
		}
	}
}

func FuzzParseFpcalcLine(f *testing.F) {
	f.Add([]byte(`{"timestamp": 1.00, "duration": 3.60, "fingerprint": [4096574662,3576480134,1428]}`))
	f.Add([]byte(`ERROR: Error decoding audio frame (End of file)`))
	f.Add([]byte(`{"fingerprint": [-1, 1e40, "x"]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, ok, err := parseFpcalcLine(line)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if !ok && len(l.Fingerprint) > 0 {
			t.Fatalf("items from a line not taken: %+v", l)
		}
	})
}

// TestFingerprintFindsARepetitiveReferenceAtItsBestAlignment: a reference
// whose melody repeats scores fairly well shifted by its period, with
// noise before it; the occurrence reported is the best alignment, not the
// first one under the threshold (which once hid the true one).
func TestFingerprintFindsARepetitiveReferenceAtItsBestAlignment(t *testing.T) {
	const periodic = "0.5*sin(2*PI*(440+220*floor(mod(t*4,4)))*t)+0.5*sin(2*PI*(660+110*floor(mod(t*3,5)))*t)"
	ref := fpClip(t, "periodic.wav", periodic, 10)
	fpLibraryOf(t, map[string]string{"jingle": ref})
	path := levelsMedia(t, "noise-then-periodic.ts",
		"-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.2:r=44100:d=7",
		"-i", ref,
		"-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.2:r=44100:d=5",
		"-filter_complex", "[0][1][2]concat=n=3:v=0:a=1", "-c:a", "aac", "-f", "mpegts")
	pieces, _ := runStreamEngine(t, "fingerprint", path, "mpegts", nil)
	assertOccurrences(t, fpMatches(pieces), []float64{7})
}
