package engines

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/engine"
)

// The stt engine: speech to text with CMU PocketSphinx and its US English
// model. ffmpeg decodes the stream to 16 kHz mono PCM; weir cuts it into
// utterances itself (an energy detector with an adaptive noise floor, and
// a cut at the quietest moment when an utterance runs too long), writes
// each utterance to a file and hands its name to one long-running
// pocketsphinx_batch, which reads the names on stdin and writes each
// utterance's words as soon as it is decoded. Cutting in weir keeps every
// time on the input's timeline, bounds the wait for a result, and tells
// exactly how far the bound may move.

// The model files of Debian's pocketsphinx-en-us.
const (
	sttModelDir  = "/usr/share/pocketsphinx/model/en-us"
	sttModelPkg  = "pocketsphinx-en-us"
	sttRate      = 16000 // samples per second
	sttFrame     = 160   // samples in a 10 ms frame
	sttMaxQueued = 8     // utterances written and not yet decoded
)

var sttSpec = engine.Spec{
	Name:    "stt",
	Title:   "Speech to text (PocketSphinx)",
	Mode:    engine.ModeStream,
	Summary: "Transcribes US English speech utterance by utterance: words with times and confidence, and each utterance as a sentence",
	Description: "Decodes the audio to 16 kHz mono, cuts it into utterances at pauses (or at the quietest " +
		"moment once an utterance reaches max_utterance) and transcribes each with CMU PocketSphinx's " +
		"US English acoustic model, language model and dictionary (Debian pocketsphinx-en-us). Each " +
		"utterance is one output as soon as it is decoded: a series per word (its confidence 0..1) and a " +
		"series covering the utterance whose single word is the whole sentence. With keywords, the " +
		"engine spots those phrases instead of transcribing everything. Measured word error rate: 8-14 % " +
		"on clear synthetic read speech; expect far worse on noisy, accented or conversational audio, and " +
		"host a stronger engine over HTTP or Kafka for production transcription.",
	Inputs:  []string{"audio/*", "video/*"},
	Outputs: []string{"transcript"},
	Options: []engine.Option{
		{Name: "keywords", Type: engine.TypeList,
			Doc: "Phrases to spot instead of transcribing everything (PocketSphinx keyphrase search); every word must be in the US English dictionary"},
		{Name: "keyword_threshold", Type: engine.TypeFloat, Default: 1e-30, Min: 1e-50, Max: 1.0,
			Doc: "Detection threshold of the keyword search: smaller finds more (and more false ones); try 1e-40 for long phrases, 1e-10 for short words"},
		{Name: "pause", Type: engine.TypeDuration, Default: "500ms", Min: "150ms", Max: "5s",
			Doc: "Silence that ends an utterance"},
		{Name: "max_utterance", Type: engine.TypeDuration, Default: "15s", Min: "2s", Max: "60s",
			Doc: "Longest utterance: longer speech is cut at its quietest moment in the last second, so results keep coming during continuous speech"},
	},
	Examples: []engine.Example{
		{Title: "Spot phrases", Options: map[string]any{"keywords": []any{"breaking news", "weather"}}},
		{Title: "Short utterances for captions", Options: map[string]any{"pause": "300ms", "max_utterance": "6s"}},
	},
	Requires: []engine.Requirement{
		{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the stream's audio"},
		{Command: "pocketsphinx_batch", DebianPackage: "pocketsphinx", Why: "to recognise the speech"},
		{File: sttModelDir + "/en-us/mdef", DebianPackage: sttModelPkg, Why: "the US English acoustic model"},
	},
}

func init() {
	engine.Register(sttSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return sttEngine{}, nil }))
}

// sttEngine is the stt engine. It keeps no state between streams.
type sttEngine struct{}

// sttConfig is a stream's parsed options.
type sttConfig struct {
	keywords     []string
	threshold    float64
	pause        time.Duration
	maxUtterance time.Duration
}

func sttOptions(opts engine.Options) sttConfig {
	c := sttConfig{threshold: opts.Float("keyword_threshold"), pause: opts.Duration("pause"), maxUtterance: opts.Duration("max_utterance")}
	for _, k := range opts.List("keywords") {
		if k = strings.Join(strings.Fields(strings.ToLower(k)), " "); k != "" {
			c.keywords = append(c.keywords, k)
		}
	}
	return c
}

