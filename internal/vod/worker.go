// Package vod is weir's VOD pipeline: it turns an uploaded file or an
// imported URL into a multi-bitrate HLS title.
//
// A Worker consumes the jobs the API announces on protocol.TopicVODJobs
// (a protocol.VODJob per upload, keyed by stream id) and, for each, moves the stream through
// uploaded → processing → transcoding → ready, or to failed with an error a
// person can act on:
//
//   - processing: the source is copied from the object store (or fetched
//     from its URL) into a work directory and probed with ffprobe. Files
//     that are not media, empty files and MP4s cut off before their index
//     fail here.
//   - transcoding: ffmpeg encodes the ladder (Config.Ladder, only rungs at
//     or below the source's size) with H.264 and AAC into HLS segments
//     with a fixed GOP, so every rendition's segments start on aligned IDR
//     frames. Finished segments are uploaded as ffmpeg closes them, with a
//     row per segment in the metadata store. As soon as every rendition has
//     its first segment, weir writes EVENT playlists and the master
//     playlist: the title plays long before the transcode ends.
//   - ready: the EVENT playlists gain ENDLIST (nothing else changes), I-frame
//     playlists are added, and the master playlist's BANDWIDTH and
//     AVERAGE-BANDWIDTH are measured from the real segments.
//
// Jobs are handled at least once. A job redelivered after its worker died
// starts over cleanly (old segment rows and objects are deleted first); a
// job for a title that is already ready or failed is acknowledged and
// ignored.
package vod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// errCancelled is the cause given to a job's context by Cancel.
var errCancelled = errors.New("cancelled")

// Worker runs VOD jobs. It is safe for concurrent use: several jobs may run
// at once (one per concurrent Handle call), and jobs for the same stream
// are serialised.
type Worker struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu      sync.Mutex
	running map[string]*runningJob

	// slots bounds the jobs running at once (Config.MaxJobs); jobs holds
	// the background runs HandleRecord started.
	slots chan struct{}
	jobs  sync.WaitGroup
	// claims numbers this worker's lease claims (holderID).
	claims atomic.Int64
}

type runningJob struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// NewWorker checks cfg, fills in its defaults and registers the worker's
// metrics with cfg.Registry.
func NewWorker(cfg Config) (*Worker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("vod metrics: %w", err)
	}
	return &Worker{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "vod"),
		m:       m,
		running: make(map[string]*runningJob),
		slots:   make(chan struct{}, cfg.MaxJobs),
	}, nil
}

