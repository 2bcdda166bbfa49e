package engines

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// This file holds the ocr engine's logic that needs no program: reading
// tesseract's TSV into lines, and merging the lines of consecutive frames
// into time ranges emitted in the Emitter's order.
//
// Merging. A line read on a sample opens a track; the track stays open
// while later samples read the same line (same text once case and spaces
// are normalized, or within the similarity option by edit distance; each
// track takes at most one line per sample, the most alike first). When a
// track's line is missing from more than max_missed samples in a row, it
// closes: its range is [the sample where it was first read, the first
// sample where it was missing). At the end of the stream open tracks close
// at their last sample plus frame_interval. A track keeps the reading with
// the best mean word confidence.
//
// Pieces. Emitted pieces may not overlap, and a track's series must lie in
// one piece, so tracks that overlap in time go out together: the pending
// tracks (closed but not emitted, or open) form one group, and its piece
// is emitted as soon as no track is open, covering [the group's first
// start, its last end) with one series per track. Text that never leaves
// the screen (a channel logo) would hold a group open forever, so once a
// group is max_delay old and every open track in it has been on screen
// for max_delay (or the group is twice max_delay old), the group is cut at
// the current sample: the piece covers up to it, open tracks are
// reported up to it and continue in the next piece. A caption shorter than
// max_delay is never cut unless captions overlap without a break for
// twice max_delay. While nothing is pending the bound moves to every
// sample, so time advances without text.

// ocrMergeSettings are the merging options.
type ocrMergeSettings struct {
	intervalMs int64
	maxDelayMs int64
	maxMissed  int
	similarity float64
}

// ocrBox is a rectangle in fractions of the frame's width and height.
type ocrBox struct{ x0, y0, x1, y1 float64 }

// union is the smallest box holding b and o.
func (b ocrBox) union(o ocrBox) ocrBox {
	return ocrBox{min(b.x0, o.x0), min(b.y0, o.y0), max(b.x1, o.x1), max(b.y1, o.y1)}
}

// poly is the box as a vtn-standard boundingPoly: four points clockwise
// from the top left.
func (b ocrBox) poly() []protocol.Point {
	r := func(v float64) float64 { return math.Round(v*1e4) / 1e4 }
	return []protocol.Point{{X: r(b.x0), Y: r(b.y0)}, {X: r(b.x1), Y: r(b.y0)}, {X: r(b.x1), Y: r(b.y1)}, {X: r(b.x0), Y: r(b.y1)}}
}

// ocrWord is one word tesseract read.
type ocrWord struct {
	text string
	conf float64 // 0 to 1
	box  ocrBox
}

// ocrLine is one line of words read on a frame.
type ocrLine struct {
	text  string // the words joined with spaces
	key   string // text normalized for comparison
	conf  float64
	box   ocrBox
	words []ocrWord
}

// maxOCRLineRunes bounds a line's text, so comparing lines stays cheap
// whatever a frame holds.
const maxOCRLineRunes = 500

// parseTesseractTSV reads tesseract's TSV output (a header, then one row
// per page, block, paragraph, line and word: level, page_num, block_num,
// par_num, line_num, word_num, left, top, width, height, conf, text) for a
// width x height frame. Words below minConf (0 to 1) and words with no
// letter or digit are dropped; lines left with no word are too. Rows that
// are not well-formed word rows are skipped.
func parseTesseractTSV(tsv string, width, height int, minConf float64) []ocrLine {
	if width <= 0 || height <= 0 {
		return nil
	}
	var lines []ocrLine
	var cur *ocrLine
	var curKey string
	for _, row := range strings.Split(tsv, "\n") {
		f := strings.Split(strings.TrimRight(row, "\r"), "\t")
		if len(f) < 12 || f[0] != "5" {
			continue
		}
		w, ok := tsvWord(f, width, height)
		if !ok || w.conf < minConf {
			continue
		}
		key := strings.Join(f[1:5], ".")
		if cur == nil || key != curKey {
			lines = append(lines, ocrLine{box: w.box})
			cur, curKey = &lines[len(lines)-1], key
		}
		cur.words = append(cur.words, w)
		cur.box = cur.box.union(w.box)
	}
	out := lines[:0]
	for _, l := range lines {
		if l.finish() {
			out = append(out, l)
		}
	}
	return out
}

// tsvWord reads a word row's box, confidence and text.
func tsvWord(f []string, width, height int) (ocrWord, bool) {
	var n [4]int
	for i := range n {
		v, err := strconv.Atoi(f[6+i])
		if err != nil || v < 0 || v > 1<<20 {
			return ocrWord{}, false
		}
		n[i] = v
	}
	conf, err := strconv.ParseFloat(f[10], 64)
	if err != nil || math.IsNaN(conf) || conf < 0 || conf > 100 {
		return ocrWord{}, false
	}
	text := strings.TrimSpace(strings.Join(f[11:], " "))
	if !strings.ContainsFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
		return ocrWord{}, false
	}
	fx := func(v int) float64 { return min(float64(v)/float64(width), 1) }
	fy := func(v int) float64 { return min(float64(v)/float64(height), 1) }
	box := ocrBox{fx(n[0]), fy(n[1]), fx(n[0] + n[2]), fy(n[1] + n[3])}
	return ocrWord{text: text, conf: conf / 100, box: box}, true
}

