package engines

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// blackSpec is the black engine's spec.
var blackSpec = engine.Spec{
	Name:    "black",
	Title:   "Black and frozen video",
	Mode:    engine.ModeStream,
	Summary: "Finds stretches of black or frozen video, each as an interval tagged kind=black or kind=frozen",
	Description: "Runs ffmpeg's blackdetect and freezedetect on the stream's first video stream. A " +
		"stretch of black frames lasting min_duration, or of unchanging frames lasting " +
		"freeze_min_duration, is one series tagged kind=black or kind=frozen. Black frames are " +
		"also frozen; a frozen stretch lying within a black one is not reported again. Intervals " +
		"that overlap travel in one piece; a piece is emitted once nothing still open or not yet " +
		"detectable can reach back into it, so results follow the media by about " +
		"freeze_min_duration. Times are accurate to a frame. Input without video is an error.",
	Inputs:  []string{"video/*"},
	Outputs: []string{"tag"},
	Options: []engine.Option{
		{Name: "detect", Type: engine.TypeList, Default: []string{"black", "frozen"}, Enum: []string{"black", "frozen"},
			Doc: "What to look for: black frames, frozen video, or both"},
		{Name: "min_duration", Type: engine.TypeDuration, Default: "500ms", Min: "10ms", Max: "1h",
			Doc: "Shortest run of black frames reported"},
		{Name: "pixel_threshold", Type: engine.TypeFloat, Default: 0.10, Min: 0.0, Max: 1.0,
			Doc: "Luma (0 to 1 of the range) at or below which a pixel is black"},
		{Name: "picture_threshold", Type: engine.TypeFloat, Default: 0.98, Min: 0.0, Max: 1.0,
			Doc: "Share of black pixels that makes a frame black"},
		{Name: "freeze_noise", Type: engine.TypeFloat, Default: -60.0, Min: -120.0, Max: 0.0,
			Doc: "Difference between frames, in dB, below which they count as the same picture"},
		{Name: "freeze_min_duration", Type: engine.TypeDuration, Default: "2s", Min: "100ms", Max: "1h",
			Doc: "Shortest frozen stretch reported"},
	},
	Examples: []engine.Example{
		{Title: "Black frames only, 100 ms or more (slates, cuts to black)", Options: map[string]any{"detect": []any{"black"}, "min_duration": "100ms"}},
		{Title: "Frozen picture of 5 s or more on a noisy source", Options: map[string]any{"detect": []any{"frozen"}, "freeze_noise": -40.0, "freeze_min_duration": "5s"}},
	},
	Requires: []engine.Requirement{{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the video and run blackdetect and freezedetect"}},
}

func init() {
	engine.Register(blackSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return blackEngine{}, nil }))
}

// blackEngine is the black engine. It keeps no state between streams.
type blackEngine struct{}

// Process implements engine.StreamEngine.
func (blackEngine) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	detect := opts.List("detect")
	if len(detect) == 0 {
		return fmt.Errorf("option detect: name black, frozen or both")
	}
	st := &blackState{emit: emit, black: -1, frozen: -1}
	var filters []string
	if slices.Contains(detect, "black") {
		st.detectBlack = true
		filters = append(filters, fmt.Sprintf("blackdetect=d=%s:pix_th=%s:pic_th=%s",
			secondsArg(opts.Duration("min_duration").Milliseconds()), floatArg(opts.Float("pixel_threshold")), floatArg(opts.Float("picture_threshold"))))
	}
	if slices.Contains(detect, "frozen") {
		st.freezeLag = opts.Duration("freeze_min_duration").Milliseconds() + 100
		filters = append(filters, fmt.Sprintf("freezedetect=n=%sdB:d=%s",
			floatArg(opts.Float("freeze_noise")), secondsArg(opts.Duration("freeze_min_duration").Milliseconds())))
	}
	// metadata prints lavfi.black_start on a run's first black frame, so an
	// open run holds the bound back before blackdetect logs it.
	filters = append(filters, "metadata=mode=print")
	args := append([]string{"-map", "0:v:0", "-an", "-sn", "-dn", "-vf", strings.Join(filters, ",")}, progressArgs...)
	args = append(args, "-f", "null", "-")
	if err := ffmpegStream(ctx, s, args, st.line); err != nil {
		return noStreamError(err, "video")
	}
	return st.finish()
}

