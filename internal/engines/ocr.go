package engines

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weir-media/weir/engine"
)

// The ocr engine reads the text shown in a video: ffmpeg samples frames
// (at a fixed rate and, optionally, on scene changes) and writes them as
// grey PGM images on its stdout; each frame goes to one tesseract process
// on its stdin, whose TSV answer gives words with boxes and confidences.
// The lines read on consecutive frames are merged into time ranges
// (ocrMerger, in ocr_merge.go) and emitted as they close.

// ocrSpec is the ocr engine's spec.
var ocrSpec = engine.Spec{
	Name:    "ocr",
	Title:   "Text in video (Tesseract OCR)",
	Mode:    engine.ModeStream,
	Summary: "Reads the text shown in a video, line by line, with word boxes and confidences, one result per time a line is on screen",
	Description: "Samples frames with ffmpeg every frame_interval (and on scene changes when " +
		"scene_threshold is set) and reads each with Tesseract 5. Each text line becomes a series " +
		"with an object of type text (the line, its box, its mean confidence) and its words, each " +
		"with a confidence and a boundingPoly in fractions of the frame. The same line read on " +
		"consecutive samples (compared without case and extra spaces, allowing small OCR " +
		"differences) is one series from the sample where it first appears to the first sample " +
		"where it is gone, with its best-confidence reading. Cost: about one tesseract run per " +
		"sample (a few tenths of a second of one core for a 720p frame).",
	Inputs:  []string{"video/*"},
	Outputs: []string{"object", "text"},
	Options: []engine.Option{
		{Name: "frame_interval", Type: engine.TypeDuration, Default: "1s", Min: "100ms", Max: "1h",
			Doc: "How often a frame is read: the first frame of every interval of this length"},
		{Name: "scene_threshold", Type: engine.TypeFloat, Default: 0.0, Min: 0.0, Max: 1.0,
			Doc: "Also read a frame where ffmpeg's scene score exceeds this (0 to 1; 0 = off; 0.3 suits hard cuts)"},
		{Name: "languages", Type: engine.TypeString, Default: "eng",
			Doc: "Tesseract languages joined by '+' (\"eng+deu\"); each needs its Debian package tesseract-ocr-<lang>"},
		{Name: "psm", Type: engine.TypeInt, Default: 3, Min: 3, Max: 13,
			Doc: "Tesseract's page segmentation mode: 3 finds blocks of text anywhere, 11 and 12 sparse text, 6 one uniform block, 7 a single line"},
		{Name: "min_confidence", Type: engine.TypeFloat, Default: 0.6, Min: 0.0, Max: 1.0,
			Doc: "Words Tesseract reads with a lower confidence (0 to 1) are dropped"},
		{Name: "similarity", Type: engine.TypeFloat, Default: 0.8, Min: 0.5, Max: 1.0,
			Doc: "How alike (1 - edit distance / length) two readings must be to be the same line"},
		{Name: "max_missed", Type: engine.TypeInt, Default: 1, Min: 0, Max: 10,
			Doc: "Samples in a row a line may be missing (a misread frame) before it is taken as gone"},
		{Name: "max_delay", Type: engine.TypeDuration, Default: "10s", Min: "1s", Max: "10m",
			Doc: "How long text that stays on screen may hold results back: past it, what was seen is emitted and a line still shown continues in the next result"},
	},
	Examples: []engine.Example{
		{Title: "One frame every 2 s", Options: map[string]any{"frame_interval": "2s"}},
		{Title: "Captions in English and German, also on cuts", Options: map[string]any{"languages": "eng+deu", "scene_threshold": 0.3}},
	},
	Requires: []engine.Requirement{
		{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the video and sample its frames"},
		{Command: "tesseract", DebianPackage: "tesseract-ocr", Why: "to read the text in each frame (Tesseract 5)"},
		{File: "/usr/share/tesseract-ocr/5/tessdata/eng.traineddata", DebianPackage: "tesseract-ocr-eng", Why: "Tesseract's English model, the default language"},
	},
}

func init() {
	engine.Register(ocrSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return ocrEngine{}, nil }))
}

// ocrEngine is the ocr engine. It keeps no state between streams.
type ocrEngine struct{}

// ocrSettings are an ocr task's options, read once.
type ocrSettings struct {
	interval      time.Duration
	sceneTheshold float64
	languages     string
	psm           int64
	minConfidence float64
	merge         ocrMergeSettings
}

func readOCRSettings(opts engine.Options) ocrSettings {
	interval := opts.Duration("frame_interval")
	return ocrSettings{
		interval:      interval,
		sceneTheshold: opts.Float("scene_threshold"),
		languages:     opts.String("languages"),
		psm:           opts.Int("psm"),
		minConfidence: opts.Float("min_confidence"),
		merge: ocrMergeSettings{
			intervalMs: interval.Milliseconds(),
			maxDelayMs: opts.Duration("max_delay").Milliseconds(),
			maxMissed:  int(opts.Int("max_missed")),
			similarity: opts.Float("similarity"),
		},
	}
}

