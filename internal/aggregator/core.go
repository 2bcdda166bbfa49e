package aggregator

import (
	"log/slog"
	"slices"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/metastore"
)

// Limits on what the bus may ask of an aggregator: times beyond maxTimeMs
// (about 35,000 years) are refused as malformed, and a job has at most
// maxWindows windows (12 days of 1 s windows, 58 of 5 s ones). A hostile
// or broken record (a bound or an output at the end of time) costs at most
// that many windows, never an endless loop or an overflow.
const (
	maxTimeMs  = 1 << 50
	maxWindows = 1 << 20
	// maxLateWindows bounds the windows one late result is recorded for.
	maxLateWindows = 64
)

// core is the aggregator's state machine: every task's bound and results
// not yet fed, and what went into the graph. It is driven by the records
// of the results topic, in order, and by a clock for stalls; it is not
// safe for concurrent use.
type core struct {
	jobID string
	w     int64 // window width, ms
	stall time.Duration
	tasks []*taskState
	byID  map[string]*taskState

	origin    int64 // start of window 0, ms
	originSet bool
	// next is the first window not stored before this run; windows below
	// it are never fed again.
	next int64
	// forced are the stored partial windows, for telling late results
	// from included ones while the topic is replayed.
	forced []forcedWindow
	offset int64 // of the last record read
	maxEnd int64 // the latest bound or result end seen
	start  time.Time
	closed bool // the last window is fed and the inputs are closed

	feed feeder
	late func(windowStartMs int64, r metastore.Result) error
	log  *slog.Logger
}

// taskState is one task as the aggregator follows it.
type taskState struct {
	Task
	input    string // its graph input stream
	heard    bool
	firstMs  int64 // the earliest time it reported before the origin was set
	hasBound bool
	bound    int64
	done     bool
	lastMove time.Time
	timedOut bool
	fed      int64 // windows fed to the graph
	forcedTo int64 // windows settled by timing the task out, in this run
	gbound   graph.Timestamp
	early    []metastore.Result // results read before the origin was set
	pending  []pending          // results of windows not fed yet
	revs     map[resultKey]int64
}

// pending is a result waiting for its windows, from window from on (the
// ones before were settled when it arrived).
type pending struct {
	r    metastore.Result
	from int64
}

type resultKey struct {
	chunk string
	start int64
}

// forcedWindow is a stored partial window: its index, the offset it was
// emitted at and the tasks it timed out.
type forcedWindow struct {
	k       int64
	through int64
	engines []string
}

// feeder is where the core puts shares and bounds: the graph.
type feeder interface {
	add(input string, s *share, ts graph.Timestamp) error
	bound(input string, ts graph.Timestamp) error
	closeAll() error
}

func newCore(cfg *Config, marks []metastore.Window, now time.Time) *core {
	c := &core{jobID: cfg.JobID, w: max(cfg.Window.Milliseconds(), 1), stall: cfg.StallTimeout,
		byID: map[string]*taskState{}, offset: -1, start: now, log: cfg.Log}
	for i, t := range cfg.Tasks {
		ts := &taskState{Task: t, input: inputName(i), lastMove: now, gbound: graph.Unstarted, revs: map[resultKey]int64{}}
		c.tasks = append(c.tasks, ts)
		c.byID[t.ID] = ts
	}
	c.resume(marks)
	return c
}

// resume starts after the stored windows.
func (c *core) resume(marks []metastore.Window) {
	if len(marks) == 0 {
		return
	}
	c.origin, c.originSet = marks[0].StartMs-marks[0].Seq*c.w, true
	c.next = marks[len(marks)-1].Seq + 1
	for _, m := range marks {
		if len(m.Missing) > 0 {
			c.forced = append(c.forced, forcedWindow{k: m.Seq, through: m.ThroughOffset, engines: m.Missing})
		}
	}
	for _, t := range c.tasks {
		t.fed = c.next
	}
}

// windowOf is the index of the window holding ms (negative before the
// origin); startOf the start of window k.
func (c *core) windowOf(ms int64) int64 {
	d := ms - c.origin
	k := d / c.w
	if d < 0 && d%c.w != 0 {
		k--
	}
	return k
}

func (c *core) startOf(k int64) int64 { return c.origin + k*c.w }

// stamp is the graph timestamp of window k's shares: its last
// microsecond.
func (c *core) stamp(k int64) graph.Timestamp { return graph.Timestamp(c.startOf(k+1)*1000 - 1) }

// frontier is how many windows t's bound has passed.
func (c *core) frontier(t *taskState) int64 {
	if !t.hasBound || !c.originSet || t.bound < c.origin {
		return 0
	}
	return min(c.windowOf(t.bound), maxWindows)
}

// fresh reports whether r is new for t: a result already seen at the
// same or a higher rev (a redelivery, a chunk processed twice) is not.
func (t *taskState) fresh(r metastore.Result) bool {
	k := resultKey{r.ChunkUUID, r.StartMs}
	if rev, ok := t.revs[k]; ok && rev >= r.Rev {
		return false
	}
	t.revs[k] = r.Rev
	return true
}

