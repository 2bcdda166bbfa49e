package bus

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metrics holds the bus's Prometheus metrics. Create it once per registry
// with NewMetrics and hand it to every Client with WithMetrics.
//
// Exported series:
//
//	weir_bus_produced_messages_total{topic}  records the broker acknowledged
//	weir_bus_produced_bytes_total{topic}     their key+value+header bytes, uncompressed
//	weir_bus_produce_errors_total{topic}     records that failed to produce
//	weir_bus_consumed_messages_total{topic}  records handed to the application
//	weir_bus_consumed_bytes_total{topic}     their key+value+header bytes, uncompressed
//	weir_bus_dead_letters_total{topic}       records of topic dead-lettered by a consumer
//	weir_bus_consumer_lag{group,topic}       records between what a group member of
//	                                         this process handled last and the partition's
//	                                         high watermark at its last fetch, summed
//	                                         over the partitions it owns
//
// Produced and consumed counts cover every client with these metrics,
// including use of Client.Kgo directly. Lag is reported by Consume with a
// group; partitions owned by another process are not included (use
// Client.Admin().Lag for the group-wide, committed-offset view).
type Metrics struct {
	producedMsgs  *prometheus.CounterVec
	producedBytes *prometheus.CounterVec
	produceErrors *prometheus.CounterVec
	consumedMsgs  *prometheus.CounterVec
	consumedBytes *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	lag           *prometheus.GaugeVec

	produced sync.Map // topic → *topicCounters
	consumed sync.Map // topic → *topicCounters

	mu   sync.Mutex
	lags map[groupTopic]*partitionLags
}

type topicCounters struct{ msgs, bytes prometheus.Counter }

type groupTopic struct{ group, topic string }

type partitionLags struct {
	byPartition map[int32]int64
	sum         int64
}

// NewMetrics creates the bus metrics and registers them with reg. It fails
// if reg already holds metrics with these names (a second NewMetrics on
// the same registry): share one Metrics instead.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "weir", Subsystem: "bus", Name: name, Help: help,
		}, []string{"topic"})
	}
	m := &Metrics{
		producedMsgs:  counter("produced_messages_total", "Records produced and acknowledged by the broker."),
		producedBytes: counter("produced_bytes_total", "Key, value and header bytes of produced records, before compression."),
		produceErrors: counter("produce_errors_total", "Records that failed to produce."),
		consumedMsgs:  counter("consumed_messages_total", "Records consumed and handed to the application."),
		consumedBytes: counter("consumed_bytes_total", "Key, value and header bytes of consumed records, after decompression."),
		deadLetters:   counter("dead_letters_total", "Records a consumer could not handle (too large, malformed, a handler panic) and wrote to their dead-letter topic."),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "weir", Subsystem: "bus", Name: "consumer_lag",
			Help: "Records not yet handled by this process's group members, per group and topic, as of their last fetch.",
		}, []string{"group", "topic"}),
		lags: make(map[groupTopic]*partitionLags),
	}
	for _, c := range []prometheus.Collector{m.producedMsgs, m.producedBytes, m.produceErrors, m.consumedMsgs, m.consumedBytes, m.deadLetters, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register bus metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) countersFor(cache *sync.Map, msgs, bytes *prometheus.CounterVec, topic string) *topicCounters {
	if tc, ok := cache.Load(topic); ok {
		return tc.(*topicCounters)
	}
	tc, _ := cache.LoadOrStore(topic, &topicCounters{
		msgs:  msgs.WithLabelValues(topic),
		bytes: bytes.WithLabelValues(topic),
	})
	return tc.(*topicCounters)
}

// forgetTopic deletes every series labelled with topic. A nil Metrics
// holds none.
func (m *Metrics) forgetTopic(topic string) {
	if m == nil {
		return
	}
	m.produced.Delete(topic)
	m.consumed.Delete(topic)
	for _, v := range []*prometheus.CounterVec{m.producedMsgs, m.producedBytes, m.produceErrors, m.consumedMsgs, m.consumedBytes, m.deadLetters} {
		v.DeleteLabelValues(topic)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key := range m.lags {
		if key.topic == topic {
			delete(m.lags, key)
			m.lag.DeleteLabelValues(key.group, topic)
		}
	}
}

// producedFor returns the produced counters of topic. The topic's error
// series is created with them, at zero, so that dashboards show it and
// increase() sees a first error.
func (m *Metrics) producedFor(topic string) *topicCounters {
	if tc, ok := m.produced.Load(topic); ok {
		return tc.(*topicCounters)
	}
	m.produceErrors.WithLabelValues(topic)
	return m.countersFor(&m.produced, m.producedMsgs, m.producedBytes, topic)
}

// consumedFor returns the consumed counters of topic. The topic's
// dead-letter series is created with them, at zero, for the same reason
// as producedFor's error series.
func (m *Metrics) consumedFor(topic string) *topicCounters {
	if tc, ok := m.consumed.Load(topic); ok {
		return tc.(*topicCounters)
	}
	m.deadLetters.WithLabelValues(topic)
	return m.countersFor(&m.consumed, m.consumedMsgs, m.consumedBytes, topic)
}

// setLag records the lag of one partition of a group member in this
// process and updates the group/topic sum.
func (m *Metrics) setLag(group string, tp topicPartition, lag int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := groupTopic{group, tp.topic}
	pl := m.lags[key]
	if pl == nil {
		pl = &partitionLags{byPartition: make(map[int32]int64)}
		m.lags[key] = pl
	}
	pl.sum += lag - pl.byPartition[tp.partition]
	pl.byPartition[tp.partition] = lag
	m.lag.WithLabelValues(group, tp.topic).Set(float64(pl.sum))
}

// dropLag forgets a partition this process no longer owns.
func (m *Metrics) dropLag(group string, tp topicPartition) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := groupTopic{group, tp.topic}
	pl := m.lags[key]
	if pl == nil {
		return
	}
	lag, ok := pl.byPartition[tp.partition]
	if !ok {
		return
	}
	delete(pl.byPartition, tp.partition)
	pl.sum -= lag
	if len(pl.byPartition) == 0 {
		delete(m.lags, key)
		m.lag.DeleteLabelValues(group, tp.topic)
		return
	}
	m.lag.WithLabelValues(group, tp.topic).Set(float64(pl.sum))
}

func (m *Metrics) hooks() kgo.Hook { return metricsHook{m} }

// metricsHook counts records as kgo finishes with them.
type metricsHook struct{ m *Metrics }

var (
	_ kgo.HookProduceRecordUnbuffered = metricsHook{}
	_ kgo.HookFetchRecordUnbuffered   = metricsHook{}
)

func (h metricsHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if err != nil {
		h.m.produceErrors.WithLabelValues(r.Topic).Inc()
		return
	}
	tc := h.m.producedFor(r.Topic)
	tc.msgs.Inc()
	tc.bytes.Add(float64(recordBytes(r)))
}

func (h metricsHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if !polled {
		return // dropped inside the client (assignment changed); it is fetched again
	}
	tc := h.m.consumedFor(r.Topic)
	tc.msgs.Inc()
	tc.bytes.Add(float64(recordBytes(r)))
}

// deadLetter counts a dead-lettered record of topic. A nil Metrics counts
// nothing.
func (m *Metrics) deadLetter(topic string) {
	if m != nil {
		m.deadLetters.WithLabelValues(topic).Inc()
	}
}
