package jobs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

func testPolicy() lanePolicy {
	return lanePolicy{maxInFlight: 2, maxBacklog: 3, retries: 2, chunkTimeout: time.Minute, silence: 15 * time.Second}
}

// chunkAt is the i-th 2-second chunk.
func chunkAt(i int64) *work {
	return &work{kind: "video", msg: &protocol.MediaChunk{ChunkIndex: i, StartOffsetMs: 2000 * i,
		EndOffsetMs: 2000 * (i + 1), ChunkUUID: fmt.Sprintf("c%d", i), Header: protocol.Header{TaskID: "t"}}}
}

func status(uuid string, s protocol.ChunkStatus, msg string) *protocol.ChunkProcessedStatus {
	return &protocol.ChunkProcessedStatus{ChunkUUID: uuid, Status: s, ErrorMsg: msg}
}

func uuids(ws []*work) string {
	var s []string
	for _, w := range ws {
		s = append(s, w.uuid())
	}
	return strings.Join(s, ",")
}

func TestLaneKeepsAtMostMaxInFlight(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), false, nil)
	now := time.Unix(100, 0)
	for i := range int64(5) {
		if queued, dropped := l.offer(chunkAt(i)); !queued || dropped != nil {
			t.Fatalf("offer %d = %v, %v", i, queued, dropped)
		}
	}
	if got := uuids(l.next(now)); got != "c0,c1" {
		t.Fatalf("first sends = %s, want c0,c1", got)
	}
	if got := l.next(now); len(got) != 0 {
		t.Fatalf("sent %s past MaxInFlight", uuids(got))
	}
	w, retry := l.answer(status("c1", protocol.ChunkSuccess, ""))
	if w == nil || retry || w.state != metastore.ChunkDone {
		t.Fatalf("answer c1 = %+v, %v", w, retry)
	}
	if got := uuids(l.next(now)); got != "c2" {
		t.Fatalf("after one answer sends = %s, want c2", got)
	}
	if l.idle() {
		t.Fatal("idle with chunks in flight")
	}
}

func TestLaneOnVODNeverDrops(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), false, nil)
	for i := range int64(100) {
		if _, dropped := l.offer(chunkAt(i)); len(dropped) > 0 {
			t.Fatalf("VOD lane dropped %s", uuids(dropped))
		}
	}
	if len(l.queue) != 100 {
		t.Fatalf("queue %d, want 100", len(l.queue))
	}
}

// TestLaneOnLiveDropsTheOldest: a live lane holds MaxBacklog chunks; each
// new one beyond pushes out the oldest queued chunk, with the lag in the
// reason, and the newest chunks are the ones that get sent.
func TestLaneOnLiveDropsTheOldest(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), true, nil)
	now := time.Unix(100, 0)
	var dropped []*work
	for i := range int64(10) {
		_, d := l.offer(chunkAt(i))
		dropped = append(dropped, d...)
		l.next(now)
	}
	// c0, c1 in flight (never answered); c2..c8 dropped one by one; c9 queued.
	if got := uuids(dropped); got != "c2,c3,c4,c5,c6,c7,c8" {
		t.Fatalf("dropped %s", got)
	}
	last := dropped[len(dropped)-1]
	if last.state != metastore.ChunkDropped || last.info != "dropped: engine 20.0 s behind live" {
		t.Fatalf("last drop: state %s, info %q", last.state, last.info)
	}
	if len(l.queue)+len(l.inflight) != 3 || l.queue[0].uuid() != "c9" {
		t.Fatalf("backlog %d (queue head %s), want 3 with c9 queued", len(l.queue)+len(l.inflight), l.queue[0].uuid())
	}
	// A chunk dropped is finished: cut again (after a restart), it is not offered.
	if queued, _ := l.offer(chunkAt(3)); queued {
		t.Fatal("a dropped chunk was queued again")
	}
}

