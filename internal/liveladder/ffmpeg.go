package liveladder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/weir-media/weir/internal/vod"
)

// Rungs returns the rungs of ladder a source of width×height gets: those
// no taller than the source's shorter side (weir never upscales).
func Rungs(ladder []vod.Rung, width, height int) []vod.Rung {
	short := min(width, height)
	var out []vod.Rung
	for _, r := range ladder {
		if r.Height <= short {
			out = append(out, r)
		}
	}
	return out
}

// FFmpegArgs returns the arguments of the one ffmpeg that transcodes a
// session: MPEG-TS on stdin, rung i's MPEG-TS on file descriptor 3+i. The
// video is decoded once and split; each rung is scaled (its height is the
// source's shorter side), encoded with x264 with a key frame exactly where
// the source has one (-force_key_frames source, scene cuts and the GOP
// limit off) and the source's timestamps (-copyts, frames passed through),
// so the packager cuts every rendition where it cuts the source. Audio is
// encoded to AAC per rung.
func FFmpegArgs(rungs []vod.Rung, portrait bool, preset string) []string {
	args := []string{"-hide_banner", "-nostats", "-loglevel", "error",
		// The prober has seen the first SPS: a second of probing is
		// enough, and less delays every rendition less.
		"-analyzeduration", "1000000", "-copyts", "-f", "mpegts", "-i", "pipe:0"}
	var fc strings.Builder
	fmt.Fprintf(&fc, "[0:v:0]split=%d", len(rungs))
	for i := range rungs {
		fmt.Fprintf(&fc, "[s%d]", i)
	}
	for i, r := range rungs {
		scale := fmt.Sprintf("scale=-2:%d", r.Height)
		if portrait {
			scale = fmt.Sprintf("scale=%d:-2", r.Height)
		}
		fmt.Fprintf(&fc, ";[s%d]%s[v%d]", i, scale, i)
	}
	args = append(args, "-filter_complex", fc.String())
	for i, r := range rungs {
		args = append(args,
			"-map", fmt.Sprintf("[v%d]", i), "-map", "0:a:0?",
			"-c:v", "libx264", "-preset", preset, "-tune", "zerolatency", "-profile:v", r.Profile,
			"-b:v", strconv.FormatInt(r.VideoBitrate, 10), "-maxrate", strconv.FormatInt(r.MaxBitrate, 10),
			"-bufsize", strconv.FormatInt(r.BufSize, 10),
			"-force_key_frames", "source", "-g", "100000", "-sc_threshold", "0", "-fps_mode", "passthrough",
			"-c:a", "aac", "-b:a", strconv.FormatInt(r.AudioBitrate, 10),
			"-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1", "-f", "mpegts", "pipe:"+strconv.Itoa(3+i))
	}
	return args
}

// session is one running ffmpeg: the source's bytes go to its stdin, and
// each rung's output is handed to emit, in order, by a goroutine per rung.
type session struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	rungs   []vod.Rung
	stderr  *tailBuffer
	readers sync.WaitGroup
	// waitErr is ffmpeg's exit, set once wait returned.
	waitErr error
	waited  chan struct{}
}

// startSession starts ffmpeg for rungs; emit(i, b) gets rung i's bytes (b
// is reused after emit returns) and returns an error to stop reading.
func startSession(ctx context.Context, ffmpeg, preset string, rungs []vod.Rung, portrait bool, emit func(i int, b []byte) error) (*session, error) {
	cmd := exec.CommandContext(ctx, ffmpeg, FFmpegArgs(rungs, portrait, preset)...)
	s := &session{cmd: cmd, rungs: rungs, stderr: &tailBuffer{max: 4096}, waited: make(chan struct{})}
	cmd.Stderr = s.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s.stdin = stdin
	var readEnds []*os.File
	closeAll := func() {
		for _, f := range readEnds {
			f.Close()
		}
		for _, f := range cmd.ExtraFiles {
			f.Close()
		}
	}
	for range rungs {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		readEnds = append(readEnds, r)
		cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("starting %s: %w", ffmpeg, err)
	}
	// The child holds the write ends now.
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	for i, r := range readEnds {
		s.readers.Add(1)
		go func() {
			defer s.readers.Done()
			defer r.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					if emit(i, buf[:n]) != nil {
						// Drain so ffmpeg is never blocked on this rung.
						io.Copy(io.Discard, r)
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	go func() {
		s.readers.Wait()
		s.waitErr = cmd.Wait()
		close(s.waited)
	}()
	return s, nil
}

// write gives ffmpeg more of the source.
func (s *session) write(b []byte) error {
	if _, err := s.stdin.Write(b); err != nil {
		return fmt.Errorf("ffmpeg stopped taking input: %w%s", err, s.stderr.suffix())
	}
	return nil
}

// finish closes ffmpeg's input and waits until every rung's output was
// emitted and ffmpeg exited.
func (s *session) finish(ctx context.Context) error {
	s.stdin.Close()
	select {
	case <-s.waited:
	case <-ctx.Done():
		s.kill()
		return ctx.Err()
	}
	if s.waitErr != nil {
		return fmt.Errorf("ffmpeg: %w%s", s.waitErr, s.stderr.suffix())
	}
	return nil
}

// kill stops ffmpeg at once and waits for it.
func (s *session) kill() {
	s.stdin.Close()
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.waited
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

// suffix is ": " and the last stderr lines, or "".
func (t *tailBuffer) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return ""
	}
	return ": " + s
}
