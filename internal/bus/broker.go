package bus

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-media/weir/internal/netguard"
)

// DefaultListenAddr is where the embedded broker listens unless told
// otherwise: the well-known Kafka port, on loopback only.
const DefaultListenAddr = "127.0.0.1:9092"

// Broker is weir's embedded, single-node Kafka-protocol broker: franz-go's
// kfake cluster with one broker, listening on one address, optionally
// persisting to a data directory.
//
// Any Kafka client (kgo, librdkafka/kcat, the Java client) can connect to
// Addr. The broker supports produce and fetch with every codec Kafka
// defines (gzip, snappy, lz4, zstd; batches are stored as the producer
// compressed them), idempotent and transactional producers, classic and
// KIP-848 consumer groups, offset commits, and topic administration.
// Topics are created automatically when a client asks for one that does
// not exist (kcat producing to a new topic, for instance).
type Broker struct {
	cluster *kfake.Cluster
	klog    *kfakeLogger
	log     *slog.Logger

	addr       string // advertised to clients
	listenAddr string // bound
	ln         *netguard.Listener
	mem        *memListener // ln's connections and in-process ones, for kfake
	dataDir    string
	unlock     func() error
	superuser  Credentials // zero without authentication
	// credentialsCreated says the credentials file was written by this
	// start, for the hints of a failed start.
	credentialsCreated bool

	stopRetention chan struct{}
	retentionDone chan struct{}

	// ensured holds the topic names known to exist and to be in the
	// persisted topic list; see persistAutoCreatedTopics.
	ensured sync.Map
	closing atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// ErrDataDirLocked is returned (wrapped) by StartBroker when another
// broker, in this process or another, runs on the data dir.
var ErrDataDirLocked = errors.New("in use by another broker (locked)")

// BrokerOption configures StartBroker.
type BrokerOption interface{ applyBroker(*brokerConfig) }

// Option configures both StartBroker and NewClient.
type Option interface {
	BrokerOption
	ClientOption
}

type brokerConfig struct {
	listenAddr        string
	advertisedAddr    string
	dataDir           string
	defaultPartitions int
	syncWrites        bool
	retentionEvery    time.Duration
	logger            *slog.Logger
	auth              bool
	maxConns          int
	listenerMetrics   *netguard.Metrics
}

type brokerOpt func(*brokerConfig)

func (o brokerOpt) applyBroker(c *brokerConfig) { o(c) }

// WithListenAddr sets the host:port the broker listens on, overriding
// DefaultListenAddr. Port 0 picks a free port (use it in tests and read
// Addr). The host may be empty or 0.0.0.0 to listen on every interface; then
// set WithAdvertisedAddr, because clients are told to reconnect to the
// advertised address, which otherwise falls back to 127.0.0.1.
func WithListenAddr(addr string) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.listenAddr = addr })
}

// WithAdvertisedAddr sets the host:port the broker tells clients to connect
// to in metadata responses, overriding the listen address. Kafka clients
// dial the bootstrap address only once and then switch to the advertised
// one, so it must be reachable by every client. A port of 0 (or a missing
// port) is replaced by the port actually bound.
func WithAdvertisedAddr(addr string) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.advertisedAddr = addr })
}

// WithDataDir makes the broker persist topics, records, committed group
// offsets and producer state under dir, and reload them on the next
// StartBroker with the same dir. The directory is created if needed and is
// locked for the life of the broker: a second broker on the same dir fails
// to start. Without a data dir everything lives in memory and is gone at
// Close.
func WithDataDir(dir string) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.dataDir = dir })
}

// WithDefaultPartitions sets how many partitions a topic gets when it is
// auto-created or created with a partition count of -1, overriding the
// default of 1 (Kafka's own num.partitions default). One partition keeps
// every record of an auto-created topic in order, which stream topics need.
func WithDefaultPartitions(n int) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.defaultPartitions = n })
}

// WithSyncWrites fsyncs every produced batch and every offset commit before
// acknowledging it, so acknowledged data survives a power loss or kernel
// crash, not only a process crash. Without it (the default, like Kafka's
// log.flush defaults) writes reach the OS page cache before the
// acknowledgement and are fsynced at segment roll and at Close.
func WithSyncWrites() BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.syncWrites = true })
}

// WithRetentionCheck sets how often the broker deletes records older than
// each topic's retention.ms (default 7 days) or beyond its retention.bytes,
// overriding the default of every 5 minutes; 0 disables deletion and the
// log grows without bound. kfake enforces retention only when asked, so the
// Broker asks on this schedule.
func WithRetentionCheck(every time.Duration) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.retentionEvery = every })
}