// Process implements engine.StreamEngine.
func (sttEngine) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	cfg := sttOptions(opts)
	if _, err := os.Stat(filepath.Join(sttModelDir, "en-us", "mdef")); err != nil {
		return fmt.Errorf("the US English speech model is missing (%s): apt-get install -y %s", sttModelDir, sttModelPkg)
	}
	if err := sttCheckWords(cfg.keywords); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "weir-stt-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	dec, err := startSphinx(ctx, dir, cfg)
	if err != nil {
		return err
	}
	st := &sttState{emit: emit, dir: dir, keywords: cfg.keywords != nil,
		queue: make(chan struct{}, sttMaxQueued), dead: make(chan struct{})}
	outDone := make(chan error, 1)
	go func() {
		err := st.readResults(dec.out, st.keywords)
		close(st.dead)
		outDone <- err
	}()

	feedErr := st.feed(ctx, s, cfg, dec.ctl)
	st.mu.Lock()
	st.closed = true
	st.mu.Unlock()
	_ = dec.ctl.Close()
	outErr := <-outDone
	_ = dec.out.Close()
	if feedErr != nil || outErr != nil {
		cancel()
	}
	waitErr := dec.cmd.Wait()
	switch {
	case feedErr != nil:
		return feedErr
	case outErr != nil:
		return outErr
	case ctx.Err() != nil:
		return ctx.Err()
	case waitErr != nil:
		return fmt.Errorf("pocketsphinx_batch: %w: %s", waitErr, st.log.String())
	}
	return st.finish()
}

// sphinx is a running pocketsphinx_batch: utterance names go to ctl, its
// results and log come on out.
type sphinx struct {
	cmd *exec.Cmd
	ctl io.WriteCloser
	out *os.File // the read end of the pipe PocketSphinx writes
}

