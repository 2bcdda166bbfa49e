package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-media/weir/protocol"
)

const (
	// defaultMaxPollRecords bounds how many records one poll hands to the
	// handler loop before their offsets are committed.
	defaultMaxPollRecords = 500

	// defaultMaxDeferred bounds the records a consumer keeps deferred
	// (Record.Defer) before it stops fetching more.
	defaultMaxDeferred = 256

	// commitTimeout bounds a commit; commits use a context detached from
	// the consume context, because the final commit happens after it is
	// cancelled.
	commitTimeout = 10 * time.Second

	// consumerMetadataMinAge is how soon a consumer asks again about a
	// topic that does not exist yet (kgo's default is 5 s): weir consumers
	// often start before the producer has created their stream topic.
	consumerMetadataMinAge = time.Second

	// consumerFetchMaxWait is how long the broker may hold a fetch that
	// has no data (Kafka's fetch.max.wait.ms default; kgo's is 5 s). A
	// partition whose start offset resolves just after a fetch went out
	// joins only the next fetch, so this bounds how late it starts.
	consumerFetchMaxWait = 500 * time.Millisecond

	// groupSessionTimeout is how long the group coordinator waits for a
	// silent member (a killed process) before giving its partitions to
	// the others; groupHeartbeat is how often members say they are alive.
	// Kafka's default session timeout is 45 s; weir's work (a live stream
	// being packaged) must move faster than that, and 6 s is the smallest
	// session timeout Kafka brokers accept by default
	// (group.min.session.timeout.ms).
	groupSessionTimeout = 6 * time.Second
	groupHeartbeat      = time.Second

	// patternRefresh is how often a TopicPattern consumer looks for new
	// matching topics.
	patternRefresh = time.Second
)

