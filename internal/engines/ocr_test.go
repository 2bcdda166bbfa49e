package engines

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// ocrCaption is text drawn on the test clip: what, where, in which font
// and size, shown from start to end (ms).
type ocrCaption struct {
	text       string
	font       string
	size, x, y int
	style      string // drawtext colour and box options
	start, end int64
}

// ocrClipSeed seeds the gradient, so every run draws the same clip.
var ocrClipSeed = 1

const fontDir = "/usr/share/fonts/truetype/dejavu/"

// ocrCaptions is the truth of the test clip (30 s, 1280x720): eight lines
// in eight DejaVu faces, 24 to 56 px, overlapping in time, one of them (a
// channel name) on screen throughout.
var ocrCaptions = []ocrCaption{
	{"Channel seven", "DejaVuSansMono.ttf", 24, 40, 40, "fontcolor=white", 0, 30000},
	{"Breaking news from the river", "DejaVuSans.ttf", 36, 100, 600, "fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8", 1000, 9000},
	{"Weather tomorrow sunny and warm", "DejaVuSerif-Bold.ttf", 28, 640, 90, "fontcolor=yellow", 3500, 12500},
	{"Markets close higher again", "DejaVuSans-Bold.ttf", 48, 300, 330, "fontcolor=black:box=1:boxcolor=white:boxborderw=10", 10200, 16700},
	{"Interview with the mayor", "DejaVuSerif.ttf", 32, 200, 500, "fontcolor=white", 14000, 20000},
	{"Quarterly results beat forecasts", "DejaVuSansCondensed.ttf", 40, 120, 620, "fontcolor=white:box=1:boxcolor=0x202020:boxborderw=6", 18500, 25000},
	{"Tonight at nine", "DejaVuSans-Oblique.ttf", 56, 400, 200, "fontcolor=white", 22000, 28000},
	{"Sports scores follow", "DejaVuSansMono-Bold.ttf", 26, 700, 420, "fontcolor=0xffff80", 26000, 29500},
}

// makeOCRClip writes the test clip: a dark, slowly moving gradient with
// the captions drawn on it, 1280x720 at fps frames per second, H.264 in
// MPEG-TS.
func makeOCRClip(t testing.TB, fps int) string {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "tesseract")
	var vf []string
	for _, c := range ocrCaptions {
		vf = append(vf, fmt.Sprintf("drawtext=fontfile=%s%s:text='%s':fontsize=%d:x=%d:y=%d:%s:enable='gte(t\\,%g)*lt(t\\,%g)'",
			fontDir, c.font, c.text, c.size, c.x, c.y, c.style, float64(c.start)/1000, float64(c.end)/1000))
	}
	return makeMediaTB(t, "captions.ts", "-f", "lavfi",
		"-i", fmt.Sprintf("gradients=s=1280x720:r=%d:d=30:speed=0.005:c0=0x102040:c1=0x403060:c2=0x204030:nb_colors=3:seed=%d", fps, ocrClipSeed),
		"-vf", strings.Join(vf, ","), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30", "-f", "mpegts")
}

