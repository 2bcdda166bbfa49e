package engines

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// sttSentences are the test's known speech: short sentences of common
// words, spoken by espeak-ng.
var sttSentences = []string{
	"the quick brown fox jumps over the lazy dog",
	"please call me at home tomorrow morning",
	"the weather is cold and wet today",
	"we will meet at the station at noon",
	"she reads a book every night",
	"turn left at the next corner",
	"my brother has two small dogs",
	"the train leaves in ten minutes",
	"i would like a cup of coffee",
	"open the door and come inside",
	"this is the news at six o'clock",
	"they bought a new house last year",
}

// sttClip is generated speech with its truth: where each sentence was
// placed, in ms.
type sttClip struct {
	path       string
	durationMs int64
	starts     []int64 // where each sentence's audio starts
	stops      []int64 // and ends (espeak-ng's short silences included)
}

// makeSTTClip speaks sentences with espeak-ng (its Klatt voice) and places
// sentence i at lead + i*every ms over a quiet noise floor (about
// -50 dBFS), encoded as AAC in MPEG-TS, as a live stream would carry it.
func makeSTTClip(t testing.TB, sentences []string, leadMs, everyMs int64) sttClip {
	t.Helper()
	testenv.RequireTool(t, "espeak-ng", "ffmpeg", "ffprobe")
	dir := t.TempDir()
	clip := sttClip{path: filepath.Join(dir, "speech.ts")}
	args := []string{"-hide_banner", "-loglevel", "error"}
	var filter, mix strings.Builder
	for i, s := range sentences {
		wav := filepath.Join(dir, fmt.Sprintf("s%d.wav", i))
		if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, s).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v: %s", err, out)
		}
		start := leadMs + int64(i)*everyMs
		clip.starts = append(clip.starts, start)
		clip.stops = append(clip.stops, start+wavDurationMs(t, wav))
		args = append(args, "-i", wav)
		fmt.Fprintf(&filter, "[%d]aresample=16000,adelay=%d:all=1[a%d];", i, start, i)
		fmt.Fprintf(&mix, "[a%d]", i)
	}
	clip.durationMs = clip.stops[len(clip.stops)-1] + everyMs/2
	n := len(sentences)
	args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("anoisesrc=color=pink:amplitude=0.003:sample_rate=16000:seed=7:duration=%.3f", float64(clip.durationMs)/1000))
	fmt.Fprintf(&filter, "%s[%d]amix=inputs=%d:normalize=0:duration=longest", mix.String(), n, n+1)
	args = append(args, "-filter_complex", filter.String(), "-ac", "1", "-ar", "16000", "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", clip.path)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return clip
}

func wavDurationMs(t testing.TB, path string) int64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	s, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe %s: %q", path, out)
	}
	return int64(s * 1000)
}

// sttUtterances returns the sentence series of the pieces, in order.
func sttUtterances(pieces []engine.Piece) []protocol.Series {
	var out []protocol.Series
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			if len(s.Words) == 1 && len(s.Tags) > 0 && s.Tags[0].Key == "utterance" {
				out = append(out, s)
			}
		}
	}
	return out
}

// wordErrorRate is the word-level edit distance between ref and hyp over
// the length of ref.
func wordErrorRate(ref, hyp []string) float64 {
	prev := make([]int, len(hyp)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ref); i++ {
		cur := make([]int, len(hyp)+1)
		cur[0] = i
		for j := 1; j <= len(hyp); j++ {
			sub := prev[j-1]
			if ref[i-1] != hyp[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev = cur
	}
	return float64(prev[len(hyp)]) / float64(len(ref))
}

// sttTranscript is what the clip's sentences say and what the engine
// heard, word by word.
func sttTranscript(sentences []string, pieces []engine.Piece) (ref, hyp []string) {
	for _, s := range sentences {
		ref = append(ref, strings.Fields(s)...)
	}
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			if len(s.Tags) == 0 {
				hyp = append(hyp, s.Words[0].Word)
			}
		}
	}
	return ref, hyp
}