// ConsumeOptions configures Consume.
type ConsumeOptions struct {
	// Topics to read. Topics that do not exist yet are picked up (from
	// their first record) once they are created.
	Topics []string

	// TopicPattern, instead of Topics, reads every topic whose whole name
	// matches this regular expression, including topics created later
	// (found on the next metadata refresh, within about a second). With a
	// group, the matching topics' partitions are split between the
	// members: the live packager reads every stream topic this way with
	// one member per process.
	TopicPattern string

	// OnAssigned, if set, is called when partitions are given to this
	// consumer (with a group: after each rebalance; without: once the
	// topics are known), before any of their records is handled.
	// OnRevoked is called when partitions are taken away (a rebalance, the
	// group lost us, or Consume returning), after their handled records
	// were committed when that was still possible. Both run on the
	// consuming goroutine's behalf and must not block for long.
	OnAssigned func(topic string, partitions []int32)
	OnRevoked  func(topic string, partitions []int32)

	// Group is the consumer group to join. Consumers with the same group,
	// in this process or any other, split the topics' partitions between
	// them, and each partition resumes after the group's last committed
	// offset. Empty means no group: every partition of every topic is read
	// directly by this consumer and nothing is committed.
	Group string

	// FromBeginning starts at the oldest retained record where there is
	// nothing to resume from (no group, or no committed offset for the
	// partition yet). Otherwise consumption starts at the first record
	// produced after Consume was called ("latest"); partitions and topics
	// created after that are read from their beginning either way.
	FromBeginning bool

	// UntilEOF makes Consume return nil once every partition of Topics has
	// been handled up to the end offset it had when Consume started
	// (partitions with nothing to read at that moment count as done at
	// once), instead of waiting for more records. A topic that does not
	// exist is an error. Without FromBeginning and without a group there
	// is nothing before the end, so Consume returns at once. With a group,
	// UntilEOF expects this consumer to be the group's only member: it
	// waits for partitions given to other members until IdleTimeout.
	// Offsets are counted, so on a transactional topic (whose commit
	// markers take offsets of their own) set IdleTimeout too.
	UntilEOF bool

	// IdleTimeout, if positive, makes Consume return nil once no record
	// has arrived for that long.
	IdleTimeout time.Duration

	// MaxPollRecords bounds how many records are handled between two
	// commits; default 500.
	MaxPollRecords int

	// CommitInterval, if positive, makes a group consumer commit what it
	// handled at most this often instead of after every poll. A consumer
	// that polls a few records at a time (a live stream's records trickle
	// in) then sends one commit per interval instead of one per poll.
	// What it trades: after a crash, up to CommitInterval more of handled
	// records are delivered again, so handlers must tolerate duplicates
	// (as they must anyway). A rebalance, leaving the group, a handler
	// failure and the end of Consume still commit everything handled
	// first, and a consumer with handled records waiting does not wait
	// for new records longer than the interval before committing them.
	CommitInterval time.Duration

	// MaxRecordBytes bounds a record's key, value and headers together
	// (default DefaultMaxRecordBytes, 1 MiB). With a group, a larger record
	// never reaches the handler: it is dead-lettered, as is a record whose
	// handler returned an error marked Permanent or panicked. A dead
	// letter goes to protocol.DeadLetterTopic(topic) ("dlq_<topic>") with
	// the reason and origin in headers (protocol.HeaderDeadLetter*), is
	// counted in weir_bus_dead_letters_total{topic} and logged once, and
	// its partition moves on: one poison record never wedges a consumer.
	// Without a group such records fail Consume as any error does.
	MaxRecordBytes int

	// MaxDeferred bounds how many records may be deferred (Record.Defer)
	// and not yet acknowledged; at the bound Consume stops fetching until
	// one is acknowledged. Default 256.
	MaxDeferred int

	// Handler is called for each record, one at a time, in offset order
	// within a partition. Its ctx is the ctx given to Consume. Returning
	// nil marks the record handled: its offset is committed shortly after
	// (group consumers). Returning an error stops Consume, which returns a
	// *RecordError wrapping it; that record and everything after it in its
	// partition is not committed, so the group redelivers it to the next
	// consumer. A panic is recovered and treated as an error.
	Handler func(ctx context.Context, rec *Record) error

	// startAt, if set, replaces the start offset of every partition (used
	// by ReadAll).
	startAt *int64
}