// finish sets the line's text, key and confidence; false when the line is
// empty.
func (l *ocrLine) finish() bool {
	if len(l.words) == 0 {
		return false
	}
	parts := make([]string, len(l.words))
	sum := 0.0
	for i, w := range l.words {
		parts[i] = w.text
		sum += w.conf
	}
	l.text = truncateRunes(strings.Join(parts, " "), maxOCRLineRunes)
	l.key = normalizeOCRText(l.text)
	l.conf = sum / float64(len(l.words))
	return l.key != ""
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// normalizeOCRText lower-cases s and collapses its whitespace.
func normalizeOCRText(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// textSimilarity is 1 - (edit distance / length of the longer), 1 for
// equal texts.
func textSimilarity(a, b string) float64 {
	if a == b {
		return 1
	}
	ra, rb := []rune(a), []rune(b)
	n := max(len(ra), len(rb))
	if n == 0 {
		return 1
	}
	return 1 - float64(levenshtein(ra, rb))/float64(n)
}

// levenshtein is the edit distance between a and b (insertions, deletions,
// substitutions), with one row of memory.
func levenshtein(a, b []rune) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := min(row[j]+1, row[j-1]+1, diag+cost)
			diag, row[j] = row[j], next
		}
	}
	return row[len(b)]
}

// ocrTrack is one line followed across samples.
type ocrTrack struct {
	best     ocrLine // the reading with the best confidence
	first    int64   // the sample where it was first read
	last     int64   // the last sample that read it
	segStart int64   // where the part not yet emitted starts
	missed   int     // samples in a row that missed it
	absentAt int64   // the first of those samples
	end      int64   // where it ended, once closed
}

// ocrMerger turns the lines of successive samples into pieces. See the
// comment at the top of the file.
type ocrMerger struct {
	set   ocrMergeSettings
	open  []*ocrTrack
	done  []*ocrTrack
	lastT int64
	seen  bool
}

func newOCRMerger(set ocrMergeSettings) *ocrMerger { return &ocrMerger{set: set} }

// frame takes the lines read on the sample at t (ms, never decreasing),
// emitting what it completes and moving the bound.
func (m *ocrMerger) frame(t int64, lines []ocrLine, emit *engine.Emitter) error {
	m.lastT, m.seen = t, true
	m.match(t, lines)
	if c, ok := m.cutPoint(t); ok {
		if err := m.flush(c, emit); err != nil {
			return err
		}
	}
	if len(m.open) == 0 && len(m.done) == 0 {
		return emit.Bound(max(t, emit.BoundMs()))
	}
	return nil
}

// match pairs the sample's lines with the open tracks, most alike first;
// unmatched lines open tracks, tracks missed too often close.
func (m *ocrMerger) match(t int64, lines []ocrLine) {
	type pair struct {
		sim  float64
		l, k int
	}
	var pairs []pair
	for li, l := range lines {
		for ki, k := range m.open {
			if s := textSimilarity(l.key, k.best.key); s >= m.set.similarity {
				pairs = append(pairs, pair{s, li, ki})
			}
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return cmp.Compare(b.sim, a.sim) })
	usedLine := make([]bool, len(lines))
	usedTrack := make([]bool, len(m.open))
	for _, p := range pairs {
		if usedLine[p.l] || usedTrack[p.k] {
			continue
		}
		usedLine[p.l], usedTrack[p.k] = true, true
		k := m.open[p.k]
		k.last, k.missed = t, 0
		if lines[p.l].conf > k.best.conf {
			k.best = lines[p.l]
		}
	}
	var still []*ocrTrack
	for ki, k := range m.open {
		if !usedTrack[ki] {
			if k.missed == 0 {
				k.absentAt = t
			}
			if k.missed++; k.missed > m.set.maxMissed {
				k.end = k.absentAt
				m.done = append(m.done, k)
				continue
			}
		}
		still = append(still, k)
	}
	for li, l := range lines {
		if !usedLine[li] {
			still = append(still, &ocrTrack{best: l, first: t, last: t, segStart: t})
		}
	}
	m.open = still
}

// groupStart is where the pending group starts.
func (m *ocrMerger) groupStart() int64 {
	start := int64(math.MaxInt64)
	for _, k := range m.open {
		start = min(start, k.segStart)
	}
	for _, k := range m.done {
		start = min(start, k.segStart)
	}
	return start
}