func TestSTTTranscribesSentencesAtTheirTimes(t *testing.T) {
	testenv.RequireTool(t, "pocketsphinx_batch")
	clip := makeSTTClip(t, sttSentences, 2000, 6000)
	pieces, bound := runStreamEngine(t, "stt", clip.path, "mpegts", nil)
	utts := sttUtterances(pieces)
	for _, u := range utts {
		t.Logf("[%6d, %6d] %q (confidence %.2f)", u.StartTimeMs, u.StopTimeMs, u.Words[0].Word, u.Words[0].Confidence)
	}
	for i, s := range sttSentences {
		found := false
		for _, u := range utts {
			found = found || (u.StartTimeMs < clip.stops[i]+500 && u.StopTimeMs > clip.starts[i]-500 &&
				abs64(u.StartTimeMs-clip.starts[i]) <= 500 && abs64(u.StopTimeMs-clip.stops[i]) <= 500)
		}
		if !found {
			t.Errorf("sentence %d %q at [%d, %d] ms: no utterance within 0.5 s of it", i, s, clip.starts[i], clip.stops[i])
		}
	}
	if len(utts) > len(sttSentences)+2 {
		t.Errorf("%d utterances for %d sentences", len(utts), len(sttSentences))
	}
	ref, hyp := sttTranscript(sttSentences, pieces)
	wer := wordErrorRate(ref, hyp)
	t.Logf("word error rate %.1f %% (%d reference words, %d heard)", wer*100, len(ref), len(hyp))
	if wer > 0.6 {
		t.Errorf("word error rate %.1f %%, want at most 60 %%", wer*100)
	}
	if bound < clip.durationMs-500 {
		t.Errorf("final bound %d ms, want the clip's end (%d ms)", bound, clip.durationMs)
	}
	checkSTTPieces(t, pieces)
}

// checkSTTPieces checks every word series: one word, confidence 0..1,
// within its piece, and the sentence series covering them.
func checkSTTPieces(t *testing.T, pieces []engine.Piece) {
	t.Helper()
	for _, p := range pieces {
		if len(p.Doc.Series) < 2 {
			t.Fatalf("piece [%d, %d]: %d series, want a sentence and its words", p.StartMs, p.EndMs, len(p.Doc.Series))
		}
		sentence, words := p.Doc.Series[0], p.Doc.Series[1:]
		if int(sentence.Words[0].UtteranceLength) != len(words) {
			t.Errorf("sentence %q: utteranceLength %d, %d word series", sentence.Words[0].Word, sentence.Words[0].UtteranceLength, len(words))
		}
		for _, w := range words {
			if len(w.Words) != 1 || w.Words[0].Confidence < 0 || w.Words[0].Confidence > 1 || w.StartTimeMs < sentence.StartTimeMs || w.StopTimeMs > sentence.StopTimeMs {
				t.Errorf("word series %+v in sentence [%d, %d]", w, sentence.StartTimeMs, sentence.StopTimeMs)
			}
		}
	}
}

func TestSTTSpotsKeywords(t *testing.T) {
	testenv.RequireTool(t, "pocketsphinx_batch")
	clip := makeSTTClip(t, sttSentences, 1000, 5000)
	keywords := map[string]int{"lazy dog": 0, "tomorrow morning": 1, "coffee": 8}
	pieces, _ := runStreamEngine(t, "stt", clip.path, "mpegts", map[string]any{"keywords": []any{"lazy dog", "Tomorrow  Morning", "coffee"}})
	found := map[string]bool{}
	for _, p := range pieces {
		for _, s := range p.Doc.Series {
			if s.Object == nil || s.Object.Type != "keyword" {
				t.Fatalf("series %+v: want keyword objects only", s)
			}
			i, ok := keywords[s.Object.Label]
			t.Logf("[%d, %d] %q", s.StartTimeMs, s.StopTimeMs, s.Object.Label)
			if ok && s.StartTimeMs >= clip.starts[i]-500 && s.StopTimeMs <= clip.stops[i]+500 {
				found[s.Object.Label] = true
			}
		}
	}
	for k := range keywords {
		if !found[k] {
			t.Errorf("keyword %q not found in its sentence", k)
		}
	}
}