// WithAuthentication makes the broker refuse every client that does not
// authenticate with SASL (SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN), and check
// Kafka ACLs on every request. Its superuser, named weir, bypasses the ACLs;
// any other user may do only what ACLs allow it (see Client.AddUser).
//
// With a data dir the superuser's credentials are kept in the dir's
// credentials file (LoadOrCreateCredentials: created on the first start,
// reused after), a kcat.conf with the broker's address and those
// credentials is rewritten at every start, and users and ACLs added at run
// time persist with the rest of the broker's state. Without one the
// superuser gets a random password for the life of the broker. Either way
// Superuser returns the credentials.
func WithAuthentication() BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.auth = true })
}

// WithMaxConns caps the client connections the broker holds open at once;
// one over the cap is closed as soon as it is accepted. 0 (the default)
// means no cap. Whatever the cap, the broker keeps accepting through file
// descriptor exhaustion (see ListenerCheck).
func WithMaxConns(n int) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.maxConns = n })
}

// WithListenerMetrics records the broker listener's connections, refusals
// and accept errors under the listener name "kafka".
func WithListenerMetrics(m *netguard.Metrics) BrokerOption {
	return brokerOpt(func(c *brokerConfig) { c.listenerMetrics = m })
}

type loggerOpt struct{ l *slog.Logger }

func (o loggerOpt) applyBroker(c *brokerConfig) { c.logger = o.l }
func (o loggerOpt) applyClient(c *clientConfig) { c.logger = o.l }

// WithLogger sets the logger for a Broker or a Client, overriding
// slog.Default(). Protocol chatter (every request, every group heartbeat) is
// logged below slog.LevelDebug; warnings and errors keep their level.
func WithLogger(l *slog.Logger) Option { return loggerOpt{l} }

// StartBroker starts the embedded broker and returns once it accepts
// connections.
//
// With a data dir that holds a previous broker's state, the topics, records,
// committed offsets and producer ids are loaded first; a directory left by a
// crash is recovered up to the last complete batch. It fails if the address
// is in use, the data dir is locked by another broker, or the persisted
// state cannot be read.
func StartBroker(opts ...BrokerOption) (*Broker, error) {
	cfg := brokerConfig{
		listenAddr:        DefaultListenAddr,
		defaultPartitions: 1,
		retentionEvery:    5 * time.Minute,
		logger:            slog.Default(),
	}
	for _, o := range opts {
		o.applyBroker(&cfg)
	}
	if cfg.defaultPartitions < 1 {
		return nil, fmt.Errorf("embedded broker: default partitions %d: must be at least 1", cfg.defaultPartitions)
	}

	// kfake's accept loop ends for good on the first accept error (out of
	// file descriptors, say); the guard retries instead, so the loop only
	// ever sees the error of a closed listener.
	ln, err := netguard.Listen("tcp", cfg.listenAddr, netguard.Config{
		Name: "kafka", MaxConns: cfg.maxConns, Logger: cfg.logger, Metrics: cfg.listenerMetrics,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", cfg.listenAddr, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	adv, err := advertisedAddr(cfg.advertisedAddr, cfg.listenAddr, port)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}

	b := &Broker{
		klog:          &kfakeLogger{l: cfg.logger},
		log:           cfg.logger,
		addr:          adv,
		listenAddr:    ln.Addr().String(),
		ln:            ln,
		dataDir:       cfg.dataDir,
		unlock:        func() error { return nil },
		stopRetention: make(chan struct{}),
		retentionDone: make(chan struct{}),
	}
	b.mem = newMemListener(&advertisedListener{Listener: ln, addr: adv})

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("weir"),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.defaultPartitions),
		kfake.WithLogger(b.klog),
		kfake.ListenFn(onceListener(b.mem)),
	}
	if cfg.dataDir != "" {
		if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
			ln.Close()
			return nil, fmt.Errorf("embedded broker: data dir %s: %w", cfg.dataDir, err)
		}
		unlock, err := lockDir(cfg.dataDir)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("embedded broker: data dir %s: %w", cfg.dataDir, err)
		}
		b.unlock = unlock
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
		if cfg.syncWrites {
			kopts = append(kopts, kfake.SyncWrites())
		}
	}
	if cfg.auth {
		authOpts, err := b.prepareAuth()
		if err != nil {
			ln.Close()
			b.unlock()
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		kopts = append(kopts, authOpts...)
	}

	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		ln.Close() // kfake closes it too on most failures; a second close is harmless
		b.unlock()
		return nil, fmt.Errorf("embedded broker on %s: %w", adv, err)
	}
	b.cluster = cluster
	if cfg.dataDir != "" {
		b.persistAutoCreatedTopics()
	}
	if cfg.auth {
		if err := b.checkSuperuser(); err != nil {
			b.cluster.Close()
			b.unlock()
			return nil, fmt.Errorf("embedded broker on %s: %w", adv, err)
		}
	}

	go b.enforceRetention(cfg.retentionEvery)

	b.log.Info("embedded kafka broker started", "addr", adv, "listen", b.listenAddr, "data_dir", cfg.dataDir)
	return b, nil
}