// RecordError is the error Consume returns when the handler fails: the
// record it failed on and the handler's error.
type RecordError struct {
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("handle record at offset %d of topic %s partition %d: %v", e.Offset, e.Topic, e.Partition, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Consume reads records from opts.Topics and calls opts.Handler for each,
// with at-least-once delivery: with a group, a record's offset is committed
// only after its handler returned nil, so a record whose handler failed or
// was still running when the consumer stopped, or when the process died,
// is delivered again (to this group) later. A record is redelivered after
// a crash or a lost partition even if its handler finished; handlers must
// tolerate duplicates.
//
// Offsets are committed synchronously after every poll (at most
// MaxPollRecords records), before the group may rebalance: partitions move
// to another consumer only between polls, with everything handled so far
// committed. Each Consume call is its own group member with its own
// connections; run several Consume calls (in one process or many) with the
// same Group to handle partitions in parallel.
//
// Consume returns:
//   - nil when ctx is cancelled or the Client is closed, after committing
//     every handled record and leaving the group (a clean stop loses
//     nothing and redelivers nothing already handled);
//   - nil when UntilEOF or IdleTimeout say the work is done, after
//     committing;
//   - a *RecordError when the handler fails (after committing the records
//     handled before it);
//   - an error for invalid options or, with UntilEOF, a missing topic.
//
// If the handler returns ctx's error because ctx was cancelled, that is a
// stop, not a failure: the record is not committed and Consume returns nil.
// Broker outages do not end Consume: the client reconnects and resumes.
//
// The tool that reads a topic for a human (`weir consume`) maps its flags
// one to one: --topic to Topics, --group to Group, --from-beginning to
// FromBeginning, --until-eof to UntilEOF; it prints in Handler and stops on
// Ctrl-C by cancelling ctx.
func (c *Client) Consume(ctx context.Context, opts ConsumeOptions) error {
	switch {
	case len(opts.Topics) == 0 && opts.TopicPattern == "":
		return errors.New("consume: no topics")
	case len(opts.Topics) > 0 && opts.TopicPattern != "":
		return errors.New("consume: both Topics and TopicPattern given")
	case opts.TopicPattern != "" && opts.UntilEOF:
		return errors.New("consume: UntilEOF needs Topics, not a TopicPattern")
	case opts.TopicPattern != "":
		if _, err := regexp.Compile(opts.TopicPattern); err != nil {
			return fmt.Errorf("consume: topic pattern %q: %w", opts.TopicPattern, err)
		}
	}
	for _, t := range opts.Topics {
		if err := protocol.ValidateTopic(t); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
	}
	if opts.Handler == nil {
		return errors.New("consume: no handler")
	}
	if opts.MaxPollRecords <= 0 {
		opts.MaxPollRecords = defaultMaxPollRecords
	}
	if opts.MaxDeferred <= 0 {
		opts.MaxDeferred = defaultMaxDeferred
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if err := c.startConsumer(); err != nil {
		return err
	}
	defer c.consumers.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // Client.Close stops us
	defer stop()

	cons := &consumer{
		c:        c,
		opts:     opts,
		metrics:  c.cfg.metrics,
		log:      c.log.With("group", opts.Group, "topics", opts.topicsLabel()),
		pending:  make(map[topicPartition]*partState),
		acked:    make(chan struct{}, 1),
		owned:    make(map[topicPartition]struct{}),
		assigned: make(map[topicPartition]struct{}),
	}
	if opts.UntilEOF {
		eof, err := c.eofTargets(ctx, opts)
		if err != nil {
			return err
		}
		if eof.done() {
			return nil
		}
		cons.eof = eof
	}
	return cons.run(ctx)
}

// ReadAll returns the records of topic from offset from (in every
// partition; an offset before a partition's oldest retained record means
// the oldest) up to the end the topic had when ReadAll was called, without
// a group. Records are in offset order within a partition, partitions one
// after another in no set order. A topic that does not exist is an error.
// Use it for single-partition topics such as stream topics, in tools and
// tests; Consume suits anything large or unbounded.
func (c *Client) ReadAll(ctx context.Context, topic string, from int64) ([]*Record, error) {
	var recs []*Record
	err := c.Consume(ctx, ConsumeOptions{
		Topics:        []string{topic},
		FromBeginning: true,
		UntilEOF:      true,
		startAt:       &from,
		Handler: func(_ context.Context, r *Record) error {
			recs = append(recs, r)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read topic %s: %w", topic, err)
	}
	if ctx.Err() != nil {
		return recs, fmt.Errorf("read topic %s: %w", topic, ctx.Err())
	}
	return recs, nil
}

// topicsLabel names what is consumed, for logs and errors.
func (o *ConsumeOptions) topicsLabel() string {
	if o.TopicPattern != "" {
		return "pattern " + o.TopicPattern
	}
	return strings.Join(o.Topics, ",")
}

type topicPartition struct {
	topic     string
	partition int32
}

// consumer is the state of one Consume call.
type consumer struct {
	c       *Client
	opts    ConsumeOptions
	metrics *Metrics
	log     *slog.Logger
	eof     *eofTracker

	cl *kgo.Client

	// mu guards pending and owned: the group's rebalance callbacks run
	// on a kgo goroutine.
	mu sync.Mutex
	// pending holds, per partition, what is handled but not committed:
	// the last handled record (normally nil between polls; kept when a
	// commit fails so the next commit retries it) and the records whose
	// handler deferred them (Record.Defer) and that are not acknowledged
	// yet.
	pending map[topicPartition]*partState
	// deferred counts unacknowledged deferred records over all partitions.
	deferred int
	// acked wakes the poll loop when a deferred record is acknowledged.
	acked chan struct{}
	// assigned are the group's partitions this member owns now, and
	// paused those it stopped fetching until the next group session
	// (see pauseLocked).
	assigned map[topicPartition]struct{}
	paused   map[string][]int32
	// lastCommit is when the poll loop last committed (CommitInterval).
	lastCommit time.Time
	// owned are partitions with a lag gauge entry to remove at exit.
	owned map[topicPartition]struct{}
}

func (k *consumer) kgoOptions() []kgo.Opt {
	start := kgo.NewOffset().AfterMilli(time.Now().UnixMilli())
	if k.opts.FromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	if k.opts.startAt != nil {
		start = kgo.NewOffset().At(*k.opts.startAt)
	}
	opts := append([]kgo.Opt{}, k.c.baseOpts...)
	opts = append(opts,
		kgo.MetadataMinAge(consumerMetadataMinAge),
		kgo.FetchMaxWait(consumerFetchMaxWait),
		kgo.SessionTimeout(groupSessionTimeout),
		kgo.HeartbeatInterval(groupHeartbeat),
		kgo.Balancers(groupBalancers()...),
	)
	opts = append(opts, k.c.cfg.kgoOpts...) // the user's tuning wins over ours
	opts = append(opts,
		kgo.ConsumeStartOffset(start),
		// Records that fell out of retention are gone; resume at the
		// oldest that remain rather than skip any.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if k.opts.TopicPattern != "" {
		// kgo matches a regex anywhere in a name; anchor it so the
		// pattern means the whole name, as documented.
		// New topics are only seen on a metadata refresh, which kgo
		// otherwise does every 5 minutes.
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics("^(?:"+k.opts.TopicPattern+")$"),
			kgo.MetadataMaxAge(patternRefresh))
	} else {
		opts = append(opts, kgo.ConsumeTopics(k.opts.Topics...))
	}
	if k.opts.Group != "" {
		opts = append(opts,
			kgo.ConsumerGroup(k.opts.Group),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(k.onAssigned),
			kgo.OnPartitionsRevoked(k.onRevoked),
			kgo.OnPartitionsLost(k.onLost),
		)
	}
	return opts
}

// groupBalancers are the partition assignment strategies weir's group
// members offer, in order of preference.
//
// cooperative-sticky comes first: in a group of weir members only, it is
// the protocol every member votes for, and rebalances are incremental (a
// member keeps the partitions it is not asked to give up, so adding a
// stream topic does not stop every live stream's packager). range and
// roundrobin follow for other clients: librdkafka (kcat, confluent-kafka)
// offers "range,roundrobin" by default and Kafka's broker picks a
// protocol every member offers, so without them such a client is refused
// with INCONSISTENT_GROUP_PROTOCOL. Members vote for their first choice
// among the protocols all members offer, so a group with a librdkafka
// member runs range.
//
// kgo picks its rebalance mode from the protocol the group chose: eager
// for range (every member revokes all its partitions, committing what it
// handled in onRevoked, before rejoining; nobody is assigned anything
// until all have), cooperative for cooperative-sticky. When a group
// changes from cooperative to eager (a librdkafka member joins), kgo
// revokes everything (onRevoked commits) once the group has synced, when
// the new owners may already be reading: pauseLocked keeps a member from
// handling anything between two sessions, so no record is read twice.
// When the last such member leaves, the next rebalance returns to
// cooperative-sticky.
func groupBalancers() []kgo.GroupBalancer {
	return []kgo.GroupBalancer{kgo.CooperativeStickyBalancer(), kgo.RangeBalancer(), kgo.RoundRobinBalancer()}
}

func (k *consumer) run(ctx context.Context) error {
	cl, err := kgo.NewClient(k.kgoOptions()...)
	if err != nil {
		return fmt.Errorf("consume %v: %w", k.opts.topicsLabel(), err)
	}
	k.cl = cl
	defer func() {
		// Leaving the group revokes our partitions; onRevoked commits
		// anything still pending.
		cl.CloseAllowingRebalance()
		k.dropAllLag()
	}()

	for {
		if !k.waitForDeferredRoom(ctx) {
			return nil
		}
		fetches, idle := k.poll(ctx)
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			k.log.Warn("fetch error; retrying", "topic", t, "partition", p, "err", err)
		})

		herr := k.handle(ctx, fetches)
		stop := herr != nil || ctx.Err() != nil || (k.eof != nil && k.eof.done()) || (idle && fetches.NumRecords() == 0)
		if stop || k.commitDue() {
			k.commitPending()
			k.lastCommit = time.Now()
		}
		cl.AllowRebalance()

		switch {
		case herr != nil:
			return herr
		case ctx.Err() != nil:
			return nil
		case k.eof != nil && k.eof.done():
			return nil
		case idle && fetches.NumRecords() == 0:
			return nil
		}
	}
}

// commitDue says whether CommitInterval allows a commit now (always,
// without one).
func (k *consumer) commitDue() bool {
	return k.opts.CommitInterval <= 0 || time.Since(k.lastCommit) >= k.opts.CommitInterval
}

// hasPending says whether handled records wait for a commit.
func (k *consumer) hasPending() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pending) > 0
}