func TestSTTRefusesWordsOutsideTheDictionary(t *testing.T) {
	testenv.RequireTool(t, "pocketsphinx_batch")
	clip := makeSTTClip(t, sttSentences[:1], 500, 3000)
	reg, _ := engine.Default().Lookup("stt")
	o, err := reg.Spec.ParseOptions(map[string]any{"keywords": []any{"lazy dog", "zqxwv"}})
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := reg.Factory.(engine.StreamFactory)()
	f, err := os.Open(clip.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = eng.Process(context.Background(), &engine.Stream{Body: f}, o, engine.NewEmitter(func(engine.Piece) error { return nil }))
	if err == nil || !strings.Contains(err.Error(), `"zqxwv"`) || !strings.Contains(err.Error(), "dictionary") {
		t.Fatalf("err = %v, want one naming the word outside the dictionary", err)
	}
}

// TestSTTAnswersWhileTheStreamRuns feeds a clip at real time through a
// pipe, as a live stream arrives, and checks that utterances and the
// bound come out before the stream ends.
func TestSTTAnswersWhileTheStreamRuns(t *testing.T) {
	testenv.RequireTool(t, "pocketsphinx_batch")
	clip := makeSTTClip(t, sttSentences[:3], 1000, 5000)
	data, err := os.ReadFile(clip.path)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var mu sync.Mutex
	fed := false
	var early []engine.Piece
	var earlyBounds []int64
	go func() {
		defer pw.Close()
		per := len(data) * 100 / int(clip.durationMs) // bytes per 100 ms
		for off := 0; off < len(data); off += per {
			if _, err := pw.Write(data[off:min(off+per, len(data))]); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		fed = true
		mu.Unlock()
	}()
	reg, _ := engine.Default().Lookup("stt")
	o, _ := reg.Spec.ParseOptions(nil)
	eng, _ := reg.Factory.(engine.StreamFactory)()
	emit := engine.NewEmitter(func(p engine.Piece) error {
		mu.Lock()
		defer mu.Unlock()
		if !fed {
			early = append(early, p)
		}
		return nil
	}, engine.OnBound(func(ms int64) error {
		mu.Lock()
		defer mu.Unlock()
		if !fed {
			earlyBounds = append(earlyBounds, ms)
		}
		return nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eng.Process(ctx, &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: pr}, o, emit); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d utterances and %d bounds before the stream ended (%v)", len(early), len(earlyBounds), earlyBounds)
	if len(early) < 1 {
		t.Errorf("no utterance came out while the stream ran")
	}
	if len(earlyBounds) < 2 {
		t.Errorf("the bound moved %d times while the stream ran, want it to follow the audio", len(earlyBounds))
	}
}

// BenchmarkSTT reports the stt engine's real-time factor on a minute of
// generated speech (12 sentences over a noise floor).
func BenchmarkSTT(b *testing.B) {
	clip := makeSTTClip(b, sttSentences, 1000, 5000)
	reg, _ := engine.Default().Lookup("stt")
	o, _ := reg.Spec.ParseOptions(nil)
	eng, _ := reg.Factory.(engine.StreamFactory)()
	var words []string
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(clip.path)
		if err != nil {
			b.Fatal(err)
		}
		var pieces []engine.Piece
		emit := engine.NewEmitter(func(p engine.Piece) error { pieces = append(pieces, p); return nil })
		if err := eng.Process(context.Background(), &engine.Stream{Init: protocol.StreamInit{FFmpegFormat: "mpegts"}, Body: f}, o, emit); err != nil {
			b.Fatal(err)
		}
		f.Close()
		var ref []string
		ref, words = sttTranscript(sttSentences, pieces)
		b.ReportMetric(wordErrorRate(ref, words)*100, "WER%")
	}
	b.ReportMetric(float64(clip.durationMs)/1000*float64(b.N)/b.Elapsed().Seconds(), "x-realtime")
}

func TestSTTCutsLongSpeechAtMaxUtterance(t *testing.T) {
	// 12 s of a loud tone is "speech" without a pause: with a 4 s limit it
	// comes out as utterances of at most 4 s, back to back.
	seg := newSegmenter(sttConfig{pause: 500 * time.Millisecond, maxUtterance: 4 * time.Second})
	frame := make([]byte, sttFrame*2)
	for i := range sttFrame {
		v := int16(8000)
		if i%2 == 1 {
			v = -8000
		}
		frame[2*i], frame[2*i+1] = byte(v), byte(uint16(v)>>8)
	}
	var utts []segUtt
	for range 1200 {
		utts = append(utts, seg.push(frame)...)
	}
	if u, ok := seg.flush(); ok {
		utts = append(utts, u)
	}
	if len(utts) < 3 {
		t.Fatalf("%d utterances, want 12 s cut into at least 3", len(utts))
	}
	end := utts[0].start
	for i, u := range utts {
		if u.start != end || len(u.pcm)/2 > 4*sttRate || len(u.pcm) == 0 {
			t.Errorf("utterance %d: start %d (previous end %d), %d samples", i, u.start, end, len(u.pcm)/2)
		}
		end = u.start + int64(len(u.pcm)/2)
	}
}

// FuzzSTTResultLine feeds PocketSphinx output lines to the parsers: they
// must never panic, and never give a word that ends before it starts.
func FuzzSTTResultLine(f *testing.F) {
	f.Add("u0 1 2.97 0.12 the 0.573")
	f.Add("u2 S 0 T -1463 A -1463 L 0 298 -1463 0 the weather 342")
	f.Add("u0 S 0 T 0 A 0 L 0 0")
	f.Add("u1 1 NaN 1e400 x -3")
	f.Fuzz(func(t *testing.T, line string) {
		fields := strings.Fields(line)
		var words []sttWord
		if len(fields) == 6 {
			if w, ok := parseCTM(fields); ok {
				words = append(words, w)
			}
		}
		if len(fields) >= 10 {
			words = append(words, parseHypseg(fields)...)
		}
		for _, w := range words {
			if w.start < 0 || w.end < w.start || w.conf < 0 || w.conf > 1 {
				t.Fatalf("%q: word %+v", line, w)
			}
		}
	})
}

// FuzzSTTSegmenter feeds any bytes as PCM: utterances come in order,
// never overlap, hold audio, and the bound's position never goes back.
func FuzzSTTSegmenter(f *testing.F) {
	f.Add([]byte{0, 0, 0x40, 0x1f, 0xc0, 0xe0}, uint16(300), uint16(2000))
	f.Fuzz(func(t *testing.T, pattern []byte, pauseMs, maxMs uint16) {
		if len(pattern) == 0 {
			return
		}
		cfg := sttConfig{pause: time.Duration(150+int(pauseMs)%2000) * time.Millisecond, maxUtterance: time.Duration(2000+int(maxMs)%5000) * time.Millisecond}
		seg := newSegmenter(cfg)
		var utts []segUtt
		var lastSafe int64
		const n = 8 * sttRate * 2 // 8 s
		data := make([]byte, 0, n+len(pattern))
		for len(data) < n {
			data = append(data, pattern...)
		}
		for off := 0; off < len(data); off += sttFrame * 2 {
			utts = append(utts, seg.push(data[off:min(off+sttFrame*2, len(data))])...)
			if s := seg.safeMs(); s < lastSafe {
				t.Fatalf("safeMs went back from %d to %d", lastSafe, s)
			} else {
				lastSafe = s
			}
		}
		if u, ok := seg.flush(); ok {
			utts = append(utts, u)
		}
		var end int64
		for i, u := range utts {
			if u.start < end || len(u.pcm) == 0 || u.start+int64(len(u.pcm)/2) > seg.samples {
				t.Fatalf("utterance %d: start %d, %d samples, previous end %d", i, u.start, len(u.pcm)/2, end)
			}
			end = u.start + int64(len(u.pcm)/2)
		}
	})
}
