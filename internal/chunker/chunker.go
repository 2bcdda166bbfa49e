package chunker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Kind is the kind of chunk an engine reads.
type Kind string

// The chunk kinds.
const (
	// KindVideo chunks are MPEG-TS ("video/mp2t") cut on key frames, each
	// playable on its own.
	KindVideo Kind = "video"
	// KindAudio chunks are WAV 16 kHz mono s16le ("audio/wav"), or the
	// source codec when Options.AudioFormat is "source".
	KindAudio Kind = "audio"
	// KindFrame chunks are JPEG stills ("image/jpeg").
	KindFrame Kind = "frame"
)

// Audio formats for Options.AudioFormat.
const (
	AudioWAV    = "wav"
	AudioSource = "source"
)

// Defaults Run and RunFile fill in for zero Options fields.
const (
	DefaultDuration  = 10 * time.Second
	DefaultFrameRate = 1.0
)

// ErrNoStreams means the input has none of the streams the requested kinds
// are made from (no video for frames, no audio for audio, neither for
// video chunks).
var ErrNoStreams = errors.New("input has no stream for the requested chunk kinds")

// Options says which chunks Run and RunFile make and how.
type Options struct {
	// Kinds to make; at least one.
	Kinds []Kind
	// Duration is the target length of video and audio chunks (10 s when
	// zero). Video chunks are cut on the first key frame at or after each
	// multiple of Duration.
	Duration time.Duration
	// FrameRate is how many frames per second of media KindFrame takes,
	// the first frame of each 1/FrameRate interval. Zero means 1; a
	// negative rate takes none at regular times (scene changes only).
	FrameRate float64
	// SceneThreshold, when above 0, also takes every frame whose scene
	// change score (0..1) exceeds it, and reports scores in Chunk.SceneScore.
	SceneThreshold float64
	// AudioFormat is AudioWAV (default) or AudioSource.
	AudioFormat string
	// MaxFrameWidth scales frames wider than this down, keeping the aspect
	// ratio; 0 keeps the source size.
	MaxFrameWidth int
	// ProbeWindow bounds how much media ffprobe and ffmpeg read to learn
	// the input's streams before cutting (their -analyzeduration); 0 keeps
	// ffmpeg's default, 5 s for most inputs. A live input wants it short,
	// about one key-frame interval: the first chunks wait for it.
	ProbeWindow time.Duration
	// InputFormat pins the ffmpeg demuxer (-f); "" lets ffprobe detect it.
	// Either way it must be one of media.Demuxers.
	InputFormat string
	// FFmpeg is the ffmpeg binary ("ffmpeg" on PATH when empty).
	FFmpeg string
	// FFprobe is the ffprobe binary (next to FFmpeg, else on PATH, when empty).
	FFprobe string
	// TempDir is where chunk files are written before emit ("" is os.TempDir).
	TempDir string
	// Log receives warnings (slog.Default when nil).
	Log *slog.Logger
}

// Chunk is one finished piece of the input.
type Chunk struct {
	Kind  Kind
	Index int64 // 0, 1, 2, ... per kind
	// StartMs and EndMs are media times in milliseconds from the input's
	// first timestamp.
	StartMs, EndMs int64
	// Width and Height of the chunk's picture (0 for audio).
	Width, Height int
	MimeType      string
	// Path is the chunk's file; it is removed after emit returns.
	Path string
	Size int64
	// SceneScore is the frame's scene change score when SceneThreshold > 0.
	SceneScore float64
}

// Run reads a media stream from r, feeds it to one ffmpeg process and calls
// emit with every chunk as soon as ffmpeg finishes it. It returns when the
// input has ended and every chunk was emitted, when emit returns an error
// (returned wrapped), or when ctx is done; either way ffmpeg is stopped and
// the chunk files are removed. A requested kind whose stream the input
// lacks yields no chunks and a logged warning; when no requested kind can be
// made Run returns ErrNoStreams. Run never waits for a Read on r that
// blocks after it returns: close r to release it.
//
// A stream is read once, front to back: an MP4 whose index is at its end
// cannot be, and Run refuses it with ErrIndexAtEnd. Use RunFile for media
// that is already a local file.
func Run(ctx context.Context, r io.Reader, opts Options, emit func(context.Context, Chunk) error) error {
	return run(ctx, &pipeInput{r: r}, opts, emit)
}

// RunFile is Run on a local file, which ffprobe and ffmpeg open and may
// seek in, so it reads every MP4 whatever the place of its index. path is
// only ever a local file: ffmpeg is given "file:" and its absolute path,
// never a protocol the path might name ("concat:a|b"), and a path that is
// not a regular file is refused. The file is left in place.
func RunFile(ctx context.Context, path string, opts Options, emit func(context.Context, Chunk) error) error {
	in, err := newFileInput(path)
	if err != nil {
		return err
	}
	return run(ctx, in, opts, emit)
}

// run is Run and RunFile once the input is known.
func run(ctx context.Context, in input, opts Options, emit func(context.Context, Chunk) error) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	info, err := in.probe(ctx, opts)
	if err != nil {
		return err
	}
	plan, err := newPlan(opts, info, in.source())
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "weir-chunker-")
	if err != nil {
		return fmt.Errorf("chunker: %w", err)
	}
	defer os.RemoveAll(dir)
	for _, o := range plan.outputs {
		if err := os.Mkdir(filepath.Join(dir, string(o.kind)), 0o700); err != nil {
			return fmt.Errorf("chunker: %w", err)
		}
	}
	return runFFmpeg(ctx, cancel, plan, dir, in, emit)
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Kinds) == 0 {
		return o, errors.New("chunker: no chunk kinds requested")
	}
	seen := map[Kind]bool{}
	for _, k := range o.Kinds {
		if k != KindVideo && k != KindAudio && k != KindFrame {
			return o, fmt.Errorf("chunker: unknown chunk kind %q (want video, audio or frame)", k)
		}
		if seen[k] {
			return o, fmt.Errorf("chunker: chunk kind %q requested twice", k)
		}
		seen[k] = true
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Duration < 100*time.Millisecond {
		return o, fmt.Errorf("chunker: chunk duration %s is below 100ms", o.Duration)
	}
	if o.FrameRate == 0 {
		o.FrameRate = DefaultFrameRate
	}
	if o.FrameRate > 120 {
		return o, fmt.Errorf("chunker: frame rate %g is above 120 per second", o.FrameRate)
	}
	if o.SceneThreshold < 0 || o.SceneThreshold >= 1 {
		return o, fmt.Errorf("chunker: scene threshold %g is outside 0..1", o.SceneThreshold)
	}
	if seen[KindFrame] && o.FrameRate < 0 && o.SceneThreshold == 0 {
		return o, errors.New("chunker: frames need a frame rate or a scene threshold")
	}
	switch o.AudioFormat {
	case "":
		o.AudioFormat = AudioWAV
	case AudioWAV, AudioSource:
	default:
		return o, fmt.Errorf("chunker: audio format %q (want %q or %q)", o.AudioFormat, AudioWAV, AudioSource)
	}
	if o.MaxFrameWidth < 0 {
		return o, fmt.Errorf("chunker: max frame width %d is negative", o.MaxFrameWidth)
	}
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	if o.FFprobe == "" {
		o.FFprobe = "ffprobe"
		if d := filepath.Dir(o.FFmpeg); d != "." || filepath.IsAbs(o.FFmpeg) {
			o.FFprobe = filepath.Join(d, "ffprobe")
		}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o, nil
}
