package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-media/weir/protocol"
)

// ErrClosed is returned by Client methods called after Close.
var ErrClosed = errors.New("bus client closed")

// closeFlushTimeout bounds how long Close waits for buffered records.
const closeFlushTimeout = 10 * time.Second

// Client produces to, consumes from and administers a Kafka cluster: the
// embedded Broker or any external Kafka-compatible cluster. It is safe for
// concurrent use.
//
// The producer is idempotent (kgo's default, acks=all): a record retried
// after a lost acknowledgement is written once, and records to a partition
// land in the order they were produced. Producing to a topic that does not
// exist asks the cluster to create it (the embedded broker always does;
// Kafka does when auto.create.topics.enable is on).
type Client struct {
	brokers  []string
	cfg      clientConfig
	baseOpts []kgo.Opt   // shared by every kgo client; WithKgoOptions come after
	kcl      *kgo.Client // produces; may create topics
	admKgo   *kgo.Client // administers; never creates topics as a side effect
	adm      *kadm.Client
	log      *slog.Logger

	ctx    context.Context // cancelled when Close begins: stops consumers
	cancel context.CancelFunc

	// produceCtx is cancelled only after Close's final flush: cancelling a
	// kgo produce context fails the records it buffered.
	produceCtx    context.Context
	produceCancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	consumers sync.WaitGroup
}

// ClientOption configures NewClient.
type ClientOption interface{ applyClient(*clientConfig) }

type clientConfig struct {
	logger   *slog.Logger
	metrics  *Metrics
	clientID string
	sasl     Credentials
	tls      *tls.Config
	kgoOpts  []kgo.Opt
	// dial, when set, opens the client's connections (Broker.InProcess).
	dial func(ctx context.Context, network, host string) (net.Conn, error)
}

type clientOpt func(*clientConfig)

func (o clientOpt) applyClient(c *clientConfig) { o(c) }

// WithMetrics makes the client count produced and consumed records and bytes
// per topic, and report consumer lag, into m. Several clients may share one
// Metrics.
func WithMetrics(m *Metrics) ClientOption {
	return clientOpt(func(c *clientConfig) { c.metrics = m })
}

// WithClientID sets the Kafka client.id the client announces, overriding
// "weir". Brokers use it in logs and quotas.
func WithClientID(id string) ClientOption {
	return clientOpt(func(c *clientConfig) { c.clientID = id })
}

// WithKgoOptions appends raw kgo options to the ones the Client sets, for
// what the bus API does not cover (TLS, SASL, compression codecs, batch
// sizes, group timings). They apply to the producer client and to every
// client Consume starts, after the bus defaults, so they override them. Do
// not pass consumer or group options (ConsumeTopics, ConsumerGroup,
// DisableAutoCommit...): Consume sets those per call.
func WithKgoOptions(opts ...kgo.Opt) ClientOption {
	return clientOpt(func(c *clientConfig) { c.kgoOpts = append(c.kgoOpts, opts...) })
}

// NewClient returns a client for the cluster reachable at brokers (host:port
// seed addresses; one is enough). It does not connect: the first request
// does, and a cluster that cannot be reached shows up as that request
// failing or, for Consume, waiting. Call Ping to check reachability first.
func NewClient(brokers []string, opts ...ClientOption) (*Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("bus client: no seed brokers")
	}
	cfg := clientConfig{logger: slog.Default(), clientID: "weir"}
	for _, o := range opts {
		o.applyClient(&cfg)
	}

	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(cfg.clientID),
		kgo.WithLogger(kgoLogger{cfg.logger}),
	}
	if !cfg.sasl.IsZero() {
		if err := cfg.sasl.Validate(); err != nil {
			return nil, err
		}
	}
	if cfg.dial != nil && cfg.tls != nil {
		return nil, errors.New("bus client: in-process connections (Broker.InProcess) cannot use TLS")
	}
	base = append(base, cfg.authOpts()...)
	if cfg.dial != nil {
		base = append(base, kgo.Dialer(cfg.dial))
	}
	if cfg.metrics != nil {
		base = append(base, kgo.WithHooks(cfg.metrics.hooks()))
	}
	producerOpts := append(append([]kgo.Opt{}, base...),
		kgo.AllowAutoTopicCreation(),
		// Kafka's Java default since 3.3 (KIP-794), spelled out so the
		// same key reaches the same partition from every weir client and
		// from Java clients, whatever kgo's default becomes.
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, true, true, nil)),
		// Most bytes weir produces are encoded media, which does not
		// compress: snappy (kgo's default) spent CPU on every batch for
		// nothing. WithKgoOptions(kgo.ProducerBatchCompression(...))
		// turns a codec back on.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	producerOpts = append(producerOpts, cfg.kgoOpts...)

	kcl, err := kgo.NewClient(producerOpts...)
	if err != nil {
		return nil, fmt.Errorf("bus client for %v: %w", brokers, err)
	}
	// kadm looks topics up through its client's metadata cache, which asks
	// for auto-creation when the client allows it: with the producer's
	// client, listing the offsets of a missing topic would create it.
	admKgo, err := kgo.NewClient(append(append([]kgo.Opt{}, base...), cfg.kgoOpts...)...)
	if err != nil {
		kcl.Close()
		return nil, fmt.Errorf("bus admin client for %v: %w", brokers, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	produceCtx, produceCancel := context.WithCancel(context.Background())
	return &Client{
		brokers:  append([]string(nil), brokers...),
		cfg:      cfg,
		baseOpts: base,
		kcl:      kcl,
		admKgo:   admKgo,
		adm:      kadm.NewClient(admKgo),
		log:      cfg.logger,
		ctx:      ctx,
		cancel:   cancel,

		produceCtx:    produceCtx,
		produceCancel: produceCancel,
	}, nil
}

// Brokers returns the seed brokers the client was created with.
func (c *Client) Brokers() []string { return append([]string(nil), c.brokers...) }

// Kgo returns the underlying kgo client used for producing, for what the
// bus API does not cover. It asks the cluster to auto-create topics it
// produces to. Do not close it; Close does.
func (c *Client) Kgo() *kgo.Client { return c.kcl }

// Admin returns a kadm client for topic configs, group descriptions,
// offset listings and the like. It runs over a kgo client of its own that
// never auto-creates topics, so looking up a missing topic reports it
// missing. Do not close it; Close does.
func (c *Client) Admin() *kadm.Client { return c.adm }

// Ping returns nil once the cluster answers a metadata request, which
// needs a connection and, on a cluster that requires it, a successful
// login; it returns the error of the last attempt when ctx ends first. A
// refused login fails at once.
func (c *Client) Ping(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // none: reachability and login only
	if _, err := req.RequestWith(ctx, c.admKgo); err != nil {
		return fmt.Errorf("ping kafka %v: %w", c.brokers, err)
	}
	return nil
}

// Produce writes recs and waits until the broker acknowledges all of them,
// filling in each record's Partition, Offset and Timestamp. It returns the
// first error (naming the record's topic) once every record has either
// succeeded or failed; records that succeeded stay written. While the
// cluster is unreachable the client keeps retrying, so Produce waits; if
// ctx ends first, the records not yet sent fail with ctx's error, and
// records already sent may still be written.
func (c *Client) Produce(ctx context.Context, recs ...*Record) error {
	if len(recs) == 0 {
		return nil
	}
	if c.isClosed() {
		return ErrClosed
	}
	krs := make([]*kgo.Record, len(recs))
	index := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		krs[i] = r.toKgo()
		index[krs[i]] = i
	}
	var firstErr error
	firstIdx := len(recs)
	for _, res := range c.kcl.ProduceSync(ctx, krs...) {
		i := index[res.Record]
		if res.Err != nil {
			// Results arrive in completion order; report the earliest
			// failed record so the error does not depend on timing.
			if i < firstIdx {
				firstIdx = i
				firstErr = fmt.Errorf("produce to topic %s: %w", recs[i].Topic, res.Err)
			}
			continue
		}
		recs[i].fillFromKgo(res.Record)
	}
	return firstErr
}

