package chunker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/weir-media/weir/internal/media"
)

// output is one ffmpeg output: a kind, its segment files and the pipes
// ffmpeg reports them on.
type output struct {
	kind     Kind
	ext      string // file extension, without the dot
	format   string // the segment muxer's inner format
	mimeType string
	meta     bool // frames: a metadata pipe follows the segment list pipe
}

// plan is what Run asks of ffmpeg for one input.
type plan struct {
	opts    Options
	info    *probeInfo
	in      ffInput
	outputs []output
}

// newPlan decides the outputs for the kinds asked and the streams the
// input has, warning about kinds it cannot make.
func newPlan(opts Options, info *probeInfo, in ffInput) (*plan, error) {
	p := &plan{opts: opts, info: info, in: in}
	for _, k := range opts.Kinds {
		o, ok := p.outputFor(k)
		if !ok {
			opts.Log.Warn("chunker: input lacks the stream this chunk kind is made from; no chunks of this kind",
				"kind", string(k), "video", info.Video != nil, "audio", info.Audio != nil)
			continue
		}
		p.outputs = append(p.outputs, o)
	}
	if len(p.outputs) == 0 {
		return nil, fmt.Errorf("chunker: %w (asked for %v; video: %t, audio: %t)",
			ErrNoStreams, opts.Kinds, info.Video != nil, info.Audio != nil)
	}
	return p, nil
}

// mustCut reports whether any media at all yields a chunk: true unless
// the only output is frames taken on scene changes alone.
func (p *plan) mustCut() bool {
	for _, o := range p.outputs {
		if o.kind != KindFrame || p.opts.FrameRate > 0 {
			return true
		}
	}
	return false
}

func (p *plan) outputFor(k Kind) (output, bool) {
	switch k {
	case KindVideo:
		return output{kind: k, ext: "ts", format: "mpegts", mimeType: "video/mp2t"},
			p.info.Video != nil || p.info.Audio != nil
	case KindAudio:
		if p.info.Audio == nil {
			return output{}, false
		}
		if p.opts.AudioFormat == AudioSource {
			format, ext, mime := sourceAudio(p.info.Audio.CodecName)
			return output{kind: k, ext: ext, format: format, mimeType: mime}, true
		}
		return output{kind: k, ext: "wav", format: "wav", mimeType: "audio/wav"}, true
	case KindFrame:
		return output{kind: k, ext: "jpg", format: "mjpeg", mimeType: "image/jpeg", meta: true},
			p.info.Video != nil
	}
	return output{}, false
}

// sourceAudio is the container, file extension and MIME type that carry
// an audio codec as it is.
func sourceAudio(codec string) (format, ext, mime string) {
	switch {
	case codec == "aac":
		return "adts", "aac", "audio/aac"
	case codec == "mp3":
		return "mp3", "mp3", "audio/mpeg"
	case codec == "opus":
		return "ogg", "opus", "audio/ogg"
	case codec == "vorbis":
		return "ogg", "ogg", "audio/ogg"
	case codec == "flac":
		return "flac", "flac", "audio/flac"
	case codec == "ac3":
		return "ac3", "ac3", "audio/ac3"
	case codec == "eac3":
		return "eac3", "eac3", "audio/eac3"
	case strings.HasPrefix(codec, "pcm_"):
		return "wav", "wav", "audio/wav"
	}
	return "matroska", "mka", "audio/x-matroska"
}

// tsAudioCodecs can be copied into MPEG-TS as they are; others are
// encoded to AAC in video chunks.
var tsAudioCodecs = []string{"aac", "mp3", "mp2", "ac3", "eac3", "opus"}

// args builds the ffmpeg command line. Pipes are numbered from fd 3 in
// output order: each output's segment list, then for frames the
// metadata pipe. Times are kept on the input's clock (-copyts) and every
// output is shifted by the input's first timestamp, so all kinds share
// one timeline whatever streams each output reads.
func (p *plan) args(dir string) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-copyts"}
	args = append(args, media.InputArgs(p.in.protocols, p.info.Format)...)
	args = append(args, probeWindowArgs(p.opts.ProbeWindow)...)
	args = append(args, "-i", p.in.url)
	fd := 3
	for _, o := range p.outputs {
		listFD := fd
		fd++
		var metaFD int
		if o.meta {
			metaFD = fd
			fd++
		}
		args = append(args, p.streamArgs(o, metaFD)...)
		segTime := strconv.FormatFloat(p.opts.Duration.Seconds(), 'f', -1, 64)
		if o.kind == KindFrame {
			segTime = "0.000001" // every frame its own file
		}
		args = append(args,
			"-output_ts_offset", formatSeconds(-p.info.StartTime),
			// B-frames put the first decoding times before the first
			// timestamp; shifting them (the default) would move every
			// time in the segment list.
			"-avoid_negative_ts", "disabled",
			"-max_muxing_queue_size", "4096",
			"-f", "segment", "-segment_format", o.format, "-segment_time", segTime,
			"-segment_list", "pipe:"+strconv.Itoa(listFD), "-segment_list_type", "csv",
			dir+"/"+string(o.kind)+"/%06d."+o.ext)
	}
	return args
}

func (p *plan) streamArgs(o output, metaFD int) []string {
	switch o.kind {
	case KindVideo:
		var a []string
		if p.info.Video != nil {
			a = append(a, "-map", "0:V:0", "-c:v", "copy")
		}
		if p.info.Audio != nil {
			a = append(a, "-map", "0:a:0")
			if slices.Contains(tsAudioCodecs, p.info.Audio.CodecName) {
				a = append(a, "-c:a", "copy")
			} else {
				a = append(a, "-c:a", "aac", "-b:a", "128k")
			}
		}
		return a
	case KindAudio:
		if p.opts.AudioFormat == AudioSource {
			return []string{"-map", "0:a:0", "-c:a", "copy"}
		}
		return []string{"-map", "0:a:0", "-c:a", "pcm_s16le", "-ar", "16000", "-ac", "1"}
	default:
		return []string{"-map", "0:V:0", "-vf", p.frameFilter(metaFD),
			"-fps_mode", "passthrough", "-enc_time_base", "-1",
			"-c:v", "mjpeg", "-q:v", "3"}
	}
}

// frameFilter selects frames, scales them and prints each one's
// timestamp and scene score on the metadata pipe.
func (p *plan) frameFilter(metaFD int) string {
	var terms []string
	if r := p.opts.FrameRate; r > 0 {
		// The first frame, then the first of every 1/r interval of the
		// input's timeline (t is on the input's clock, -copyts).
		rel := func(v string) string {
			return "floor((" + v + "-(" + formatSeconds(p.info.StartTime) + "))*" + formatFloat(r) + ")"
		}
		terms = append(terms, "isnan(prev_t)", "gte("+rel("t")+"-"+rel("prev_t")+",1)")
	}
	if th := p.opts.SceneThreshold; th > 0 {
		terms = append(terms, "gt(scene,"+formatFloat(th)+")")
	}
	filters := []string{"select='" + strings.Join(terms, "+") + "'"}
	if w := p.opts.MaxFrameWidth; w > 0 {
		filters = append(filters, "scale=w='min(iw,"+strconv.Itoa(w)+")':h=-2")
	}
	filters = append(filters,
		"metadata=mode=add:key="+frameMarker+":value=1",
		"metadata='mode=print:direct=1:file=pipe\\:"+strconv.Itoa(metaFD)+"'")
	return strings.Join(filters, ",")
}

func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', 6, 64) }

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