// poll fetches the next records. It returns early, with what it has, when a
// deferred record is acknowledged (so its commit is not held up by a quiet
// topic); idle reports that IdleTimeout passed with nothing to read.
func (k *consumer) poll(ctx context.Context) (fetches kgo.Fetches, idle bool) {
	pollCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idleHit atomic.Bool
	if k.opts.IdleTimeout > 0 {
		t := time.AfterFunc(k.opts.IdleTimeout, func() { idleHit.Store(true); cancel() })
		defer t.Stop()
	}
	if k.opts.CommitInterval > 0 && k.opts.Group != "" && k.hasPending() {
		// Handled records wait for a commit: come back in time for it
		// even if nothing new arrives.
		t := time.AfterFunc(k.opts.CommitInterval-time.Since(k.lastCommit), cancel)
		defer t.Stop()
	}
	if k.deferredCount() > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-k.acked:
				cancel()
			case <-stop:
			}
		}()
	}
	// Never take more records than may still be deferred: a handler may
	// defer every one of them.
	n := min(k.opts.MaxPollRecords, k.opts.MaxDeferred-k.deferredCount())
	fetches = k.cl.PollRecords(pollCtx, max(n, 1))
	return fetches, idleHit.Load() && ctx.Err() == nil
}

// waitForDeferredRoom holds polling while MaxDeferred records are deferred
// and unacknowledged, committing as acknowledgements come. Not polling does
// not block the group: rebalances proceed and heartbeats go on. It reports
// false when ctx ended.
func (k *consumer) waitForDeferredRoom(ctx context.Context) bool {
	for k.deferredCount() >= k.opts.MaxDeferred {
		select {
		case <-ctx.Done():
			return false
		case <-k.acked:
			k.commitPending()
		}
	}
	return ctx.Err() == nil
}

