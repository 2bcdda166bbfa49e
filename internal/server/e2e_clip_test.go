package server

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The end-to-end test's clip: 30 s of 1280x720 H.264 at 25 fps and mono
// AAC, whose every finding is known. Times are milliseconds from its start.
//
// Picture: a flat blue-grey card with e2eDrawnWord drawn on it, cut at
// 8 s to colour bars, at 14 s to black, at 16 s to a moving test pattern,
// at 24 s to a flat olive card with e2eCutWord on it. Sound: quiet pink noise (about -50 dBFS)
// throughout, three sentences spoken by espeak-ng, the jingle from 9 s to
// 15 s, and digital silence from 20.5 s to 23.5 s.
const (
	e2eClipMs      = 30000
	e2eDrawnWord   = "Lighthouse"
	e2eDrawnFromMs = 2000
	e2eDrawnToMs   = 6000
	// e2eCutWord is drawn on the last scene, from its cut to the end.
	e2eCutWord       = "Harbour"
	e2eCutWordFromMs = 24000
	e2eBlackFromMs   = 14000
	e2eBlackToMs     = 16000
	e2eJingleFromMs  = 9000
	e2eJingleMs      = 6000
	e2eSilentFromMs  = 20500
	e2eSilentToMs    = 23500
	// e2eMovingFromMs..e2eMovingToMs is the one stretch of moving
	// picture: no frozen video there.
	e2eMovingFromMs = 16000
	e2eMovingToMs   = 24000
	e2eFrameMs      = 40
)

// e2eCuts are the scene cuts, ms.
var e2eCuts = []int64{8000, 14000, 16000, 24000}

// e2eSentence is a sentence of the clip: said from at, holding word (one
// the recogniser hears reliably).
type e2eSentence struct {
	text string
	word string
	at   int64
}

var e2eSentences = []e2eSentence{
	{"please call me at home tomorrow morning", "tomorrow", 1000},
	{"the weather is cold and wet today", "weather", 17000},
	{"the quick brown fox jumps over the lazy dog", "lazy", 25000},
}

// e2eClip is the generated clip, the jingle's reference clip, and where
// each sentence's speech starts and ends (its wav's leading and trailing
// silence taken off).
type e2eClip struct {
	path   string
	jingle string
	speech [][2]int64
}

// e2eJingleExpr is the jingle: an arpeggio of eighth notes whose pitch
// wanders over 19 semitones, over a bass that changes every second.
const e2eJingleExpr = "0.25*sin(2*PI*392*pow(2,mod(floor(t*4)*floor(t*4)*5+floor(t*4)*2,19)/12)*t)" +
	"+0.15*sin(2*PI*98*pow(2,mod(floor(t)*7,12)/12)*t)"

