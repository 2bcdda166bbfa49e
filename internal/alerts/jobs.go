package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// This file runs the evaluation of rules over jobs' results: every job
// announced on control_jobs gets an evaluator, one per job across every
// process, which reads the job's results topic.

// JobLeaseName is the lease an evaluator of a job's rules holds.
func JobLeaseName(jobID string) string { return "alerts/job/" + jobID }

// evalLeaseTTL is how long an evaluator's lease lives without renewal.
const evalLeaseTTL = 15 * time.Second

// runJobs reads control_jobs in consumer group weir_alerts and evaluates
// each job, acknowledging its record once the job is over and evaluated.
func (s *Service) runJobs(ctx context.Context) {
	var jobs sync.WaitGroup
	defer jobs.Wait()
	opts := bus.ConsumeOptions{
		Topics:         []string{protocol.TopicJobs},
		Group:          protocol.GroupAlerts,
		FromBeginning:  true,
		MaxRecordBytes: protocol.MaxControlMessageBytes,
		MaxDeferred:    1024,
		Handler: func(ctx context.Context, rec *bus.Record) error {
			m, err := protocol.DecodeJobRun(rec.Key, rec.Value)
			if err != nil {
				return bus.Permanent(err)
			}
			ack := rec.Defer()
			jobs.Go(func() {
				if s.evaluateJob(ctx, m.JobID) {
					ack()
				}
			})
			return nil
		},
	}
	pause := time.Second
	for {
		err := s.cfg.Bus.Consume(ctx, opts)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("job subscription stopped; subscribing again", "err", err, "after", pause)
		if !sleep(ctx, pause) {
			return
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// evaluateJob evaluates the rules over one job until the job is over and
// its results are read, under the job's evaluation lease. It reports
// false when ctx ended first.
func (s *Service) evaluateJob(ctx context.Context, jobID string) bool {
	pause := time.Second
	for {
		err := s.evaluateOnce(ctx, jobID)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, metastore.ErrConflict) {
			s.log.Debug("another process evaluates the job", "job", jobID, "err", err)
		} else {
			s.log.Warn("job evaluation stopped; starting again", "job", jobID, "err", err, "after", pause)
		}
		if !sleep(ctx, pause) {
			return false
		}
		pause = min(2*pause, 30*time.Second)
	}
}

func (s *Service) evaluateOnce(ctx context.Context, jobID string) error {
	job, err := s.cfg.Store.GetJob(ctx, jobID)
	if errors.Is(err, metastore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	held, err := metastore.Hold(ctx, s.cfg.Store, JobLeaseName(jobID), s.holder(), evalLeaseTTL, s.log)
	if err != nil {
		return err
	}
	defer held.Release(context.WithoutCancel(ctx))
	tasks, err := s.cfg.Store.ListTasks(ctx, jobID)
	if err != nil {
		return err
	}
	e := &jobEval{s: s, job: job, tasks: map[string]string{}, log: s.log.With("job", jobID)}
	for _, t := range tasks {
		e.tasks[t.ID] = t.Engine
	}
	return e.run(held.Context())
}

// jobEval evaluates the rules over one job's results.
type jobEval struct {
	s     *Service
	job   metastore.Job
	tasks map[string]string // task id → engine
	log   *slog.Logger
}

// Why a pass over the results topic stopped.
var (
	errRulesChanged = errors.New("the rules that apply to the job changed")
	errJobOver      = errors.New("the job is over")
	errAllDone      = errors.New("every task of the job is done")
)

// run evaluates until the job is over and its results read: a pass over
// the results topic from its start with the rules that apply, again from
// the start whenever they change.
func (e *jobEval) run(ctx context.Context) error {
	for {
		rules, over, err := e.state(ctx)
		if err != nil {
			return err
		}
		if len(rules) == 0 {
			if over {
				return nil
			}
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			continue
		}
		err = e.pass(ctx, rules, over)
		if !errors.Is(err, errRulesChanged) {
			return err
		}
		e.log.Info("the rules changed; reading the job's results again", "rules", len(rules))
	}
}

// state returns the rules that apply to the job and whether it is over.
// A rule created after the job ended has nothing to read.
func (e *jobEval) state(ctx context.Context) ([]*Rule, bool, error) {
	job, err := e.s.cfg.Store.GetJob(ctx, e.job.ID)
	if err != nil {
		return nil, false, err
	}
	all, err := e.s.allRules(ctx)
	if err != nil {
		return nil, false, err
	}
	over := job.Status.Terminal()
	var rules []*Rule
	for _, r := range all {
		if r.applies(job) && !(over && r.CreatedAt.After(job.UpdatedAt)) {
			rules = append(rules, r)
		}
	}
	return rules, over, nil
}

// applies reports whether the rule is evaluated over job's results.
func (r *Rule) applies(job metastore.Job) bool {
	if r.Condition.Type == CondNoSegments {
		return false
	}
	switch r.Scope.Kind {
	case ScopeAll:
		return true
	case ScopeJob:
		return r.Scope.ID == job.ID
	case ScopeStream, ScopeTitle:
		return r.Scope.ID == job.StreamID
	}
	return false
}

func ruleIDs(rules []*Rule) []string {
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	return ids
}

// pass reads the results topic from its start with rules until every
// task is done, the job is over (then to the topic's end), the rules
// change, or ctx ends.
func (e *jobEval) pass(ctx context.Context, rules []*Rule, over bool) error {
	topic := protocol.ResultsTopic(e.job.ID)
	cctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	sink := &storeSink{s: e.s, job: e.job, ctx: ctx}
	c := newCore(e.job.ID, e.tasks, rules, sink)
	var mu sync.Mutex
	handled := int64(-1)
	handle := func(rec *bus.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if rec.Offset <= handled {
			return nil
		}
		handled = rec.Offset
		if err := e.record(c, rec); err != nil {
			return err
		}
		if c.allDone() {
			stop(errAllDone)
		}
		return nil
	}
	if over {
		stop(errJobOver) // straight to reading the topic to its end
	} else {
		go e.watch(cctx, ruleIDs(rules), stop)
	}
	err := e.s.cfg.Bus.Consume(cctx, bus.ConsumeOptions{
		Topics: []string{topic}, FromBeginning: true, MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
		Handler: func(_ context.Context, rec *bus.Record) error { return handle(rec) },
	})
	cause := context.Cause(cctx)
	switch {
	case errors.Is(cause, errAllDone):
		return nil
	case errors.Is(cause, errRulesChanged):
		return errRulesChanged
	case errors.Is(cause, errJobOver):
		// Read what is left, then resolve what is open.
		err := e.s.cfg.Bus.Consume(ctx, bus.ConsumeOptions{
			Topics: []string{topic}, FromBeginning: true, UntilEOF: true, IdleTimeout: 10 * time.Second,
			MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
			Handler:        func(_ context.Context, rec *bus.Record) error { return handle(rec) },
		})
		if err != nil && ctx.Err() == nil {
			e.log.Warn("reading the rest of the results of an ended job", "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		return c.finish()
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	}
	return errors.New("the results topic stopped")
}

// watch stops the pass when the rules that apply change or the job ends.
func (e *jobEval) watch(ctx context.Context, ids []string, stop context.CancelCauseFunc) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rules, over, err := e.state(ctx)
		switch {
		case err != nil:
			continue
		case !slices.Equal(ruleIDs(rules), ids) && !over:
			stop(errRulesChanged)
			return
		case over:
			stop(errJobOver)
			return
		}
	}
}

// record hands one record of the results topic to the core. Records that
// are not engine_output or timestamp_bound, or do not decode, are
// skipped: the job's runner reads the same topic and reports them.
func (e *jobEval) record(c *core, rec *bus.Record) error {
	msg, err := protocol.Decode(rec.Key, rec.Value)
	if err != nil {
		return nil
	}
	switch m := msg.(type) {
	case *protocol.EngineOutput:
		engine, ok := e.tasks[m.TaskID]
		if !ok {
			return nil
		}
		return c.output(rec.Timestamp, m.TaskID, newOutput(engine, m.StartOffsetMs, m.EndOffsetMs, m.Content))
	case *protocol.TimestampBound:
		return c.bound(m.TaskID, m.TimestampBoundMs, m.Done)
	}
	return nil
}

// storeSink raises and resolves a job's alerts in the metadata store,
// queueing their deliveries.
type storeSink struct {
	s   *Service
	job metastore.Job
	ctx context.Context
}

func (k *storeSink) raise(r *Rule, ep *episode) error {
	start, end := ep.start, ep.end
	a := metastore.Alert{ID: ep.id, RuleID: r.ID, RuleName: r.Name, Condition: r.Condition.Type,
		Scope: "job:" + k.job.ID, JobID: k.job.ID, StreamID: k.job.StreamID, StartMs: &start, EndMs: &end,
		Summary: clip(r.Name+": "+ep.what, protocol.MaxAlertSummary), RaisedAt: stamp(time.Now())}
	details := map[string]any{"condition_true_ms": ep.trueAt}
	for k, v := range ep.details {
		details[k] = v
	}
	a.Details, _ = json.Marshal(details)
	return k.s.raiseAlert(k.ctx, r, a)
}

func (k *storeSink) resolve(r *Rule, ep *episode) error {
	end := ep.end
	return k.s.resolveAlert(k.ctx, r, ep.id, &end, time.Time{})
}

// raiseAlert stores a new alert with its deliveries; an alert already
// there (a replay) changes nothing.
func (s *Service) raiseAlert(ctx context.Context, r *Rule, a metastore.Alert) error {
	ds, err := s.deliveriesOf(r, a, protocol.AlertRaised)
	if err != nil {
		return err
	}
	created, err := s.cfg.Store.RaiseAlert(ctx, a, ds)
	if err != nil {
		return err
	}
	if created {
		s.m.raise(r.ID)
		s.notify()
		s.log.Info("alert raised", "alert", a.ID, "rule", r.ID, "scope", a.Scope, "summary", a.Summary)
	}
	return nil
}

// resolveAlert resolves an open alert with its end; one resolved already
// (a replay) changes nothing.
func (s *Service) resolveAlert(ctx context.Context, r *Rule, id string, endMs *int64, endedAt time.Time) error {
	a, err := s.cfg.Store.GetAlert(ctx, id)
	if err != nil {
		return fmt.Errorf("alert %s: %w", id, err)
	}
	if a.State != metastore.AlertOpen {
		return nil
	}
	a.State, a.ResolvedAt, a.EndedAt = metastore.AlertResolved, stamp(time.Now()), stamp(endedAt)
	if endMs != nil && a.StartMs != nil {
		a.EndMs = endMs
	}
	ds, err := s.deliveriesOf(r, a, protocol.AlertResolved)
	if err != nil {
		return err
	}
	changed, err := s.cfg.Store.ResolveAlert(ctx, metastore.AlertResolution{ID: id, EndMs: a.EndMs, EndedAt: endedAt, ResolvedAt: a.ResolvedAt}, ds)
	if err != nil {
		return err
	}
	if changed {
		s.notify()
		s.log.Info("alert resolved", "alert", id, "rule", r.ID)
	}
	return nil
}

// Message is the alert event sent to the weir.alerts topic and to
// webhooks.
func Message(a metastore.Alert, event string) *protocol.Alert {
	m := &protocol.Alert{EventID: protocol.AlertEventID(a.ID, event), AlertID: a.ID, Event: event, RuleID: a.RuleID,
		RuleName: a.RuleName, Condition: a.Condition, Scope: a.Scope, JobID: a.JobID, StreamID: a.StreamID,
		StartMs: a.StartMs, EndMs: a.EndMs, StartedAt: a.StartedAt, EndedAt: a.EndedAt, Summary: a.Summary,
		Details: a.Details, RaisedAt: a.RaisedAt}
	if string(m.Details) == "{}" {
		m.Details = nil
	}
	if event == protocol.AlertResolved {
		m.ResolvedAt = a.ResolvedAt
	}
	return m
}

// deliveriesOf makes an alert event's deliveries: the weir.alerts topic
// and each webhook of the rule, with the same payload.
func (s *Service) deliveriesOf(r *Rule, a metastore.Alert, event string) ([]metastore.AlertDelivery, error) {
	_, payload, err := protocol.EncodeControl(Message(a, event))
	if err != nil {
		return nil, fmt.Errorf("alert %s: %w", a.ID, err)
	}
	now := time.Now()
	retry := s.cfg.RetryFor
	if r.RetryFor > 0 {
		retry = r.RetryFor.D()
	}
	id := protocol.AlertEventID(a.ID, event)
	base := metastore.AlertDelivery{AlertID: a.ID, RuleID: r.ID, Event: event, Payload: payload,
		CreatedAt: now, NextAttemptAt: now, RetryUntil: now.Add(retry)}
	kafka := base
	kafka.ID, kafka.Target = id+":kafka", metastore.TargetKafka
	out := []metastore.AlertDelivery{kafka}
	for i, w := range r.Webhooks {
		d := base
		d.ID, d.Target, d.URL = fmt.Sprintf("%s:webhook-%d", id, i), metastore.TargetWebhook, w.URL
		out = append(out, d)
	}
	return out, nil
}

// stamp brings a time to what the metadata store keeps (UTC,
// microseconds), so an event sent before and after a restart says the
// same.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}
