// Package bustest is an in-memory bus.Bus for unit tests: topics with
// partitions, keyed placement, consumer groups with committed offsets,
// topic creation, and failures on demand, with no broker. Tests that need
// Kafka's own behaviour (rebalancing, retention, crashes) use the embedded
// broker (bus.StartBroker) instead.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// Bus is an in-memory bus.Bus. The zero value is not usable; call New.
//
// It follows bus.Client's contract where a unit test can tell:
//
//   - Produce and ProduceAsync store copies of the records at once;
//     ProduceAsync calls done before it returns. A topic that does not
//     exist is created with one partition, as the embedded broker does.
//   - Records with a key go to the partition Kafka's murmur2 hash gives,
//     the placement bus.Client uses; records without one rotate over the
//     partitions. Offsets count from 0 per partition.
//   - Consume hands records to the handler one at a time, in offset order
//     within a partition. With a group, each partition belongs to the
//     first member that reads it until that member's Consume returns, and
//     an offset is committed as soon as its handler returns nil, so a
//     later Consume in the group resumes after it; a record the handler
//     deferred (bus.Record.Defer) holds its partition's commit back until
//     it is acknowledged, and at most MaxDeferred are outstanding; an
//     acknowledgement after the member left does nothing. A handler error
//     stops Consume with a *bus.RecordError and leaves the record
//     uncommitted; with a group, a record over MaxRecordBytes, a
//     bus.Permanent error and a panic dead-letter the record instead. Without a group every partition is read and nothing is
//     committed. FromBeginning, UntilEOF and IdleTimeout behave as for
//     bus.Client; MaxPollRecords is ignored. Partitions are not moved
//     between live members (there is no rebalancing). TopicPattern,
//     OnAssigned and OnRevoked are refused.
//   - Close stops every Consume (they return nil); afterwards produce and
//     consume calls fail with bus.ErrClosed.
type Bus struct {
	mu       sync.Mutex
	topics   map[string]*topic
	groups   map[string]*group
	changed  chan struct{} // closed and replaced whenever anything changes
	closed   bool
	failWith error
	members  int
	log      []*bus.Record // every record stored, in order
}

type topic struct {
	parts [][]*bus.Record
	next  int // round-robin partition for records without a key
}

type tp struct {
	topic string
	part  int32
}

type group struct {
	committed map[tp]int64 // the next offset to read
	owner     map[tp]int   // member id
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{topics: map[string]*topic{}, groups: map[string]*group{}, changed: make(chan struct{})}
}

var _ bus.Bus = (*Bus)(nil)

// notify wakes consumers. b.mu is held.
func (b *Bus) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// FailProduce makes every later Produce and ProduceAsync fail with err
// (nothing is stored) until it is called with nil.
func (b *Bus) FailProduce(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failWith = err
}

// Close stops every Consume and refuses later calls with bus.ErrClosed.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.notify()
	}
}

// Produce implements bus.Bus: it stores the records, filling in their
// Partition, Offset and (when zero) Timestamp, or fails them all.
func (b *Bus) Produce(ctx context.Context, recs ...*bus.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range recs {
		if err := b.storeLocked(r); err != nil {
			return err
		}
	}
	return nil
}

// ProduceAsync implements bus.Bus: it stores rec and calls done before
// returning.
func (b *Bus) ProduceAsync(rec *bus.Record, done func(*bus.Record, error)) {
	b.mu.Lock()
	err := b.storeLocked(rec)
	b.mu.Unlock()
	if done != nil {
		done(rec, err)
	}
}

// Flush implements bus.Bus; nothing is ever held back.
func (b *Bus) Flush(ctx context.Context) error { return ctx.Err() }