func (k *consumer) deferredCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.deferred
}

// handle runs the handler over the polled records, in order, stopping at the
// first failure or when ctx ends. Handled records become pending commits.
func (k *consumer) handle(ctx context.Context, fetches kgo.Fetches) error {
	for _, f := range fetches {
		for _, t := range f.Topics {
			for _, p := range t.Partitions {
				for _, kr := range p.Records {
					if ctx.Err() != nil {
						return nil
					}
					d := &deferral{k: k, kr: kr}
					if err := k.callChecked(ctx, kr, d); err != nil {
						if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
							return nil // stopped while handling: redeliver, no failure
						}
						return &RecordError{Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Err: err}
					}
					k.handled(kr, p.HighWatermark, d)
				}
			}
		}
	}
	return nil
}

// callChecked runs the handler on a record within MaxRecordBytes. With a
// group, a record over the limit, a Permanent error and a panic dead-letter
// the record, and it counts as handled.
func (k *consumer) callChecked(ctx context.Context, kr *kgo.Record, d *deferral) error {
	var err error
	if n := recordSize(kr); n > k.opts.MaxRecordBytes {
		err = Permanent(fmt.Errorf("record of %d bytes is over the %d-byte limit", n, k.opts.MaxRecordBytes))
	} else {
		err = k.call(ctx, kr, d)
	}
	if err == nil || k.opts.Group == "" || !IsPermanent(err) {
		return err
	}
	return k.deadLetter(ctx, kr, err)
}

