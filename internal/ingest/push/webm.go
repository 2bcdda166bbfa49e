package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/weir-media/weir/internal/media"
)

// Bounds of the WebM/Matroska remux.
const (
	// probeLimit is the most bytes of a WebM/Matroska stream held to learn
	// its tracks.
	probeLimit = 1 << 20
	// firstProbe is how many bytes are probed first; each later probe
	// waits for twice as many.
	firstProbe = 4 << 10
	// remuxExitTimeout bounds how long ffmpeg may take to finish once its
	// input ended.
	remuxExitTimeout = 10 * time.Second
)

// errRemux: ffmpeg could not remux the publisher's WebM/Matroska.
var errRemux = errors.New("remuxing WebM/Matroska into MPEG-TS failed")

// remuxVideo and copyAudio are the codecs the remux copies as they are:
// video weir segments on key frames, audio HLS players take in MPEG-TS.
// Other audio (Opus, Vorbis, FLAC...) is transcoded to AAC.
var (
	remuxVideo = []string{"h264", "hevc"}
	copyAudio  = []string{"aac", "mp3"}
)

// open reads the first bytes of a publisher's stream, tells its format
// and returns the MPEG-TS it becomes: the stream itself, or ffmpeg's remux
// of a WebM/Matroska stream. A stream that is neither, or that ends or
// fails first, gets the refusal the publisher is answered with.
func (s *HTTPServer) open(ctx context.Context, f feed, p *httpPublisher, log *slog.Logger) (source, pushFormat, *pushError) {
	var head []byte
	var format pushFormat
	for {
		data, err := f.read()
		head = append(head, data...)
		var more bool
		format, more = sniffFormat(head, err != nil)
		if !more {
			break
		}
		if err != nil {
			if perr := classify(p.reason(), err, nil); perr != nil {
				return nil, 0, perr
			}
			break
		}
	}
	switch format {
	case formatTS:
		return &replay{head: head, f: f}, format, nil
	case formatMatroska:
		src, perr := s.remux(ctx, head, f, p, log)
		return src, format, perr
	}
	if len(head) == 0 {
		if perr := classify(p.reason(), nil, nil); perr != nil {
			return nil, 0, perr
		}
		return nil, 0, refusal(http.StatusBadRequest, errEmpty)
	}
	return nil, 0, refusal(http.StatusUnsupportedMediaType,
		fmt.Errorf("the stream is %w: it starts with %s", errNotMedia, describeHead(head)))
}

// remux probes a WebM/Matroska stream's tracks and starts ffmpeg turning
// it into MPEG-TS: H.264 or H.265 video and AAC or MP3 audio are copied,
// other audio is transcoded to AAC, other video is refused.
func (s *HTTPServer) remux(ctx context.Context, head []byte, f feed, p *httpPublisher, log *slog.Logger) (source, *pushError) {
	info, head, perr := probeMatroska(ctx, head, f, p)
	if perr != nil {
		return nil, perr
	}
	args, err := remuxArgs(info)
	if err != nil {
		return nil, refusal(http.StatusUnsupportedMediaType, err)
	}
	r, err := startRemux(args, head, f, log)
	if err != nil {
		return nil, failure(http.StatusInternalServerError, websocket.StatusInternalError, err)
	}
	return r, nil
}

// probeMatroska reads a WebM/Matroska stream until ffprobe names its
// tracks, probing at firstProbe bytes and then at twice as many each time,
// up to probeLimit. It returns the tracks and the bytes read.
func probeMatroska(ctx context.Context, head []byte, f feed, p *httpPublisher) (*media.Info, []byte, *pushError) {
	next := firstProbe
	ended := false
	var lastErr error
	for {
		if len(head) >= next || ended {
			info, err := media.ProbeBytes(ctx, head)
			if err == nil && len(info.Streams) > 0 {
				return info, head, nil
			}
			lastErr = err
			next = 2 * len(head)
		}
		if ended || len(head) >= probeLimit {
			if lastErr == nil {
				lastErr = media.ErrNoMedia
			}
			return nil, nil, refusal(http.StatusUnsupportedMediaType,
				fmt.Errorf("the WebM/Matroska stream's tracks could not be read from its first %d bytes: %w", len(head), lastErr))
		}
		data, err := f.read()
		head = append(head, data...)
		if err != nil {
			if perr := classify(p.reason(), err, nil); perr != nil {
				return nil, nil, perr
			}
			ended = true
		}
	}
}

