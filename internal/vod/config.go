package vod

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// Segment formats.
const (
	FormatFMP4 = "fmp4" // CMAF-style fragmented MP4: init.mp4 + .m4s segments
	FormatTS   = "ts"   // MPEG-TS .ts segments
)

// Rung is one step of the transcode ladder.
type Rung struct {
	// Name names the rendition in object keys, segment rows and
	// variants_generated ("720p").
	Name string
	// Height is the rung's picture height for landscape sources; for
	// portrait sources it is the width. The other side follows the
	// source's aspect ratio, rounded to an even number.
	Height int
	// VideoBitrate, MaxBitrate and BufSize are x264's -b:v, -maxrate and
	// -bufsize in bits per second (and bits).
	VideoBitrate, MaxBitrate, BufSize int64
	// Profile is the H.264 profile ("high", "main"). x264 may produce a
	// lower one if the preset disables the tools the profile adds
	// (ultrafast gives constrained baseline); CODECS always reflects the
	// encoded stream.
	Profile string
	// AudioBitrate is the AAC bit rate muxed into this rendition.
	AudioBitrate int64
}

// DefaultLadder is weir's ladder: 1080p, 720p, 480p and 360p at the bit
// rates streaming services commonly use for H.264 at 30 fps, with maxrate
// 7 % over the target and a 1.5 s VBV buffer.
func DefaultLadder() []Rung {
	return []Rung{
		{Name: "1080p", Height: 1080, VideoBitrate: 5_000_000, MaxBitrate: 5_350_000, BufSize: 7_500_000, Profile: "high", AudioBitrate: 128_000},
		{Name: "720p", Height: 720, VideoBitrate: 3_000_000, MaxBitrate: 3_210_000, BufSize: 4_500_000, Profile: "high", AudioBitrate: 128_000},
		{Name: "480p", Height: 480, VideoBitrate: 1_400_000, MaxBitrate: 1_498_000, BufSize: 2_100_000, Profile: "main", AudioBitrate: 96_000},
		{Name: "360p", Height: 360, VideoBitrate: 800_000, MaxBitrate: 856_000, BufSize: 1_200_000, Profile: "main", AudioBitrate: 96_000},
	}
}

// Config configures a Worker. Meta and Objects are required; every other
// field has a default.
type Config struct {
	Meta    metastore.Store
	Objects objstore.Store
	Logger  *slog.Logger
	// Registry receives the worker's Prometheus metrics; nil keeps them
	// unregistered.
	Registry prometheus.Registerer

	// Ladder lists the rungs from highest to lowest (default
	// DefaultLadder). A title gets every rung whose Height is at most the
	// source's shorter side; a source smaller than the lowest rung gets
	// one rendition at its own size, named after its height ("240p").
	Ladder []Rung
	// SegmentDuration is the HLS target segment duration and the GOP
	// length: every rendition has an IDR frame exactly every
	// SegmentDuration, so segments of all renditions align (default 4 s).
	SegmentDuration time.Duration
	// Format is FormatFMP4 (default) or FormatTS.
	Format string
	// Preset is the x264 preset (default "veryfast").
	Preset string
	// AudioBitrate is the AAC bit rate of audio-only titles (default
	// 128 kb/s).
	AudioBitrate int64

	// RungsPerProcess is how many renditions one ffmpeg process encodes:
	// it decodes the source once and feeds every encoder through a split
	// filter. 0 (default) puts the whole ladder in one process, which does
	// the least work; 1 gives the classic one-process-per-rendition
	// topology, which can win on many-core machines where a single
	// process's filter thread becomes the bottleneck.
	RungsPerProcess int
	// MaxParallel caps how many of those ffmpeg processes run at once for
	// one title (default runtime.NumCPU()). Processes beyond the cap
	// wait; a title becomes playable only once every rendition has its
	// first segment, so a cap below the process count delays that.
	MaxParallel int

	// WorkDir holds each job's download and ffmpeg output while it runs
	// (default $TMPDIR/weir-vod). A job's directory is removed when the
	// job ends; every attempt starts in a fresh one.
	WorkDir string
	// FFmpeg is the ffmpeg binary (default "ffmpeg" on PATH). ffprobe is
	// found on PATH.
	FFmpeg string
	// HTTPClient fetches URL imports (default: a client without a
	// total timeout, since sources can be large).
	HTTPClient *http.Client
	// MaxSourceBytes caps a URL import's size (default 16 GiB).
	MaxSourceBytes int64
	// MaxAttempts is how many times a job is started before it is failed:
	// a job whose worker is killed is redelivered, and one that kills its
	// worker every time must not loop forever (default 3).
	MaxAttempts int
	// NoThumbnail skips {id}/thumb.jpg.
	NoThumbnail bool
	// ProgressInterval is how often transcode progress is written to the
	// metadata store (default 1 s).
	ProgressInterval time.Duration
	// PollInterval is how often ffmpeg's segment lists are read for
	// finished segments (default 200 ms).
	PollInterval time.Duration

	// MaxJobs is how many titles this worker transcodes at once (default
	// 2); further jobs wait in the background without holding up the job
	// topic's consumer group.
	MaxJobs int
	// Holder names this process in the leases it takes on titles (default
	// host name and process id). It must differ between processes.
	Holder string
	// LeaseTTL is how long a title's lease lasts without renewal (default
	// 15 s): a killed worker's title is taken over by another worker about
	// this long after the kill, once its job is redelivered.
	LeaseTTL time.Duration
}