// call runs the handler, turning a panic into a Permanent error so one bad
// record cannot take the process down or be retried for ever.
func (k *consumer) call(ctx context.Context, kr *kgo.Record, d *deferral) (err error) {
	defer func() {
		if p := recover(); p != nil {
			k.log.Error("consume handler panicked", "topic", kr.Topic, "partition", kr.Partition,
				"offset", kr.Offset, "panic", p, "stack", string(debug.Stack()))
			err = Permanent(fmt.Errorf("handler panicked: %v", p))
		}
	}()
	rec := fromKgo(kr)
	rec.deferral = d
	return k.opts.Handler(ctx, rec)
}

func (k *consumer) handled(kr *kgo.Record, highWatermark int64, d *deferral) {
	tp := topicPartition{kr.Topic, kr.Partition}
	if k.eof != nil {
		k.eof.handled(tp, kr.Offset)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.opts.Group == "" {
		return
	}
	st := k.pending[tp]
	if st == nil {
		st = &partState{committed: -1}
		k.pending[tp] = st
	}
	st.last = kr
	if d != nil && d.called && !d.acked {
		if st.deferred == nil {
			st.deferred = map[int64]*kgo.Record{}
		}
		st.deferred[kr.Offset] = kr
		d.state = st
		k.deferred++
	}
	if k.metrics != nil {
		k.owned[tp] = struct{}{}
		k.metrics.setLag(k.opts.Group, tp, max(highWatermark-(kr.Offset+1), 0))
	}
}

// commitPending commits every pending offset. A failed commit is logged and
// kept for the next attempt: the records stay uncommitted, which at worst
// redelivers them.
func (k *consumer) commitPending() {
	if k.opts.Group == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.commitLocked(nil)
}

// commitLocked commits, for the partitions in only (all when only is nil),
// everything handled before the first unacknowledged deferred record, and
// forgets what was committed. k.mu is held.
func (k *consumer) commitLocked(only map[string][]int32) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for tp, st := range k.pending {
		if only != nil && !contains(only[tp.topic], tp.partition) {
			continue
		}
		at, ok := st.target()
		if !ok || at.Offset <= st.committed {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.topic][tp.partition] = at
	}
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	var commitErr error
	k.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			clear(offsets)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					commitErr = fmt.Errorf("topic %s partition %d: %w", t.Topic, p.Partition, perr)
					delete(offsets[t.Topic], p.Partition)
				}
			}
		}
	})
	if commitErr != nil {
		k.log.Warn("commit failed; handled records may be redelivered", "err", commitErr)
	}
	for topic, parts := range offsets {
		for p, at := range parts {
			tp := topicPartition{topic, p}
			st := k.pending[tp]
			if st == nil {
				continue
			}
			st.committed = at.Offset
			if st.last != nil && st.last.Offset < at.Offset {
				st.last = nil
			}
			if st.last == nil && len(st.deferred) == 0 {
				delete(k.pending, tp)
			}
		}
	}
}

// partState is what a partition has handled but not committed.
type partState struct {
	last      *kgo.Record           // the last handled record
	deferred  map[int64]*kgo.Record // deferred records not acknowledged yet
	committed int64                 // the offset last committed (-1: none yet)
}

