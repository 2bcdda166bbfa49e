package vod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// run is one attempt at one job.
type run struct {
	w       *Worker
	id      string
	job     protocol.VODJob
	started time.Time
	dir     string
	src     string
	info    *media.Info
	rs      []*rendition
	pub     *publisher
}

// process runs one attempt of a job whose stream is not terminal. ctx is
// the job's context (Cancel cancels it with errCancelled); parent is the
// handler's, whose end means the worker is stopping.
func (w *Worker) process(ctx, parent context.Context, job protocol.VODJob, st metastore.Stream) error {
	r := &run{w: w, id: st.ID, job: job, started: time.Now()}
	log := w.log.With("stream", st.ID)
	err := r.execute(ctx, st)
	switch {
	case err == nil:
		w.m.jobs.WithLabelValues(outcomeReady).Inc()
		w.m.jobSeconds.Observe(time.Since(r.started).Seconds())
		log.Info("vod ready", "renditions", r.names(), "took", time.Since(r.started).Round(time.Millisecond))
		return nil
	case errors.Is(context.Cause(ctx), errCancelled) || errors.Is(err, errCancelled):
		w.m.jobs.WithLabelValues(outcomeCancelled).Inc()
		log.Info("vod job cancelled; deleting its partial output")
		w.cleanupDetached(parent, st)
		return nil
	case errors.Is(context.Cause(ctx), metastore.ErrLeaseLost) && parent.Err() == nil:
		// Another worker took the title over (this one could not renew
		// its lease in time): stop without touching what it writes.
		w.m.jobs.WithLabelValues(outcomeStopped).Inc()
		log.Warn("vod job's lease was lost; another worker carries on", "err", context.Cause(ctx))
		return fmt.Errorf("vod %s: %w", st.ID, context.Cause(ctx))
	case errors.Is(err, errAlreadyReady):
		w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
		log.Warn("vod became ready elsewhere while this attempt ran; leaving it alone")
		return nil
	case parent.Err() != nil:
		// The worker is stopping (or was told to by the bus): leave
		// everything as a crash would; the redelivered job starts over.
		w.m.jobs.WithLabelValues(outcomeStopped).Inc()
		log.Info("vod job interrupted; it will be redelivered", "err", err)
		return parent.Err()
	}
	if objstore.NoSpace(err) || metastore.Full(err) {
		// Not the title's fault and not a crash: the attempt does not
		// count, and the job is tried again (with a growing pause) until
		// space returns.
		w.m.jobs.WithLabelValues(outcomeNoSpace).Inc()
		log.Warn("vod job ran out of disk space; it will be retried once space is freed", "err", err)
		w.noteNoSpace(parent, st.ID, err)
		return fmt.Errorf("vod %s: %w", st.ID, err)
	}
	var f *failure
	if errors.As(err, &f) {
		w.m.jobs.WithLabelValues(outcomeFailed).Inc()
		log.Warn("vod failed", "err", f.msg)
		w.cleanupDetached(parent, st)
		w.failDetached(parent, st.ID, f.msg)
		return nil
	}
	w.m.jobs.WithLabelValues(outcomeRetry).Inc()
	log.Error("vod job hit an infrastructure error; it will be retried", "err", err)
	return fmt.Errorf("vod %s: %w", st.ID, err)
}

// errAlreadyReady means another attempt finished the title first.
var errAlreadyReady = errors.New("already ready")

