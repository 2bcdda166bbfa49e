package engines

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// fingerprintSpec is the fingerprint engine's spec.
var fingerprintSpec = engine.Spec{
	Name:    "fingerprint",
	Title:   "Audio fingerprint",
	Mode:    engine.ModeStream,
	Summary: "Finds the clips of the fingerprint library (jingles, ads, music) in the audio, each occurrence with its times and a score",
	Description: "Decodes the first audio stream with ffmpeg and fingerprints it with Chromaprint (fpcalc) " +
		"a second at a time. Every reference of the library (POST /fingerprints) is slid over the " +
		"stream's fingerprint item by item (8 a second); where the bit error rate of the aligned " +
		"items stays under threshold, the best-aligned offset is one occurrence, a series with an " +
		"object of type fingerprint naming the reference, its times and a score (1 - bit error " +
		"rate). An occurrence is emitted once the stream has run a reference's length past its best " +
		"alignment (a repetitive reference also scores well shifted by its period, and the best " +
		"alignment wins) and no other reference could still match overlapping it. The library is read when the run starts and again every " +
		"refresh. With no references the engine reports nothing. Input without audio is an error.",
	Inputs:  []string{"audio/*", "video/*"},
	Outputs: []string{"object"},
	Options: []engine.Option{
		{Name: "threshold", Type: engine.TypeFloat, Default: 0.3, Min: 0.05, Max: 0.5,
			Doc: "Highest bit error rate (0..1) between a reference and the audio that counts as an occurrence; unrelated audio scores about 0.5"},
		{Name: "references", Type: engine.TypeList, Default: []string{},
			Doc: "Only these references, by id or name; empty means the whole library"},
		{Name: "refresh", Type: engine.TypeDuration, Default: "1m", Min: "1s", Max: "24h",
			Doc: "How often a running job reads the library again, picking up references added or removed"},
	},
	Examples: []engine.Example{
		{Title: "Every reference of the library", Options: map[string]any{}},
		{Title: "One jingle, stricter", Options: map[string]any{"references": []any{"station-jingle"}, "threshold": 0.25}},
	},
	Requires: []engine.Requirement{
		{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the audio"},
		{Command: "fpcalc", DebianPackage: "libchromaprint-tools", Why: "to compute Chromaprint fingerprints"},
	},
}

func init() {
	engine.Register(fingerprintSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return fingerprintEngine{}, nil }))
}

// FingerprintLibrary returns the references the fingerprint engine looks
// for. The server sets one reading the metadata store.
type FingerprintLibrary func(ctx context.Context) ([]FingerprintReference, error)

var fpLibrary atomic.Pointer[FingerprintLibrary]

// SetFingerprintLibrary sets where the fingerprint engine gets its
// references; nil unsets it (the engine then finds nothing).
func SetFingerprintLibrary(lib FingerprintLibrary) {
	if lib == nil {
		fpLibrary.Store(nil)
		return
	}
	fpLibrary.Store(&lib)
}

// FingerprintLibraryOf is the library kept in a metadata store (the
// fingerprints table, managed over /fingerprints): what the server hands
// SetFingerprintLibrary.
func FingerprintLibraryOf(meta metastore.Store) FingerprintLibrary {
	return func(ctx context.Context) ([]FingerprintReference, error) {
		list, err := meta.ListFingerprints(ctx)
		if err != nil {
			return nil, err
		}
		refs := make([]FingerprintReference, len(list))
		for i, f := range list {
			refs[i] = FingerprintReference{ID: f.ID, Name: f.Name, DurationMs: f.DurationMs, Items: f.Items}
		}
		return refs, nil
	}
}

// Limits on a reference clip.
const (
	// MaxFingerprintClip is the longest clip FingerprintClip takes.
	MaxFingerprintClip = 5 * time.Minute
	// minFingerprintItems is the shortest fingerprint a reference may
	// have: about 2 s of distinct items, from a clip of about 5 s.
	minFingerprintItems = 16
)

// FingerprintClip fingerprints a reference clip read from r (any container
// ffmpeg's allow-list reads; format names the demuxer, "" probes) as the
// engine fingerprints streams. A clip ffmpeg cannot decode, without
// audio, shorter than about 5 s or longer than maxDuration fails with an
// error wrapping ErrNotAudio that says which.
func FingerprintClip(ctx context.Context, r io.Reader, format string, maxDuration time.Duration) (items []uint32, durationMs int64, err error) {
	run := &fpRun{body: r, format: format, maxSamples: int64(maxDuration.Seconds() * fpSampleRate)}
	err = run.run(ctx, func(l fpcalcLine) error {
		items = append(items, l.Fingerprint...)
		return nil
	})
	switch {
	case errors.Is(err, errTooLong):
		return nil, 0, fmt.Errorf("%w: the clip is longer than %s", ErrNotAudio, maxDuration)
	case err != nil && ctx.Err() == nil && errors.Is(err, errUndecodable):
		return nil, 0, fmt.Errorf("%w: %w", ErrNotAudio, noStreamError(err, "audio"))
	case err != nil:
		return nil, 0, err
	case len(items) < minFingerprintItems:
		return nil, 0, fmt.Errorf("%w: the clip's audio is too short to fingerprint (%.1f s; at least 5 s needed)", ErrNotAudio, float64(run.positionMs())/1000)
	}
	return items, run.positionMs(), nil
}