// target is the offset to commit: the first unacknowledged deferred record
// (everything before it is done), or the one after the last handled.
func (st *partState) target() (kgo.EpochOffset, bool) {
	var first *kgo.Record
	for _, r := range st.deferred {
		if first == nil || r.Offset < first.Offset {
			first = r
		}
	}
	switch {
	case first != nil:
		return kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}, true
	case st.last != nil:
		return kgo.EpochOffset{Epoch: st.last.LeaderEpoch, Offset: st.last.Offset + 1}, true
	}
	return kgo.EpochOffset{}, false
}

// deferral is a consumed record's link back to its consumer, for
// Record.Defer.
type deferral struct {
	k      *consumer
	kr     *kgo.Record
	called bool       // Defer was called (set by the handler before it returns)
	acked  bool       // under k.mu
	state  *partState // set under k.mu once the record is pending
}

// ack marks a deferred record done. If its partition moved to another
// member meanwhile, there is nothing to mark: the record is redelivered
// there.
func (d *deferral) ack() {
	k := d.k
	k.mu.Lock()
	d.acked = true
	tp := topicPartition{d.kr.Topic, d.kr.Partition}
	if st := d.state; st != nil && k.pending[tp] == st {
		if _, ok := st.deferred[d.kr.Offset]; ok {
			delete(st.deferred, d.kr.Offset)
			k.deferred--
		}
	}
	k.mu.Unlock()
	select {
	case k.acked <- struct{}{}:
	default:
	}
}

// onAssigned runs when a group session starts (with the partitions it
// added, possibly none): fetching resumes and the handler's owner learns
// which partitions it now has.
func (k *consumer) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	k.mu.Lock()
	for t, ps := range assigned {
		for _, p := range ps {
			k.assigned[topicPartition{t, p}] = struct{}{}
		}
	}
	paused := k.paused
	k.paused = nil
	k.mu.Unlock()
	if len(paused) > 0 {
		cl.ResumeFetchPartitions(paused)
	}
	if k.opts.OnAssigned == nil {
		return
	}
	for t, ps := range assigned {
		k.opts.OnAssigned(t, ps)
	}
}

// onRevoked runs before partitions move to another member, at the end of
// every group session (with nothing revoked when the rebalance is
// cooperative), and when the group is left at Close: commit what was
// handled for the revoked partitions, and stop fetching the others until
// the next session starts.
func (k *consumer) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	k.mu.Lock()
	k.commitLocked(revoked)
	k.forgetLocked(revoked)
	k.pauseLocked(cl)
	k.mu.Unlock()
	k.notifyRevoked(revoked)
}

// pauseLocked stops fetching every partition this member still owns until
// onAssigned, so nothing is handled between the end of a group session
// and the start of the next. kgo keeps fetching and returning a
// cooperative member's partitions while the group rejoins; if the rejoin
// turns the group eager (a member that offers only range or roundrobin,
// such as a librdkafka client with its defaults, joined), the new owner
// of a partition starts from the last commit as soon as the group syncs,
// while this member may still handle and commit records of it: both would
// read them. kgo calls onRevoked and onAssigned while no poll is
// outstanding (BlockRebalanceOnPoll), so no record of a paused partition
// is handed out in between; buffered ones are fetched again after. The
// cost is a pause of consumption for the rejoin (every member's current
// poll, then join and sync). k.mu is held.
func (k *consumer) pauseLocked(cl *kgo.Client) {
	parts := map[string][]int32{}
	for tp := range k.assigned {
		parts[tp.topic] = append(parts[tp.topic], tp.partition)
	}
	if len(parts) == 0 {
		return
	}
	cl.PauseFetchPartitions(parts)
	if k.paused == nil {
		k.paused = map[string][]int32{}
	}
	for t, ps := range parts {
		k.paused[t] = append(k.paused[t], ps...)
	}
}

