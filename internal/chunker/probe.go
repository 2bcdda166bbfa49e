package chunker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/media"
)

// pump reads the input on its own goroutine so that Run can give up on a
// Read that blocks (a live source) when its context ends.
type pump struct {
	blocks chan []byte
	err    error // the read error other than io.EOF; valid once blocks is closed
}

const pumpBlock = 64 << 10

func startPump(ctx context.Context, r io.Reader) *pump {
	p := &pump{blocks: make(chan []byte, 4)}
	go func() {
		defer close(p.blocks)
		for {
			buf := make([]byte, pumpBlock)
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case p.blocks <- buf[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					p.err = err
				}
				return
			}
		}
	}()
	return p
}

// maxProbePrefix bounds what ffprobe may read before it decides.
const maxProbePrefix = 64 << 20

// probeResult is what ffprobe learned plus the bytes it was shown, which
// ffmpeg must read again.
type probeResult struct {
	info   *probeInfo
	prefix []byte
}

// probeInfo is the part of ffprobe's report Run uses.
type probeInfo struct {
	Format    string  // demuxer to pin with -f
	StartTime float64 // the input's first timestamp, seconds
	Video     *probeStreamInfo
	Audio     *probeStreamInfo
}

type probeStreamInfo struct {
	CodecName     string
	Width, Height int
	TimeBase      [2]int64 // num, den
}

// probeEntries are the parts of ffprobe's report parseProbe reads.
const probeEntries = "format=format_name,start_time:stream=index,codec_type,codec_name,width,height,time_base:stream_disposition=attached_pic"

// probeCommand is ffprobe reading url with only the given protocols and
// the demuxers in media.Demuxers.
func probeCommand(ctx context.Context, opts Options, in ffInput) (*exec.Cmd, *bytes.Buffer, *tail) {
	args := []string{"-v", "error", "-hide_banner"}
	args = append(args, media.InputArgs(in.protocols, opts.InputFormat)...)
	args = append(args, probeWindowArgs(opts.ProbeWindow)...)
	args = append(args, "-show_entries", probeEntries, "-of", "json", in.url)
	cmd := exec.CommandContext(ctx, opts.FFprobe, args...)
	stdout, stderr := new(bytes.Buffer), newTail(4<<10)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, stdout, stderr
}

// probeVerdict turns ffprobe's exit and report into the input's streams.
func probeVerdict(waitErr error, stdout []byte, stderr *tail) (*probeInfo, error) {
	if waitErr != nil {
		msg := stderr.lastLines(2)
		if msg == "" {
			msg = waitErr.Error()
		}
		return nil, fmt.Errorf("chunker: probe input: %s: %w", msg, media.ErrNoMedia)
	}
	info, err := parseProbe(stdout)
	if err != nil {
		return nil, fmt.Errorf("chunker: probe input: %w", err)
	}
	return info, nil
}

// probeFile runs ffprobe on a local file it opens itself.
func probeFile(ctx context.Context, opts Options, url string) (*probeInfo, error) {
	cmd, stdout, stderr := probeCommand(ctx, opts, ffInput{media.ProtocolsFile, url})
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("chunker: probe input: start %s: %w", opts.FFprobe, err)
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("chunker: probe input: %w", ctx.Err())
	}
	return probeVerdict(waitErr, stdout.Bytes(), stderr)
}

// probeStream runs ffprobe on the input as it arrives, keeping every byte
// it was shown, until ffprobe has recognised the streams. An MP4 whose
// index is at its end is refused with ErrIndexAtEnd as soon as its start
// shows it.
func probeStream(ctx context.Context, opts Options, src *pump) (*probeResult, error) {
	cmd, stdout, stderr := probeCommand(ctx, opts, ffInput{media.ProtocolsPipe, "pipe:0"})
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("chunker: probe input: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("chunker: probe input: start %s: %w", opts.FFprobe, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	prefix, waitErr, feedErr := feedProbe(ctx, src, stdin, done)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("chunker: probe input: %w", ctx.Err())
	}
	if feedErr != nil {
		return nil, fmt.Errorf("chunker: probe input: %w", feedErr)
	}
	info, err := probeVerdict(waitErr, stdout.Bytes(), stderr)
	if err != nil {
		return nil, err
	}
	return &probeResult{info: info, prefix: prefix}, nil
}