// remuxArgs are the ffmpeg arguments that turn a WebM/Matroska stream
// with info's tracks, on stdin, into MPEG-TS on stdout. Video that is not
// H.264 or H.265 is an error: weir copies video, and segments only those.
func remuxArgs(info *media.Info) ([]string, error) {
	v, hasVideo := info.Video()
	a, hasAudio := info.Audio()
	if !hasVideo && !hasAudio {
		return nil, fmt.Errorf("the WebM/Matroska stream has %w", media.ErrNoMedia)
	}
	if hasVideo && !slices.Contains(remuxVideo, v.CodecName) {
		return nil, fmt.Errorf("the WebM/Matroska stream's video is %s; weir takes H.264 or H.265 (in a browser, record with MediaRecorder mimeType \"video/webm;codecs=h264,opus\", or \"video/x-matroska;codecs=avc1,opus\")", v.CodecName)
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	args = append(args, media.InputArgs(media.ProtocolsPipe, "matroska")...)
	// Tracks are declared in the header: little probing is needed, and
	// what is probed waits before the first output.
	args = append(args, "-probesize", "1000000", "-analyzeduration", "500000", "-i", "pipe:0")
	if hasVideo {
		args = append(args, "-map", "0:v:0", "-c:v", "copy")
	}
	if hasAudio {
		args = append(args, "-map", "0:a:0")
		if slices.Contains(copyAudio, a.CodecName) {
			args = append(args, "-c:a", "copy")
		} else {
			args = append(args, "-c:a", "aac", "-b:a", "128k")
		}
	}
	return append(args, "-f", "mpegts", "-flush_packets", "1", "pipe:1"), nil
}

// remuxer is an ffmpeg process remuxing a publisher's WebM/Matroska into
// MPEG-TS: a goroutine copies the feed into its stdin, and read returns
// what it writes to stdout.
type remuxer struct {
	cmd    *exec.Cmd
	f      feed
	stdout *os.File
	stderr *tailBuffer
	cancel context.CancelFunc
	buf    []byte
	// copied closes once the feed ended (feedErr says how: nil for a
	// clean end), before ffmpeg's stdin is closed; exited closes once
	// ffmpeg exited (waitErr).
	copied  chan struct{}
	feedErr error
	exited  chan struct{}
	waitErr error
}

// startRemux starts ffmpeg with args and feeds it head, then the rest of f.
func startRemux(args []string, head []byte, f feed, log *slog.Logger) (*remuxer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	// ffmpeg writes to a pipe of our own, so that Wait, which closes the
	// pipes it made, can run while the output is still read.
	pr, pw, err := os.Pipe()
	if err != nil {
		cancel()
		return nil, err
	}
	r := &remuxer{cmd: cmd, f: f, stdout: pr, stderr: &tailBuffer{max: 4 << 10}, cancel: cancel,
		buf: make([]byte, 64<<10), copied: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = pw, r.stderr
	err = cmd.Start()
	pw.Close()
	if err != nil {
		cancel()
		pr.Close()
		return nil, fmt.Errorf("starting ffmpeg to remux WebM/Matroska (is ffmpeg installed?): %w", err)
	}
	log.Debug("remuxing WebM/Matroska", "ffmpeg", strings.Join(args, " "))
	go func() {
		r.waitErr = cmd.Wait()
		close(r.exited)
	}()
	go func() {
		r.feedErr = copyFeed(stdin, head, f)
		close(r.copied)
		stdin.Close()
		// ffmpeg flushes and exits once its input ends; a stuck one is
		// killed.
		select {
		case <-r.exited:
		case <-time.After(remuxExitTimeout):
			cancel()
		}
	}()
	return r, nil
}

// copyFeed writes head, then everything f yields, to w; nil when the feed
// ended cleanly (or ffmpeg stopped taking input: its exit says why).
func copyFeed(w io.Writer, head []byte, f feed) error {
	if _, err := w.Write(head); err != nil {
		return nil
	}
	for {
		data, err := f.read()
		if len(data) > 0 {
			if _, werr := w.Write(data); werr != nil {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (r *remuxer) read() ([]byte, error) {
	n, err := r.stdout.Read(r.buf)
	if n > 0 {
		return r.buf[:n], nil
	}
	if err == nil {
		return nil, nil
	}
	// The output ended: ffmpeg exited.
	<-r.exited
	select {
	case <-r.copied:
		// The input ended first: its end is the stream's.
		if r.feedErr != nil {
			return nil, r.feedErr
		}
		if r.waitErr != nil {
			return nil, r.failed()
		}
		return nil, io.EOF
	default:
		return nil, r.failed()
	}
}

// failed describes ffmpeg's failure by the last line it logged.
func (r *remuxer) failed() error {
	msg := strings.TrimSpace(r.stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[i+1:])
	}
	if msg == "" && r.waitErr != nil {
		msg = r.waitErr.Error()
	}
	if msg == "" {
		msg = "it ended its output before its input"
	}
	return fmt.Errorf("%w: ffmpeg: %s", errRemux, msg)
}

// close kills ffmpeg if it still runs, interrupts the feed if it is still
// read, and waits for both.
func (r *remuxer) close() {
	r.cancel()
	r.f.interrupt()
	<-r.copied
	<-r.exited
	r.stdout.Close()
}

// tailBuffer keeps the last max bytes written to it: the end of ffmpeg's
// error output.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