// fingerprintEngine is the fingerprint engine. It keeps no state between
// streams.
type fingerprintEngine struct{}

// Process implements engine.StreamEngine.
func (fingerprintEngine) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	st := &fpState{
		emit:    emit,
		match:   &fpMatcher{threshold: opts.Float("threshold"), maxRun: 16},
		only:    opts.List("references"),
		refresh: opts.Duration("refresh"),
		run:     &fpRun{body: s.Body, format: s.Init.FFmpegFormat, chunked: true},
	}
	if err := st.load(ctx, true); err != nil {
		return err
	}
	if err := st.run.run(ctx, st.line); err != nil {
		return noStreamError(err, "audio")
	}
	return st.finish()
}

// fpState follows one stream: its matcher, the matches confirmed but not
// yet emitted, when the library was last read.
type fpState struct {
	emit     *engine.Emitter
	match    *fpMatcher
	only     []string
	refresh  time.Duration
	loadedAt time.Time
	run      *fpRun
	pending  []fpMatch
}

// load reads the library. At the start of a run a failure is the run's
// error; later the previous references stay and the failure is logged.
func (st *fpState) load(ctx context.Context, first bool) error {
	st.loadedAt = time.Now()
	lib := fpLibrary.Load()
	if lib == nil {
		if first {
			slog.Info("fingerprint: no library is set: the engine will report nothing")
		}
		return nil
	}
	refs, err := (*lib)(ctx)
	if err != nil {
		if first {
			return fmt.Errorf("read the fingerprint library: %w", err)
		}
		slog.Warn("fingerprint: reading the library failed; keeping the references read before", "err", err)
		return nil
	}
	if len(st.only) > 0 {
		refs = slices.DeleteFunc(refs, func(r FingerprintReference) bool {
			return !slices.Contains(st.only, r.ID) && !slices.Contains(st.only, r.Name)
		})
	}
	if first && len(refs) == 0 {
		slog.Info("fingerprint: the library has no references to look for: the engine will report nothing until some are added")
	}
	st.match.setReferences(refs, fpItemAt(st.emit.BoundMs()))
	return nil
}

// line takes one second of the stream's fingerprint from fpcalc.
func (st *fpState) line(l fpcalcLine) error {
	st.addPending(st.match.add(l.Fingerprint))
	if err := st.flush(false); err != nil {
		return err
	}
	if time.Since(st.loadedAt) >= st.refresh {
		return st.load(context.Background(), false)
	}
	return nil
}

// addPending adds confirmed matches, keeping them in order of start.
func (st *fpState) addPending(ms []fpMatch) {
	st.pending = append(st.pending, ms...)
	slices.SortStableFunc(st.pending, func(a, b fpMatch) int { return cmp.Compare(a.startMs, b.startMs) })
}

// flush emits the pending matches no later match can overlap, each group
// of overlapping ones as one piece, and moves the bound to the earliest a
// later match could start. At the end (final) everything goes.
func (st *fpState) flush(final bool) error {
	earliest := st.match.earliestMs()
	for len(st.pending) > 0 {
		end, k := st.pending[0].stopMs, 1
		for k < len(st.pending) && st.pending[k].startMs < end {
			end = max(end, st.pending[k].stopMs)
			k++
		}
		if !final && earliest < end {
			break
		}
		if err := st.emitGroup(st.pending[:k], end); err != nil {
			return err
		}
		st.pending = st.pending[k:]
	}
	b := min(earliest, st.run.positionMs())
	if len(st.pending) > 0 {
		b = min(b, st.pending[0].startMs)
	}
	if final {
		b = st.run.positionMs()
	}
	if b > st.emit.BoundMs() {
		return st.emit.Bound(b)
	}
	return nil
}

// emitGroup emits overlapping matches as one piece ending at end.
func (st *fpState) emitGroup(group []fpMatch, end int64) error {
	doc := &protocol.Document{}
	for _, m := range group {
		doc.Series = append(doc.Series, protocol.Series{
			StartTimeMs: m.startMs, StopTimeMs: m.stopMs,
			Object: &protocol.Object{
				Type: "fingerprint", Label: m.ref.Name, EntityID: m.ref.ID, LibraryID: "fingerprints",
				Confidence: math.Round((1-m.ber)*1000) / 1000,
			},
		})
		slog.Debug("fingerprint: match", "reference", m.ref.Name, "start_ms", m.startMs, "ber", m.ber)
	}
	return st.emit.Emit(group[0].startMs, end, doc)
}

// finish reports the occurrences still being measured when the stream
// ended and moves the bound to its end.
func (st *fpState) finish() error {
	st.addPending(st.match.finish())
	return st.flush(true)
}
