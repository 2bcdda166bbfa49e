package engines

import (
	"encoding/binary"
	"math"
)

// segmenter cuts 16 kHz mono s16le PCM into utterances. A 10 ms frame is
// speech when its level is 12 dB above the noise floor (and above
// -55 dBFS); the floor follows the quietest frames down at once and
// creeps up 0.5 dB a second, so steady background sound stops counting
// as speech. An utterance starts after 50 ms of speech (with 250 ms
// before it), ends when a pause has lasted cfg.pause (with 200 ms after
// the last speech), and is cut at its quietest frame of the last second
// once it reaches cfg.maxUtterance. All positions are in samples from the
// start of the input, and always whole frames.
type segmenter struct {
	pause, maxLen int64 // in samples

	samples  int64     // samples read so far
	buf      []byte    // the PCM from bufStart on
	levels   []float64 // the level of each frame of buf, in dBFS
	bufStart int64

	noise      float64 // the noise floor, dBFS
	inSpeech   bool
	run        int64 // speech frames in a row while not in speech
	segStart   int64 // the open utterance's start
	lastSpeech int64 // where the last speech frame ended
	lastEnd    int64 // where the last utterance ended
}

const (
	segPreroll   = 25 * sttFrame // kept before the first speech frame
	segPostroll  = 20 * sttFrame // kept after the last speech frame
	segMinSpeech = 5             // frames of speech that start an utterance
	segAboveDB   = 12.0
	segMinDB     = -55.0
	segRiseDB    = 0.005 // per frame: 0.5 dB a second
)

// segUtt is an utterance the segmenter closed.
type segUtt struct {
	start int64
	pcm   []byte
}

func newSegmenter(cfg sttConfig) *segmenter {
	return &segmenter{
		pause:  roundFrames(cfg.pause.Seconds() * sttRate),
		maxLen: roundFrames(cfg.maxUtterance.Seconds() * sttRate),
		noise:  -70,
	}
}

// roundFrames rounds a number of samples to whole frames, at least one.
func roundFrames(samples float64) int64 {
	return max(1, int64(math.Round(samples/sttFrame))) * sttFrame
}

// frameLevel is the RMS level of a frame in dBFS, at least -100.
func frameLevel(pcm []byte) float64 {
	n := len(pcm) / 2
	if n == 0 {
		return -100
	}
	var sum float64
	for i := range n {
		v := float64(int16(binary.LittleEndian.Uint16(pcm[2*i:])))
		sum += v * v
	}
	return max(-100, 10*math.Log10(sum/float64(n)/(32768*32768)+1e-12))
}

// push takes one frame (a shorter one only at the end of the input) and
// returns the utterances it closed.
func (g *segmenter) push(frame []byte) []segUtt {
	level := frameLevel(frame)
	g.buf = append(g.buf, frame...)
	g.levels = append(g.levels, level)
	g.samples += int64(len(frame) / 2)
	g.noise = min(level, g.noise+segRiseDB)
	speech := level > max(g.noise+segAboveDB, segMinDB)
	now := g.samples
	var out []segUtt
	switch {
	case !g.inSpeech && speech:
		g.run++
		if g.run >= segMinSpeech {
			g.inSpeech = true
			g.segStart = max(g.lastEnd, g.bufStart, now-g.run*sttFrame-segPreroll)
			g.lastSpeech = now
		}
	case !g.inSpeech:
		g.run = 0
	case speech:
		g.lastSpeech = now
	}
	if g.inSpeech {
		if now-g.lastSpeech >= g.pause {
			out = g.close(out, min(g.lastSpeech+segPostroll, now))
			g.inSpeech, g.run = false, 0
		} else if now-g.segStart >= g.maxLen {
			out = g.close(out, g.quietest(now))
			g.segStart = g.lastEnd
		}
	}
	if !g.inSpeech {
		g.trim(max(g.lastEnd, now-segPreroll-segMinSpeech*sttFrame))
	}
	return out
}

// quietest is the end of the quietest frame in the last second before
// now (the later one on ties), where a long utterance is cut.
func (g *segmenter) quietest(now int64) int64 {
	from := max(g.segStart+sttFrame, now-sttRate, g.bufStart+sttFrame)
	best, bestLevel := now, math.Inf(1)
	for end := from; end <= now; end += sttFrame {
		if l := g.levels[(end-g.bufStart)/sttFrame-1]; l <= bestLevel {
			best, bestLevel = end, l
		}
	}
	return best
}

// close appends the open utterance, ending at end, to out (unless it is
// empty: a long one cut just before its pause) and drops the audio before
// end.
func (g *segmenter) close(out []segUtt, end int64) []segUtt {
	if end <= g.segStart {
		return out
	}
	a, b := (g.segStart-g.bufStart)*2, (end-g.bufStart)*2
	out = append(out, segUtt{start: g.segStart, pcm: append([]byte(nil), g.buf[a:b]...)})
	g.lastEnd = end
	g.trim(end)
	return out
}

// trim drops the audio before at (a frame boundary).
func (g *segmenter) trim(at int64) {
	if at <= g.bufStart {
		return
	}
	frames := min((at-g.bufStart)/sttFrame, int64(len(g.levels)))
	g.buf = append(g.buf[:0], g.buf[frames*sttFrame*2:]...)
	g.levels = append(g.levels[:0], g.levels[frames:]...)
	g.bufStart += frames * sttFrame
}

// flush closes the utterance still open at the end of the input.
func (g *segmenter) flush() (segUtt, bool) {
	if !g.inSpeech {
		return segUtt{}, false
	}
	g.inSpeech = false
	out := g.close(nil, min(g.lastSpeech+segPostroll, g.samples))
	if len(out) == 0 {
		return segUtt{}, false
	}
	return out[0], true
}

// safeMs is the earliest an utterance not yet closed can start, in ms:
// how far the bound may go as far as the audio is concerned.
func (g *segmenter) safeMs() int64 {
	at := g.segStart
	if !g.inSpeech {
		at = max(g.lastEnd, g.samples-segPreroll-segMinSpeech*sttFrame)
	}
	return max(0, at) * 1000 / sttRate
}
