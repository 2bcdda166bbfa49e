package aggregator

import (
	"bufio"
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// checkingFeeder stands in for the graph in the fuzz target and enforces
// the graph's rules: per input, shares numbered from the first window
// without a gap, timestamps increasing and never below the input's bound,
// bounds never moving back, nothing after the inputs are closed.
type checkingFeeder struct {
	t      *testing.T
	next   map[string]int64
	last   map[string]graph.Timestamp
	bounds map[string]graph.Timestamp
	closed bool
}

func (f *checkingFeeder) add(input string, s *share, ts graph.Timestamp) error {
	switch {
	case f.closed:
		f.t.Fatalf("share of window %d added to %s after the inputs were closed", s.seq, input)
	case s.seq != f.next[input]:
		f.t.Fatalf("%s: share of window %d, want %d", input, s.seq, f.next[input])
	case f.next[input] > 0 && ts <= f.last[input], ts < f.bounds[input]:
		f.t.Fatalf("%s: share at %d after %d, bound %d", input, ts, f.last[input], f.bounds[input])
	case ts < 0 || ts > graph.Max || s.endMs <= s.startMs:
		f.t.Fatalf("%s: share at %d for [%d, %d)", input, ts, s.startMs, s.endMs)
	}
	for _, r := range s.results {
		if !overlaps(r, s.startMs, s.endMs) {
			f.t.Fatalf("%s: result [%d, %d] in window [%d, %d)", input, r.StartMs, r.EndMs, s.startMs, s.endMs)
		}
	}
	f.next[input]++
	f.last[input], f.bounds[input] = ts, ts+1
	return nil
}

func (f *checkingFeeder) bound(input string, ts graph.Timestamp) error {
	if f.closed || ts < f.bounds[input] || ts > graph.Max {
		f.t.Fatalf("%s: bound %d after %d (closed %v)", input, ts, f.bounds[input], f.closed)
	}
	f.bounds[input] = ts
	return nil
}

func (f *checkingFeeder) closeAll() error {
	if f.closed {
		f.t.Fatal("inputs closed twice")
	}
	f.closed = true
	return nil
}

// FuzzCoreRecords feeds the aggregator's core any sequence of results
// topic records, one a line ("<key> <JSON value>"), with "tick <seconds>"
// lines moving its clock: whatever the records say (bounds at the end of
// time, outputs over every window, tasks it does not know, bounds moving
// back), it never panics or loops without end, and what it feeds the graph
// keeps the graph's rules; once every task is done, every input has the
// same windows.
func FuzzCoreRecords(f *testing.F) {
	f.Add([]byte(`job-1-a {"type":"timestamp_bound","taskId":"job-1-a","timestampBoundMs":0}
job-1-b {"type":"timestamp_bound","taskId":"job-1-b","timestampBoundMs":0}
job-1-a {"type":"engine_output","taskId":"job-1-a","startOffsetMs":100,"endOffsetMs":7000,"content":{"series":[]}}
job-1-a {"type":"timestamp_bound","taskId":"job-1-a","timestampBoundMs":20000}
tick 31
job-1-b {"type":"engine_output","taskId":"job-1-b","startOffsetMs":1000,"endOffsetMs":1000}
job-1-b {"type":"timestamp_bound","taskId":"job-1-b","timestampBoundMs":25000,"done":true}
job-1-a {"type":"timestamp_bound","taskId":"job-1-a","timestampBoundMs":26000,"done":true}`))
	f.Add([]byte(`job-1-a {"type":"timestamp_bound","taskId":"job-1-a","timestampBoundMs":1125899906842624}
job-1-b {"type":"engine_output","taskId":"job-1-b","startOffsetMs":0,"endOffsetMs":9000000000000000000}
tick 100
job-1-b {"type":"timestamp_bound","taskId":"job-1-b","timestampBoundMs":5,"done":true}
job-1-a {"type":"timestamp_bound","taskId":"job-1-a","timestampBoundMs":3,"done":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Config{JobID: "job-1", Tasks: twoTasks, Window: 5 * time.Second, StallTimeout: 30 * time.Second, Log: testLog()}
		t0 := time.Unix(0, 0)
		c := newCore(&cfg, nil, t0)
		feed := &checkingFeeder{t: t, next: map[string]int64{}, last: map[string]graph.Timestamp{}, bounds: map[string]graph.Timestamp{}}
		c.feed = feed
		c.late = func(int64, metastore.Result) error { return nil }
		now := t0
		lines := bufio.NewScanner(bytes.NewReader(data))
		lines.Buffer(nil, 1<<16)
		for off := int64(0); lines.Scan(); off++ {
			if err := fuzzLine(c, off, lines.Bytes(), &now); err != nil {
				t.Fatal(err)
			}
		}
		if feed.closed && feed.next[c.tasks[0].input] != feed.next[c.tasks[1].input] {
			t.Fatalf("closed with %v windows fed", feed.next)
		}
	})
}

// fuzzLine applies one line of the fuzz target's input.
func fuzzLine(c *core, off int64, line []byte, now *time.Time) error {
	key, value, _ := bytes.Cut(line, []byte(" "))
	if string(key) == "tick" {
		if s, err := strconv.ParseUint(string(value), 10, 16); err == nil {
			*now = now.Add(time.Duration(s) * time.Second)
			return c.tick(*now)
		}
		return nil
	}
	msg, err := protocol.Decode(key, value)
	if err != nil {
		return nil
	}
	switch m := msg.(type) {
	case *protocol.EngineOutput:
		return c.result(off, m.TaskID, c.resultOf(m), *now)
	case *protocol.TimestampBound:
		return c.bound(off, m.TaskID, m.TimestampBoundMs, m.Done, *now)
	}
	return nil
}

// FuzzCoreOps is FuzzCoreRecords with a compact input the fuzzer mutates
// well: 10 bytes an operation (kind, task, two 32-bit values). Kinds:
// 0 a bound, 1 a done bound, 2 an output, 3 a tick of the first value in
// milliseconds; a value is 24 bits of milliseconds, or past the largest
// time accepted when its first byte's top bit is set.
func FuzzCoreOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 0, 0, 3, 232, 0, 0, 27, 88, 0, 0, 0, 0, 78, 32, 0, 0, 0, 0,
		3, 0, 0, 0, 117, 48, 0, 0, 0, 0, 1, 1, 0, 0, 97, 168, 0, 0, 0, 0, 1, 0, 0, 0, 97, 168, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Config{JobID: "job-1", Tasks: twoTasks, Window: 5 * time.Second, StallTimeout: 10 * time.Second, Log: testLog()}
		now := time.Unix(0, 0)
		c := newCore(&cfg, nil, now)
		feed := &checkingFeeder{t: t, next: map[string]int64{}, last: map[string]graph.Timestamp{}, bounds: map[string]graph.Timestamp{}}
		c.feed, c.late = feed, func(int64, metastore.Result) error { return nil }
		for off := int64(0); len(data) >= 10; off++ {
			op := data[:10]
			data = data[10:]
			if err := fuzzOp(c, off, op, &now); err != nil {
				t.Fatal(err)
			}
		}
		if feed.closed && feed.next[c.tasks[0].input] != feed.next[c.tasks[1].input] {
			t.Fatalf("closed with %v windows fed", feed.next)
		}
	})
}

func fuzzOp(c *core, off int64, op []byte, now *time.Time) error {
	task := twoTasks[int(op[1])%2].ID
	value := func(b []byte) int64 {
		v := int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
		if b[0]&0x80 != 0 { // past the largest time accepted
			return maxTimeMs + 1 + v
		}
		return v // up to 4.6 hours: the fuzzer is not slowed by legitimately long jobs
	}
	a, b := value(op[2:6]), value(op[6:10])
	switch op[0] % 4 {
	case 0, 1:
		return c.bound(off, task, a, op[0]%4 == 1, *now)
	case 2:
		r := metastore.Result{Engine: "x", ChunkUUID: strconv.FormatInt(b%7, 10), StartMs: a, EndMs: a + b%100000}
		return c.result(off, task, r, *now)
	}
	*now = now.Add(time.Duration(a%100000) * time.Millisecond)
	return c.tick(*now)
}

// TestHugeTimesAreCapped: a job whose records reach the largest time
// accepted ends after maxWindows windows; beyond it, records are refused.
func TestHugeTimesAreCapped(t *testing.T) {
	cfg := Config{JobID: "job-1", Tasks: twoTasks, Window: time.Second, StallTimeout: time.Second, Log: testLog()}
	now := time.Unix(0, 0)
	c := newCore(&cfg, nil, now)
	feed := &checkingFeeder{t: t, next: map[string]int64{}, last: map[string]graph.Timestamp{}, bounds: map[string]graph.Timestamp{}}
	c.feed, c.late = feed, func(int64, metastore.Result) error { return nil }
	steps := []func() error{
		func() error { return c.bound(0, "job-1-a", 0, false, now) },
		func() error { return c.bound(1, "job-1-b", 0, false, now) },
		func() error { return c.bound(2, "job-1-a", maxTimeMs+1, true, now) }, // refused
		func() error {
			return c.result(3, "job-1-b", metastore.Result{Engine: "b", ChunkUUID: "c", EndMs: maxTimeMs}, now)
		},
		func() error { return c.bound(4, "job-1-a", maxTimeMs, true, now) },
		func() error { return c.bound(5, "job-1-b", maxTimeMs, true, now) },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if !feed.closed || feed.next["task0"] != maxWindows || feed.next["task1"] != maxWindows {
		t.Fatalf("closed %v after %v windows, want %d each", feed.closed, feed.next, maxWindows)
	}
}
