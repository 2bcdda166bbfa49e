package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// episode is one alert of a rule in a job: the condition held from start
// to end (media time), with gaps shorter than the cool-down.
type episode struct {
	id         string
	start, end int64
	// trueAt is when the condition became true: its start, or its start
	// plus the minimum duration.
	trueAt  int64
	what    string
	details map[string]any
}

// sink takes a core's decisions. An error stops the evaluation (it is
// read again from the start, which decides the same).
type sink interface {
	raise(r *Rule, ep *episode) error
	resolve(r *Rule, ep *episode) error
}

// ruleState is one rule's evaluation in a job.
type ruleState struct {
	rule *Rule
	// The current stretch over which a durational condition holds.
	inRun            bool
	runStart, runEnd int64
	runWhat          string
	runDetails       map[string]any
	ep               *episode
	// feeders are the tasks whose outputs the condition reads: those
	// that said anything about it, and those of its default engine.
	feeders map[string]bool
}

// core evaluates the rules of one job over its results topic, record by
// record. It is deterministic: the same records and rules make the same
// decisions, which is what lets an evaluator start again from the topic's
// first record.
type core struct {
	scope  string            // "job:<id>"
	tasks  map[string]string // task id → engine
	bounds map[string]int64
	done   map[string]bool
	rules  []*ruleState // by rule id
	sink   sink
}

func newCore(jobID string, tasks map[string]string, rules []*Rule, s sink) *core {
	c := &core{scope: "job:" + jobID, tasks: tasks, bounds: map[string]int64{}, done: map[string]bool{}, sink: s}
	for _, r := range rules {
		c.rules = append(c.rules, &ruleState{rule: r, feeders: map[string]bool{}})
	}
	slices.SortFunc(c.rules, func(a, b *ruleState) int {
		switch {
		case a.rule.ID < b.rule.ID:
			return -1
		case a.rule.ID > b.rule.ID:
			return 1
		}
		return 0
	})
	for _, rs := range c.rules {
		for id, engine := range tasks {
			if engine == rs.rule.Condition.defaultEngine() || (engine == rs.rule.Condition.Engine) {
				rs.feeders[id] = true
			}
		}
	}
	return c
}

// output handles an engine_output of task written at ts.
func (c *core) output(ts time.Time, taskID string, o *output) error {
	for _, rs := range c.rules {
		if ts.Before(rs.rule.CreatedAt) {
			continue
		}
		obs := rs.rule.Condition.observe(o)
		if len(obs) > 0 {
			rs.feeders[taskID] = true
		}
		for _, ob := range obs {
			if err := c.observe(rs, ob); err != nil {
				return err
			}
		}
	}
	return c.settle()
}

// bound handles a task's timestamp_bound.
func (c *core) bound(taskID string, ms int64, done bool) error {
	if _, ok := c.tasks[taskID]; !ok {
		return nil
	}
	if ms > c.bounds[taskID] {
		c.bounds[taskID] = ms
	}
	if done {
		c.done[taskID] = true
	}
	return c.settle()
}

// finish resolves every open alert: the job is over.
func (c *core) finish() error {
	for _, rs := range c.rules {
		if rs.ep != nil {
			if err := c.sink.resolve(rs.rule, rs.ep); err != nil {
				return err
			}
			rs.ep = nil
		}
	}
	return nil
}

// allDone reports whether every task of the job said it is done.
func (c *core) allDone() bool {
	for id := range c.tasks {
		if !c.done[id] {
			return false
		}
	}
	return len(c.tasks) > 0
}

// observe applies one observation to a rule.
func (c *core) observe(rs *ruleState, ob observation) error {
	cond := &rs.rule.Condition
	if !cond.durational() {
		if !ob.holds {
			return nil
		}
		return c.hit(rs, ob.start, ob.end, ob.start, ob.what, ob.details)
	}
	tol := int64(200)
	if cond.Type == CondLoudness {
		tol = 1000
	}
	switch {
	case !ob.holds:
		if rs.inRun && ob.end > rs.runEnd {
			rs.inRun = false
		}
		return nil
	case rs.inRun && ob.start <= rs.runEnd+tol:
		rs.runEnd = max(rs.runEnd, ob.end)
	default:
		rs.inRun, rs.runStart, rs.runEnd, rs.runWhat, rs.runDetails = true, ob.start, ob.end, ob.what, ob.details
	}
	minMs := cond.MinDuration.D().Milliseconds()
	if rs.runEnd-rs.runStart < minMs {
		return nil
	}
	details := map[string]any{"min_duration_ms": minMs}
	for k, v := range rs.runDetails {
		details[k] = v
	}
	what := fmt.Sprintf("%s for at least %v", rs.runWhat, cond.MinDuration.D())
	return c.hit(rs, rs.runStart, rs.runEnd, rs.runStart+minMs, what, details)
}

// hit records that the rule's condition held from start to end: the open
// alert goes on when it is within the cool-down of it, else a new one is
// raised (the open one resolved first).
func (c *core) hit(rs *ruleState, start, end, trueAt int64, what string, details map[string]any) error {
	cool := rs.rule.Cooldown.D().Milliseconds()
	if ep := rs.ep; ep != nil {
		if start <= ep.end+cool {
			ep.end = max(ep.end, end)
			return nil
		}
		if err := c.sink.resolve(rs.rule, ep); err != nil {
			return err
		}
		rs.ep = nil
	}
	rs.ep = &episode{id: AlertID(rs.rule.ID, c.scope, start), start: start, end: max(end, start), trueAt: trueAt,
		what: what, details: details}
	return c.sink.raise(rs.rule, rs.ep)
}

// settle resolves the open alerts whose condition is known to have been
// false for the cool-down: the bound of every task feeding the rule has
// passed the alert's end plus the cool-down.
func (c *core) settle() error {
	for _, rs := range c.rules {
		ep := rs.ep
		if ep == nil {
			continue
		}
		if c.known(rs) < ep.end+rs.rule.Cooldown.D().Milliseconds() {
			continue
		}
		if err := c.sink.resolve(rs.rule, ep); err != nil {
			return err
		}
		rs.ep = nil
	}
	return nil
}

// known is how far the rule's condition is known: the lowest bound of
// the tasks feeding it (every task when none has yet); math.MaxInt64
// once they are all done.
func (c *core) known(rs *ruleState) int64 {
	ids := rs.feeders
	if len(ids) == 0 {
		ids = map[string]bool{}
		for id := range c.tasks {
			ids[id] = true
		}
	}
	low := int64(math.MaxInt64)
	for id := range ids {
		if c.done[id] {
			continue
		}
		b, ok := c.bounds[id]
		if !ok {
			return math.MinInt64
		}
		low = min(low, b)
	}
	return low
}

// AlertID is the id of the alert of rule ruleID in scope whose condition
// started at startMs (media time, or Unix milliseconds for conditions on
// the wall clock): "al-" and 16 hex digits of a SHA-256 of the three. The
// same condition evaluated again (a retry, a restart) gets the same id.
func AlertID(ruleID, scope string, startMs int64) string {
	sum := sha256.Sum256([]byte(ruleID + "\x00" + scope + "\x00" + strconv.FormatInt(startMs, 10)))
	return "al-" + hex.EncodeToString(sum[:8])
}
