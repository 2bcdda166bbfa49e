package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// This file watches live streams for no_segments rules: one watcher per
// rule across every process (its lease), reading the stream's row in the
// metadata store, where the packager records when it listed the newest
// segment.

// SegmentsLeaseName is the lease a no_segments rule's watcher holds.
func SegmentsLeaseName(ruleID string) string { return "alerts/segments/" + ruleID }

// runStreams starts a watcher for every no_segments rule whose lease this
// process can take, looking for new rules every second.
func (s *Service) runStreams(ctx context.Context) {
	var mu sync.Mutex
	running := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		rules, err := s.allRules(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("reading the rules", "err", err)
		}
		for _, r := range rules {
			mu.Lock()
			busy := running[r.ID]
			mu.Unlock()
			if r.Condition.Type != CondNoSegments || busy {
				continue
			}
			held, err := metastore.Hold(ctx, s.cfg.Store, SegmentsLeaseName(r.ID), s.holder(), evalLeaseTTL, s.log)
			if err != nil {
				continue // another process watches it, or the store is down
			}
			mu.Lock()
			running[r.ID] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					held.Release(context.WithoutCancel(ctx))
					mu.Lock()
					delete(running, r.ID)
					mu.Unlock()
				}()
				w := &streamWatch{s: s, rule: r, log: s.log.With("rule", r.ID, "stream", r.Scope.ID)}
				if err := w.run(held.Context()); err != nil && held.Context().Err() == nil {
					w.log.Warn("stream watcher stopped", "err", err)
				}
			})
		}
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

// streamWatch raises a no_segments rule's alerts on its stream.
type streamWatch struct {
	s    *Service
	rule *Rule
	log  *slog.Logger
	// open is the alert open now, with where its condition started.
	open  string
	since time.Time
}

// run looks at the stream every Poll until the rule is deleted or ctx
// ends.
func (w *streamWatch) run(ctx context.Context) error {
	if err := w.adopt(ctx); err != nil {
		return err
	}
	checked := time.Time{}
	for {
		if time.Since(checked) >= time.Second {
			checked = time.Now()
			if _, err := w.s.cfg.Store.GetAlertRule(ctx, w.rule.ID); errors.Is(err, metastore.ErrNotFound) {
				return nil
			}
		}
		if err := w.look(ctx, time.Now()); err != nil {
			return err
		}
		if !sleep(ctx, w.s.cfg.Poll) {
			return nil
		}
	}
}

// adopt takes over the rule's open alerts from an earlier watcher: the
// newest stays open (look resolves it when a segment came since), older
// ones are resolved.
func (w *streamWatch) adopt(ctx context.Context) error {
	open, _, err := w.s.cfg.Store.ListAlerts(ctx, metastore.AlertQuery{RuleID: w.rule.ID, State: metastore.AlertOpen})
	if err != nil {
		return err
	}
	for i, a := range open {
		if i == 0 {
			w.open, w.since = a.ID, a.StartedAt
			continue
		}
		if err := w.s.resolveAlert(ctx, w.rule, a.ID, nil, time.Now().UTC()); err != nil {
			return err
		}
	}
	return nil
}

// look raises the alert when the stream has had no segment for the
// rule's duration, and resolves it when one comes or the stream ends.
func (w *streamWatch) look(ctx context.Context, now time.Time) error {
	st, err := w.s.cfg.Store.GetStream(ctx, w.rule.Scope.ID)
	if errors.Is(err, metastore.ErrNotFound) {
		return w.resolve(ctx, now)
	}
	if err != nil {
		return err
	}
	if st.Status.Terminal() {
		// The stream ended (or failed): nobody is expected to publish.
		return w.resolve(ctx, now)
	}
	last := lastSegmentAt(st)
	if w.open != "" {
		if last.After(w.since) {
			return w.resolve(ctx, last)
		}
		return nil
	}
	// The condition started at the newest segment, or when watching
	// became possible: the stream's or the rule's creation.
	since := maxTime(last, st.CreatedAt, w.rule.CreatedAt).UTC().Truncate(time.Millisecond)
	d := w.rule.Condition.MinDuration.D()
	if now.Sub(since) < d {
		return nil
	}
	what := fmt.Sprintf("no segments from %s for %v", st.ID, d)
	if last.IsZero() {
		what = fmt.Sprintf("no segments from %s for %v (nothing published yet)", st.ID, d)
	}
	details, _ := json.Marshal(map[string]any{"min_duration_ms": d.Milliseconds(), "last_segment_at": nullTime(last),
		"stream_status": st.Status, "segments": st.SegmentCount})
	id := AlertID(w.rule.ID, "stream:"+st.ID, since.UnixMilli())
	a := metastore.Alert{ID: id, RuleID: w.rule.ID, RuleName: w.rule.Name, Condition: CondNoSegments,
		Scope: "stream:" + st.ID, StreamID: st.ID, StartedAt: since, Summary: clip(w.rule.Name+": "+what, 500),
		Details: details, RaisedAt: stamp(now)}
	if err := w.s.raiseAlert(ctx, w.rule, a); err != nil {
		return err
	}
	w.open, w.since = id, since
	return nil
}

// resolve ends the open alert at ended.
func (w *streamWatch) resolve(ctx context.Context, ended time.Time) error {
	if w.open == "" {
		return nil
	}
	if err := w.s.resolveAlert(ctx, w.rule, w.open, nil, ended.UTC()); err != nil {
		return err
	}
	w.open = ""
	return nil
}

// lastSegmentAt is when the packager listed the stream's newest segment
// (the stream's details), zero when it has none.
func lastSegmentAt(st metastore.Stream) time.Time {
	if st.SegmentCount == 0 {
		return time.Time{}
	}
	var at time.Time
	if raw := metastore.DetailRaw(st.Details, "last_segment_at"); raw != nil && json.Unmarshal(raw, &at) == nil {
		return at
	}
	return st.UpdatedAt
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}