func (r *run) execute(ctx context.Context, st metastore.Stream) error {
	w := r.w
	attempt := detailInt(st.Details, "attempts") + 1
	if attempt > w.cfg.MaxAttempts {
		return failf("gave up after %d attempts: the worker stopped or crashed during each one", w.cfg.MaxAttempts)
	}
	// Whatever an earlier attempt left behind goes first, so no playlist
	// can list a segment of a half-finished encode.
	if err := w.cleanup(ctx, st); err != nil {
		return err
	}

	to := metastore.StatusProcessing
	if st.Status.Rank() > to.Rank() {
		to = st.Status // a retried job stays in transcoding
	}
	st, err := r.transition(ctx, to, func(s *metastore.Stream) {
		s.Progress = 0
		s.Details = metastore.MergeDetails(s.Details, map[string]any{"attempts": attempt})
	})
	if err != nil {
		return err
	}

	// Each attempt works in a directory of its own: an ffmpeg left over
	// from a crashed attempt (where the kernel could not kill it with its
	// parent) finds its directory gone instead of writing into this one.
	streamDir := filepath.Join(w.cfg.WorkDir, safeDirName(st.ID))
	if err := os.RemoveAll(streamDir); err != nil {
		return fmt.Errorf("clearing work dir: %w", err)
	}
	r.dir = filepath.Join(streamDir, fmt.Sprintf("attempt-%d", attempt))
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	defer os.RemoveAll(streamDir)

	if r.src, err = w.fetchSource(ctx, r.job, r.dir); err != nil {
		return err
	}
	if r.info, err = w.probeSource(ctx, r.src); err != nil {
		return err
	}
	if r.rs, err = planLadder(w.cfg.Ladder, r.info, w.cfg.AudioBitrate); err != nil {
		if errors.Is(err, media.ErrNoMedia) {
			return failf("the file is not audio or video: no video or audio stream found")
		}
		return failf("%v", err)
	}
	for _, rd := range r.rs {
		rd.Dir = filepath.Join(r.dir, rd.Name)
		if err := os.MkdirAll(rd.Dir, 0o755); err != nil {
			return err
		}
	}

	if _, err = r.transition(ctx, metastore.StatusTranscoding, func(s *metastore.Stream) {
		s.Progress = 0
		s.Details = metastore.MergeDetails(s.Details, map[string]any{
			"probe":              probeSummary(r.info),
			"ladder":             r.names(),
			"format":             w.cfg.Format,
			"segment_duration_s": w.cfg.SegmentDuration.Seconds(),
		})
	}); err != nil {
		return err
	}

	r.pub = newPublisher(w, st.ID, r.rs, r.info, r.started)
	thumb := r.startThumbnail(ctx)
	if err := r.transcode(ctx); err != nil {
		thumb.wait()
		return r.blameFullDisk(err)
	}
	if err := r.checkComplete(); err != nil {
		thumb.wait()
		return r.blameFullDisk(err)
	}
	if err := r.pub.finish(ctx); err != nil {
		thumb.wait()
		return err
	}
	thumbKey := thumb.upload(ctx)

	var segments int64
	outputs := map[string]any{}
	for _, p := range r.pub.rs {
		segments += int64(len(p.segs))
		outputs[p.Name] = p.summary()
	}
	ready, err := r.transition(ctx, metastore.StatusReady, func(s *metastore.Stream) {
		s.Progress = 100
		s.Error = ""
		s.Details = metastore.MergeDetails(s.Details, map[string]any{"waiting_for_space": nil})
		s.VariantsGenerated = r.names()
		s.ManifestPath = st.ID + "/master.m3u8"
		s.SegmentCount = segments
		uploaded := s.CreatedAt
		if t, ok := s.StageTimes[metastore.StatusUploaded]; ok {
			uploaded = t
		}
		s.ProcessingLatencyMS = time.Since(uploaded).Milliseconds()
		d := map[string]any{
			"transcode_ms":      time.Since(r.started).Milliseconds(),
			"first_playable_ms": r.pub.firstPlayable.Milliseconds(),
			"outputs":           outputs,
		}
		if thumbKey != "" {
			d["thumbnail"] = thumbKey
		}
		s.Details = metastore.MergeDetails(s.Details, d)
	})
	if err == nil {
		w.m.observeStages(ready.StageTimes)
	}
	return err
}

// blameFullDisk turns a transcode failure into a disk-full error when the
// work directory's disk is (nearly) full: ffmpeg's HLS output meets ENOSPC
// silently, exiting 0 with segments or lists missing, which would
// otherwise read as a broken title.
func (r *run) blameFullDisk(err error) error {
	if objstore.NoSpace(err) {
		return err
	}
	var f *failure
	if !errors.As(err, &f) {
		return err
	}
	if free, ok := objstore.FreeBytes(r.dir); ok && free < objstore.MinFreeBytes {
		return fmt.Errorf("%v (the work directory has %d bytes free): %w", f, free, syscall.ENOSPC)
	}
	return err
}

// transition moves the stream on, translating a refused transition (the
// stream was cancelled or finished meanwhile) into errCancelled or
// errAlreadyReady.
func (r *run) transition(ctx context.Context, to metastore.Status, mutate func(*metastore.Stream)) (metastore.Stream, error) {
	st, err := r.w.cfg.Meta.TransitionStatus(ctx, r.id, to, mutate)
	if err == nil {
		return st, nil
	}
	if errors.Is(err, metastore.ErrConflict) {
		cur, gerr := r.w.cfg.Meta.GetStream(ctx, r.id)
		if gerr == nil && cur.Status == metastore.StatusReady {
			return cur, errAlreadyReady
		}
		if gerr == nil && cur.Status == metastore.StatusFailed {
			return cur, errCancelled
		}
	}
	return st, fmt.Errorf("moving stream %s to %s: %w", r.id, to, err)
}

// checkComplete fails a title whose decodable media ends well before the
// duration its container declares: the file was cut off.
func (r *run) checkComplete() error {
	var decoded time.Duration
	for _, p := range r.pub.rs {
		decoded = max(decoded, p.total())
	}
	if decoded <= 0 {
		return failf("the transcode produced no media: nothing in the file could be decoded")
	}
	declared := r.info.Duration
	if declared <= 0 {
		return nil
	}
	slack := max(time.Second, declared/50)
	if decoded < declared-slack {
		pct := int(math.Floor(100 * decoded.Seconds() / declared.Seconds()))
		return failf("the file is truncated at %d %%: only %.1f s of its declared %.1f s could be decoded", pct, decoded.Seconds(), declared.Seconds())
	}
	return nil
}

func (r *run) names() []string {
	names := make([]string, len(r.rs))
	for i, rd := range r.rs {
		names[i] = rd.Name
	}
	return names
}