// InProcess returns a client option for clients in the broker's own
// process: their connections to the broker (at Addr) go through memory
// instead of loopback TCP, which spares two socket system calls and the
// network poller per request and per response on both sides. The Kafka
// protocol, authentication and the broker's handling are the same; other
// addresses are dialled over TCP as usual. Do not combine it with WithTLS.
func (b *Broker) InProcess() ClientOption {
	dial := b.mem.dialer(b.addr)
	return clientOpt(func(c *clientConfig) { c.dial = dial })
}

// Addr returns the address clients should bootstrap from: the advertised
// host:port, with the port actually bound (useful after listening on port
// 0). It stays valid after Close.
func (b *Broker) Addr() string { return b.addr }

// ListenAddr returns the address the broker's socket is bound to. It
// differs from Addr only when the broker listens on every interface or was
// given WithAdvertisedAddr.
func (b *Broker) ListenAddr() string { return b.listenAddr }

// Superuser returns the credentials of the broker's superuser, or the
// zero Credentials when it was started without WithAuthentication.
func (b *Broker) Superuser() Credentials { return b.superuser }

// ListenerCheck reports whether the broker takes new connections: an
// error while its accepts fail (the process is out of file descriptors)
// or after Close. Readiness probes ask it.
func (b *Broker) ListenerCheck() error { return b.ln.Check() }

// Cluster returns the underlying kfake cluster, for tests that need its
// control hooks (fault injection, forced compaction). Most callers never
// need it.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker: it stops accepting connections, drops open
// client connections, answers the offset commits already received, writes
// the final state to the data dir and fsyncs every file and directory there,
// then releases the data-dir lock. Records and offset commits the broker
// acknowledged before Close are on disk when Close returns; a produce
// request still in flight is not acknowledged and its client retries it
// against the next broker it can reach.
//
// Close returns the errors met while saving; a second call returns the same
// result without doing anything.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closing.Store(true)
		close(b.stopRetention)
		<-b.retentionDone

		b.klog.captureErrors()
		b.cluster.Close()
		errs := b.klog.capturedErrors()
		if b.dataDir != "" {
			if err := syncTree(b.dataDir); err != nil {
				errs = append(errs, fmt.Errorf("embedded broker: sync data dir %s: %w", b.dataDir, err))
			}
		}
		if err := b.unlock(); err != nil {
			errs = append(errs, fmt.Errorf("embedded broker: unlock data dir %s: %w", b.dataDir, err))
		}
		b.closeErr = errors.Join(errs...)
		b.log.Info("embedded kafka broker stopped", "addr", b.addr, "err", b.closeErr)
	})
	return b.closeErr
}

func (b *Broker) enforceRetention(every time.Duration) {
	defer close(b.retentionDone)
	if every <= 0 {
		<-b.stopRetention
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stopRetention:
			return
		case <-t.C:
			// ApplyRetention runs on the cluster's loop; Close waits
			// for this goroutine before stopping that loop.
			b.cluster.ApplyRetention()
		}
	}
}