// startSphinx starts pocketsphinx_batch reading raw utterance files from
// dir, named one per line on its stdin. Its results (CTM lines, or
// segmentations for keywords) and its log share one pipe, so a result
// always comes before its utterance's "done" line.
func startSphinx(ctx context.Context, dir string, cfg sttConfig) (*sphinx, error) {
	args := []string{
		"-hmm", filepath.Join(sttModelDir, "en-us"),
		"-dict", filepath.Join(sttModelDir, "cmudict-en-us.dict"),
		"-adcin", "yes", "-cepdir", dir, "-cepext", ".raw", "-samprate", strconv.Itoa(sttRate),
		"-remove_silence", "no", // weir cut the utterances; keep their times whole
		"-ctl", "/dev/stdin",
	}
	if cfg.keywords != nil {
		kws := filepath.Join(dir, "keywords.txt")
		var b strings.Builder
		for _, k := range cfg.keywords {
			fmt.Fprintf(&b, "%s /%g/\n", k, cfg.threshold)
		}
		if err := os.WriteFile(kws, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-kws", kws, "-hypseg", "/dev/stdout")
	} else {
		args = append(args, "-lm", filepath.Join(sttModelDir, "en-us.lm.bin"), "-ctm", "/dev/stdout")
	}
	cmd := exec.CommandContext(ctx, "pocketsphinx_batch", args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	ctl, err := cmd.StdinPipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start pocketsphinx_batch: %w", err)
	}
	pw.Close()
	return &sphinx{cmd: cmd, ctl: ctl, out: pr}, nil
}

// sttCheckWords fails when a keyword's word is not in the dictionary,
// which PocketSphinx could not spot.
func sttCheckWords(keywords []string) error {
	if len(keywords) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, k := range keywords {
		for _, w := range strings.Fields(k) {
			want[w] = false
		}
	}
	f, err := os.Open(filepath.Join(sttModelDir, "cmudict-en-us.dict"))
	if err != nil {
		return fmt.Errorf("the US English dictionary is missing: apt-get install -y %s", sttModelPkg)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w, _, _ := strings.Cut(sc.Text(), " ")
		if _, ok := want[w]; ok {
			want[w] = true
		}
	}
	var missing []string
	for w, ok := range want {
		if !ok {
			missing = append(missing, strconv.Quote(w))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("keywords: not in the US English dictionary: %s", strings.Join(missing, ", "))
	}
	return nil
}

// sttUtt is an utterance handed to PocketSphinx, in samples from the start
// of the input.
type sttUtt struct {
	id         string
	start, end int64
}

func (u sttUtt) startMs() int64 { return u.start * 1000 / sttRate }
func (u sttUtt) endMs() int64   { return u.end * 1000 / sttRate }

// sttState is what the feeding and the result goroutines share: the
// utterances in flight, in order, and the Emitter. mu orders every Emit
// and Bound, so the bound never passes an utterance still being decoded.
type sttState struct {
	emit     *engine.Emitter
	dir      string
	keywords bool
	queue    chan struct{} // a slot per utterance in flight: back-pressure on the decoding
	dead     chan struct{} // closed when PocketSphinx's output ends

	mu      sync.Mutex
	pending []sttUtt
	n       int
	endMs   int64 // where the input ended, once it has
	closed  bool  // no more utterances: PocketSphinx may exit

	log lastLines // PocketSphinx's errors, written by readResults only
}

// bound moves the bound to ms, or to the start of the oldest utterance
// still being decoded if that is earlier; never back.
func (st *sttState) bound(ms int64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.pending) > 0 && st.pending[0].startMs() < ms {
		ms = st.pending[0].startMs()
	}
	if ms <= st.emit.BoundMs() {
		return nil
	}
	return st.emit.Bound(ms)
}

// submit writes an utterance's samples to a file and names it to
// PocketSphinx, waiting while too many are in flight.
func (st *sttState) submit(ctx context.Context, ctl io.Writer, start int64, pcm []byte) error {
	select {
	case st.queue <- struct{}{}:
	case <-st.dead:
		return errors.New("pocketsphinx_batch stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	st.mu.Lock()
	u := sttUtt{id: "u" + strconv.Itoa(st.n), start: start, end: start + int64(len(pcm)/2)}
	st.n++
	st.pending = append(st.pending, u)
	st.mu.Unlock()
	if err := os.WriteFile(filepath.Join(st.dir, u.id+".raw"), pcm, 0o600); err != nil {
		return err
	}
	_, err := io.WriteString(ctl, u.id+"\n")
	return err
}

// finish closes the stream: every utterance is answered, so the bound
// goes to where the input ended.
func (st *sttState) finish() error {
	st.mu.Lock()
	st.pending = nil
	end := st.endMs
	st.mu.Unlock()
	return st.bound(end)
}

// feed decodes the stream with ffmpeg, cuts it into utterances and hands
// them to PocketSphinx, moving the bound as the audio advances.
func (st *sttState) feed(ctx context.Context, s *engine.Stream, cfg sttConfig, ctl io.Writer) error {
	full := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"}
	full = append(full, streamInput(s)...)
	full = append(full, "-vn", "-sn", "-dn", "-ac", "1", "-ar", strconv.Itoa(sttRate), "-f", "s16le", "pipe:1")
	cmd := exec.CommandContext(ctx, "ffmpeg", full...)
	cmd.Stdin = s.Body
	var logTail tailBuffer
	cmd.Stderr = &logTail
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	seg := newSegmenter(cfg)
	cutErr := st.cut(ctx, bufio.NewReaderSize(out, 64<<10), seg, ctl)
	if cutErr != nil {
		_ = cmd.Process.Kill()
	}
	_, _ = io.Copy(io.Discard, out)
	waitErr := cmd.Wait()
	switch {
	case cutErr != nil:
		return cutErr
	case waitErr != nil && ctx.Err() == nil:
		return fmt.Errorf("ffmpeg: %w: %s", waitErr, strings.TrimSpace(logTail.String()))
	}
	return ctx.Err()
}

// cut reads PCM frame by frame through the segmenter, submitting each
// utterance it closes and moving the bound about once a second.
func (st *sttState) cut(ctx context.Context, r io.Reader, seg *segmenter, ctl io.Writer) error {
	frame := make([]byte, sttFrame*2)
	var lastBound int64
	for {
		n, err := io.ReadFull(r, frame)
		if n > 0 {
			for _, u := range seg.push(frame[:n]) {
				if err := st.submit(ctx, ctl, u.start, u.pcm); err != nil {
					return err
				}
			}
			if now := seg.samples; now-lastBound >= sttRate {
				lastBound = now
				if err := st.bound(seg.safeMs()); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if u, ok := seg.flush(); ok {
		if err := st.submit(ctx, ctl, u.start, u.pcm); err != nil {
			return err
		}
	}
	st.mu.Lock()
	st.endMs = seg.samples * 1000 / sttRate
	st.mu.Unlock()
	return nil
}

// tailBuffer keeps the last 2 KiB written to it: a program's log, for
// error messages, whatever its length.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
