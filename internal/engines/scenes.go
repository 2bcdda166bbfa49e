package engines

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// scenesSpec is the scenes engine's spec.
var scenesSpec = engine.Spec{
	Name:    "scenes",
	Title:   "Scene changes",
	Mode:    engine.ModeStream,
	Summary: "Finds scene cuts in video, each with a score and a thumbnail of the new scene",
	Description: "Runs ffmpeg's scene detection (the select filter's scene score, the same measure as " +
		"scdet's divided by 100) on every frame and reports each cut the moment it is seen: an " +
		"instant (startTimeMs = stopTimeMs = the first frame of the new scene) tagged scene=<n> with " +
		"the score, and a JPEG thumbnail of that frame stored with the job, its URL in the series' " +
		"object. The first scene, at the stream's start, is scene 0 and has a thumbnail but no score.",
	Inputs:  []string{"video/*"},
	Outputs: []string{"scene"},
	Options: []engine.Option{
		{Name: "threshold", Type: engine.TypeFloat, Default: 0.25, Min: 0.01, Max: 1,
			Doc: "Scene score (0 to 1) above which a frame starts a new scene: ffmpeg's scene score, scdet's threshold divided by 100. Lower finds softer cuts and more false ones"},
		{Name: "min_interval", Type: engine.TypeDuration, Default: "200ms", Min: "0s", Max: "1h",
			Doc: "Shortest scene: a cut less than this after the previous one (or the start) is not reported"},
		{Name: "thumbnails", Type: engine.TypeBool, Default: true,
			Doc: "Store a JPEG of each scene's first frame with the job and put its URL in the result"},
		{Name: "thumbnail_width", Type: engine.TypeInt, Default: 320, Min: 16, Max: 3840,
			Doc: "Width of the thumbnails in pixels; the height keeps the picture's aspect (rounded to even)"},
		{Name: "thumbnail_quality", Type: engine.TypeInt, Default: 75, Min: 1, Max: 100,
			Doc: "JPEG quality of the thumbnails, 1 (smallest) to 100 (best), mapped onto ffmpeg's MJPEG scale 31 to 2"},
	},
	Examples: []engine.Example{
		{Title: "Hard cuts only, small thumbnails", Options: map[string]any{"threshold": 0.4, "thumbnail_width": 160}},
		{Title: "Cuts without thumbnails, at most one every 2 s", Options: map[string]any{"thumbnails": false, "min_interval": "2s"}},
	},
	Requires: []engine.Requirement{{Command: "ffmpeg", DebianPackage: "ffmpeg", Why: "to decode the video, score frames and encode thumbnails"}},
}

func init() {
	engine.Register(scenesSpec, engine.StreamFactory(func() (engine.StreamEngine, error) { return scenes{}, nil }))
}

// scenes is the scenes engine. It keeps no state between streams.
type scenes struct{}

// sceneBoundLag is how far behind the latest tick the bound stays, so a
// cut logged a little after a later tick (the two filter branches are not
// in lockstep) still comes after the bound.
const sceneBoundLag = 1000

// sceneConfig is a run's options.
type sceneConfig struct {
	threshold   float64
	minInterval time.Duration
	thumbnails  bool
	width       int64
	qscale      int64
}

func newSceneConfig(o engine.Options) sceneConfig {
	q := o.Int("thumbnail_quality")
	return sceneConfig{threshold: o.Float("threshold"), minInterval: o.Duration("min_interval"),
		thumbnails: o.Bool("thumbnails"), width: o.Int("thumbnail_width"),
		qscale: 2 + int64(math.Round(float64(100-q)*29/99))}
}

// args are ffmpeg's filters and outputs. Two branches of one graph: "cut"
// passes the first frame and every frame starting a scene, printing its
// time and score (then scaled and encoded as JPEG on stdout); "tick"
// passes a frame a second, whose time showinfo prints.
func (c sceneConfig) args() []string {
	sel := fmt.Sprintf("select='eq(n,0)+gt(scene,%s)*gte(t-prev_selected_t,%s)'",
		strconv.FormatFloat(c.threshold, 'f', -1, 64), strconv.FormatFloat(c.minInterval.Seconds(), 'f', -1, 64))
	cut := "[s]" + sel + ",metadata@cut=print:key=lavfi.scene_score"
	if c.thumbnails {
		cut += fmt.Sprintf(",scale=%d:-2,format=yuvj420p", c.width)
	}
	graph := "[0:v]split[s][p];" + cut + "[cuts];" +
		"[p]select='isnan(prev_selected_t)+gte(t-prev_selected_t,1)',showinfo@tick[ticks]"
	args := []string{"-filter_complex", graph, "-map", "[cuts]", "-fps_mode", "passthrough"}
	if c.thumbnails {
		// A fixed quality through qmin and qmax: with -q:v, ffmpeg 5.1
		// holds the last picture back until the next one or the end,
		// which on a live stream delays a cut's thumbnail to the next cut.
		q := strconv.FormatInt(c.qscale, 10)
		args = append(args, "-c:v", "mjpeg", "-qmin", q, "-qmax", q,
			"-flush_packets", "1", "-f", "image2pipe", "pipe:1")
	} else {
		args = append(args, "-f", "null", "-")
	}
	return append(args, "-map", "[ticks]", "-fps_mode", "passthrough", "-f", "null", "-")
}