// makeE2EClip writes the clip and the jingle.
func makeE2EClip(t *testing.T) e2eClip {
	t.Helper()
	dir := t.TempDir()
	c := e2eClip{path: filepath.Join(dir, "programme.mp4"), jingle: filepath.Join(dir, "jingle.wav")}
	runFFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='%s':s=48000:d=%g", e2eJingleExpr, float64(e2eJingleMs)/1000),
		"-c:a", "pcm_s16le", c.jingle)
	args := []string{
		"-f", "lavfi", "-i", "color=c=0x203040:s=1280x720:r=25:d=8",
		"-f", "lavfi", "-i", "smptebars=s=1280x720:r=25:d=6",
		"-f", "lavfi", "-i", "color=c=black:s=1280x720:r=25:d=2",
		"-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25:d=8",
		"-f", "lavfi", "-i", "color=c=0x405020:s=1280x720:r=25:d=6",
	}
	var filter, mix strings.Builder
	fmt.Fprintf(&filter, "[0:v]drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:text=%s:fontsize=72:fontcolor=white:x=(w-tw)/2:y=(h-th)/2:enable='between(t,%g,%g)'[card];",
		e2eDrawnWord, float64(e2eDrawnFromMs)/1000, float64(e2eDrawnToMs)/1000-0.001)
	fmt.Fprintf(&filter, "[4:v]drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:text=%s:fontsize=72:fontcolor=white:x=(w-tw)/2:y=(h-th)/2[last];", e2eCutWord)
	filter.WriteString("[card][1:v][2:v][3:v][last]concat=n=5:v=1:a=0,format=yuv420p[v];")
	for i, s := range e2eSentences {
		wav := filepath.Join(dir, fmt.Sprintf("sentence%d.wav", i))
		if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, s.text).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v: %s", err, out)
		}
		from, to := speechSpan(t, wav)
		c.speech = append(c.speech, [2]int64{s.at + from, s.at + to})
		args = append(args, "-i", wav)
		fmt.Fprintf(&filter, "[%d:a]aresample=48000,adelay=%d:all=1[s%d];", 5+i, s.at, i)
		fmt.Fprintf(&mix, "[s%d]", i)
	}
	n := 5 + len(e2eSentences)
	args = append(args, "-i", c.jingle,
		"-f", "lavfi", "-i", fmt.Sprintf("anoisesrc=color=pink:amplitude=0.003:sample_rate=48000:seed=11:duration=%d", e2eClipMs/1000))
	fmt.Fprintf(&filter, "[%d:a]adelay=%d:all=1[j];", n, e2eJingleFromMs)
	fmt.Fprintf(&filter, "[%d:a]volume=enable='between(t,%g,%g)':volume=0[n];", n+1, float64(e2eSilentFromMs)/1000, float64(e2eSilentToMs)/1000)
	fmt.Fprintf(&filter, "%s[j][n]amix=inputs=%d:normalize=0:duration=longest[a]", mix.String(), len(e2eSentences)+2)
	args = append(args, "-filter_complex", filter.String(), "-map", "[v]", "-map", "[a]", "-t", fmt.Sprint(e2eClipMs/1000),
		// A key frame every second: the job's 5 s chunks start on the
		// second.
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "1", "-movflags", "+faststart", c.path)
	runFFmpeg(t, args...)
	return c
}

func runFFmpeg(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	if out, err := exec.Command("ffmpeg", full...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var (
	silenceStart = regexp.MustCompile(`silence_start: (-?[0-9.]+)`)
	silenceEnd   = regexp.MustCompile(`silence_end: ([0-9.]+)`)
)

// speechSpan is where the speech of a wav starts and ends (ms): its
// leading and trailing silence, as ffmpeg's silencedetect finds it, off.
func speechSpan(t *testing.T, wav string) (from, to int64) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-i", wav, "-af", "silencedetect=n=-50dB:d=0.05", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("silencedetect %s: %v\n%s", wav, err, out)
	}
	total := wavMs(t, wav)
	to = total
	starts, ends := silenceStart.FindAllStringSubmatch(string(out), -1), silenceEnd.FindAllStringSubmatch(string(out), -1)
	if len(starts) > 0 && secondsToMs(starts[0][1]) <= 0 && len(ends) > 0 {
		from = secondsToMs(ends[0][1])
	}
	// The trailing silence: the last one, if it runs to the end (ffmpeg
	// closes it there, or leaves it without an end).
	if n := len(starts); n > 0 && (len(ends) < n || secondsToMs(ends[n-1][1]) >= total-20) {
		to = secondsToMs(starts[n-1][1])
	}
	if to-from < 500 {
		t.Fatalf("%s: speech from %d to %d ms of %d: not a sentence\n%s", wav, from, to, total, out)
	}
	return from, to
}

func secondsToMs(seconds string) int64 {
	f, _ := strconv.ParseFloat(seconds, 64)
	return int64(f * 1000)
}

// wavMs is a media file's duration, ms.
func wavMs(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return secondsToMs(strings.TrimSpace(string(out)))
}