// storeLocked appends a copy of r to its topic. b.mu is held.
func (b *Bus) storeLocked(r *bus.Record) error {
	switch {
	case b.closed:
		return bus.ErrClosed
	case b.failWith != nil:
		return fmt.Errorf("produce to topic %s: %w", r.Topic, b.failWith)
	}
	if err := protocol.ValidateTopic(r.Topic); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	t := b.topicLocked(r.Topic, 1)
	n := len(t.parts)
	p := 0
	if r.Key != nil {
		p = keyPartitioner.ForTopic(r.Topic).Partition(&kgo.Record{Key: r.Key}, n)
	} else {
		p, t.next = t.next%n, t.next+1
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	r.Partition, r.Offset = int32(p), int64(len(t.parts[p]))
	c := clone(r)
	t.parts[p] = append(t.parts[p], c)
	b.log = append(b.log, c)
	b.notify()
	return nil
}

// keyPartitioner places keyed records as bus.Client does: murmur2 of the
// key, like Kafka's Java client.
var keyPartitioner = kgo.StickyKeyPartitioner(nil)

func clone(r *bus.Record) *bus.Record {
	c := *r
	c.Key = slices.Clone(r.Key)
	c.Value = slices.Clone(r.Value)
	c.Headers = slices.Clone(r.Headers)
	for i := range c.Headers {
		c.Headers[i].Value = slices.Clone(c.Headers[i].Value)
	}
	return &c
}

// topicLocked returns topic name, creating it with partitions when it does
// not exist. b.mu is held.
func (b *Bus) topicLocked(name string, partitions int32) *topic {
	t := b.topics[name]
	if t == nil {
		t = &topic{parts: make([][]*bus.Record, partitions)}
		b.topics[name] = t
		b.notify()
	}
	return t
}

// CreateTopic implements bus.Bus: partitions is positive, or -1 for the
// default of one; an existing topic is left as it is.
func (b *Bus) CreateTopic(ctx context.Context, name string, partitions int32) error {
	if err := protocol.ValidateTopic(name); err != nil {
		return err
	}
	if partitions == 0 || partitions < -1 {
		return fmt.Errorf("create topic %s: partitions %d: must be positive or -1", name, partitions)
	}
	if partitions == -1 {
		partitions = 1
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bus.ErrClosed
	}
	b.topicLocked(name, partitions)
	return nil
}

// DeleteTopic deletes topic and its records; a missing topic is no error.
// Committed offsets of groups stay, as Kafka keeps them until they expire.
func (b *Bus) DeleteTopic(ctx context.Context, name string) error {
	if err := protocol.ValidateTopic(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bus.ErrClosed
	}
	delete(b.topics, name)
	return nil
}

// ForgetTopic does nothing: the fake keeps no metrics.
func (b *Bus) ForgetTopic(string) {}

// Topics lists the topics that exist, sorted.
func (b *Bus) Topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.topics))
	for name := range b.topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Partitions returns how many partitions topic has, 0 when it does not
// exist.
func (b *Bus) Partitions(topic string) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.topics[topic]; t != nil {
		return int32(len(t.parts))
	}
	return 0
}

// Records returns copies of the records of topic: partition 0's in offset
// order, then partition 1's, and so on.
func (b *Bus) Records(topic string) []*bus.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*bus.Record
	if t := b.topics[topic]; t != nil {
		for _, p := range t.parts {
			for _, r := range p {
				out = append(out, clone(r))
			}
		}
	}
	return out
}

// All returns copies of every record stored, of every topic, in the order
// they were produced.
func (b *Bus) All() []*bus.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*bus.Record, len(b.log))
	for i, r := range b.log {
		out[i] = clone(r)
	}
	return out
}

// Committed returns the offset group will read next in a partition, and
// whether the group committed anything there.
func (b *Bus) Committed(groupName, topic string, partition int32) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.groups[groupName]
	if g == nil {
		return 0, false
	}
	o, ok := g.committed[tp{topic, partition}]
	return o, ok
}

// defaultMaxDeferred is bus.ConsumeOptions.MaxDeferred's default.
const defaultMaxDeferred = 256