// hear notes that t reported time ms before the origin was set.
func (c *core) hear(t *taskState, ms int64) {
	if c.originSet {
		return
	}
	if !t.heard || ms < t.firstMs {
		t.firstMs = ms
	}
	t.heard = true
}

// result takes an engine_output of task taskID read at offset off.
func (c *core) result(off int64, taskID string, r metastore.Result, now time.Time) error {
	c.offset = off
	t := c.byID[taskID]
	if t == nil || c.closed || r.EndMs > maxTimeMs || !t.fresh(r) {
		return nil
	}
	c.maxEnd = max(c.maxEnd, r.EndMs)
	c.hear(t, r.StartMs)
	if !c.originSet {
		t.early = append(t.early, r)
		return c.advance(now)
	}
	return c.place(t, r, off)
}

// span is the windows r overlaps, and false for a result wholly before
// the first window.
func (c *core) span(r metastore.Result) (k1, k2 int64, ok bool) {
	k1 = c.windowOf(r.StartMs)
	k2 = k1
	if r.EndMs > r.StartMs {
		k2 = c.windowOf(r.EndMs - 1)
	}
	return max(k1, 0), min(k2, maxWindows-1), k2 >= 0
}

// place files a result once the origin is known: late for the windows
// t's share of which is settled (at most maxLateWindows of them), pending
// for the others. A window stored before this run that is not settled
// already holds it.
func (c *core) place(t *taskState, r metastore.Result, off int64) error {
	k1, k2, ok := c.span(r)
	if !ok {
		c.log.Warn("result before the job's first window; recorded late", "engine", t.Engine, "start_ms", r.StartMs)
		return c.late(c.origin, r)
	}
	settled := c.settled(t, off)
	for k := k1; k <= min(k2, k1+maxLateWindows-1) && k < settled; k++ {
		if err := c.late(c.startOf(k), r); err != nil {
			return err
		}
	}
	if k2 >= settled {
		t.pending = append(t.pending, pending{r: r, from: max(k1, settled)})
	}
	return nil
}

// settled is how many of t's windows were settled when the record at off
// was read: all of them once it is done, otherwise those its bound had
// passed and those it was timed out for, in this run or (a stored
// partial window naming it, emitted before off) an earlier one. It
// depends only on the records before off and the stored windows, so an
// aggregator replaying the topic decides as the first one did.
func (c *core) settled(t *taskState, off int64) int64 {
	if t.done {
		return maxWindows + 1
	}
	n := max(c.frontier(t), t.forcedTo)
	for _, f := range c.forced {
		if f.through < off && slices.Contains(f.engines, t.Engine) {
			n = max(n, f.k+1)
		}
	}
	return n
}

// bound takes a timestamp_bound of task taskID read at offset off.
func (c *core) bound(off int64, taskID string, ms int64, done bool, now time.Time) error {
	c.offset = off
	t := c.byID[taskID]
	if t == nil || c.closed || ms > maxTimeMs {
		return nil
	}
	c.hear(t, ms)
	if !t.hasBound || ms > t.bound {
		t.bound, t.hasBound, t.lastMove, t.timedOut = ms, true, now, false
	}
	if done && !t.done {
		t.done, t.lastMove, t.timedOut = true, now, false
	}
	c.maxEnd = max(c.maxEnd, ms)
	return c.advance(now)
}

// setOrigin fixes window 0 once every task was heard from, or a stall
// timeout after the start when some were: at the window holding the
// earliest time reported.
func (c *core) setOrigin(now time.Time) bool {
	if c.originSet {
		return true
	}
	var heard []*taskState
	for _, t := range c.tasks {
		if t.heard {
			heard = append(heard, t)
		}
	}
	if len(heard) == 0 || (len(heard) < len(c.tasks) && now.Sub(c.start) < c.stall) {
		return false
	}
	first := heard[0].firstMs
	for _, t := range heard {
		first = min(first, t.firstMs)
	}
	c.origin, c.originSet = first-((first%c.w)+c.w)%c.w, true
	return true
}

// placeBuffered files the results that came before the origin was set.
func (c *core) placeBuffered() error {
	for _, t := range c.tasks {
		buf := t.early
		t.early = nil
		for _, r := range buf {
			if err := c.place(t, r, c.offset); err != nil {
				return err
			}
		}
	}
	return nil
}

// advance feeds every window the tasks' bounds allow, and the last ones
// once every task is done.
func (c *core) advance(now time.Time) error {
	if c.closed {
		return nil
	}
	if !c.originSet {
		if !c.setOrigin(now) {
			return nil
		}
		if err := c.placeBuffered(); err != nil {
			return err
		}
	}
	if c.allDone() {
		return c.finish()
	}
	return c.feedAll()
}

// feedAll feeds the running tasks as far as their bounds allow, but no
// further than a window beyond the slowest, then the done tasks.
func (c *core) feedAll() error {
	lim := c.slowest()
	for _, t := range c.tasks {
		if !t.done {
			if err := c.feedTo(t, min(c.frontier(t), lim+1), false); err != nil {
				return err
			}
		}
	}
	return c.feedDone()
}

