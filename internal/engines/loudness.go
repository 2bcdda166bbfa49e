package engines

import (
	"context"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// loudnessSpec is the loudness engine's spec.
var loudnessSpec = engine.Spec{
	Name:    "loudness",
	Title:   "Loudness (EBU R128)",
	Mode:    engine.ModeStream,
	Summary: "Measures EBU R128 loudness and true peak as a time series, with a summary at the end",
	Description: "Runs ffmpeg's ebur128 filter (true peak on) on the stream's first audio stream. " +
		"Every interval of media is one piece with one series tagged momentary_lufs, " +
		"momentary_max_lufs, short_term_lufs, integrated_lufs and lra_lu (integrated and range so " +
		"far), true_peak_dbtp (the interval's) and true_peak_max_dbtp (so far). When the input ends, " +
		"a last, zero-length piece at the end carries the programme's summary as document tags: " +
		"integrated loudness and its gate, loudness range with its gate and low/high levels, and true " +
		"peak. ffmpeg measures in 100 ms steps, so the interval is rounded up to a multiple of 100 ms. " +
		"Input without audio is an error.",
	Inputs:  []string{"audio/*", "video/*"},
	Outputs: []string{"tag"},
	Options: []engine.Option{
		{Name: "interval", Type: engine.TypeDuration, Default: "1s", Min: "100ms", Max: "1h",
			Doc: "Length of each piece of the time series (rounded up to a multiple of 100ms); the bound advances once per piece"},
	},
	Examples: []engine.Example{
		{Title: "A reading every 400 ms, the momentary window", Options: map[string]any{"interval": "400ms"}},
		{Title: "One reading a minute for a loudness log", Options: map[string]any{"interval": "1m"}},
	},
	Requires: []engine.Requirement{{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the audio and run ebur128"}},
}

func init() {
	engine.Register(loudnessSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return loudnessEngine{}, nil }))
}

// loudnessEngine is the loudness engine. It keeps no state between streams.
type loudnessEngine struct{}

// Process implements engine.StreamEngine.
func (loudnessEngine) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	step := opts.Duration("interval").Milliseconds()
	step = (step + 99) / 100 * 100
	args := []string{"-map", "0:a:0", "-vn", "-sn", "-dn", "-af", "ebur128=peak=true", "-f", "null", "-"}
	st := &loudnessState{emit: emit, step: step, piece: -1}
	if err := ffmpegStream(ctx, s, args, st.line); err != nil {
		return noStreamError(err, "audio")
	}
	return st.finish()
}

// ebur128Frame matches the line ebur128 logs every 100 ms:
//
//	t: 4.69998    TARGET:-23 LUFS    M: -21.1 S: -21.1     I: -21.1 LUFS       LRA:   0.0 LU  FTPK: -21.1 -21.1 dBFS  TPK: -21.1 -21.1 dBFS
//
// with one peak figure per channel.
var ebur128Frame = regexp.MustCompile(`^t:\s*(\S+)\s.*?\bM:\s*(\S+)\s+S:\s*(\S+)\s+I:\s*(\S+) LUFS\s+LRA:\s*(\S+) LU(?:\s+FTPK:\s*(.*?) dBFS\s+TPK:\s*(.*?) dBFS)?`)

// loudnessFrame is one 100 ms reading.
type loudnessFrame struct {
	tMs                     int64
	m, s, i, lra, ftpk, tpk float64
}

// parseEbur128Frame reads one frame line; ok is false for other lines.
func parseEbur128Frame(msg string) (f loudnessFrame, ok bool) {
	m := ebur128Frame.FindStringSubmatch(msg)
	if m == nil {
		return f, false
	}
	if f.tMs, ok = secondsMs(m[1]); !ok {
		return f, false
	}
	f.m, f.s, f.i, f.lra = dbValue(m[2]), dbValue(m[3]), dbValue(m[4]), dbValue(m[5])
	f.ftpk, f.tpk = maxDB(m[6]), maxDB(m[7])
	return f, true
}

// dbValue parses a level; what is not a number (nan, -inf) is -Inf: no
// signal.
func dbValue(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return math.Inf(-1)
	}
	return v
}

