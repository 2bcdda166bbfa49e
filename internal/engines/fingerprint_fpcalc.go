package engines

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weir-media/weir/internal/media"
)

// This file computes Chromaprint fingerprints: ffmpeg decodes the input
// (through weir's demuxer allow-list) to 11025 Hz mono PCM, which weir
// copies into fpcalc, counting the samples; fpcalc prints the raw
// fingerprint, in one piece or a chunk a second.

// Chromaprint's timing: it hashes 4096-sample frames every 1365 samples
// at 11025 Hz, one 32-bit item per frame, so item k starts at
// k*1365/11025 s (about 123.8 ms apart, 8.08 a second).
const (
	fpSampleRate = 11025
	fpHop        = 1365
)

// fpItemMs is where fingerprint item k starts, in ms, rounded down.
func fpItemMs(k int64) int64 { return k * fpHop * 1000 / fpSampleRate }

// fpItemAt is the first item starting at or after ms.
func fpItemAt(ms int64) int64 {
	k := ms * fpSampleRate / (fpHop * 1000)
	for fpItemMs(k) < ms {
		k++
	}
	return k
}

// ErrNotAudio is wrapped by FingerprintClip's error when the clip is not
// audio ffmpeg can decode (not media at all, or media without sound), or
// too short or too long to be a reference.
var ErrNotAudio = errors.New("not a usable audio clip")

// fpcalcLine is one line of `fpcalc -json -raw`.
type fpcalcLine struct {
	Timestamp   float64  `json:"timestamp"`
	Duration    float64  `json:"duration"`
	Fingerprint []uint32 `json:"fingerprint"`
}

// parseFpcalcLine reads one JSON line fpcalc printed. Lines that are not
// JSON objects (its "ERROR: ..." notes) are skipped: ok false, no error.
func parseFpcalcLine(line []byte) (fpcalcLine, bool, error) {
	line = []byte(strings.TrimSpace(string(line)))
	if len(line) == 0 || line[0] != '{' {
		return fpcalcLine{}, false, nil
	}
	var l fpcalcLine
	if err := json.Unmarshal(line, &l); err != nil {
		return fpcalcLine{}, false, fmt.Errorf("fpcalc printed a line weir cannot read: %w", err)
	}
	return l, true, nil
}

// fpRun is one ffmpeg | fpcalc run.
type fpRun struct {
	body   io.Reader
	format string // ffmpeg -f for the input; "" probes
	// chunked has fpcalc print a fingerprint for every second of audio
	// (continuous across chunks), instead of one at the end.
	chunked bool
	// maxSamples stops the run with errTooLong past this many samples; 0
	// means no limit.
	maxSamples int64
	// samples counts the PCM samples handed to fpcalc so far.
	samples atomic.Int64
}

// errUndecodable is wrapped by run's error when ffmpeg could not decode
// audio from the input.
var errUndecodable = errors.New("the input is not audio ffmpeg can decode")

// errTooLong is returned when the input has more than maxSamples.
var errTooLong = errors.New("input longer than the limit")

// positionMs is how much audio has been handed to fpcalc, in ms.
func (r *fpRun) positionMs() int64 { return r.samples.Load() * 1000 / fpSampleRate }