// slowest is how far the slowest running task can go: no task is fed
// more than a window beyond it, since no window past it can be emitted
// (one beyond tells the stall check another task is ahead).
func (c *core) slowest() int64 {
	lim := int64(maxWindows)
	for _, t := range c.tasks {
		if !t.done {
			lim = min(lim, max(t.fed, c.frontier(t)))
		}
	}
	return lim
}

func (c *core) allDone() bool {
	for _, t := range c.tasks {
		if !t.done {
			return false
		}
	}
	return true
}

// feedDone feeds the done tasks as far as any running task has gone.
func (c *core) feedDone() error {
	var reach int64
	for _, t := range c.tasks {
		if !t.done {
			reach = max(reach, t.fed)
		}
	}
	for _, t := range c.tasks {
		if t.done {
			if err := c.feedTo(t, reach, false); err != nil {
				return err
			}
		}
	}
	return c.setBounds()
}

// feedTo feeds t's shares up to window n (excluded).
func (c *core) feedTo(t *taskState, n int64, forced bool) error {
	for t.fed < n {
		if err := c.feedOne(t, forced); err != nil {
			return err
		}
	}
	return nil
}

// feedOne adds t's share of its next window to the graph.
func (c *core) feedOne(t *taskState, forced bool) error {
	k := t.fed
	s := &share{seq: k, startMs: c.startOf(k), endMs: c.startOf(k + 1), engine: t.Engine, forced: forced, offset: c.offset}
	keep := t.pending[:0]
	for _, p := range t.pending {
		r := p.r
		if k >= p.from && overlaps(r, s.startMs, s.endMs) {
			s.results = append(s.results, r)
		}
		if r.EndMs > s.endMs || (r.EndMs == r.StartMs && r.StartMs >= s.endMs) {
			keep = append(keep, p)
		}
	}
	clear(t.pending[len(keep):])
	t.pending = keep
	if err := c.feed.add(t.input, s, c.stamp(k)); err != nil {
		return err
	}
	t.fed++
	t.gbound = c.stamp(k) + 1
	return nil
}

// overlaps reports whether r overlaps [start, end): a zero-length result
// belongs to the window holding it.
func overlaps(r metastore.Result, start, end int64) bool {
	if r.EndMs == r.StartMs {
		return r.StartMs >= start && r.StartMs < end
	}
	return r.StartMs < end && r.EndMs > start
}

// setBounds moves each graph input's bound to its task's bound (in
// microseconds), where it is past what was fed, up to the timestamp of
// the next share to feed.
func (c *core) setBounds() error {
	for _, t := range c.tasks {
		if !t.hasBound || t.done || t.bound < c.origin {
			continue
		}
		if b := min(graph.Timestamp(t.bound*1000), c.stamp(t.fed)); b > t.gbound {
			if err := c.feed.bound(t.input, b); err != nil {
				return err
			}
			t.gbound = b
		}
	}
	return nil
}

// finish feeds every task up to the window holding the latest time seen
// and closes the graph's inputs.
func (c *core) finish() error {
	n := min(max(c.windowOf(max(c.maxEnd, c.origin)-1)+1, 0), maxWindows)
	for _, t := range c.tasks {
		if err := c.feedTo(t, n, false); err != nil {
			return err
		}
	}
	c.closed = true
	return c.feed.closeAll()
}

// tick times out stalled tasks: while some task is past the next window
// and every task still short of it has not moved its bound for the stall
// timeout (or was timed out already and has not moved since), their
// shares of the window are fed as they are, forced.
func (c *core) tick(now time.Time) error {
	if c.closed {
		return nil
	}
	if !c.originSet {
		if err := c.advance(now); err != nil || !c.originSet {
			return err
		}
	}
	for {
		lag := c.stalled(now)
		if len(lag) == 0 {
			return nil
		}
		for _, t := range lag {
			c.log.Info("engine stalled; window emitted without it", "engine", t.Engine, "window_start_ms", c.startOf(t.fed),
				"bound_ms", t.bound, "still_for", now.Sub(t.lastMove).Round(time.Millisecond))
			if err := c.feedOne(t, true); err != nil {
				return err
			}
			t.timedOut, t.forcedTo = true, t.fed
		}
		if err := c.feedAll(); err != nil {
			return err
		}
	}
}

// stalled returns the tasks to time out for the next window: all those
// short of it, when all of them are stalled and some task is past it.
func (c *core) stalled(now time.Time) []*taskState {
	k := int64(-1)
	for _, t := range c.tasks {
		if !t.done && (k < 0 || t.fed < k) {
			k = t.fed
		}
	}
	if k < 0 || !c.ahead(k) {
		return nil
	}
	var lag []*taskState
	for _, t := range c.tasks {
		if t.done || t.fed > k {
			continue
		}
		if !t.timedOut && now.Sub(t.lastMove) < c.stall {
			return nil
		}
		lag = append(lag, t)
	}
	return lag
}

// ahead reports whether some task is past window k: a running task that
// fed it, or a done task whose last bound passed it.
func (c *core) ahead(k int64) bool {
	for _, t := range c.tasks {
		if (!t.done && t.fed > k) || (t.done && c.frontier(t) > k) {
			return true
		}
	}
	return false
}