// Process implements engine.StreamEngine.
func (ocrEngine) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	set := readOCRSettings(opts)
	if err := checkOCRLanguages(ctx, set.languages); err != nil {
		return err
	}
	m := newOCRMerger(set.merge)
	err := ffmpegFrames(ctx, s, ocrFilter(set), func(f ocrFrame) error {
		lines, err := tesseractLines(ctx, f, set)
		if err != nil {
			return err
		}
		return m.frame(f.ms, lines, emit)
	})
	if err != nil {
		return fmt.Errorf("ocr: %w", err)
	}
	return m.finish(emit)
}

// ocrFilter is the ffmpeg filter choosing the frames to read: the first
// frame of each interval (counted from 0, so samples do not drift), plus
// frames whose scene score passes the threshold, then showinfo, which logs
// each chosen frame's time.
func ocrFilter(set ocrSettings) string {
	iv := strconv.FormatFloat(set.interval.Seconds(), 'f', -1, 64)
	expr := fmt.Sprintf("isnan(prev_selected_t)+gte(floor(t/%s)\\,floor(prev_selected_t/%s)+1)", iv, iv)
	if set.sceneTheshold > 0 {
		expr += fmt.Sprintf("+gt(scene\\,%s)", strconv.FormatFloat(set.sceneTheshold, 'f', -1, 64))
	}
	return "select='" + expr + "',showinfo"
}

// ocrLanguage is one Tesseract language name ("eng", "chi_sim").
var ocrLanguage = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)

// checkOCRLanguages checks every language of langs ("eng+deu") against
// `tesseract --list-langs`, naming the Debian package of a missing one.
func checkOCRLanguages(ctx context.Context, langs string) error {
	wanted := strings.Split(langs, "+")
	for _, l := range wanted {
		if !ocrLanguage.MatchString(l) {
			return fmt.Errorf("ocr: languages %q: %q is not a Tesseract language name (such as eng, deu, chi_sim; several are joined with '+')", langs, l)
		}
	}
	out, err := exec.CommandContext(ctx, "tesseract", "--list-langs").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ocr: tesseract --list-langs: %w: %s", err, bytes.TrimSpace(out))
	}
	have := parseTesseractLangs(string(out))
	for _, l := range wanted {
		if !slices.Contains(have, l) {
			return fmt.Errorf("ocr: Tesseract language %q is not installed (installed: %s); install it with: apt-get install -y tesseract-ocr-%s",
				l, strings.Join(have, ", "), debianLangName(l))
		}
	}
	return nil
}

// parseTesseractLangs reads the output of `tesseract --list-langs`: a
// header line, then one language per line.
func parseTesseractLangs(out string) []string {
	var langs []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "List of") || !ocrLanguage.MatchString(line) {
			continue
		}
		langs = append(langs, line)
	}
	return langs
}

// debianLangName is the Debian package suffix of a Tesseract language:
// lower case, '_' as '-' (chi_sim is tesseract-ocr-chi-sim).
func debianLangName(l string) string {
	return strings.ReplaceAll(strings.ToLower(l), "_", "-")
}

// ocrFrame is one sampled frame: its time and the PGM image as ffmpeg
// wrote it.
type ocrFrame struct {
	ms            int64
	width, height int
	pgm           []byte
}

// showinfoTime finds a frame's time in a line showinfo logs.
var showinfoTime = regexp.MustCompile(`Parsed_showinfo.*\sn:\s*(\d+)\s.*\spts_time:\s*(-?[0-9.eE+-]+|nan)`)

// ffmpegFrames runs ffmpeg on the stream's body with filter, writing the
// frames it passes as grey PGM images on stdout, and calls onFrame for each
// with its time (from the showinfo line logged for it). An error from
// onFrame stops ffmpeg and is returned.
func ffmpegFrames(ctx context.Context, s *engine.Stream, filter string, onFrame func(ocrFrame) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"}
	args = append(args, streamInput(s)...)
	args = append(args, "-map", "0:v:0", "-an", "-sn", "-dn",
		"-vf", filter, "-fps_mode", "passthrough", "-pix_fmt", "gray", "-c:v", "pgm", "-f", "image2pipe", "pipe:1")
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Stdin = s.Body
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	times := make(chan int64, 1024)
	tail := make(chan string, 1)
	go readShowinfo(ctx, stderr, times, tail)
	frameErr := readFrames(stdout, times, onFrame)
	if frameErr != nil {
		cancel()
	}
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	log := <-tail
	switch {
	case frameErr != nil:
		return frameErr
	case waitErr != nil && ctx.Err() == nil:
		if strings.Contains(log, "matches no streams") {
			return fmt.Errorf("the input has no video stream: %s", log)
		}
		return fmt.Errorf("ffmpeg: %w: %s", waitErr, log)
	}
	return ctx.Err()
}