// run decodes and fingerprints the input, calling onLine for each
// fingerprint fpcalc prints, in order. An error from onLine stops the run
// and is returned.
func (r *fpRun) run(ctx context.Context, onLine func(fpcalcLine) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"}
	args = append(args, media.InputArgs(media.ProtocolsPipe, r.format)...)
	args = append(args, "-i", "pipe:0", "-map", "0:a:0", "-vn", "-sn", "-dn",
		"-af", fmt.Sprintf("aresample=%d:async=1:first_pts=0", fpSampleRate),
		"-ac", "1", "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1")
	dec := exec.CommandContext(ctx, "ffmpeg", args...)
	dec.Stdin = r.body
	var decLog lockedTail
	dec.Stderr = &decLog
	pcm, err := dec.StdoutPipe()
	if err != nil {
		return err
	}
	fpArgs := []string{"-raw", "-json", "-format", "s16le", "-rate", fmt.Sprint(fpSampleRate), "-channels", "1", "-length", "0"}
	if r.chunked {
		fpArgs = append(fpArgs, "-chunk", "1", "-overlap")
	}
	fp := exec.CommandContext(ctx, "fpcalc", append(fpArgs, "-")...)
	fpIn, err := fp.StdinPipe()
	if err != nil {
		return err
	}
	fpOut, err := fp.StdoutPipe()
	if err != nil {
		return err
	}
	var fpLog lockedTail
	fp.Stderr = &fpLog
	if err := dec.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	if err := fp.Start(); err != nil {
		cancel()
		_ = dec.Wait()
		return fmt.Errorf("start fpcalc: %w", err)
	}
	copyErr := make(chan error, 1)
	go func() { copyErr <- r.copyPCM(fpIn, pcm) }()

	handlerErr := r.readLines(fpOut, onLine)
	if handlerErr != nil {
		cancel()
	}
	cErr := <-copyErr
	if cErr != nil {
		cancel()
	}
	decErr := dec.Wait()
	fpErr := fp.Wait()
	switch {
	case handlerErr != nil:
		return handlerErr
	case errors.Is(cErr, errTooLong):
		return cErr
	case ctx.Err() != nil:
		return ctx.Err()
	case decErr != nil:
		return fmt.Errorf("%w: ffmpeg: %v: %s", errUndecodable, decErr, decLog.String())
	case r.samples.Load() == 0:
		return fmt.Errorf("%w: ffmpeg decoded no audio: %s", errUndecodable, decLog.String())
	case fpErr != nil && !fpcalcBenign(fpLog.String()):
		return fmt.Errorf("fpcalc: %w: %s", fpErr, fpLog.String())
	}
	return nil
}

// copyPCM copies ffmpeg's PCM into fpcalc, counting samples, and closes
// fpcalc's input at the end (or past maxSamples, with errTooLong).
func (r *fpRun) copyPCM(dst io.WriteCloser, src io.Reader) error {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			total := r.samples.Add(int64(n / 2))
			if r.maxSamples > 0 && total > r.maxSamples {
				_, _ = io.Copy(io.Discard, src)
				return errTooLong
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_, _ = io.Copy(io.Discard, src) // fpcalc quit: let ffmpeg finish
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLines hands each fingerprint fpcalc prints to onLine; after an
// error it drains the rest so fpcalc can exit.
func (r *fpRun) readLines(out io.Reader, onLine func(fpcalcLine) error) error {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var err error
	for sc.Scan() {
		if err != nil {
			continue
		}
		l, ok, perr := parseFpcalcLine(sc.Bytes())
		switch {
		case perr != nil:
			err = perr
		case ok:
			err = onLine(l)
		}
	}
	_, _ = io.Copy(io.Discard, out)
	return err
}

// lockedTail keeps the last lines a program wrote on stderr.
type lockedTail struct {
	mu   sync.Mutex
	tail lastLines
	part string
}

// Write implements io.Writer.
func (l *lockedTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.part + string(p)
	lines := strings.Split(text, "\n")
	l.part = lines[len(lines)-1]
	if len(l.part) > 4096 {
		l.part = l.part[:4096]
	}
	for _, line := range lines[:len(lines)-1] {
		l.tail.add(line)
	}
	return len(p), nil
}

// String is the last lines written.
func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.tail.String()
	if strings.TrimSpace(l.part) != "" {
		s = strings.TrimPrefix(s+" | "+l.part, " | ")
	}
	return s
}

// fpcalcBenign reports whether fpcalc's complaint is one it makes about a
// healthy input: reading a pipe, it calls its end a decoding error
// ("Error decoding audio frame (End of file)"); given too little audio it
// prints no fingerprint ("Not enough audio data"), which callers see.
func fpcalcBenign(log string) bool {
	for _, line := range strings.Split(log, " | ") {
		if !strings.Contains(line, "End of file") && !strings.Contains(line, "Not enough audio") && !strings.Contains(line, "Empty fingerprint") {
			return false
		}
	}
	return true
}