func (c *Config) setDefaults() error {
	if c.Meta == nil || c.Objects == nil {
		return errors.New("vod: Config.Meta and Config.Objects are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Ladder) == 0 {
		c.Ladder = DefaultLadder()
	}
	seen := map[string]bool{}
	for i, r := range c.Ladder {
		if r.Name == "" || strings.ContainsAny(r.Name, `/\ .`) || r.Name == "audio" || r.Name == "source" {
			return fmt.Errorf("vod: ladder rung %d: name %q must be a plain word other than audio and source", i, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("vod: ladder rung %d: duplicate name %q", i, r.Name)
		}
		seen[r.Name] = true
		if r.Height < 2 || r.VideoBitrate <= 0 || r.AudioBitrate <= 0 {
			return fmt.Errorf("vod: ladder rung %s: height, video and audio bit rates must be positive", r.Name)
		}
		if i > 0 && r.Height >= c.Ladder[i-1].Height {
			return fmt.Errorf("vod: ladder rung %s: rungs must go from highest to lowest", r.Name)
		}
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = 4 * time.Second
	}
	if c.SegmentDuration < 500*time.Millisecond || c.SegmentDuration > 30*time.Second {
		return fmt.Errorf("vod: segment duration %v: want 0.5 s to 30 s", c.SegmentDuration)
	}
	switch c.Format {
	case "":
		c.Format = FormatFMP4
	case FormatFMP4, FormatTS:
	default:
		return fmt.Errorf("vod: format %q: want %q or %q", c.Format, FormatFMP4, FormatTS)
	}
	if c.Preset == "" {
		c.Preset = "veryfast"
	}
	if c.AudioBitrate <= 0 {
		c.AudioBitrate = 128_000
	}
	if c.RungsPerProcess < 0 {
		return fmt.Errorf("vod: rungs per process %d is negative", c.RungsPerProcess)
	}
	if c.MaxParallel <= 0 {
		c.MaxParallel = runtime.NumCPU()
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "weir-vod")
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.MaxSourceBytes <= 0 {
		c.MaxSourceBytes = 16 << 30
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MaxJobs <= 0 {
		c.MaxJobs = 2
	}
	if c.Holder == "" {
		c.Holder = metastore.DefaultHolder()
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	return nil
}