// readShowinfo reads ffmpeg's log, sending the time of each frame showinfo
// reports on times (closed at the end; times are dropped once ctx ends)
// and the log's last lines on tail.
func readShowinfo(ctx context.Context, r io.Reader, times chan<- int64, tail chan<- string) {
	var last lastLines
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(scanLines)
	for sc.Scan() {
		line := sc.Text()
		if m := showinfoTime.FindStringSubmatch(line); m != nil {
			select {
			case times <- secondsToMs(m[2]):
			case <-ctx.Done(): // the frames are no longer read
			}
			continue
		}
		last.add(line)
	}
	_, _ = io.Copy(io.Discard, r)
	close(times)
	tail <- last.String()
}

// secondsToMs converts showinfo's pts_time to milliseconds, 0 when it is
// not a number or negative.
func secondsToMs(s string) int64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e12 {
		return 0
	}
	return int64(math.Round(f * 1000))
}

// readFrames reads PGM images from r, pairing each with the next time on
// times.
func readFrames(r io.Reader, times <-chan int64, onFrame func(ocrFrame) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var prev int64
	for {
		f, err := readPGM(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading ffmpeg's frames: %w", err)
		}
		ms, ok := <-times
		if !ok {
			return errors.New("ffmpeg wrote a frame without logging its time")
		}
		f.ms = max(ms, prev) // times never go back, even on a broken stream
		prev = f.ms
		if err := onFrame(f); err != nil {
			return err
		}
	}
}

// maxPGMPixels bounds a frame's size (a 16K by 16K picture is 256 MiB of
// grey).
const maxPGMPixels = 1 << 28

// readPGM reads one binary 8-bit PGM image (P5): the header
// "P5 <width> <height> <maxval>" (whitespace separated, # comments) and
// width*height bytes. It returns io.EOF when r ends before the image starts.
func readPGM(r *bufio.Reader) (ocrFrame, error) {
	magic := make([]byte, 2)
	if _, err := io.ReadFull(r, magic); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ocrFrame{}, errors.New("PGM: truncated header")
		}
		return ocrFrame{}, err
	}
	if string(magic) != "P5" {
		return ocrFrame{}, fmt.Errorf("PGM: want magic P5, got %q", magic)
	}
	var head bytes.Buffer
	head.Write(magic)
	var vals [3]int
	for i := range vals {
		v, err := pgmNumber(r, &head)
		if err != nil {
			return ocrFrame{}, err
		}
		vals[i] = v
	}
	w, h, maxval := vals[0], vals[1], vals[2]
	if w <= 0 || h <= 0 || w*h > maxPGMPixels {
		return ocrFrame{}, fmt.Errorf("PGM: bad size %dx%d", w, h)
	}
	if maxval <= 0 || maxval > 255 {
		return ocrFrame{}, fmt.Errorf("PGM: want 8-bit grey (maxval 1 to 255), got maxval %d", maxval)
	}
	data := make([]byte, head.Len()+w*h)
	copy(data, head.Bytes())
	if _, err := io.ReadFull(r, data[head.Len():]); err != nil {
		return ocrFrame{}, fmt.Errorf("PGM: truncated %dx%d image: %w", w, h, err)
	}
	return ocrFrame{width: w, height: h, pgm: data}, nil
}

// pgmNumber reads one header number: whitespace and comments, then
// digits, then the single whitespace byte ending it (copied to head).
func pgmNumber(r *bufio.Reader, head *bytes.Buffer) (int, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, errors.New("PGM: truncated header")
		}
		head.WriteByte(c)
		switch {
		case c >= '0' && c <= '9':
			if digits++; digits > 9 {
				return 0, errors.New("PGM: header number too long")
			}
			n = n*10 + int(c-'0')
		case c == '#' && digits == 0:
			line, err := r.ReadBytes('\n')
			if err != nil || len(line) > 1024 {
				return 0, errors.New("PGM: bad header comment")
			}
			head.Write(line)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if digits > 0 {
				return n, nil
			}
		default:
			return 0, fmt.Errorf("PGM: unexpected byte %q in header", c)
		}
		if head.Len() > 4096 {
			return 0, errors.New("PGM: header too long")
		}
	}
}

// tesseractLines reads the text of one frame with tesseract (the image on
// stdin, TSV on stdout) and returns its lines.
func tesseractLines(ctx context.Context, f ocrFrame, set ocrSettings) ([]ocrLine, error) {
	cmd := exec.CommandContext(ctx, "tesseract", "stdin", "stdout",
		"-l", set.languages, "--psm", strconv.FormatInt(set.psm, 10), "tsv")
	cmd.Stdin = bytes.NewReader(f.pgm)
	// One thread per run: frames are many and small, and OpenMP's threads
	// only fight over the cores.
	cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("tesseract on the frame at %d ms: %w: %s", f.ms, err, strings.TrimSpace(stderr.String()))
	}
	return parseTesseractTSV(stdout.String(), f.width, f.height, set.minConfidence), nil
}