// makeMediaTB is makeMedia for tests and benchmarks.
func makeMediaTB(t testing.TB, name string, args ...string) string {
	t.Helper()
	out := t.TempDir() + "/" + name
	args = append([]string{"-hide_banner", "-loglevel", "error", "-y"}, append(args, out)...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// ocrSeries flattens the pieces' series, checking each piece's shape.
func ocrSeries(t *testing.T, pieces []engine.Piece) []protocol.Series {
	t.Helper()
	var all []protocol.Series
	for _, p := range pieces {
		if err := p.Doc.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Doc.Series {
			if s.Object == nil || s.Object.Type != "text" || len(s.Object.BoundingPoly) != 4 || len(s.Words) == 0 {
				t.Fatalf("series is not a text line with words and a box: %+v", s)
			}
			all = append(all, s)
		}
	}
	return all
}

// matches returns the series whose line reads like the caption.
func (c ocrCaption) matches(series []protocol.Series) []protocol.Series {
	var out []protocol.Series
	for _, s := range series {
		if textSimilarity(normalizeOCRText(s.Object.Text), normalizeOCRText(c.text)) >= 0.6 {
			out = append(out, s)
		}
	}
	return out
}

// wordsFound counts the caption's words read in series.
func (c ocrCaption) wordsFound(series []protocol.Series) int {
	read := map[string]bool{}
	for _, s := range series {
		for _, w := range s.Words {
			read[strings.ToLower(w.Word)] = true
		}
	}
	n := 0
	for _, w := range strings.Fields(strings.ToLower(c.text)) {
		if read[w] {
			n++
		}
	}
	return n
}

func TestOCRReadsCaptionsWithTheirTimesBoxesAndOneResultEach(t *testing.T) {
	clip := makeOCRClip(t, 10)
	// The captions overlap without a break for 29 s: a max_delay above
	// that keeps each whole (with the default, one is cut in two).
	pieces, bound := runStreamEngine(t, "ocr", clip, "mpegts", map[string]any{"max_delay": "30s"})
	series := ocrSeries(t, pieces)
	const interval, frame = 1000, 100
	total, found := 0, 0
	for _, c := range ocrCaptions {
		got := c.matches(series)
		total += len(strings.Fields(c.text))
		found += c.wordsFound(got)
		if len(got) == 0 {
			t.Errorf("%q: not read", c.text)
			continue
		}
		first, last := got[0], got[len(got)-1]
		if c.end-c.start > 10000 {
			// The channel name, on screen throughout: Tesseract misses
			// it on a few samples of this clip (2 of 30), so its times
			// are held to a looser floor: 90 % of the time covered.
			covered := int64(0)
			for _, s := range got {
				covered += s.StopTimeMs - s.StartTimeMs
			}
			if covered < (c.end-c.start)*9/10 {
				t.Errorf("%q: read for %d ms of the %d ms it is shown", c.text, covered, c.end-c.start)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("%q (shown %d ms): %d results, want one: %+v", c.text, c.end-c.start, len(got), got)
		}
		if d := first.StartTimeMs - c.start; d < 0 || d > interval {
			t.Errorf("%q: starts at %d ms, shown from %d ms: want within one interval after", c.text, first.StartTimeMs, c.start)
		}
		if d := last.StopTimeMs - c.end; d < -frame || d > interval+frame {
			t.Errorf("%q: stops at %d ms, shown until %d ms: want within one interval after", c.text, last.StopTimeMs, c.end)
		}
		box := first.Object.BoundingPoly
		if dx, dy := box[0].X-float64(c.x)/1280, box[0].Y-float64(c.y)/720; dx < -0.02 || dx > 0.04 || dy < -0.02 || dy > 0.04 {
			t.Errorf("%q: box starts at (%.3f, %.3f), drawn at (%.3f, %.3f)", c.text, box[0].X, box[0].Y, float64(c.x)/1280, float64(c.y)/720)
		}
		for _, w := range first.Words {
			var poly []protocol.Point
			if err := json.Unmarshal(w.Extra["boundingPoly"], &poly); err != nil || len(poly) != 4 {
				t.Errorf("%q: word %q has no four-point boundingPoly: %s", c.text, w.Word, w.Extra["boundingPoly"])
			}
			if w.Confidence < 0.6 || w.Confidence > 1 {
				t.Errorf("%q: word %q confidence %v, want 0.6 to 1", c.text, w.Word, w.Confidence)
			}
		}
	}
	recall := float64(found) / float64(total)
	t.Logf("word recall %.3f (%d of %d), %d series in %d pieces", recall, found, total, len(series), len(pieces))
	if recall < 0.95 {
		t.Errorf("word recall %.3f, want >= 0.95", recall)
	}
	if bound < 29000 {
		t.Errorf("bound %d ms at the end of a 30 s clip", bound)
	}
}

func TestOCRDeliversResultsWhileALiveStreamRuns(t *testing.T) {
	clip := makeOCRClip(t, 10)
	feed := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", clip, "-c", "copy", "-f", "mpegts", "pipe:1")
	body, err := feed.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Start(); err != nil {
		t.Fatal(err)
	}
	fed := make(chan struct{})
	r, w := io.Pipe()
	go func() { _, _ = io.Copy(w, body); _ = feed.Wait(); close(fed); _ = w.Close() }()
	reg, _ := engine.Default().Lookup("ocr")
	opts, err := reg.Spec.ParseOptions(map[string]any{"max_delay": "5s"})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := reg.Factory.(engine.StreamFactory)()
	if err != nil {
		t.Fatal(err)
	}
	var beforeEnd, pieces int
	emit := engine.NewEmitter(func(p engine.Piece) error {
		pieces++
		select {
		case <-fed:
		default:
			beforeEnd++
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eng.Process(ctx, &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: r}, opts, emit); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pieces, %d of them before the stream ended", pieces, beforeEnd)
	if beforeEnd < 2 {
		t.Fatalf("%d of %d pieces came before the real-time stream ended, want at least 2", beforeEnd, pieces)
	}
}

func TestOCRReadsFramesOnSceneChanges(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "tesseract")
	// Black, then at 2.5 s a cut to white with text: with a 10 s interval
	// only a scene-change sample can read it near 2.5 s.
	clip := makeMediaTB(t, "cut.ts", "-f", "lavfi", "-i", "color=c=black:s=640x360:r=10:d=2.5",
		"-f", "lavfi", "-i", "color=c=white:s=640x360:r=10:d=3",
		"-filter_complex", "[1]drawtext=fontfile="+fontDir+"DejaVuSans.ttf:text='Second scene':fontsize=40:x=100:y=150[b];[0][b]concat=n=2:v=1:a=0",
		"-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts")
	pieces, _ := runStreamEngine(t, "ocr", clip, "mpegts", map[string]any{"frame_interval": "10s", "scene_threshold": 0.3})
	series := ocrSeries(t, pieces)
	if len(series) != 1 || normalizeOCRText(series[0].Object.Text) != "second scene" {
		t.Fatalf("want one series reading 'Second scene', got %+v", series)
	}
	if s := series[0].StartTimeMs; s < 2400 || s > 2700 {
		t.Errorf("the text starts at %d ms, want the cut at 2500 ms", s)
	}
}

func TestOCRNamesTheDebianPackageOfAMissingLanguage(t *testing.T) {
	testenv.RequireTool(t, "tesseract")
	err := checkOCRLanguages(context.Background(), "eng+zzz_qq")
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y tesseract-ocr-zzz-qq") || !strings.Contains(err.Error(), `"zzz_qq"`) {
		t.Fatalf("want an error naming tesseract-ocr-zzz-qq, got %v", err)
	}
	if err := checkOCRLanguages(context.Background(), "eng"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "eng+", "../eng", "eng deu", "-l"} {
		if err := checkOCRLanguages(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "not a Tesseract language name") {
			t.Errorf("languages %q: want a bad-name error, got %v", bad, err)
		}
	}
}

func TestOCRFailsClearlyOnAStreamWithoutVideo(t *testing.T) {
	testenv.RequireTool(t, "tesseract")
	audio := makeMediaTB(t, "tone.ts", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "mp2", "-f", "mpegts")
	reg, _ := engine.Default().Lookup("ocr")
	opts, _ := reg.Spec.ParseOptions(nil)
	eng, _ := reg.Factory.(engine.StreamFactory)()
	body := bytes.NewReader(mustRead(t, audio))
	err := eng.Process(context.Background(), &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: body}, opts,
		engine.NewEmitter(func(engine.Piece) error { return nil }))
	if err == nil || !strings.Contains(err.Error(), "no video stream") {
		t.Fatalf("want a no-video error, got %v", err)
	}
}

func TestOCRStopsOnGarbageInput(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "tesseract")
	reg, _ := engine.Default().Lookup("ocr")
	opts, _ := reg.Spec.ParseOptions(nil)
	eng, _ := reg.Factory.(engine.StreamFactory)()
	body := strings.NewReader(strings.Repeat("not a video stream ", 5000))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := eng.Process(ctx, &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: body}, opts,
		engine.NewEmitter(func(engine.Piece) error { return nil }))
	if err == nil || ctx.Err() != nil {
		t.Fatalf("want ffmpeg's error, got %v (ctx %v)", err, ctx.Err())
	}
}