// cleanup deletes everything earlier attempts wrote for the stream: every
// object under its prefix except the uploaded source, and the segment rows
// of every rendition name it may have used. The master playlist goes first
// so no player starts on a title that is being torn down.
func (w *Worker) cleanup(ctx context.Context, st metastore.Stream) error {
	prefix := st.ID + "/"
	objs, err := w.cfg.Objects.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing objects of %s: %w", st.ID, err)
	}
	names := map[string]bool{audioRendition: true}
	for _, rg := range w.cfg.Ladder {
		names[rg.Name] = true
	}
	var ladder []string
	if raw := metastore.DetailRaw(st.Details, "ladder"); raw != nil && json.Unmarshal(raw, &ladder) == nil {
		for _, n := range ladder {
			names[n] = true
		}
	}
	var keys []string
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		if o.Key == st.SourceKey || strings.HasPrefix(rel, "source/") {
			continue
		}
		if dir, _, ok := strings.Cut(rel, "/"); ok {
			names[dir] = true
		}
		if rel == "master.m3u8" {
			keys = append([]string{o.Key}, keys...)
		} else {
			keys = append(keys, o.Key)
		}
	}
	for _, k := range keys {
		if err := w.cfg.Objects.Delete(ctx, k); err != nil {
			return fmt.Errorf("deleting %s: %w", k, err)
		}
	}
	for n := range names {
		if err := w.cfg.Meta.DeleteSegments(ctx, st.ID, n, 0); err != nil {
			return fmt.Errorf("deleting segment rows of %s/%s: %w", st.ID, n, err)
		}
	}
	return nil
}

// cleanupDetached runs cleanup after the job's context has ended.
func (w *Worker) cleanupDetached(parent context.Context, st metastore.Stream) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), time.Minute)
	defer cancel()
	if err := w.cleanup(ctx, st); err != nil {
		w.log.Error("deleting partial vod output", "stream", st.ID, "err", err)
	}
}

// noteNoSpace records in the title's details that its job waits for disk
// space (details.waiting_for_space: the error and how many attempts ran
// out of it), and takes back the attempt, which MaxAttempts must not count:
// it guards against jobs that crash their worker, and this one did not.
// When the metadata store's own disk is full the note cannot be written
// either; neither could the attempt's count.
func (w *Worker) noteNoSpace(parent context.Context, id string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer cancel()
	cur, err := w.cfg.Meta.GetStream(ctx, id)
	if err != nil || cur.Status.Terminal() {
		return
	}
	var waiting struct {
		Attempts int `json:"attempts"`
	}
	if raw := metastore.DetailRaw(cur.Details, "waiting_for_space"); raw != nil {
		_ = json.Unmarshal(raw, &waiting)
	}
	_, err = w.cfg.Meta.TransitionStatus(ctx, id, cur.Status, func(s *metastore.Stream) {
		s.Details = metastore.MergeDetails(s.Details, map[string]any{
			"attempts": max(detailInt(s.Details, "attempts")-1, 0),
			"waiting_for_space": map[string]any{
				"error":    cause.Error(),
				"attempts": waiting.Attempts + 1,
				"since":    time.Now().UTC(),
			},
		})
	})
	if err != nil && !errors.Is(err, metastore.ErrConflict) {
		w.log.Warn("noting that a vod job waits for disk space", "stream", id, "err", err)
	}
}

// failDetached moves the stream to failed with msg.
func (w *Worker) failDetached(parent context.Context, id, msg string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 30*time.Second)
	defer cancel()
	_, err := w.cfg.Meta.TransitionStatus(ctx, id, metastore.StatusFailed, func(s *metastore.Stream) {
		if s.Error == "" { // already failed (cancelled elsewhere): keep the first reason
			s.Error = msg
		}
	})
	if err != nil && !errors.Is(err, metastore.ErrConflict) {
		w.log.Error("marking vod failed", "stream", id, "err", err)
	}
}

// safeDirName keeps a stream id usable as one path element.
func safeDirName(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, id)
}

// probeSummary is the part of the probe kept in the stream's details.
func probeSummary(info *media.Info) map[string]any {
	out := map[string]any{
		"format":     info.FormatName,
		"duration_s": round3(info.Duration.Seconds()),
		"size":       info.Size,
		"bit_rate":   info.BitRate,
	}
	if v, ok := info.Video(); ok {
		out["video"] = map[string]any{"codec": v.CodecName, "profile": v.Profile, "width": v.Width, "height": v.Height, "frame_rate": round3(v.FrameRate), "pix_fmt": v.PixFmt}
	}
	if a, ok := info.Audio(); ok {
		out["audio"] = map[string]any{"codec": a.CodecName, "sample_rate": a.SampleRate, "channels": a.Channels}
	}
	return out
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// detailInt reads an integer member of a stream's details (0 when absent).
func detailInt(raw json.RawMessage, key string) int {
	var n int
	if v := metastore.DetailRaw(raw, key); v != nil {
		_ = json.Unmarshal(v, &n)
	}
	return n
}