func TestLaneRetriesErrorsThenFails(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), false, nil)
	now := time.Unix(100, 0)
	l.offer(chunkAt(0))
	for attempt := 1; attempt <= 3; attempt++ {
		if got := uuids(l.next(now)); got != "c0" {
			t.Fatalf("attempt %d sends %q", attempt, got)
		}
		w, retry := l.answer(status("c0", protocol.ChunkError, "tesseract crashed"))
		if attempt < 3 && (!retry || w.state != metastore.ChunkQueued) {
			t.Fatalf("attempt %d: retry %v state %s", attempt, retry, w.state)
		}
		if attempt == 3 && (retry || w.state != metastore.ChunkFailed || w.info != "tesseract crashed (after 3 attempts)") {
			t.Fatalf("last attempt: retry %v state %s info %q", retry, w.state, w.info)
		}
	}
	if !l.idle() {
		t.Fatal("a failed chunk left the lane busy")
	}
	// A late duplicate answer changes nothing.
	if w, _ := l.answer(status("c0", protocol.ChunkSuccess, "")); w != nil {
		t.Fatalf("duplicate answer applied to %s", w.uuid())
	}
}

func TestLaneIgnoredAndErrorWithoutMessage(t *testing.T) {
	l := newLane("e", "chunk_e", lanePolicy{maxInFlight: 2, maxBacklog: 3, chunkTimeout: time.Minute, silence: time.Minute}, false, nil)
	now := time.Unix(100, 0)
	l.offer(chunkAt(0))
	l.offer(chunkAt(1))
	l.next(now)
	st := status("c0", protocol.ChunkIgnored, "")
	st.InfoMsg = "no audio"
	if w, _ := l.answer(st); w.state != metastore.ChunkIgnored || w.info != "no audio" {
		t.Fatalf("ignored: %s %q", w.state, w.info)
	}
	if w, retry := l.answer(status("c1", protocol.ChunkError, "")); retry || w.state != metastore.ChunkFailed ||
		!strings.Contains(w.info, "without a message") {
		t.Fatalf("error with no retries: retry %v %s %q", retry, w.state, w.info)
	}
}

func TestLaneExpiresOverdueChunks(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), false, nil)
	start := time.Unix(100, 0)
	l.offer(chunkAt(0))
	l.next(start)
	if changed, _ := l.expire(start.Add(59 * time.Second)); len(changed) != 0 {
		t.Fatal("expired before the chunk timeout")
	}
	changed, _ := l.expire(start.Add(time.Minute))
	if len(changed) != 1 || changed[0].state != metastore.ChunkQueued || !strings.Contains(changed[0].info, "no answer within 1m0s") {
		t.Fatalf("expire = %+v", changed)
	}
}

// TestLaneMarksSilentInstancesDown: an instance that stops heartbeating
// for the silence limit is marked down, and the chunks sent before are
// sent again for another instance.
func TestLaneMarksSilentInstancesDown(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), false, nil)
	start := time.Unix(100, 0)
	l.heartbeat("e-1", start)
	l.offer(chunkAt(0))
	l.next(start)
	if _, down := l.expire(start.Add(10 * time.Second)); len(down) != 0 {
		t.Fatal("marked down too early")
	}
	changed, down := l.expire(start.Add(16 * time.Second))
	if len(down) != 1 || down[0] != "e-1" {
		t.Fatalf("down = %v", down)
	}
	if len(changed) != 1 || !strings.Contains(changed[0].info, "e-1 silent") {
		t.Fatalf("changed = %+v", changed)
	}
	if got := uuids(l.next(start.Add(16 * time.Second))); got != "c0" {
		t.Fatalf("resent %q", got)
	}
}

func TestLaneSkipsChunksFinishedInAnEarlierRun(t *testing.T) {
	l := newLane("e", "chunk_e", testPolicy(), false, map[string]metastore.ChunkState{"c0": metastore.ChunkDone})
	if queued, _ := l.offer(chunkAt(0)); queued {
		t.Fatal("a done chunk was queued")
	}
	if queued, _ := l.offer(chunkAt(1)); !queued {
		t.Fatal("a new chunk was not queued")
	}
	// An answer from an earlier run's send for a chunk still queued here.
	if w, _ := l.answer(status("c1", protocol.ChunkSuccess, "")); w == nil || w.state != metastore.ChunkDone || !l.idle() {
		t.Fatalf("answer to a queued chunk = %+v, idle %v", w, l.idle())
	}
}
