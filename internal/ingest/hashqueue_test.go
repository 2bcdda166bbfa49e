package ingest

import (
	"crypto/md5"
	"encoding"
	"fmt"
	"testing"
)

// TestHashQueueGivesEachRecordTheStateAfterItsBytes checks the hasher
// against crypto/md5 run inline: for records of several sizes, pushed
// faster than they are hashed (the queue holds fewer than are pushed), the
// state of each slot, read after the hasher stopped or while it still
// runs, is the MD5 state after exactly the bytes up to that record. An
// inline queue (no hasher goroutine) gives the same states.
func TestHashQueueGivesEachRecordTheStateAfterItsBytes(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) { testHashQueueStates(t, inline) })
	}
}

func testHashQueueStates(t *testing.T, inline bool) {
	const chunk = 4 << 20 // a queue of 4 records
	q := newHashQueue(chunk, inline)
	want := md5.New()
	var slots []*hashSlot
	var states [][]byte
	for i := range 40 {
		data := randomBytes(1+i*997%chunk, uint64(i))
		want.Write(data)
		st, err := want.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
		slots = append(slots, q.push(data))
		if i == 20 {
			if got := q.state(slots[10]); string(got) != string(states[10]) {
				t.Fatalf("record 10, read while hashing: state differs from crypto/md5's")
			}
		}
	}
	q.stop()
	for i, s := range slots {
		if got := q.state(s); string(got) != string(states[i]) {
			t.Fatalf("record %d: state differs from crypto/md5's", i)
		}
	}
	h := md5.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(q.state(slots[len(slots)-1])); err != nil {
		t.Fatal(err)
	}
	if got, w := fmt.Sprintf("%x", h.Sum(nil)), fmt.Sprintf("%x", want.Sum(nil)); got != w {
		t.Errorf("MD5 from the last state %s, want %s", got, w)
	}
}
