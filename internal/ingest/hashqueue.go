package ingest

import (
	"crypto/md5"
	"encoding"
	"fmt"
	"hash"
	"sync"
)

// hashQueueBytes bounds the raw_stream bytes waiting for the hasher: beyond
// it the writer waits, so a hasher slower than the broker cannot let the
// records it still has to read pile up in memory.
const hashQueueBytes = 16 << 20

// hashQueueRecords bounds the records waiting for the hasher, so tiny
// chunks do not make a huge queue.
const hashQueueRecords = 4096

// hashSlot is one raw_stream record's place in the stream's MD5: the hasher
// fills state, the MD5 state after the record's bytes, and then marks the
// slot done by advancing hashQueue.hashed past seq.
type hashSlot struct {
	q     *hashQueue
	seq   uint64
	data  []byte // the record's value; nothing writes to it
	state []byte // set by the hasher before hashed reaches seq
}

// hashQueue computes a stream's MD5 on its own goroutine, in record order,
// so hashing (the costliest step of ingest, about 750 MB/s) overlaps with
// building and producing records instead of adding to them. The writer
// pushes every raw_stream record; the acknowledgement of a record keeps its
// slot, and whoever needs the MD5 of the acknowledged bytes waits for that
// slot, which comes soon after: the hasher is never far behind.
type hashQueue struct {
	jobs chan *hashSlot // nil when push hashes inline
	sum  hash.Hash      // the hasher's only
	next uint64         // seq of the next pushed slot; the writer's only (under its mutex)

	mu     sync.Mutex
	cond   *sync.Cond
	hashed uint64 // every slot with a lower seq is done
	done   bool   // the hasher has stopped
}

// newHashQueue starts a hasher whose queue holds about hashQueueBytes of
// chunkSize records, and at most hashQueueRecords. stop ends it. With
// inline, there is no hasher: push hashes each record before returning.
func newHashQueue(chunkSize int, inline bool) *hashQueue {
	q := &hashQueue{sum: md5.New()}
	q.cond = sync.NewCond(&q.mu)
	if inline {
		return q
	}
	q.jobs = make(chan *hashSlot, min(hashQueueRecords, max(1, hashQueueBytes/max(chunkSize, 1))))
	go q.run()
	return q
}

// push queues data, which must not change afterwards, and returns its slot.
// It waits while the queue is full. Calls must not overlap with each other
// or with stop.
func (q *hashQueue) push(data []byte) *hashSlot {
	s := &hashSlot{q: q, seq: q.next, data: data}
	q.next++
	if q.jobs == nil {
		q.hash(s)
		return s
	}
	q.jobs <- s
	return s
}

// stop lets the hasher finish what is queued and end. No push may follow.
func (q *hashQueue) stop() {
	if q.jobs == nil {
		q.finish()
		return
	}
	close(q.jobs)
}

func (q *hashQueue) run() {
	defer q.finish()
	for s := range q.jobs {
		q.hash(s)
	}
}

// hash adds s's bytes to the sum, keeps the state after them in s and marks
// s done.
func (q *hashQueue) hash(s *hashSlot) {
	q.sum.Write(s.data)
	state, err := q.sum.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("ingest: saving MD5 state: %v", err)) // crypto/md5 always can
	}
	s.state, s.data = state, nil
	q.mu.Lock()
	q.hashed = s.seq + 1
	q.cond.Broadcast()
	q.mu.Unlock()
}

// finish marks the hasher stopped.
func (q *hashQueue) finish() {
	q.mu.Lock()
	q.done = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// state waits until s is hashed and returns the MD5 state after its bytes.
func (q *hashQueue) state(s *hashSlot) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.hashed <= s.seq {
		if q.done {
			// Unreachable: every pushed slot is hashed before the
			// hasher stops.
			panic("ingest: MD5 state of a record the hasher never saw")
		}
		q.cond.Wait()
	}
	return s.state
}