// feedProbe copies input blocks to ffprobe until it exits, returning the
// bytes it copied and ffprobe's exit error.
func feedProbe(ctx context.Context, src *pump, stdin io.WriteCloser, done <-chan error) (prefix []byte, waitErr, feedErr error) {
	in := src.blocks
	for {
		select {
		case err := <-done:
			return prefix, err, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case b, ok := <-in:
			if !ok {
				stdin.Close()
				in = nil // wait for ffprobe to finish on what it has
				if src.err != nil {
					return nil, nil, fmt.Errorf("read input: %w", src.err)
				}
				continue
			}
			prefix = append(prefix, b...)
			if mp4IndexAtEnd(prefix) {
				return nil, nil, ErrIndexAtEnd
			}
			if len(prefix) > maxProbePrefix {
				return nil, nil, fmt.Errorf("ffprobe read %d MiB without recognising the input", maxProbePrefix>>20)
			}
			// A failed write means ffprobe has stopped reading; its exit
			// status on done says whether it recognised the input.
			stdin.Write(b)
		}
	}
}

type probeJSON struct {
	Format struct {
		FormatName string `json:"format_name"`
		StartTime  string `json:"start_time"`
	} `json:"format"`
	Streams []struct {
		CodecType   string `json:"codec_type"`
		CodecName   string `json:"codec_name"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
		TimeBase    string `json:"time_base"`
		Disposition struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
	} `json:"streams"`
}

func parseProbe(data []byte) (*probeInfo, error) {
	var pj probeJSON
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, fmt.Errorf("ffprobe output: %w", err)
	}
	format, _, _ := strings.Cut(pj.Format.FormatName, ",")
	if !slices.Contains(media.Demuxers, format) {
		return nil, &media.UnsupportedContainerError{Format: format}
	}
	info := &probeInfo{Format: format}
	if pj.Format.StartTime != "" {
		if v, err := strconv.ParseFloat(pj.Format.StartTime, 64); err == nil && !math.IsNaN(v) && math.Abs(v) < maxSegmentTime {
			info.StartTime = v
		}
	}
	for _, s := range pj.Streams {
		st := &probeStreamInfo{CodecName: s.CodecName, Width: s.Width, Height: s.Height}
		st.TimeBase = parseRational(s.TimeBase)
		switch {
		case s.CodecType == "video" && s.Disposition.AttachedPic == 0 && info.Video == nil:
			info.Video = st
		case s.CodecType == "audio" && info.Audio == nil:
			info.Audio = st
		}
	}
	if info.Video == nil && info.Audio == nil {
		return nil, media.ErrNoMedia
	}
	return info, nil
}

// parseRational parses "1/90000"; anything else is 1/1000000.
func parseRational(s string) [2]int64 {
	n, d, ok := strings.Cut(s, "/")
	num, err1 := strconv.ParseInt(n, 10, 64)
	den, err2 := strconv.ParseInt(d, 10, 64)
	if !ok || err1 != nil || err2 != nil || num <= 0 || den <= 0 {
		return [2]int64{1, 1000000}
	}
	return [2]int64{num, den}
}

// tail keeps the last bytes written to it: ffmpeg's stderr for errors.
type tail struct {
	max int
	buf []byte
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// lastLines returns up to n last non-empty lines, joined by "; ".
func (t *tail) lastLines(n int) string {
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append(out, l)
		}
	}
	slices.Reverse(out)
	return strings.Join(out, "; ")
}

// probeWindowArgs are the input options that bound stream analysis to
// window (none for 0: ffmpeg's default).
func probeWindowArgs(window time.Duration) []string {
	if window <= 0 {
		return nil
	}
	return []string{"-analyzeduration", strconv.FormatInt(window.Microseconds(), 10)}
}