func (k *consumer) notifyRevoked(parts map[string][]int32) {
	if k.opts.OnRevoked == nil {
		return
	}
	for t, ps := range parts {
		k.opts.OnRevoked(t, ps)
	}
}

// onLost runs when the group dropped us (session timeout, fencing): the
// partitions may already be someone else's, so committing for them could
// rewind the new owner. Forget them; their records are redelivered.
func (k *consumer) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	k.mu.Lock()
	if n := len(k.pending); n > 0 {
		k.log.Warn("group partitions lost before commit; handled records will be redelivered", "partitions", n)
	}
	k.forgetLocked(lost)
	k.pauseLocked(cl)
	k.mu.Unlock()
	k.notifyRevoked(lost)
}

func (k *consumer) forgetLocked(parts map[string][]int32) {
	for t, ps := range parts {
		for _, p := range ps {
			tp := topicPartition{t, p}
			if st := k.pending[tp]; st != nil {
				k.deferred -= len(st.deferred)
			}
			delete(k.pending, tp)
			delete(k.assigned, tp)
			if _, ok := k.owned[tp]; ok {
				delete(k.owned, tp)
				k.metrics.dropLag(k.opts.Group, tp)
			}
		}
	}
}

func (k *consumer) dropAllLag() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for tp := range k.owned {
		k.metrics.dropLag(k.opts.Group, tp)
	}
	clear(k.owned)
}

func contains(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// eofTracker knows, per partition, the offset Consume must reach for
// UntilEOF. It is only used from the consume goroutine.
type eofTracker struct {
	remaining map[topicPartition]int64 // partition → end offset still to reach
}

func (e *eofTracker) done() bool { return len(e.remaining) == 0 }

func (e *eofTracker) handled(tp topicPartition, offset int64) {
	if end, ok := e.remaining[tp]; ok && offset+1 >= end {
		delete(e.remaining, tp)
	}
}

// eofTargets lists, for every partition of opts.Topics, the end offset now
// and where consumption will start, and keeps the partitions where there is
// something between the two.
func (c *Client) eofTargets(ctx context.Context, opts ConsumeOptions) (*eofTracker, error) {
	ends, err := c.adm.ListEndOffsets(ctx, opts.Topics...)
	if err != nil {
		return nil, fmt.Errorf("consume %v until end: list end offsets: %w", opts.Topics, err)
	}
	starts, err := c.adm.ListStartOffsets(ctx, opts.Topics...)
	if err != nil {
		return nil, fmt.Errorf("consume %v until end: list start offsets: %w", opts.Topics, err)
	}
	var committed kadm.OffsetResponses
	if opts.Group != "" {
		committed, err = c.adm.FetchOffsets(ctx, opts.Group)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("consume %v until end: committed offsets of group %s: %w", opts.Topics, opts.Group, err)
		}
	}
	e := &eofTracker{remaining: make(map[topicPartition]int64)}
	for _, topic := range opts.Topics {
		parts, ok := ends[topic]
		if !ok {
			return nil, fmt.Errorf("consume topic %s until end: %w", topic, kerr.UnknownTopicOrPartition)
		}
		for p, end := range parts {
			if errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("consume topic %s until end: topic does not exist: %w", topic, end.Err)
			}
			if end.Err != nil {
				return nil, fmt.Errorf("consume topic %s until end: partition %d: %w", topic, p, end.Err)
			}
			logStart := int64(0)
			if s, ok := starts.Lookup(topic, p); ok && s.Err == nil {
				logStart = s.Offset
			}
			from := end.Offset // "latest"
			switch {
			case opts.startAt != nil:
				from = *opts.startAt
			case opts.Group != "":
				if o, ok := committed.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
					from = o.At
				} else if opts.FromBeginning {
					from = logStart
				}
			case opts.FromBeginning:
				from = logStart
			}
			from = max(from, logStart)
			if from < end.Offset {
				e.remaining[topicPartition{topic, p}] = end.Offset
			}
		}
	}
	return e, nil
}