// Consume implements bus.Bus. TopicPattern, OnAssigned and OnRevoked are
// not supported (an error says so): tests of them use the embedded broker.
func (b *Bus) Consume(ctx context.Context, opts bus.ConsumeOptions) error {
	switch {
	case opts.TopicPattern != "" || opts.OnAssigned != nil || opts.OnRevoked != nil:
		return errors.New("bustest: TopicPattern, OnAssigned and OnRevoked are not supported; use the embedded broker (bus.StartBroker)")
	case len(opts.Topics) == 0:
		return errors.New("consume: no topics")
	case opts.Handler == nil:
		return errors.New("consume: no handler")
	}
	for _, t := range opts.Topics {
		if err := protocol.ValidateTopic(t); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
	}
	if opts.MaxDeferred <= 0 {
		opts.MaxDeferred = defaultMaxDeferred
	}
	c, err := b.join(opts)
	if err != nil {
		return err
	}
	defer c.leave()
	return c.run(ctx)
}

// consumer is one Consume call. Its fields are guarded by b.mu.
type consumer struct {
	b      *Bus
	opts   bus.ConsumeOptions
	id     int
	g      *group                // nil without a group
	pos    map[tp]int64          // the next offset to hand out, per partition read
	out    map[tp]map[int64]bool // deferred records not yet acknowledged
	nOut   int                   // how many there are
	startE map[tp]int64          // partition ends when Consume started ("latest")
	eof    map[tp]int64          // UntilEOF: partitions still to read up to their end
	rr     int                   // rotates which partition is looked at first
	left   bool                  // Consume returned: acknowledgements do nothing
}

func (b *Bus) join(opts bus.ConsumeOptions) (*consumer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	b.members++
	c := &consumer{b: b, opts: opts, id: b.members, pos: map[tp]int64{}, out: map[tp]map[int64]bool{}, startE: map[tp]int64{}}
	if opts.Group != "" {
		c.g = b.groups[opts.Group]
		if c.g == nil {
			c.g = &group{committed: map[tp]int64{}, owner: map[tp]int{}}
			b.groups[opts.Group] = c.g
		}
	}
	for _, name := range opts.Topics {
		t := b.topics[name]
		if t == nil {
			if opts.UntilEOF {
				return nil, fmt.Errorf("consume topic %s until end: topic does not exist", name)
			}
			continue
		}
		for p, recs := range t.parts {
			c.startE[tp{name, int32(p)}] = int64(len(recs))
		}
	}
	if opts.UntilEOF {
		c.eof = map[tp]int64{}
		for k, end := range c.startE {
			if c.startLocked(k) < end {
				c.eof[k] = end
			}
		}
	}
	return c, nil
}

// leave gives up the partitions the consumer owns; records it deferred
// and did not acknowledge stay uncommitted, for the group's next member.
func (c *consumer) leave() {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	c.left = true
	if c.g == nil {
		return
	}
	for k, id := range c.g.owner {
		if id == c.id {
			delete(c.g.owner, k)
		}
	}
	c.b.notify()
}

// startLocked is where reading a partition starts.
func (c *consumer) startLocked(k tp) int64 {
	if c.g != nil {
		if o, ok := c.g.committed[k]; ok {
			return o
		}
	}
	if c.opts.FromBeginning {
		return 0
	}
	return c.startE[k] // 0 for partitions created after Consume started
}

// nextLocked returns the consumer's next record, if one is ready.
func (c *consumer) nextLocked() *bus.Record {
	if c.nOut >= c.opts.MaxDeferred {
		return nil // wait for an acknowledgement
	}
	var parts []tp
	for _, name := range c.opts.Topics {
		if t := c.b.topics[name]; t != nil {
			for p := range t.parts {
				parts = append(parts, tp{name, int32(p)})
			}
		}
	}
	for i := range parts {
		k := parts[(c.rr+i)%len(parts)]
		if c.g != nil {
			if id, ok := c.g.owner[k]; ok && id != c.id {
				continue
			}
			c.g.owner[k] = c.id
		}
		at, ok := c.pos[k]
		if !ok {
			at = c.startLocked(k)
			c.pos[k] = at
		}
		recs := c.b.topics[k.topic].parts[k.part]
		if at < int64(len(recs)) {
			c.rr = (c.rr + i + 1) % len(parts)
			return clone(recs[at])
		}
	}
	return nil
}