// --- merging, without tesseract ---

// line makes a line as parseTesseractTSV would, at height y.
func line(text string, conf, y float64) ocrLine {
	l := ocrLine{}
	for i, w := range strings.Fields(text) {
		b := ocrBox{0.1 * float64(i), y, 0.1*float64(i) + 0.08, y + 0.05}
		l.words = append(l.words, ocrWord{text: w, conf: conf, box: b})
		if i == 0 {
			l.box = b
		}
		l.box = l.box.union(b)
	}
	l.finish()
	return l
}

// mergeRun feeds samples (one per second from 0) to a merger through a
// real Emitter and returns the pieces.
func mergeRun(t *testing.T, set ocrMergeSettings, frames [][]ocrLine) []engine.Piece {
	t.Helper()
	var pieces []engine.Piece
	emit := engine.NewEmitter(func(p engine.Piece) error { pieces = append(pieces, p); return nil })
	m := newOCRMerger(set)
	for i, lines := range frames {
		if err := m.frame(int64(i)*1000, lines, emit); err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
	}
	if err := m.finish(emit); err != nil {
		t.Fatal(err)
	}
	return pieces
}

var mergeDefaults = ocrMergeSettings{intervalMs: 1000, maxDelayMs: 10000, maxMissed: 1, similarity: 0.8}