// Run consumes protocol.TopicVODJobs (and the name it had before,
// protocol.LegacyTopicVODJobs) from b in the protocol.GroupVOD consumer
// group, handing each record to HandleRecord, until ctx ends; then it waits
// for the jobs it started. When consuming stops with an error (the
// subscription broke), Run subscribes again after a pause that doubles up
// to 30 s, without a busy loop. Run returns nil when ctx ends or the bus is
// closed.
func (w *Worker) Run(ctx context.Context, b bus.Bus) error {
	defer w.jobs.Wait()
	opts := bus.ConsumeOptions{
		Topics:         []string{protocol.TopicVODJobs, protocol.LegacyTopicVODJobs},
		Group:          protocol.GroupVOD,
		FromBeginning:  true,
		MaxRecordBytes: protocol.MaxControlMessageBytes,
		Handler:        w.HandleRecord,
	}
	pause := time.Second
	for {
		err := b.Consume(ctx, opts)
		if ctx.Err() != nil || err == nil {
			return nil
		}
		w.log.Warn("vod job subscription stopped; subscribing again", "err", err, "after", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// HandleRecord is the consumer's handler for the job topic. It returns at
// once: the record is deferred (bus.Record.Defer) and the job runs in the
// background, at most Config.MaxJobs at a time, so a transcode never holds
// up the consumer group's rebalances and one slow title never blocks the
// others. The record is acknowledged (its offset may be committed) once
// Handle is done with it; a job whose attempt hit a retryable error is tried
// again after a pause that doubles up to 30 s. When ctx ends, unfinished
// jobs stop unacknowledged and are delivered again.
func (w *Worker) HandleRecord(ctx context.Context, rec *bus.Record) error {
	// A record that is not a job is refused here, before it is deferred,
	// so the consumer dead-letters it (bus.Permanent) instead of the job
	// loop dropping it silently.
	if _, err := protocol.DecodeVODJob(rec.Key, rec.Value); err != nil {
		w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
		return bus.Permanent(err)
	}
	ack := rec.Defer()
	w.jobs.Add(1)
	go func() {
		defer w.jobs.Done()
		if w.runUntilDone(ctx, rec.Key, rec.Value) {
			ack()
		}
	}()
	return nil
}

// runUntilDone runs the job in a job slot until it reports the job done;
// it reports false when ctx ended first.
func (w *Worker) runUntilDone(ctx context.Context, key, raw []byte) bool {
	pause := time.Second
	for {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		err := w.handle(ctx, key, raw)
		<-w.slots
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.log.Warn("vod job will be retried", "err", err, "after", pause)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// Handle processes one job message (a protocol.VODJob) and returns when
// the title is ready or failed, or when ctx ends.
//
// It returns nil — the job is done and its offset may be committed — when
// the title became ready, when it failed for a reason retrying cannot fix
// (not media, truncated, ffmpeg error, cancelled), when the title was
// already ready or failed (a duplicate delivery), when the stream does not
// exist, and when the message is not a job at all (it is logged and
// dropped, never retried forever).
//
// It returns an error — deliver the job again — when ctx ended mid-job
// (the worker is stopping; the next delivery restarts the job cleanly) or
// when the metadata or object store failed. Each start counts as an
// attempt; after Config.MaxAttempts the title is failed instead.
func (w *Worker) Handle(ctx context.Context, raw []byte) error { return w.handle(ctx, nil, raw) }

// handle is Handle for a record whose key, the stream id, stands in for a
// missing stream_id.
func (w *Worker) handle(ctx context.Context, key, raw []byte) error {
	j, err := protocol.DecodeVODJob(key, raw)
	if err != nil {
		w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
		w.log.Warn("dropping malformed vod job", "err", err, "job", truncate(string(raw), 200))
		return nil
	}
	job := *j
	release, err := w.claim(ctx, job.StreamID)
	if err != nil {
		return err
	}
	defer release()

	st, err := w.cfg.Meta.GetStream(ctx, job.StreamID)
	switch {
	case errors.Is(err, metastore.ErrNotFound):
		w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
		w.log.Warn("dropping vod job for an unknown stream", "stream", job.StreamID)
		return nil
	case err != nil:
		w.m.jobs.WithLabelValues(outcomeRetry).Inc()
		return fmt.Errorf("vod job for stream %s: reading the stream: %w", job.StreamID, err)
	case st.Status.Terminal():
		w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
		w.log.Info("vod job already done", "stream", st.ID, "status", st.Status)
		return nil
	case st.Kind != metastore.KindVOD:
		w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
		w.log.Warn("dropping vod job for a stream that is not a vod", "stream", st.ID, "kind", st.Kind)
		return nil
	}
	if job.SourceKey == "" && job.SourceURL == "" {
		job.SourceKey, job.SourceURL = st.SourceKey, st.SourceURL
	}

	// One worker per title across every process: the claim is a lease in
	// the metadata store, and losing it stops the work.
	held, st, err := w.holdJob(ctx, st)
	if err != nil || held == nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := held.Release(rctx); err != nil {
			w.log.Warn("releasing the vod job's lease", "stream", st.ID, "err", err)
		}
	}()

	jobCtx, cancel := context.WithCancelCause(held.Context())
	defer cancel(nil)
	go w.watchForCancel(jobCtx, st.ID, cancel)
	w.mu.Lock()
	w.running[st.ID].cancel = cancel
	w.mu.Unlock()

	w.m.running.Inc()
	defer w.m.running.Dec()
	return w.process(jobCtx, ctx, job, st)
}

// holdJob takes the title's lease, waiting while another worker holds it.
// It returns a nil lease (and no error) when the title reached a terminal
// status meanwhile: whoever held the lease finished it. The stream returned
// is read after the lease was taken.
func (w *Worker) holdJob(ctx context.Context, st metastore.Stream) (*metastore.HeldLease, metastore.Stream, error) {
	name := metastore.VODLeaseName(st.ID)
	for {
		held, err := metastore.Hold(ctx, w.cfg.Meta, name, w.holderID(), w.cfg.LeaseTTL, w.log)
		if err == nil {
			cur, err := w.cfg.Meta.GetStream(ctx, st.ID)
			if err != nil || cur.Status.Terminal() {
				_ = held.Release(context.WithoutCancel(ctx))
				if err != nil {
					return nil, st, fmt.Errorf("vod job for stream %s: reading the stream: %w", st.ID, err)
				}
				return nil, cur, nil
			}
			return held, cur, nil
		}
		if !errors.Is(err, metastore.ErrConflict) {
			return nil, st, fmt.Errorf("vod job for stream %s: claiming it: %w", st.ID, err)
		}
		w.log.Info("vod job is being worked on elsewhere; waiting", "stream", st.ID, "err", err)
		select {
		case <-ctx.Done():
			return nil, st, ctx.Err()
		case <-time.After(w.cfg.LeaseTTL / 3):
		}
		cur, err := w.cfg.Meta.GetStream(ctx, st.ID)
		if err == nil && cur.Status.Terminal() {
			w.m.jobs.WithLabelValues(outcomeSkipped).Inc()
			return nil, cur, nil
		}
	}
}

// holderID names one claim: the process (Config.Holder) and a number of
// its own, so two deliveries of one job in one process do not share a
// claim.
func (w *Worker) holderID() string {
	return fmt.Sprintf("%s#%d", w.cfg.Holder, w.claims.Add(1))
}

// claim waits until no other job for id runs in this worker, then marks
// id as running. release undoes it.
func (w *Worker) claim(ctx context.Context, id string) (release func(), err error) {
	for {
		w.mu.Lock()
		other := w.running[id]
		if other == nil {
			rj := &runningJob{cancel: func(error) {}, done: make(chan struct{})}
			w.running[id] = rj
			w.mu.Unlock()
			return func() {
				w.mu.Lock()
				delete(w.running, id)
				w.mu.Unlock()
				close(rj.done)
			}, nil
		}
		w.mu.Unlock()
		select {
		case <-other.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Cancel stops the job of a title: the stream moves to failed with the
// error "cancelled" at once, the running transcode (in this worker, or in
// another process at its next progress update) stops, and its partial
// segments, rows and playlists are deleted. Cancelling a title whose job
// has not started yet fails it, so the job is skipped when it arrives. A
// title that is already ready or failed cannot be cancelled
// (metastore.ErrConflict).
func (w *Worker) Cancel(ctx context.Context, streamID string) error {
	st, err := w.cfg.Meta.GetStream(ctx, streamID)
	if err != nil {
		return fmt.Errorf("cancel vod %s: %w", streamID, err)
	}
	if st.Status.Terminal() {
		return fmt.Errorf("cancel vod %s: it is already %s: %w", streamID, st.Status, metastore.ErrConflict)
	}
	_, err = w.cfg.Meta.TransitionStatus(ctx, streamID, metastore.StatusFailed, func(s *metastore.Stream) {
		if s.Error == "" { // failed for another reason meanwhile: keep that reason
			s.Error = errCancelled.Error()
		}
	})
	if err != nil {
		return fmt.Errorf("cancel vod %s: %w", streamID, err)
	}
	w.mu.Lock()
	if rj := w.running[streamID]; rj != nil {
		rj.cancel(errCancelled)
	}
	w.mu.Unlock()
	w.log.Info("vod cancelled", "stream", streamID)
	return nil
}

// watchForCancel cancels the job with errCancelled as soon as its title
// is failed in the metadata store (the API's cancel, in whatever process
// it ran), polling every Config.ProgressInterval until ctx ends. Progress
// updates notice a cancel too, but a job fetching its source or waiting
// for ffmpeg's first output makes none.
func (w *Worker) watchForCancel(ctx context.Context, id string, cancel context.CancelCauseFunc) {
	t := time.NewTicker(w.cfg.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := w.cfg.Meta.GetStream(ctx, id)
		if err == nil && st.Status == metastore.StatusFailed {
			cancel(errCancelled)
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
