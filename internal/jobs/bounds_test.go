package jobs

import (
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// laneBound is the lane's chunk-sequence bound, -1 while none.
func laneBound(l *lane) int64 {
	ms, ok := l.seq.advance(l.finished)
	if !ok {
		return -1
	}
	return ms
}

// TestLaneBoundIsTheEndOfTheSettledRun: the bound of a chunk task is the
// end of the chunks settled from the first one on, whatever settled them:
// an answer without output, a failure after the retries, a drop on a live
// source. A chunk answered early waits for the ones before it.
func TestLaneBoundIsTheEndOfTheSettledRun(t *testing.T) {
	pol := testPolicy()
	pol.maxInFlight, pol.maxBacklog, pol.retries = 1, 2, 0
	l := newLane("e", "chunk_e", pol, false, nil)
	now := time.Unix(100, 0)
	for i := range int64(3) {
		l.offer(chunkAt(i))
	}
	if b := laneBound(l); b != -1 {
		t.Fatalf("bound %d before any answer", b)
	}
	l.next(now)
	l.answer(status("c0", protocol.ChunkSuccess, "")) // nothing found: no engine_output
	if b := laneBound(l); b != 2000 {
		t.Fatalf("after an empty chunk: bound %d, want 2000", b)
	}
	l.next(now)
	l.answer(status("c2", protocol.ChunkSuccess, "")) // answered before c1 was even sent
	if b := laneBound(l); b != 2000 {
		t.Fatalf("c2 answered before c1: bound %d, want 2000", b)
	}
	l.answer(status("c1", protocol.ChunkError, "broken")) // no retries left: failed
	if b := laneBound(l); b != 6000 {
		t.Fatalf("after a failed chunk: bound %d, want 6000 (c2 already settled)", b)
	}

	// A live lane drops the oldest queued chunks to keep up; each drop
	// settles its chunk.
	live := newLane("e", "chunk_e", pol, true, nil)
	live.offer(chunkAt(0))
	live.next(now) // c0 in flight
	for i := int64(1); i <= 4; i++ {
		live.offer(chunkAt(i))
	}
	live.answer(status("c0", protocol.ChunkSuccess, ""))
	if b := laneBound(live); b != 8000 {
		t.Fatalf("live lane after drops: bound %d, want 8000 (c1 to c3 dropped, c4 queued)", b)
	}
	// A chunk timed out on its only try fails and settles too.
	live.next(now)
	changed, _ := live.expire(now.Add(2 * time.Minute))
	if len(changed) != 1 || laneBound(live) != 10000 {
		t.Fatalf("after a timeout: %d changed, bound %d, want 10000", len(changed), laneBound(live))
	}
}

// TestBoundsAreHeldUntilAWindowOrASecond: a bound is sent at once when it
// enters a new window, otherwise at most once a second; never lower than
// sent.
func TestBoundsAreHeldUntilAWindowOrASecond(t *testing.T) {
	ru := &run{job: metastore.Job{ID: "job-1"}, req: Request{Aggregate: Aggregate{Window: "5s"}}, bounds: map[string]*taskBound{},
		tasks: map[string]*metastore.Task{"e": {ID: "job-1-e"}}}
	l := newLane("e", "chunk_e", testPolicy(), false, nil)
	t0 := time.Unix(100, 0)
	steps := []struct {
		ms   int64
		at   time.Duration
		want int64 // -1: nothing sent
	}{
		{1000, 0, 1000},                      // the first is sent
		{2000, 100 * time.Millisecond, -1},   // same window, too soon
		{4999, 200 * time.Millisecond, -1},   // same window
		{5000, 300 * time.Millisecond, 5000}, // a new window
		{6000, 1400 * time.Millisecond, 6000},
		{3000, 3 * time.Second, -1}, // lower: nothing new
	}
	for _, s := range steps {
		m := ru.noteBound(l, s.ms, t0.Add(s.at))
		switch {
		case s.want == -1 && m != nil:
			t.Fatalf("bound %d at %v sent %d", s.ms, s.at, m.TimestampBoundMs)
		case s.want != -1 && (m == nil || m.TimestampBoundMs != s.want || m.TaskID != "job-1-e" || m.Done):
			t.Fatalf("bound %d at %v: sent %+v, want %d", s.ms, s.at, m, s.want)
		}
	}
}
