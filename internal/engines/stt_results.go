package engines

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/weir-media/weir/protocol"
)

// sttWord is a recognised word or spotted phrase, in ms from the start of
// its utterance.
type sttWord struct {
	text       string
	start, end int64
	conf       float64 // 0 when unknown (keyword spotting)
}

// readResults reads PocketSphinx's results and log until it exits,
// answering each utterance when its "done" line comes.
func (st *sttState) readResults(r io.Reader, keywords bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	words := map[string][]sttWord{}
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[1] == "done" && strings.HasPrefix(f[2], "---"):
			if err := st.answer(f[0], words[f[0]]); err != nil {
				return err
			}
			delete(words, f[0])
		case !keywords && len(f) == 6 && f[1] == "1":
			if w, ok := parseCTM(f); ok {
				words[f[0]] = append(words[f[0]], w)
			}
		case keywords && len(f) >= 10 && f[1] == "S" && f[3] == "T":
			words[f[0]] = append(words[f[0]], parseHypseg(f)...)
		case strings.Contains(line, "ERROR") || strings.Contains(line, "FATAL"):
			st.log.add(line)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil
	}
	return fmt.Errorf("pocketsphinx_batch stopped before the stream ended: %s", st.log.String())
}

// parseCTM reads a CTM line: utterance, channel, start (s), duration (s),
// word, confidence.
func parseCTM(f []string) (sttWord, bool) {
	start, err1 := strconv.ParseFloat(f[2], 64)
	dur, err2 := strconv.ParseFloat(f[3], 64)
	conf, err3 := strconv.ParseFloat(f[5], 64)
	ok := func(v float64) bool { return v >= 0 && v < 1e6 } // false for NaN too
	if err1 != nil || err2 != nil || err3 != nil || !ok(start) || !ok(dur) || math.IsNaN(conf) {
		return sttWord{}, false
	}
	ms := int64(math.Round(start * 1000))
	return sttWord{text: f[4], start: ms, end: ms + int64(math.Round(dur*1000)), conf: min(1, max(0, conf))}, true
}

// parseHypseg reads the phrases of a segmentation line: "utt S s T t A a
// L l" then, per phrase, its first frame, two scores and its words, and
// last the end frame. Frames are 10 ms.
func parseHypseg(f []string) []sttWord {
	isInt := func(s string) bool { _, err := strconv.Atoi(s); return err == nil }
	var out []sttWord
	for i := 9; i+3 < len(f); {
		sf, err := strconv.Atoi(f[i])
		if err != nil {
			return out
		}
		j := i + 3
		for j < len(f) && !isInt(f[j]) {
			j++
		}
		if j == i+3 || j >= len(f) {
			return out
		}
		ef, _ := strconv.Atoi(f[j])
		if sf < 0 || ef < sf || ef > 1e8 {
			return out
		}
		out = append(out, sttWord{text: strings.Join(f[i+3:j], " "), start: int64(sf) * 10, end: int64(ef) * 10})
		i = j
	}
	return out
}

// answer emits utterance id's words as one piece and retires it, with any
// earlier utterance PocketSphinx passed over without an answer.
func (st *sttState) answer(id string, words []sttWord) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for len(st.pending) > 0 {
		u := st.pending[0]
		if u.id == id && len(words) > 0 {
			if err := st.emit.Emit(u.startMs(), u.endMs(), sttDocument(u, words, st.keywords)); err != nil {
				return err
			}
		}
		st.pending = st.pending[1:]
		_ = os.Remove(filepath.Join(st.dir, u.id+".raw"))
		<-st.queue
		if u.id == id {
			break
		}
	}
	return nil
}

// sttDocument is an utterance's output: a series per word, and (when
// transcribing) a series for the whole utterance whose single word is the
// sentence, with utteranceLength its number of words.
func sttDocument(u sttUtt, words []sttWord, keywords bool) *protocol.Document {
	from, to := u.startMs(), u.endMs()
	clamp := func(ms int64) int64 { return min(to, max(from, from+ms)) }
	doc := &protocol.Document{}
	texts := make([]string, 0, len(words))
	var confSum float64
	for _, w := range words {
		s := protocol.Series{StartTimeMs: clamp(w.start), StopTimeMs: clamp(w.end),
			Words: []protocol.Word{{Word: w.text, Confidence: w.conf, BestPath: true}}}
		if keywords {
			s.Words[0].UtteranceLength = int64(len(strings.Fields(w.text)))
			s.Object = &protocol.Object{Type: "keyword", Label: w.text, Text: w.text}
		}
		doc.Series = append(doc.Series, s)
		texts = append(texts, w.text)
		confSum += w.conf
	}
	if keywords {
		return doc
	}
	sentence := protocol.Series{
		StartTimeMs: doc.Series[0].StartTimeMs, StopTimeMs: doc.Series[len(doc.Series)-1].StopTimeMs,
		Tags: []protocol.Tag{{Key: "utterance", Value: u.id}},
		Words: []protocol.Word{{Word: strings.Join(texts, " "), Confidence: math.Round(confSum/float64(len(words))*1000) / 1000,
			BestPath: true, UtteranceLength: int64(len(words))}},
	}
	doc.Series = append([]protocol.Series{sentence}, doc.Series...)
	return doc
}