type span struct {
	text        string
	start, stop int64
}

func spans(pieces []engine.Piece) []span {
	var out []span
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			out = append(out, span{s.Object.Text, s.StartTimeMs, s.StopTimeMs})
		}
	}
	return out
}

func TestOCRMergeMakesACaptionShownEightSecondsOneResult(t *testing.T) {
	frames := make([][]ocrLine, 12)
	for i := 2; i < 10; i++ {
		text := "Breaking news tonight"
		if i == 5 {
			text = "Breakinq news tonighl" // a misreading, within the similarity
		}
		conf := 0.9
		if i == 6 {
			conf = 0.97
		}
		frames[i] = []ocrLine{line(text, conf, 0.8)}
	}
	frames[7] = nil // a sample that missed it
	pieces := mergeRun(t, mergeDefaults, frames)
	got := spans(pieces)
	if len(got) != 1 || got[0] != (span{"Breaking news tonight", 2000, 10000}) {
		t.Fatalf("want one result [2000, 10000) with the best reading, got %+v", got)
	}
	if w := pieces[0].Doc.Series[0].Words; len(w) != 3 || w[0].Confidence != 0.97 {
		t.Fatalf("want the best-confidence reading's words, got %+v", w)
	}
}

func TestOCRMergeEmitsOverlappingCaptionsTogetherInOrder(t *testing.T) {
	frames := make([][]ocrLine, 10)
	for i := 1; i < 5; i++ {
		frames[i] = append(frames[i], line("first caption", 0.9, 0.1))
	}
	for i := 3; i < 7; i++ {
		frames[i] = append(frames[i], line("second caption here", 0.9, 0.5))
	}
	frames[8] = []ocrLine{line("third", 0.9, 0.5)}
	pieces := mergeRun(t, mergeDefaults, frames)
	want := []span{{"first caption", 1000, 5000}, {"second caption here", 3000, 7000}, {"third", 8000, 9000}}
	if got := spans(pieces); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if len(pieces) != 2 || pieces[0].StartMs != 1000 || pieces[0].EndMs != 8000 {
		t.Fatalf("want the overlapping captions in one piece [1000, 8000), got %d pieces, first [%d, %d)", len(pieces), pieces[0].StartMs, pieces[0].EndMs)
	}
}

func TestOCRMergeCutsTextThatNeverLeaves(t *testing.T) {
	set := mergeDefaults
	set.maxDelayMs = 5000
	frames := make([][]ocrLine, 30)
	for i := range frames {
		frames[i] = []ocrLine{line("channel seven", 0.9, 0.05)}
		if i >= 3 && i < 7 {
			frames[i] = append(frames[i], line("short caption", 0.9, 0.8))
		}
		if i >= 9 && i < 13 { // shown across the 5 s mark past the last cut
			frames[i] = append(frames[i], line("another caption", 0.9, 0.8))
		}
	}
	pieces := mergeRun(t, set, frames)
	got := spans(pieces)
	var logo []span
	for _, s := range got {
		switch s.text {
		case "short caption":
			if s != (span{"short caption", 3000, 7000}) {
				t.Errorf("short caption: %+v", s)
			}
		case "another caption":
			if s != (span{"another caption", 9000, 13000}) {
				t.Errorf("another caption was cut: %+v", s)
			}
		default:
			logo = append(logo, s)
		}
	}
	if len(pieces) < 4 {
		t.Fatalf("want the logo reported in parts as the stream goes, got %d pieces", len(pieces))
	}
	for i, s := range logo {
		if i > 0 && s.start != logo[i-1].stop {
			t.Errorf("the logo's parts leave a gap: %+v", logo)
		}
	}
	if logo[0].start != 0 || logo[len(logo)-1].stop != 30000 {
		t.Errorf("the logo's parts do not cover [0, 30000): %+v", logo)
	}
}