// maxDB is the highest of the per-channel levels in s.
func maxDB(s string) float64 {
	out := math.Inf(-1)
	for _, f := range strings.Fields(s) {
		out = max(out, dbValue(f))
	}
	return out
}

// dbText writes a level as the tags carry it: one decimal, or "-inf".
func dbText(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) || v < -200 {
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// loudnessState follows ebur128's log through one stream.
type loudnessState struct {
	emit  *engine.Emitter
	step  int64
	piece int64 // index of the piece being gathered; -1 before the first frame
	last  loudnessFrame
	mMax  float64
	pkMax float64 // the piece's true peak

	inSummary bool
	section   string
	summary   []protocol.Tag
}

// line reads one line of ffmpeg's log.
func (st *loudnessState) line(line string) error {
	if st.inSummary {
		st.summaryLine(line)
		return nil
	}
	name, msg, ok := filterLine(line)
	if !ok || !strings.Contains(name, "ebur128") {
		return nil
	}
	if strings.HasPrefix(msg, "Summary:") {
		st.inSummary = true
		return nil
	}
	f, ok := parseEbur128Frame(msg)
	if !ok {
		return nil
	}
	idx := max(f.tMs-1, 0) / st.step
	if st.piece >= 0 && idx != st.piece {
		if err := st.flush(); err != nil {
			return err
		}
	}
	if st.piece != idx {
		st.piece, st.mMax, st.pkMax = idx, math.Inf(-1), math.Inf(-1)
	}
	st.last = f
	st.mMax = max(st.mMax, f.m)
	st.pkMax = max(st.pkMax, f.ftpk)
	return nil
}

// flush emits the piece being gathered: from its interval's start to its
// last reading.
func (st *loudnessState) flush() error {
	start := max(st.piece*st.step, st.emit.BoundMs())
	end := max(st.last.tMs, start)
	f := st.last
	doc := &protocol.Document{Series: []protocol.Series{{
		StartTimeMs: start, StopTimeMs: end,
		Tags: []protocol.Tag{
			{Key: "momentary_lufs", Value: dbText(f.m)},
			{Key: "momentary_max_lufs", Value: dbText(st.mMax)},
			{Key: "short_term_lufs", Value: dbText(f.s)},
			{Key: "integrated_lufs", Value: dbText(f.i)},
			{Key: "lra_lu", Value: dbText(f.lra)},
			{Key: "true_peak_dbtp", Value: dbText(st.pkMax)},
			{Key: "true_peak_max_dbtp", Value: dbText(f.tpk)},
		},
	}}}
	st.piece = -1
	return st.emit.Emit(start, end, doc)
}

// summaryKeys names the summary's figures by section and label.
var summaryKeys = map[string]map[string]string{
	"Integrated loudness": {"I": "integrated_lufs", "Threshold": "integrated_threshold_lufs"},
	"Loudness range":      {"LRA": "lra_lu", "Threshold": "lra_threshold_lufs", "LRA low": "lra_low_lufs", "LRA high": "lra_high_lufs"},
	"True peak":           {"Peak": "true_peak_dbtp"},
}

// summaryLine reads one line of ebur128's closing summary:
//
//	Integrated loudness:
//	  I:         -23.0 LUFS
//	  Threshold: -33.0 LUFS
func (st *loudnessState) summaryLine(line string) {
	s := strings.TrimSpace(line)
	if sec, ok := strings.CutSuffix(s, ":"); ok {
		st.section = sec
		return
	}
	label, rest, ok := strings.Cut(s, ":")
	if !ok {
		return
	}
	key := summaryKeys[st.section][label]
	fields := strings.Fields(rest)
	if key == "" || len(fields) == 0 {
		return
	}
	st.summary = append(st.summary, protocol.Tag{Key: key, Value: dbText(dbValue(fields[0]))})
}

// finish emits the last piece and the summary.
func (st *loudnessState) finish() error {
	if st.piece >= 0 {
		if err := st.flush(); err != nil {
			return err
		}
	}
	if len(st.summary) == 0 {
		return nil
	}
	end := st.emit.BoundMs()
	tags := append([]protocol.Tag{{Key: "summary"}}, st.summary...)
	return st.emit.Emit(end, end, &protocol.Document{Tags: tags})
}
