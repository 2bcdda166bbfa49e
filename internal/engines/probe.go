package engines

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/protocol"
)

// probeSpec is the probe engine's spec: the smallest real engine, which
// proves the path from the registry to a job end to end.
var probeSpec = engine.Spec{
	Name:    "probe",
	Title:   "Media probe",
	Mode:    engine.ModeChunk,
	Summary: "Reports each chunk's container, duration and codecs as tags",
	Description: "Runs ffprobe on the chunk (reading only the chunk, with weir's allow-list of " +
		"demuxers) and answers one series covering the chunk, tagged with what it found: " +
		"format, duration_ms, and for the first video and audio streams their codec, " +
		"size, frame rate, sample rate and channels. A chunk ffprobe cannot read is an ERROR.",
	Inputs:  []string{"video/*", "audio/*"},
	Outputs: []string{"tag"},
	Options: []engine.Option{{
		Name: "include", Type: engine.TypeList,
		Default: []string{"format", "duration", "video", "audio"},
		Enum:    []string{"format", "duration", "video", "audio"},
		Doc:     "Which tags to report: the container format, the duration, the video stream's, the audio stream's",
	}},
	Examples: []engine.Example{{Title: "Codecs only", Options: map[string]any{"include": []any{"video", "audio"}}}},
	Requires: []engine.Requirement{{Command: "ffprobe", DebianPackage: "ffmpeg", Why: "to read the chunk's duration and codecs"}},
}

func init() {
	engine.Register(probeSpec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return probe{}, nil }))
}

// probe is the probe engine. It keeps no state.
type probe struct{}

// Process implements engine.ChunkEngine.
func (probe) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	info, err := probeChunk(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", c.Meta.ChunkIndex, err)
	}
	include := opts.List("include")
	var tags []protocol.Tag
	add := func(key string, v any) { tags = append(tags, protocol.Tag{Key: key, Value: fmt.Sprint(v)}) }
	if slices.Contains(include, "format") {
		add("format", info.FFmpegFormat())
	}
	if slices.Contains(include, "duration") && info.Duration > 0 {
		add("duration_ms", info.Duration.Milliseconds())
	}
	if v, ok := info.Video(); ok && slices.Contains(include, "video") {
		add("video_codec", v.CodecName)
		add("width", v.Width)
		add("height", v.Height)
		if v.FrameRate > 0 {
			add("frame_rate", strconv.FormatFloat(v.FrameRate, 'f', -1, 64))
		}
	}
	if a, ok := info.Audio(); ok && slices.Contains(include, "audio") {
		add("audio_codec", a.CodecName)
		add("sample_rate", a.SampleRate)
		add("channels", a.Channels)
	}
	stop := c.DurationMs()
	if stop <= 0 {
		stop = info.Duration.Milliseconds()
	}
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: stop, Tags: tags}}}, nil
}

// probeChunk runs ffprobe on the chunk's file, or on its inline content.
func probeChunk(ctx context.Context, c *engine.Chunk) (*media.Info, error) {
	if c.Path != "" {
		return media.Probe(ctx, c.Path)
	}
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return media.ProbeBytes(ctx, data)
}
