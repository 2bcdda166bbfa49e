// Package media wraps the ffmpeg tools weir drives: ffprobe to learn what a
// file, URL or byte prefix contains, and the codec/container names and MIME
// types the protocol and HLS need.
package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoMedia means ffprobe read the input but found no audio or video stream,
// or could not recognise it as media at all.
var ErrNoMedia = errors.New("no video or audio stream found")

// Stream is one elementary stream as ffprobe reports it.
type Stream struct {
	Index      int     `json:"index"`
	CodecType  string  `json:"codec_type"` // "video", "audio", "subtitle", "data"
	CodecName  string  `json:"codec_name"` // "h264", "aac", ...
	Profile    string  `json:"profile,omitempty"`
	Level      int     `json:"level,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	PixFmt     string  `json:"pix_fmt,omitempty"`
	FrameRate  float64 `json:"frame_rate,omitempty"` // frames per second (avg, else r_frame_rate)
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
	BitRate    int64   `json:"bit_rate,omitempty"`
	// Duration is zero when ffprobe does not know it (live streams).
	Duration time.Duration `json:"duration,omitempty"`
}

// Info is what ffprobe learned about an input.
type Info struct {
	// FormatName is ffprobe's demuxer list, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
	FormatName string        `json:"format_name"`
	Duration   time.Duration `json:"duration,omitempty"`
	Size       int64         `json:"size,omitempty"`
	BitRate    int64         `json:"bit_rate,omitempty"`
	Streams    []Stream      `json:"streams"`
}

// Video returns the first video stream that is not a cover picture, if any.
func (i *Info) Video() (Stream, bool) { return i.first("video") }

// Audio returns the first audio stream, if any.
func (i *Info) Audio() (Stream, bool) { return i.first("audio") }

func (i *Info) first(kind string) (Stream, bool) {
	for _, s := range i.Streams {
		if s.CodecType == kind {
			return s, true
		}
	}
	return Stream{}, false
}

// Demuxer is the name that pins the detected demuxer with ffmpeg's -f:
// the first of FormatName's names ("mov" for "mov,mp4,m4a,3gp,3g2,mj2").
func (i *Info) Demuxer() string {
	name, _, _ := strings.Cut(i.FormatName, ",")
	return name
}

// FFmpegFormat is the ffmpeg format name for the protocol's ffmpegFormat
// field: "mp4" for the ISO-BMFF family, else ffprobe's first demuxer name
// ("mpegts", "matroska", "aac", "mp3", "flv", "wav", ...).
func (i *Info) FFmpegFormat() string {
	names := strings.Split(i.FormatName, ",")
	for _, n := range names {
		if n == "mp4" {
			return "mp4"
		}
	}
	return names[0]
}

// MimeType is the container's MIME type for the protocol's mimeType field.
// Audio-only containers get audio/ types.
func (i *Info) MimeType() string {
	_, hasVideo := i.Video()
	switch f := i.FFmpegFormat(); f {
	case "mp4":
		if !hasVideo {
			return "audio/mp4"
		}
		return "video/mp4"
	case "mpegts":
		return "video/mp2t"
	case "matroska":
		if strings.Contains(i.FormatName, "webm") && len(i.Streams) > 0 && (i.Streams[0].CodecName == "vp8" || i.Streams[0].CodecName == "vp9" || i.Streams[0].CodecName == "av1" || i.Streams[0].CodecName == "opus") {
			return "video/webm"
		}
		return "video/x-matroska"
	case "aac":
		return "audio/aac"
	case "mp3":
		return "audio/mpeg"
	case "flv":
		return "video/x-flv"
	case "ogg":
		return "audio/ogg"
	case "wav":
		return "audio/wav"
	case "h264":
		return "video/h264"
	case "hevc":
		return "video/h265"
	case "avi":
		return "video/x-msvideo"
	default:
		return "application/octet-stream"
	}
}

// Demuxers is the allow-list of ffmpeg demuxers weir reads user media
// with: containers and elementary streams that carry their media inside
// themselves. What is left off can make ffmpeg open other files or URLs
// named in the input (hls, dash, concat/ffconcat, image2 sequences and
// globs, imf, webm_dash_manifest) or is not audio or video at all; an
// uploaded playlist naming file:///etc/passwd or another title's source
// must never become a title made of those bytes.
var Demuxers = []string{
	"mov", "matroska", "mpegts", "mpeg", "flv", "avi", "asf", "mxf", "dv", "ivf", "nut",
	"wav", "w64", "aiff", "caf", "mp3", "aac", "ac3", "eac3", "flac", "ogg", "wv", "amr",
	"h264", "hevc", "m4v", "mpegvideo",
}

// Protocol allow-lists for InputArgs: a local file, a pipe, or an HTTP(S)
// URL a user asked to read (only ever given to ffmpeg by a command the
// user ran; the server downloads URLs itself through its address filter).
const (
	ProtocolsFile = "file"
	ProtocolsPipe = "pipe"
	ProtocolsHTTP = "http,https,tcp,tls"
)

// InputArgs are the ffmpeg/ffprobe options to put before "-i" when reading
// user media: only the protocols given and only the demuxers in Demuxers.
// A non-empty format pins the demuxer (Info.Demuxer of an earlier probe),
// so ffmpeg cannot pick a different one than the probe checked.
func InputArgs(protocols, format string) []string {
	args := []string{"-protocol_whitelist", protocols, "-format_whitelist", strings.Join(Demuxers, ",")}
	if format != "" {
		args = append(args, "-f", format)
	}
	return args
}

// UnsupportedContainerError means ffprobe recognised the input as a
// container weir does not read (one not in Demuxers). It wraps
// ErrNoMedia: the input is not media weir can use.
type UnsupportedContainerError struct {
	Format string // the demuxer ffprobe detected, e.g. "hls"
}

func (e *UnsupportedContainerError) Error() string { return "unsupported container " + e.Format }

func (e *UnsupportedContainerError) Unwrap() error { return ErrNoMedia }

// Probe runs ffprobe on a local file, reading nothing but that file: a
// path naming another protocol ("concat:a|b", "subfile,,start,...",
// "data:...") is refused like a file that is not media.
func Probe(ctx context.Context, path string) (*Info, error) {
	return probe(ctx, path, ProtocolsFile, nil)
}

// ProbeURL runs ffprobe on an http:// or https:// URL, letting ffprobe
// fetch it. Only for URLs a user handed to a command they run themselves:
// the server never lets ffmpeg fetch, it downloads through its
// private-address filter first.
func ProbeURL(ctx context.Context, rawURL string) (*Info, error) {
	scheme, _, _ := strings.Cut(rawURL, "://")
	if s := strings.ToLower(scheme); s != "http" && s != "https" {
		return nil, fmt.Errorf("ffprobe %s: only http:// and https:// URLs can be probed", rawURL)
	}
	return probe(ctx, rawURL, ProtocolsHTTP, nil)
}

// ProbeBytes runs ffprobe on the start of a stream held in memory, for
// inputs that cannot be read twice (live streams). A few hundred kilobytes
// are normally enough to recognise the container and its codecs.
func ProbeBytes(ctx context.Context, data []byte) (*Info, error) {
	return probe(ctx, "pipe:0", ProtocolsPipe, data)
}

func probe(ctx context.Context, input, protocols string, stdin []byte) (*Info, error) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return nil, fmt.Errorf("ffprobe not found on PATH (install ffmpeg): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := append([]string{"-v", "error", "-hide_banner"}, InputArgs(protocols, "")...)
	args = append(args, "-show_format", "-show_streams", "-of", "json", input)
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", input, ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	if runErr != nil {
		if f := refusedFormat(msg); f != "" && !notMediaFormat(f) {
			return nil, fmt.Errorf("ffprobe %s: %w", input, &UnsupportedContainerError{Format: f})
		}
		if msg == "" {
			msg = runErr.Error()
		}
		return nil, fmt.Errorf("ffprobe %s: %s: %w", input, lastLine(msg), ErrNoMedia)
	}
	info, err := parseProbe(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", input, err)
	}
	if !slices.Contains(Demuxers, info.Demuxer()) {
		// -format_whitelist should have refused it already; the
		// demuxer name is pinned with -f later, so check again.
		return nil, fmt.Errorf("ffprobe %s: %w", input, &UnsupportedContainerError{Format: info.Demuxer()})
	}
	return info, nil
}

// notWhitelisted matches the line libavformat logs when the demuxer it
// detected is not in -format_whitelist; the log prefix names that demuxer.
var notWhitelisted = regexp.MustCompile(`\[([a-z0-9_]+)[a-z0-9_,]* @ 0x[0-9a-f]+\] Format not on whitelist`)

// refusedFormat is the demuxer ffprobe detected and refused, or "".
func refusedFormat(stderr string) string {
	if m := notWhitelisted.FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	return ""
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

// probeJSON mirrors the parts of ffprobe's JSON output weir reads. ffprobe
// prints most numbers as strings.
type probeJSON struct {
	Streams []struct {
		Index        int    `json:"index"`
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		Profile      string `json:"profile"`
		Level        int    `json:"level"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		PixFmt       string `json:"pix_fmt"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
		SampleRate   string `json:"sample_rate"`
		Channels     int    `json:"channels"`
		BitRate      string `json:"bit_rate"`
		Duration     string `json:"duration"`
		Disposition  struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		Size       string `json:"size"`
		BitRate    string `json:"bit_rate"`
	} `json:"format"`
}

// parseProbe turns ffprobe's JSON into Info. Cover-art pictures and streams
// without a codec are ignored; an input left with no audio or video stream is
// ErrNoMedia.
func parseProbe(data []byte) (*Info, error) {
	var pj probeJSON
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, fmt.Errorf("reading ffprobe output: %w", err)
	}
	info := &Info{
		FormatName: pj.Format.FormatName,
		Duration:   seconds(pj.Format.Duration),
		Size:       atoi64(pj.Format.Size),
		BitRate:    atoi64(pj.Format.BitRate),
	}
	av := 0
	for _, s := range pj.Streams {
		if s.Disposition.AttachedPic == 1 || s.CodecName == "" {
			continue
		}
		st := Stream{
			Index: s.Index, CodecType: s.CodecType, CodecName: s.CodecName, Profile: s.Profile,
			Level: s.Level, Width: s.Width, Height: s.Height, PixFmt: s.PixFmt,
			SampleRate: int(atoi64(s.SampleRate)), Channels: s.Channels,
			BitRate: atoi64(s.BitRate), Duration: seconds(s.Duration),
		}
		if st.CodecType == "video" {
			st.FrameRate = rate(s.AvgFrameRate)
			if st.FrameRate == 0 {
				st.FrameRate = rate(s.RFrameRate)
			}
		}
		if st.CodecType == "video" || st.CodecType == "audio" {
			av++
		}
		info.Streams = append(info.Streams, st)
	}
	if av == 0 || info.FormatName == "" || notMedia(info) {
		return nil, ErrNoMedia
	}
	return info, nil
}

// notMedia spots inputs ffprobe decodes without being audio or video: text
// read by the tty demuxer as "ANSI art", and single still images.
func notMedia(info *Info) bool {
	if notMediaFormat(info.FormatName) {
		return true
	}
	for _, s := range info.Streams {
		if s.CodecName == "ansi" || s.CodecName == "bintext" || s.CodecName == "xbin" || s.CodecName == "idf" {
			return true
		}
	}
	return false
}

// notMediaFormat reports demuxers that read text or still images.
func notMediaFormat(f string) bool {
	return f == "tty" || f == "image2" || strings.HasSuffix(f, "_pipe")
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// rate parses ffprobe's "num/den" frame rates; "0/0" and junk give 0.
func rate(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	n, err1 := strconv.ParseFloat(num, 64)
	d, err2 := strconv.ParseFloat(den, 64)
	if err1 != nil || err2 != nil || d == 0 {
		return 0
	}
	return n / d
}