func TestOCRMergeCutsBetweenSubtitlesUnderALogo(t *testing.T) {
	set := mergeDefaults
	set.maxDelayMs = 5000
	subtitles := strings.Split("we met at dawn|the river was high|nobody spoke|then the rain came|boats drifted past|a dog barked twice|lights went out|morning again|she laughed|the end came quickly|credits roll now|thanks for watching|goodbye|see you soon", "|")
	frames := make([][]ocrLine, 42)
	for i := range frames {
		frames[i] = []ocrLine{line("channel seven", 0.9, 0.05), line(subtitles[i/3], 0.9, 0.8)}
	}
	pieces := mergeRun(t, set, frames)
	subs := 0
	for _, s := range spans(pieces) {
		if s.text != "channel seven" {
			subs++
			if s.stop-s.start != 3000 || s.start%3000 != 0 {
				t.Errorf("subtitle cut or misplaced: %+v", s)
			}
		}
	}
	if subs != 14 || len(pieces) < 5 {
		t.Fatalf("want 14 subtitles in several pieces, got %d in %d", subs, len(pieces))
	}
	for _, p := range pieces[:len(pieces)-1] {
		if p.EndMs-p.StartMs > 2*set.maxDelayMs {
			t.Errorf("piece [%d, %d) held longer than twice max_delay", p.StartMs, p.EndMs)
		}
	}
}

