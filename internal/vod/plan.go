package vod

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weir-media/weir/internal/media"
)

// audioRendition names the single rendition of an audio-only title.
const audioRendition = "audio"

// rendition is one output of a title's ladder.
type rendition struct {
	Name  string
	Rung  Rung
	Video bool
	Audio bool
	// Dir is where ffmpeg writes this rendition's segments and list.
	Dir string
}

// planLadder picks the renditions for a source: every rung whose height
// fits the source's shorter side (portrait and landscape alike), or one
// rendition at the source's own size when it is smaller than the lowest
// rung, or one audio rendition when the source has no video. Nothing is
// ever upscaled.
func planLadder(ladder []Rung, info *media.Info, audioBitrate int64) ([]*rendition, error) {
	v, hasVideo := info.Video()
	_, hasAudio := info.Audio()
	if !hasVideo {
		if !hasAudio {
			return nil, media.ErrNoMedia
		}
		return []*rendition{{Name: audioRendition, Audio: true, Rung: Rung{Name: audioRendition, AudioBitrate: audioBitrate}}}, nil
	}
	short := min(v.Width, v.Height)
	if short < 2 {
		return nil, fmt.Errorf("the video stream has no usable picture size (%dx%d)", v.Width, v.Height)
	}
	var out []*rendition
	for _, r := range ladder {
		if r.Height <= short {
			out = append(out, &rendition{Name: r.Name, Rung: r, Video: true, Audio: hasAudio})
		}
	}
	if len(out) == 0 {
		r := ladder[len(ladder)-1]
		r.Height = short &^ 1
		r.Name = strconv.Itoa(r.Height) + "p"
		out = append(out, &rendition{Name: r.Name, Rung: r, Video: true, Audio: hasAudio})
	}
	if src := sourceVideoBitrate(info); src > 0 {
		for _, r := range out {
			r.Rung = capBitrate(r.Rung, src)
		}
	}
	return out, nil
}

// sourceVideoBitrate is the source's video bit rate as ffprobe reports it:
// the video stream's, or else the container's less the audio stream's;
// 0 when unknown.
func sourceVideoBitrate(info *media.Info) int64 {
	v, _ := info.Video()
	if v.BitRate > 0 {
		return v.BitRate
	}
	if info.BitRate <= 0 {
		return 0
	}
	a, _ := info.Audio()
	return max(info.BitRate-a.BitRate, 0)
}

// capBitrate lowers a rung's target to the source's video bit rate when it
// is above it (maxrate and buffer in proportion): re-encoding cannot add
// quality the source does not have, and a rung that asked for more would
// spend bits on nothing and list a BANDWIDTH above its source's.
func capBitrate(r Rung, src int64) Rung {
	if r.VideoBitrate <= src {
		return r
	}
	scale := func(v int64) int64 { return int64(math.Round(float64(v) * float64(src) / float64(r.VideoBitrate))) }
	r.MaxBitrate, r.BufSize = scale(r.MaxBitrate), scale(r.BufSize)
	r.VideoBitrate = src
	return r
}

// groupRenditions splits the ladder into the renditions each ffmpeg
// process encodes: all of them in one process when perProcess is 0.
func groupRenditions(rs []*rendition, perProcess int) [][]*rendition {
	if perProcess <= 0 || perProcess >= len(rs) {
		return [][]*rendition{rs}
	}
	var groups [][]*rendition
	for i := 0; i < len(rs); i += perProcess {
		groups = append(groups, rs[i:min(i+perProcess, len(rs))])
	}
	return groups
}

// segmentExt is the file extension of media segments in format f.
func segmentExt(format string) string {
	if format == FormatTS {
		return "ts"
	}
	return "m4s"
}

// segmentName is the file and object name of segment i.
func segmentName(format string, i int) string {
	return fmt.Sprintf("seg_%05d.%s", i, segmentExt(format))
}

