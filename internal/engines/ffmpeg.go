package engines

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/media"
)

// This file runs ffmpeg for the stream engines that are ffmpeg filters
// (loudness, silence, black, scenes...): ffmpeg reads the stream's bytes on
// stdin, decodes them, runs the engine's filters and logs what they find,
// line by line, on stderr.

// errStop, returned by a line handler, ends the run without an error.
var errStop = errors.New("stop")

// ffmpegStream runs ffmpeg on a stream engine's input: s.Body on stdin,
// read only through the pipe protocol and weir's demuxer allow-list (with
// s.Init.FFmpegFormat when known), then args (the filters and outputs,
// typically ending in "-f", "null", "-"). Every line ffmpeg writes on
// stderr goes to onLine as it comes; an error from onLine stops ffmpeg and
// is returned (errStop stops it quietly). Timestamps in filter logs start
// near 0 at the stream's first sample: ffmpeg moves the input's first
// timestamp to 0 (no -copyts).
//
// A failing ffmpeg's error carries the last lines of its log.
func ffmpegStream(ctx context.Context, s *engine.Stream, args []string, onLine func(line string) error) error {
	err := ffmpegStreamOut(ctx, s, args, nil, onLine, func() {})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// ffmpegStreamOut is ffmpegStream with ffmpeg's stdout handed to out (nil:
// discarded), on its own goroutine, and endLog called when the log ends
// (before waiting for out). An error from out stops ffmpeg and is
// returned.
func ffmpegStreamOut(ctx context.Context, s *engine.Stream, args []string, out func(io.Reader) error,
	onLine func(string) error, endLog func()) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"}
	full = append(full, streamInput(s)...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(full, args...)...)
	cmd.Stdin = s.Body
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	var stdout io.ReadCloser
	if out != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	outDone := make(chan error, 1)
	go func() {
		if stdout == nil {
			outDone <- nil
			return
		}
		err := out(stdout)
		if err != nil {
			cancel()
		}
		_, _ = io.Copy(io.Discard, stdout)
		outDone <- err
	}()
	tail, lineErr := scanLog(stderr, onLine, cancel)
	endLog()
	outErr := <-outDone
	waitErr := cmd.Wait()
	switch {
	case lineErr != nil:
		return lineErr
	case parent.Err() != nil:
		return parent.Err()
	case outErr != nil:
		return outErr
	case waitErr != nil:
		return fmt.Errorf("ffmpeg: %w: %s", waitErr, tail.String())
	}
	return nil
}

// scanLog hands ffmpeg's log lines to onLine until the log ends; the
// first error from onLine cancels ffmpeg and is returned with the log's
// last lines.
func scanLog(stderr io.Reader, onLine func(string) error, cancel func()) (*lastLines, error) {
	var tail lastLines
	var handlerErr error
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(scanLines)
	for sc.Scan() {
		line := sc.Text()
		tail.add(line)
		if handlerErr == nil {
			if handlerErr = onLine(line); handlerErr != nil {
				cancel()
			}
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	return &tail, handlerErr
}

// streamInput is how every stream engine's ffmpeg reads its stream: stdin,
// through the pipe protocol and weir's demuxer allow-list, with the
// stream's ffmpegFormat when known, and a 1 s analysis window instead of
// ffmpeg's 5 s, so results on a live stream do not start 5 s late (the
// decoders find the rest of what they need in the first frames).
func streamInput(s *engine.Stream) []string {
	args := media.InputArgs(media.ProtocolsPipe, s.Init.FFmpegFormat)
	return append(args, "-analyzeduration", "1000000", "-i", "pipe:0")
}

// scanLines splits on \n and on \r, which ffmpeg uses for lines it
// rewrites in place.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// lastLines keeps the last few lines of a log, for error messages.
type lastLines struct{ lines []string }

func (l *lastLines) add(s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	if len(l.lines) == 8 {
		l.lines = l.lines[1:]
	}
	l.lines = append(l.lines, s)
}

func (l *lastLines) String() string { return strings.Join(l.lines, " | ") }