// sceneCut is a cut found in the log, waiting for its thumbnail.
type sceneCut struct {
	ms    int64
	score float64
}

// sceneRun is one stream's run: it pairs the cuts in ffmpeg's log with
// the thumbnails on its stdout, in order, and keeps the bound behind the
// oldest cut not yet emitted.
type sceneRun struct {
	ctx  context.Context
	cfg  sceneConfig
	emit *engine.Emitter
	log  sceneLog

	mu       sync.Mutex
	cond     *sync.Cond
	pending  []sceneCut // logged, not yet emitted
	logDone  bool       // ffmpeg's log ended
	lastTick int64
	next     int // the next scene's number
	noStore  bool
}

// Process implements engine.StreamEngine.
func (scenes) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	run := &sceneRun{ctx: ctx, cfg: newSceneConfig(opts), emit: emit}
	run.cond = sync.NewCond(&run.mu)
	var out func(io.Reader) error
	if run.cfg.thumbnails {
		out = run.readThumbnails
	}
	if err := ffmpegStreamOut(ctx, s, run.cfg.args(), out, run.onLine, run.endLog); err != nil {
		return err
	}
	return run.finish()
}

// onLine handles one line of ffmpeg's log.
func (r *sceneRun) onLine(line string) error {
	ev, ok, err := r.log.line(line)
	if err != nil || !ok {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ev.cut {
		r.lastTick = max(r.lastTick, ev.ms)
		return r.advance()
	}
	c := sceneCut{ms: ev.ms, score: ev.score}
	if !r.cfg.thumbnails {
		return r.emitCut(c, "")
	}
	r.pending = append(r.pending, c)
	r.cond.Broadcast()
	return nil
}

// endLog wakes a thumbnail reader waiting for a cut that will not come.
func (r *sceneRun) endLog() {
	r.mu.Lock()
	r.logDone = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// readThumbnails reads ffmpeg's JPEGs, one per cut in the order of the
// log, stores each and emits its cut.
func (r *sceneRun) readThumbnails(stdout io.Reader) error {
	br := bufio.NewReaderSize(stdout, 64<<10)
	for {
		jpg, err := readJPEG(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("thumbnail stream: %w", err)
		}
		r.mu.Lock()
		for len(r.pending) == 0 && !r.logDone {
			r.cond.Wait()
		}
		if len(r.pending) == 0 {
			r.mu.Unlock()
			return errors.New("ffmpeg wrote a thumbnail for no cut in its log")
		}
		c, n := r.pending[0], r.next
		r.mu.Unlock()
		url, err := r.store(n, jpg)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.pending = r.pending[1:]
		err = r.emitCut(c, url)
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// store puts scene n's thumbnail with the host. A host that keeps no
// artifacts gets the cuts without thumbnails (said once in the log).
func (r *sceneRun) store(n int, jpg []byte) (string, error) {
	url, err := r.emit.Artifacts().Put(r.ctx, fmt.Sprintf("scene-%06d.jpg", n), "image/jpeg", jpg)
	if errors.Is(err, engine.ErrNoArtifacts) {
		if !r.noStore {
			slog.Info("scenes: the host stores no artifacts; cuts are reported without thumbnails")
			r.noStore = true
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("scene %d thumbnail: %w", n, err)
	}
	return url, nil
}

// emitCut emits cut c, the next scene, with its thumbnail's URL (if
// any), and moves the bound. r.mu is held.
func (r *sceneRun) emitCut(c sceneCut, url string) error {
	tag := protocol.Tag{Key: "scene", Value: strconv.Itoa(r.next)}
	if r.next > 0 {
		tag.Score = math.Round(c.score*1e4) / 1e4
	}
	s := protocol.Series{StartTimeMs: c.ms, StopTimeMs: c.ms, Tags: []protocol.Tag{tag}}
	if url != "" {
		s.Object = &protocol.Object{Type: "thumbnail", URI: url}
	}
	if err := r.emit.Emit(c.ms, c.ms, &protocol.Document{Series: []protocol.Series{s}}); err != nil {
		return err
	}
	r.next++
	return r.advance()
}

// advance moves the bound to sceneBoundLag behind the latest tick, but
// not past a cut waiting for its thumbnail. r.mu is held.
func (r *sceneRun) advance() error {
	b := r.lastTick - sceneBoundLag
	if len(r.pending) > 0 {
		b = min(b, r.pending[0].ms)
	}
	if b > r.emit.BoundMs() {
		return r.emit.Bound(b)
	}
	return nil
}

// finish emits what is left once ffmpeg has ended (cuts whose thumbnail
// never came, which should not happen) and moves the bound to the last
// frame seen.
func (r *sceneRun) finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.pending {
		if err := r.emitCut(c, ""); err != nil {
			return err
		}
	}
	r.pending = nil
	if b := r.lastTick; b > r.emit.BoundMs() {
		return r.emit.Bound(b)
	}
	return nil
}