// ffmpegList is the name of the playlist ffmpeg writes for itself in each
// rendition's work directory. weir reads it only to learn which segments
// are finished and how long they are; the playlists players see are
// written by weir (package hls).
const ffmpegList = "ffmpeg.m3u8"

// ffmpegArgs builds one ffmpeg command that decodes src once and encodes
// every rendition of group, each into its own HLS muxer. The GOP is fixed:
// an IDR frame is forced at every multiple of the segment duration (and
// scene-cut keyframes are off), so segments of all renditions, in this
// process or another, start on aligned IDR frames. Progress goes to
// stdout as key=value lines.
func ffmpegArgs(cfg *Config, src string, info *media.Info, group []*rendition) []string {
	seg := cfg.SegmentDuration.Seconds()
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
		"-progress", "pipe:1", "-stats_period", "0.5", "-y"}
	args = append(args, media.InputArgs(media.ProtocolsFile, info.Demuxer())...)
	args = append(args, "-i", src)

	var video []*rendition
	for _, r := range group {
		if r.Video {
			video = append(video, r)
		}
	}
	if len(video) > 0 {
		graph := "[0:v:0]"
		if len(video) > 1 {
			graph += fmt.Sprintf("split=%d", len(video))
			for i := range video {
				graph += fmt.Sprintf("[s%d]", i)
			}
			graph += ";"
		}
		for i, r := range video {
			if len(video) > 1 {
				graph += fmt.Sprintf("[s%d]", i)
			}
			// The short side gets the rung's height whatever the
			// orientation after ffmpeg's auto-rotation; -2 keeps the
			// aspect ratio with an even size.
			h := r.Rung.Height
			graph += fmt.Sprintf("scale=w='if(gte(iw,ih),-2,%d)':h='if(gte(iw,ih),%d,-2)',format=yuv420p[v%d]", h, h, i)
			if i < len(video)-1 {
				graph += ";"
			}
		}
		args = append(args, "-filter_complex", graph)
	}

	gop := 0
	if v, ok := info.Video(); ok && v.FrameRate > 0 && v.FrameRate <= 240 {
		gop = int(math.Ceil(v.FrameRate * seg))
	}
	if gop == 0 {
		gop = int(math.Ceil(60 * seg)) // unknown rate: forced keyframes alone set the GOP
	}
	vi := 0
	for _, r := range group {
		if r.Video {
			args = append(args, "-map", fmt.Sprintf("[v%d]", vi),
				"-c:v", "libx264", "-preset", cfg.Preset, "-profile:v", r.Rung.Profile,
				"-b:v", bps(r.Rung.VideoBitrate))
			if r.Rung.MaxBitrate > 0 {
				args = append(args, "-maxrate", bps(r.Rung.MaxBitrate))
			}
			if r.Rung.BufSize > 0 {
				args = append(args, "-bufsize", bps(r.Rung.BufSize))
			}
			args = append(args, "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0",
				"-force_key_frames", "expr:gte(t,n_forced*"+formatSeconds(cfg.SegmentDuration)+")", "-forced-idr", "1")
			vi++
		}
		if r.Audio {
			args = append(args, "-map", "0:a:0", "-c:a", "aac", "-b:a", bps(r.Rung.AudioBitrate), "-ac", "2")
		}
		args = append(args, "-f", "hls", "-hls_time", formatSeconds(cfg.SegmentDuration),
			"-hls_list_size", "0", "-hls_playlist_type", "event",
			"-hls_flags", "independent_segments+temp_file")
		if cfg.Format == FormatFMP4 {
			args = append(args, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4")
		} else {
			args = append(args, "-hls_segment_type", "mpegts")
		}
		args = append(args, "-hls_segment_filename", filepath.Join(r.Dir, "seg_%05d."+segmentExt(cfg.Format)),
			filepath.Join(r.Dir, ffmpegList))
	}
	return args
}

func bps(n int64) string { return strconv.FormatInt(n, 10) }

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