// ProduceAsync buffers rec for sending and returns; done (if non-nil) is
// called once the broker acknowledges it (rec's Partition, Offset and
// Timestamp are filled in by then) or it fails. done runs on a client
// goroutine, in produce order for records of one partition, and must not
// block for long: it holds up the acknowledgements behind it. done must not
// call Produce, ProduceAsync or Flush itself (start a goroutine for that):
// the client can deadlock waiting on the callback that is waiting on it.
//
// ProduceAsync blocks while the client's buffer is full (50,000 records
// by default) until records drain. After Close, done is called with
// ErrClosed.
func (c *Client) ProduceAsync(rec *Record, done func(*Record, error)) {
	if c.isClosed() {
		if done != nil {
			done(rec, ErrClosed)
		}
		return
	}
	c.kcl.Produce(c.produceCtx, rec.toKgo(), func(kr *kgo.Record, err error) {
		if err != nil {
			err = fmt.Errorf("produce to topic %s: %w", rec.Topic, err)
		} else {
			rec.fillFromKgo(kr)
		}
		if done != nil {
			done(rec, err)
		}
	})
}

// Flush waits until every record buffered by ProduceAsync has been
// acknowledged or has failed, or until ctx ends (returning its error).
func (c *Client) Flush(ctx context.Context) error {
	if err := c.kcl.Flush(ctx); err != nil {
		return fmt.Errorf("flush produced records: %w", err)
	}
	return nil
}

// CreateTopic creates topic with the given number of partitions (-1 for
// the cluster default) and the cluster's default replication factor. A
// topic that already exists is not an error, whatever its partition count:
// the existing topic is left as it is.
func (c *Client) CreateTopic(ctx context.Context, topic string, partitions int32) error {
	if err := protocol.ValidateTopic(topic); err != nil {
		return err
	}
	if partitions == 0 || partitions < -1 {
		return fmt.Errorf("create topic %s: partitions %d: must be positive or -1", topic, partitions)
	}
	resp, err := c.adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// DeleteTopic deletes topic and its records; a topic that does not exist
// is no error. This process's metric series of the topic are dropped.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := protocol.ValidateTopic(topic); err != nil {
		return err
	}
	resp, err := c.adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	c.ForgetTopic(topic)
	return nil
}

// ForgetTopic drops this process's metric series of topic.
func (c *Client) ForgetTopic(topic string) { c.cfg.metrics.forgetTopic(topic) }

// Close stops every running Consume (each commits what its handler
// finished and leaves its group, then returns nil), waits up to 10 s for
// records buffered by ProduceAsync to be acknowledged, and closes the
// connections. Records still unacknowledged then fail with ErrClosed;
// call Flush first to wait longer. Close is safe to call more than once.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()

	c.cancel()
	c.consumers.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), closeFlushTimeout)
	defer cancel()
	if err := c.kcl.Flush(ctx); err != nil {
		c.log.Warn("bus client closing with unflushed records", "err", err)
	}
	c.produceCancel()
	c.kcl.Close()
	c.admKgo.Close()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// startConsumer registers a running Consume so Close can wait for it. It
// fails once Close has begun.
func (c *Client) startConsumer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.consumers.Add(1)
	return nil
}