// stop is where the track's pending part ends as far as is known at t:
// its end once closed, the first sample that missed it, or t.
func (k *ocrTrack) stop(t int64, closed bool) int64 {
	switch {
	case closed:
		return k.end
	case k.missed > 0:
		return min(k.absentAt, t)
	}
	return t
}

// cutPoint chooses where to cut the pending group at sample t, if
// anywhere. Candidates are the sample times after the group's start where
// a track started or ended, and t. A cut no track spans is taken at once
// (the latest such). Once the group is max_delay old, a cut spanned only by
// long tracks (on screen for max_delay) is taken too; once it is twice
// that, the cut spanned by the fewest short tracks (latest on ties).
func (m *ocrMerger) cutPoint(t int64) (int64, bool) {
	if len(m.open)+len(m.done) == 0 {
		return 0, false
	}
	start := m.groupStart()
	cands := []int64{t}
	for _, k := range m.done {
		cands = append(cands, k.end, k.first)
	}
	for _, k := range m.open {
		cands = append(cands, k.first)
	}
	age := t - start
	best, bestShort, found := int64(0), math.MaxInt, false
	for _, c := range cands {
		if c <= start || c > t {
			continue
		}
		short, long := m.spanning(c, t)
		ok := short+long == 0 ||
			(age >= m.set.maxDelayMs && short == 0) ||
			age >= 2*m.set.maxDelayMs
		if !ok {
			continue
		}
		if short < bestShort || (short == bestShort && c > best) {
			best, bestShort, found = c, short, true
		}
	}
	return best, found
}

// spanning counts the tracks whose pending part runs across c (starts
// before it and ends after it), as short and long (on screen for
// max_delay by t).
func (m *ocrMerger) spanning(c, t int64) (short, long int) {
	count := func(k *ocrTrack, closed bool) {
		if k.segStart >= c || (closed && k.end <= c) {
			return
		}
		if k.stop(t, closed)-k.first >= m.set.maxDelayMs {
			long++
		} else {
			short++
		}
	}
	for _, k := range m.done {
		count(k, true)
	}
	for _, k := range m.open {
		count(k, false)
	}
	return short, long
}

// flush emits the pending group up to cut: tracks ended by then whole,
// the others up to cut (they continue from there).
func (m *ocrMerger) flush(cut int64, emit *engine.Emitter) error {
	start := max(m.groupStart(), emit.BoundMs())
	var series []protocol.Series
	part := func(k *ocrTrack, closed bool) bool {
		if stop := min(k.stop(cut, closed), cut); stop > k.segStart && k.segStart < cut {
			series = append(series, k.series(k.segStart, stop))
		}
		k.segStart = max(k.segStart, cut)
		return closed && k.end <= cut
	}
	m.done = slices.DeleteFunc(m.done, func(k *ocrTrack) bool { return part(k, true) })
	for _, k := range m.open {
		part(k, false)
	}
	if len(series) == 0 {
		return nil
	}
	slices.SortStableFunc(series, func(a, b protocol.Series) int {
		if a.StartTimeMs != b.StartTimeMs {
			return cmpInt(a.StartTimeMs, b.StartTimeMs)
		}
		return cmp.Compare(a.Object.BoundingPoly[0].Y, b.Object.BoundingPoly[0].Y)
	})
	return emit.Emit(start, cut, &protocol.Document{Series: series})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// finish closes the open tracks at the end of the stream and emits them.
func (m *ocrMerger) finish(emit *engine.Emitter) error {
	end := m.lastT
	for _, k := range m.open {
		k.end = k.last + m.set.intervalMs
		if k.missed > 0 {
			k.end = k.absentAt
		}
		end = max(end, k.end)
		m.done = append(m.done, k)
	}
	m.open = nil
	for _, k := range m.done {
		end = max(end, k.end)
	}
	if len(m.done) > 0 {
		if err := m.flush(end, emit); err != nil {
			return err
		}
	}
	if m.seen {
		return emit.Bound(max(m.lastT, emit.BoundMs()))
	}
	return nil
}

// series is the track's series from start to stop: an object of type
// "text" with the line, its box and confidence, and the line's words in
// reading order, each with its confidence and box.
func (k *ocrTrack) series(start, stop int64) protocol.Series {
	l := k.best
	words := make([]protocol.Word, len(l.words))
	for i, w := range l.words {
		poly, _ := json.Marshal(w.box.poly())
		words[i] = protocol.Word{Word: w.text, Confidence: round3(w.conf), BestPath: true,
			Extra: map[string]json.RawMessage{"boundingPoly": poly}}
	}
	return protocol.Series{
		StartTimeMs: start, StopTimeMs: stop,
		Words:  words,
		Object: &protocol.Object{Type: "text", Text: l.text, Confidence: round3(l.conf), BoundingPoly: l.box.poly()},
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