func TestOCRMergeMovesTheBoundWhenNothingIsOnScreen(t *testing.T) {
	var bounds []int64
	emit := engine.NewEmitter(func(engine.Piece) error { return nil }, engine.OnBound(func(ms int64) error { bounds = append(bounds, ms); return nil }))
	m := newOCRMerger(mergeDefaults)
	for i := range 5 {
		if err := m.frame(int64(i)*1000, nil, emit); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(bounds) != "[1000 2000 3000 4000]" {
		t.Fatalf("bounds %v", bounds)
	}
}

func TestOCRMergeKeepsTwoIdenticalLinesApart(t *testing.T) {
	frames := [][]ocrLine{{line("same", 0.9, 0.1), line("same", 0.9, 0.6)}, {line("same", 0.9, 0.1)}, nil, nil}
	got := spans(mergeRun(t, mergeDefaults, frames))
	if len(got) != 2 {
		t.Fatalf("want two tracks, got %+v", got)
	}
}

// --- tesseract's TSV ---

const sampleTSV = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n" +
	"1\t1\t0\t0\t0\t0\t0\t0\t1280\t720\t-1\t\n" +
	"4\t1\t1\t1\t1\t0\t700\t76\t298\t35\t-1\t\n" +
	"5\t1\t1\t1\t1\t1\t700\t80\t133\t21\t96.5\tWeather\n" +
	"5\t1\t1\t1\t1\t2\t844\t76\t154\t26\t96.3\ttomorrow\n" +
	"5\t1\t1\t1\t1\t3\t1008\t87\t55\t14\t12.0\tsun\n" +
	"5\t1\t1\t1\t2\t1\t840\t160\t8\t8\t85.0\t.\n" +
	"5\t1\t2\t1\t1\t1\t103\t600\t151\t27\t96.5\tBreaking\n" +
	"5\t1\t2\t1\t1\t2\t275\t607\t88\t20\t91.0\tnews\n" +
	"5\t1\t2\t1\t1\t3\tx\t607\t88\t20\t91.0\tbad\n"

func TestParseTesseractTSVGroupsWordsIntoLinesAndDropsLowConfidence(t *testing.T) {
	lines := parseTesseractTSV(sampleTSV, 1280, 720, 0.6)
	if len(lines) != 2 || lines[0].text != "Weather tomorrow" || lines[1].text != "Breaking news" {
		t.Fatalf("lines: %+v", lines)
	}
	l := lines[0]
	if want := (ocrBox{700.0 / 1280, 76.0 / 720, 998.0 / 1280, 102.0 / 720}); l.box != want {
		t.Errorf("line box %+v, want %+v", l.box, want)
	}
	if l.conf < 0.963 || l.conf > 0.965 || l.words[1].conf != 0.963 {
		t.Errorf("confidences %v, %v", l.conf, l.words[1].conf)
	}
	if lines := parseTesseractTSV(sampleTSV, 1280, 720, 0); len(lines) != 2 || lines[0].text != "Weather tomorrow sun" {
		t.Errorf("min confidence 0: %+v", lines)
	}
}

func FuzzParseTesseractTSV(f *testing.F) {
	f.Add(sampleTSV, 1280, 720)
	f.Add("5\t1\t1\t1\t1\t1\t0\t0\t99999\t99999\t100\tx\ty", 1, 1)
	f.Fuzz(func(t *testing.T, tsv string, w, h int) {
		for _, l := range parseTesseractTSV(tsv, w, h, 0.5) {
			if l.key == "" || len(l.words) == 0 || l.conf < 0.5 || l.conf > 1 {
				t.Fatalf("bad line %+v", l)
			}
			for _, p := range l.box.poly() {
				if p.X < 0 || p.X > 1 || p.Y < 0 || p.Y > 1 {
					t.Fatalf("box outside the frame: %+v", l.box)
				}
			}
		}
	})
}

func TestReadPGMReadsFramesAndRefusesBadOnes(t *testing.T) {
	img := append([]byte("P5\n# by test\n3 2\n255\n"), 1, 2, 3, 4, 5, 6)
	r := bufio.NewReader(bytes.NewReader(append(img, img...)))
	for range 2 {
		f, err := readPGM(r)
		if err != nil || f.width != 3 || f.height != 2 || !bytes.Equal(f.pgm, img) {
			t.Fatalf("frame %+v, %v", f, err)
		}
	}
	if _, err := readPGM(r); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	for _, bad := range []string{"P6\n1 1\n255\n", "P5\n0 1\n255\nx", "P5\n1 1\n65535\nxx", "P5\n99999 99999\n255\n", "P5\n2 2\n255\nab", "P5 1"} {
		if _, err := readPGM(bufio.NewReader(strings.NewReader(bad))); err == nil || err == io.EOF {
			t.Errorf("%q: want an error, got %v", bad, err)
		}
	}
}

func FuzzReadPGM(f *testing.F) {
	f.Add([]byte("P5\n3 2\n255\n\x01\x02\x03\x04\x05\x06"))
	f.Add([]byte("P5 #c\n1 1 255 x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for range 4 {
			fr, err := readPGM(r)
			if err != nil {
				return
			}
			if fr.width*fr.height > len(fr.pgm) {
				t.Fatalf("%dx%d frame in %d bytes", fr.width, fr.height, len(fr.pgm))
			}
		}
	})
}

func TestParseTesseractLangs(t *testing.T) {
	out := "List of available languages in \"/usr/share/tesseract-ocr/5/tessdata/\" (3):\nchi_sim\neng\nosd\n"
	if got := fmt.Sprint(parseTesseractLangs(out)); got != "[chi_sim eng osd]" {
		t.Fatalf("got %s", got)
	}
}

// BenchmarkOCR runs the engine on the 30 s 720p30 caption clip, reading a
// frame every 2 s (the live target) and every 200 ms (to measure OCR's
// frames per second).
func BenchmarkOCR(b *testing.B) {
	clip := makeOCRClip(b, 30)
	for _, iv := range []time.Duration{2 * time.Second, 200 * time.Millisecond} {
		b.Run("interval="+iv.String(), func(b *testing.B) {
			reg, _ := engine.Default().Lookup("ocr")
			opts, err := reg.Spec.ParseOptions(map[string]any{"frame_interval": iv.String()})
			if err != nil {
				b.Fatal(err)
			}
			data := mustRead(b, clip)
			var elapsed time.Duration
			for range b.N {
				eng, _ := reg.Factory.(engine.StreamFactory)()
				start := time.Now()
				err := eng.Process(context.Background(), &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: bytes.NewReader(data)},
					opts, engine.NewEmitter(func(engine.Piece) error { return nil }))
				if err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
			}
			per := elapsed.Seconds() / float64(b.N)
			b.ReportMetric(30/per, "x-realtime")
			b.ReportMetric(30/iv.Seconds()/per, "frames/s")
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