// floatArg writes a number for a filter argument.
func floatArg(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// blackState follows blackdetect's and freezedetect's logs through one
// stream, holding found intervals until no other can overlap them.
type blackState struct {
	emit        *engine.Emitter
	detectBlack bool
	freezeLag   int64 // how far back an unreported freeze may start; 0 when not detecting
	black       int64 // start of the black run under way, -1 when none
	frozen      int64 // start of the reported freeze under way, -1 when none
	now         int64
	found       []blackInterval // closed, not yet emitted, by start
}

// blackInterval is one found stretch.
type blackInterval struct {
	kind       string // "black" or "frozen"
	start, end int64
}

// line reads one line of ffmpeg's log.
func (st *blackState) line(line string) error {
	if ms, ok := outTimeMs(line); ok {
		st.now = max(st.now, ms)
		return st.release(false)
	}
	name, msg, ok := filterLine(line)
	if !ok {
		return nil
	}
	switch {
	case name == "blackdetect" && strings.HasPrefix(msg, "black_start:"):
		st.blackLog(msg)
	case name == "freezedetect":
		st.freezeLog(msg)
	case strings.Contains(name, "metadata"):
		st.metadataLog(msg)
	default:
		return nil
	}
	return st.release(false)
}

// blackLog reads "black_start:3 black_end:5 black_duration:2".
func (st *blackState) blackLog(msg string) {
	var start, end int64 = -1, -1
	for _, f := range strings.Fields(msg) {
		k, v, _ := strings.Cut(f, ":")
		if ms, ok := secondsMs(v); ok {
			switch k {
			case "black_start":
				start = ms
			case "black_end":
				end = ms
			}
		}
	}
	st.black = -1
	if start >= 0 && end >= start {
		st.add("black", start, end)
	}
}

// freezeLog reads "lavfi.freezedetect.freeze_start: 5.1" and
// "lavfi.freezedetect.freeze_end: 7".
func (st *blackState) freezeLog(msg string) {
	if v, ok := strings.CutPrefix(msg, "lavfi.freezedetect.freeze_start: "); ok {
		if ms, ok := secondsMs(v); ok {
			st.frozen = ms
		}
	} else if v, ok := strings.CutPrefix(msg, "lavfi.freezedetect.freeze_end: "); ok {
		if ms, ok := secondsMs(v); ok && st.frozen >= 0 {
			st.add("frozen", st.frozen, ms)
		}
		st.frozen = -1
	}
}

// metadataLog follows black runs as they start and end, whatever their
// length.
func (st *blackState) metadataLog(msg string) {
	if v, ok := strings.CutPrefix(msg, "lavfi.black_start="); ok {
		if ms, ok := secondsMs(v); ok {
			st.black = ms
		}
	} else if strings.HasPrefix(msg, "lavfi.black_end=") {
		st.black = -1
	}
}

// add records a closed interval.
func (st *blackState) add(kind string, start, end int64) {
	start = max(start, st.emit.BoundMs())
	st.found = append(st.found, blackInterval{kind, start, max(end, start)})
	slices.SortStableFunc(st.found, func(a, b blackInterval) int { return int(a.start - b.start) })
}

// horizon is the earliest time an interval not yet found could start:
// the start of a run under way, or, for freezes (reported only once they
// have lasted freeze_min_duration), that long before now.
func (st *blackState) horizon() int64 {
	h := st.now
	if st.black >= 0 {
		h = min(h, st.black)
	}
	if st.frozen >= 0 {
		h = min(h, st.frozen)
	} else if st.freezeLag > 0 {
		h = min(h, st.now-st.freezeLag)
	}
	return h
}

// release emits every group of overlapping intervals that ends before
// the horizon (all of them at the end), then moves the bound up to the
// horizon or the first interval still held.
func (st *blackState) release(atEnd bool) error {
	h := st.horizon()
	if atEnd {
		h = math.MaxInt64
	}
	for len(st.found) > 0 {
		n, end := 1, st.found[0].end
		for n < len(st.found) && st.found[n].start < end {
			end = max(end, st.found[n].end)
			n++
		}
		if end > h {
			break
		}
		if err := st.emitGroup(st.found[:n], end); err != nil {
			return err
		}
		st.found = st.found[n:]
	}
	b := min(h, st.now)
	if len(st.found) > 0 {
		b = min(b, st.found[0].start)
	}
	if b > st.emit.BoundMs() {
		return st.emit.Bound(b)
	}
	return nil
}

// emitGroup emits overlapping intervals as one piece, leaving out a
// freeze that lies within a black run.
func (st *blackState) emitGroup(group []blackInterval, end int64) error {
	start := group[0].start
	doc := &protocol.Document{}
	for _, iv := range group {
		if iv.kind == "frozen" && withinBlack(iv, group) {
			continue
		}
		doc.Series = append(doc.Series, protocol.Series{
			StartTimeMs: iv.start, StopTimeMs: iv.end,
			Tags: []protocol.Tag{{Key: "kind", Value: iv.kind}, {Key: "duration_ms", Value: strconv.FormatInt(iv.end-iv.start, 10)}},
		})
	}
	return st.emit.Emit(start, end, doc)
}

// withinBlack reports whether a freeze lies within one of the black runs
// of its group, give or take 100 ms (a few frames).
func withinBlack(f blackInterval, group []blackInterval) bool {
	for _, b := range group {
		if b.kind == "black" && f.start >= b.start-100 && f.end <= b.end+100 {
			return true
		}
	}
	return false
}

// finish closes a freeze still under way at the end of the input, emits
// everything held and moves the bound to the end.
func (st *blackState) finish() error {
	if st.frozen >= 0 {
		st.add("frozen", st.frozen, st.now)
		st.frozen = -1
	}
	st.black = -1
	if err := st.release(true); err != nil {
		return err
	}
	if st.now > st.emit.BoundMs() {
		return st.emit.Bound(st.now)
	}
	return nil
}
