package engines

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// silenceSpec is the silence engine's spec.
var silenceSpec = engine.Spec{
	Name:    "silence",
	Title:   "Silence",
	Mode:    engine.ModeStream,
	Summary: "Finds stretches of silence in the first audio stream, each as an interval",
	Description: "Runs ffmpeg's silencedetect on the stream's first audio stream. A stretch whose " +
		"level stays below threshold for at least min_duration is one series tagged silence, " +
		"emitted as soon as the silence ends (a silence still open when the input ends is closed " +
		"there). Times are accurate to a few ms. The bound follows the media, min_duration behind " +
		"it (a silence is only known once it has lasted that long). With report_every set, a silence " +
		"still going on is emitted as it lasts, in consecutive pieces tagged silence and open (the " +
		"last, once it ends, without open), so a reader learns of a long silence while it lasts. " +
		"Input without audio is an error.",
	Inputs:  []string{"audio/*", "video/*"},
	Outputs: []string{"tag"},
	Options: []engine.Option{
		{Name: "threshold", Type: engine.TypeFloat, Default: -50.0, Min: -120.0, Max: 0.0,
			Doc: "Level below which audio counts as silent, in dBFS (sample amplitude)"},
		{Name: "min_duration", Type: engine.TypeDuration, Default: "500ms", Min: "10ms", Max: "1h",
			Doc: "Shortest stretch reported as silence"},
		{Name: "report_every", Type: engine.TypeDuration, Default: "0s", Min: "0s", Max: "1h",
			Doc: "While a silence goes on, emit what has been found of it every report_every of media, as consecutive pieces (0: once, when it ends)"},
	},
	Examples: []engine.Example{
		{Title: "Dead air of 2 s or more on a broadcast", Options: map[string]any{"threshold": -60.0, "min_duration": "2s"}},
		{Title: "Pauses between sentences", Options: map[string]any{"threshold": -35.0, "min_duration": "200ms"}},
	},
	Requires: []engine.Requirement{{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the audio and run silencedetect"}},
}

func init() {
	engine.Register(silenceSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return silenceEngine{}, nil }))
}

// silenceEngine is the silence engine. It keeps no state between streams.
type silenceEngine struct{}

// Process implements engine.StreamEngine.
func (silenceEngine) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	minMs := opts.Duration("min_duration").Milliseconds()
	filter := fmt.Sprintf("silencedetect=noise=%sdB:duration=%s",
		strconv.FormatFloat(opts.Float("threshold"), 'f', 2, 64), secondsArg(minMs))
	args := append([]string{"-map", "0:a:0", "-vn", "-sn", "-dn", "-af", filter}, progressArgs...)
	args = append(args, "-f", "null", "-")
	st := &silenceState{emit: emit, minMs: minMs, open: -1, everyMs: opts.Duration("report_every").Milliseconds()}
	if err := ffmpegStream(ctx, s, args, st.line); err != nil {
		return noStreamError(err, "audio")
	}
	return st.finish()
}

// silenceState follows silencedetect's log through one stream.
type silenceState struct {
	emit  *engine.Emitter
	minMs int64
	open  int64 // where the silence being measured started; -1 when none
	now   int64 // how far ffmpeg has got in the media, ms
	// everyMs is report_every: how much of an open silence to gather
	// before emitting it (0: none).
	everyMs int64
}

// line reads one line of ffmpeg's log.
func (st *silenceState) line(line string) error {
	if ms, ok := outTimeMs(line); ok {
		st.now = max(st.now, ms)
		return st.advance()
	}
	name, msg, ok := filterLine(line)
	if !ok || name != "silencedetect" {
		return nil
	}
	if v, found := strings.CutPrefix(msg, "silence_start: "); found {
		if ms, ok := secondsMs(v); ok {
			st.open = max(ms, st.emit.BoundMs())
			return st.emit.Bound(st.open)
		}
		return nil
	}
	if v, found := strings.CutPrefix(msg, "silence_end: "); found {
		end, dur, _ := strings.Cut(v, "|")
		endMs, ok := secondsMs(end)
		if !ok {
			return nil
		}
		start := st.open
		if start < 0 { // no start seen: derive it from the duration
			d, _ := strings.CutPrefix(strings.TrimSpace(dur), "silence_duration:")
			dms, _ := secondsMs(d)
			start = max(endMs-dms, st.emit.BoundMs())
		}
		st.open = -1
		st.now = max(st.now, endMs)
		return st.emitSilence(start, endMs)
	}
	return nil
}

// advance moves the bound with the media while no silence is open: a
// silence is only logged once it has lasted min_duration, so one may have
// begun up to that long (plus a frame) ago.
func (st *silenceState) advance() error {
	if st.open >= 0 {
		return st.reportOpen()
	}
	if b := st.now - st.minMs - 100; b > st.emit.BoundMs() {
		return st.emit.Bound(b)
	}
	return nil
}

// openLagMs is how far behind ffmpeg's progress an open silence is
// reported: the end of the silence, when it comes, may be logged after a
// progress line past it.
const openLagMs = 250

// reportOpen emits the part of the open silence found since the last
// piece, once it is report_every long, tagged open; the bound moves to
// its end, where the next piece starts.
func (st *silenceState) reportOpen() error {
	if st.everyMs <= 0 {
		return nil
	}
	from := max(st.open, st.emit.BoundMs())
	to := st.now - openLagMs
	if to-from < st.everyMs {
		return nil
	}
	doc := &protocol.Document{Series: []protocol.Series{{
		StartTimeMs: from, StopTimeMs: to,
		Tags: []protocol.Tag{{Key: "silence"}, {Key: "open"}, {Key: "duration_ms", Value: strconv.FormatInt(to-from, 10)}},
	}}}
	return st.emit.Emit(from, to, doc)
}

// emitSilence emits one silence [start, end] ms.
func (st *silenceState) emitSilence(start, end int64) error {
	start = max(start, st.emit.BoundMs())
	end = max(end, start)
	doc := &protocol.Document{Series: []protocol.Series{{
		StartTimeMs: start, StopTimeMs: end,
		Tags: []protocol.Tag{{Key: "silence"}, {Key: "duration_ms", Value: strconv.FormatInt(end-start, 10)}},
	}}}
	return st.emit.Emit(start, end, doc)
}

// finish closes a silence still open at the end of the input and moves the
// bound to the end.
func (st *silenceState) finish() error {
	if st.open >= 0 {
		if err := st.emitSilence(st.open, st.now); err != nil {
			return err
		}
		st.open = -1
	}
	if st.now > st.emit.BoundMs() {
		return st.emit.Bound(st.now)
	}
	return nil
}