// persistAutoCreatedTopics makes topic auto-creation durable.
//
// kfake writes its topic list (topics.json) when a topic is created by a
// CreateTopics request, but not when a Metadata request auto-creates one;
// the list is then only written at Close. After a crash such a topic, and
// every record acknowledged in it, would be gone on restart. So, before
// kfake handles a Produce request, the broker makes sure every topic in it
// is in the persisted list: the first time this process sees a produce to a
// topic, it has kfake rewrite the list (by creating and deleting a
// placeholder topic, the only public calls that write it) before the
// records can be acknowledged.
//
// Control functions run before kfake checks authentication and ACLs and
// cannot tell who sent a request, so this hook never creates a topic: a
// client without credentials, or without the right to a topic, gets no
// more from it than a rewrite of the topic list. Topics are auto-created
// by kfake itself, after its checks. kfake runs control functions on their
// own goroutine while its loop keeps serving admin calls, which is what
// lets CreateTopic run from here.
func (b *Broker) persistAutoCreatedTopics() {
	// A placeholder left by a crash mid-rewrite goes now.
	_ = b.cluster.DeleteTopic(topicListPlaceholder)
	b.cluster.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req, ok := kr.(*kmsg.ProduceRequest)
		if !ok || b.closing.Load() {
			// Once closing, kfake's loop may be gone and would never
			// run our calls.
			return nil, nil, false
		}
		var fresh []string
		for _, rt := range req.Topics {
			topic := rt.Topic
			if rt.TopicID != [16]byte{} { // produce v13 names topics by id
				ti := b.cluster.TopicIDInfo(rt.TopicID)
				if ti == nil {
					continue
				}
				topic = ti.Topic
			}
			if _, known := b.ensured.Load(topic); known || b.cluster.TopicInfo(topic) == nil {
				continue // kfake answers an unknown topic with the proper error
			}
			fresh = append(fresh, topic)
		}
		if len(fresh) == 0 {
			return nil, nil, false
		}
		if err := b.rewriteTopicList(); err != nil {
			b.log.Warn("embedded broker: persisting auto-created topics", "topics", fresh, "err", err)
			return nil, nil, false
		}
		for _, t := range fresh {
			b.ensured.Store(t, struct{}{})
		}
		return nil, nil, false // observed only: kfake answers the request
	})
	// A deleted topic may come back by auto-creation and must then be
	// persisted again. Deletes may name topics by id, so forget them all.
	b.cluster.ControlKey(int16(kmsg.DeleteTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.ensured.Clear()
		return nil, nil, false
	})
}

// topicListPlaceholder is the topic rewriteTopicList creates and deletes.
// Its name starts with "__", like Kafka's internal topics, and matches none
// of weir's topic patterns.
const topicListPlaceholder = "__weir_topic_list"

// rewriteTopicList makes kfake write its topic list, with every topic that
// exists now, to the data dir.
func (b *Broker) rewriteTopicList() error {
	if err := b.cluster.CreateTopic(topicListPlaceholder, 1, nil); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	return b.cluster.DeleteTopic(topicListPlaceholder)
}

// advertisedAddr picks the address metadata responses announce: the
// explicit one if given (its missing or zero port replaced by the bound
// port), else the listen host, or 127.0.0.1 when the listen host is
// unspecified, with the bound port.
func advertisedAddr(explicit, listen string, port int) (string, error) {
	if explicit != "" {
		host, p, err := net.SplitHostPort(explicit)
		if err != nil {
			// A bare host ("kafka.local") takes the bound port.
			host, p = explicit, ""
		}
		if host == "" {
			return "", fmt.Errorf("advertised address %q has no host", explicit)
		}
		if p == "" || p == "0" {
			p = strconv.Itoa(port)
		}
		return net.JoinHostPort(host, p), nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// advertisedListener reports the advertised address as its own: kfake puts
// the listener's address into metadata responses, and an external client
// must be sent somewhere it can reach, never 0.0.0.0.
//
// It also wraps every connection in a compatConn, for librdkafka clients.
type advertisedListener struct {
	net.Listener
	addr string
}

func (l *advertisedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return conn, err
	}
	return newCompatConn(conn), nil
}

func (l *advertisedListener) Addr() net.Addr { return tcpAddrString(l.addr) }

type tcpAddrString string

func (tcpAddrString) Network() string  { return "tcp" }
func (a tcpAddrString) String() string { return string(a) }

// onceListener hands kfake the listener we already bound (kfake would bind
// 127.0.0.1 itself) and refuses a second call, which would mean kfake
// started more than one broker.
func onceListener(ln net.Listener) func(network, address string) (net.Listener, error) {
	var used bool
	return func(string, string) (net.Listener, error) {
		if used {
			return nil, errors.New("embedded broker supports a single listener")
		}
		used = true
		return ln, nil
	}
}

// syncTree fsyncs every regular file and directory under dir. kfake closes
// its segment and group-log files at shutdown without fsyncing them unless
// SyncWrites is on, and renames its compacted groups.log into place; this
// makes both durable.
func syncTree(dir string) error {
	var errs []error
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		if err := syncPath(path); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	serr := f.Sync()
	cerr := f.Close()
	if serr != nil {
		return fmt.Errorf("fsync %s: %w", path, serr)
	}
	return cerr
}