// handledLocked moves past r, which the handler deferred or not.
func (c *consumer) handledLocked(r *bus.Record, deferred bool) {
	k := tp{r.Topic, r.Partition}
	c.pos[k] = r.Offset + 1
	if deferred {
		if c.out[k] == nil {
			c.out[k] = map[int64]bool{}
		}
		c.out[k][r.Offset] = true
		c.nOut++
	}
	c.commitLocked(k)
	if end, ok := c.eof[k]; ok && r.Offset+1 >= end {
		delete(c.eof, k)
	}
}

// commitLocked commits a group partition up to its first deferred record
// not yet acknowledged, or up to what was handed out.
func (c *consumer) commitLocked(k tp) {
	if c.g == nil {
		return
	}
	next := c.pos[k]
	for off := range c.out[k] {
		next = min(next, off)
	}
	c.g.committed[k] = next
}

// ack acknowledges a deferred record, unless the consumer is gone.
func (c *consumer) ack(k tp, offset int64) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.left || !c.out[k][offset] {
		return
	}
	delete(c.out[k], offset)
	c.nOut--
	c.commitLocked(k)
	c.b.notify()
}

func (c *consumer) run(ctx context.Context) error {
	if c.eof != nil && len(c.eof) == 0 {
		return nil
	}
	idle := time.Now()
	for {
		c.b.mu.Lock()
		if c.b.closed {
			c.b.mu.Unlock()
			return nil
		}
		r := c.nextLocked()
		wait := c.b.changed
		c.b.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		if r == nil {
			if !c.wait(ctx, wait, idle) {
				return nil
			}
			continue
		}
		deferred := false
		if c.g != nil {
			k, offset := tp{r.Topic, r.Partition}, r.Offset
			bus.SetDefer(r, func() func() {
				deferred = true
				return func() { c.ack(k, offset) }
			})
		}
		if err := c.callChecked(ctx, r); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // stopped while handling: redeliver, no failure
			}
			return &bus.RecordError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		idle = time.Now()
		c.b.mu.Lock()
		c.handledLocked(r, deferred)
		done := c.eof != nil && len(c.eof) == 0
		c.b.mu.Unlock()
		if done {
			return nil
		}
	}
}

// wait waits for a change on the bus; false means stop: ctx ended or
// nothing arrived for IdleTimeout since idle.
func (c *consumer) wait(ctx context.Context, changed <-chan struct{}, idle time.Time) bool {
	var timeout <-chan time.Time
	if c.opts.IdleTimeout > 0 {
		left := c.opts.IdleTimeout - time.Since(idle)
		if left <= 0 {
			return false
		}
		timer := time.NewTimer(left)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-timeout:
		return false
	case <-changed:
		return true
	}
}

// callChecked runs the handler as bus.Client does: with a group, a record
// over MaxRecordBytes, a bus.Permanent error and a panic dead-letter the
// record (to protocol.DeadLetterTopic, with the reason header) instead of
// failing.
func (c *consumer) callChecked(ctx context.Context, r *bus.Record) error {
	limit := c.opts.MaxRecordBytes
	if limit <= 0 {
		limit = bus.DefaultMaxRecordBytes
	}
	size := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value)
	}
	var err error
	if size > limit {
		err = bus.Permanent(fmt.Errorf("record of %d bytes is over the %d-byte limit", size, limit))
	} else {
		err = c.call(ctx, r)
	}
	if err == nil || c.g == nil || !bus.IsPermanent(err) {
		return err
	}
	dead := &bus.Record{Topic: protocol.DeadLetterTopic(r.Topic), Key: r.Key, Value: r.Value,
		Headers: append(append([]bus.Header{}, r.Headers...),
			bus.Header{Key: protocol.HeaderDeadLetterTopic, Value: []byte(r.Topic)},
			bus.Header{Key: protocol.HeaderDeadLetterReason, Value: []byte(err.Error())})}
	return c.b.Produce(ctx, dead)
}

// call runs the handler, turning a panic into a bus.Permanent error as
// bus.Client does.
func (c *consumer) call(ctx context.Context, r *bus.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = bus.Permanent(fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack()))
		}
	}()
	return c.opts.Handler(ctx, r)
}
