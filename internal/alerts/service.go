package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/netguard"
)

// Defaults of Config.
const (
	DefaultRetryFor       = 24 * time.Hour
	DefaultRetryBase      = time.Second
	DefaultRetryMax       = 5 * time.Minute
	DefaultPoll           = 250 * time.Millisecond
	DefaultWebhookTimeout = 10 * time.Second
)

// Config configures a Service.
type Config struct {
	Store metastore.Store
	// Bus carries the weir.alerts topic and the jobs' results topics; a
	// Service that only manages rules (the API of a process without the
	// alerts role) may have none.
	Bus bus.Bus
	// Webhooks is the policy for webhook addresses: public ones only,
	// plus what it allows (netguard's outbound policy).
	Webhooks netguard.Outbound
	// RetryFor is how long a delivery is retried before it is dead, for
	// rules that name no retry_for; default 24 h.
	RetryFor time.Duration
	// RetryBase and RetryMax bound the backoff between attempts: the n-th
	// failure waits RetryBase·2^(n-1), at most RetryMax, less a random
	// part of up to half (jitter); defaults 1 s and 5 min.
	RetryBase, RetryMax time.Duration
	// Poll is how often the deliverer looks for due deliveries queued by
	// other processes, and stream watchers look at their stream; default
	// 250 ms.
	Poll time.Duration
	// WebhookTimeout bounds one webhook request; default 10 s.
	WebhookTimeout time.Duration
	// Holder names this process in leases.
	Holder string
	// Registry receives the metrics; nil keeps them unexported.
	Registry prometheus.Registerer
	// Version goes in the webhook requests' User-Agent.
	Version string
	Log     *slog.Logger
}

// Service manages rules (the REST API's seam) and, when Run, evaluates
// them and delivers their alerts.
type Service struct {
	cfg    Config
	log    *slog.Logger
	m      *Metrics
	client *http.Client
	// wake tells this process's deliverer that deliveries were queued.
	wake chan struct{}
	// claims numbers this process's lease claims.
	claims sync.Mutex
	claim  int64

	rulesMu  sync.Mutex
	rulesAt  time.Time
	rulesErr error
	rules    []*Rule
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("alerts: no metadata store")
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = DefaultWebhookTimeout
	}
	if cfg.Holder == "" {
		cfg.Holder = metastore.DefaultHolder()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m, err := NewMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("alerts metrics: %w", err)
	}
	return &Service{cfg: cfg, log: cfg.Log.With("component", "alerts"), m: m,
		client: cfg.Webhooks.HTTPClient(cfg.WebhookTimeout), wake: make(chan struct{}, 1)}, nil
}

// holder is a new lease holder name of this process.
func (s *Service) holder() string {
	s.claims.Lock()
	defer s.claims.Unlock()
	s.claim++
	return fmt.Sprintf("%s#alerts%d", s.cfg.Holder, s.claim)
}

// notify wakes this process's deliverer.
func (s *Service) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run evaluates the rules and delivers alerts until ctx ends: the jobs
// announced on control_jobs (consumer group weir_alerts), a watcher for
// every no_segments rule whose lease this process gets, and the
// deliverer when this process holds its lease.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Bus == nil {
		return errors.New("alerts: no bus")
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.runJobs(ctx) })
	wg.Go(func() { s.runStreams(ctx) })
	wg.Go(func() { s.runDeliverer(ctx) })
	wg.Wait()
	return nil
}

// allRules returns every rule, parsed, read at most every 500 ms.
func (s *Service) allRules(ctx context.Context) ([]*Rule, error) {
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	if time.Since(s.rulesAt) < 500*time.Millisecond {
		return s.rules, s.rulesErr
	}
	stored, err := s.cfg.Store.ListAlertRules(ctx)
	if err != nil {
		return nil, err
	}
	rules := make([]*Rule, 0, len(stored))
	for _, r := range stored {
		rule, err := ParseSpec(r.ID, r.Name, r.Spec, r.Secret, r.CreatedAt)
		if err != nil {
			s.log.Warn("a stored rule does not parse; it is skipped", "rule", r.ID, "err", err)
			continue
		}
		rules = append(rules, rule)
	}
	s.rules, s.rulesErr, s.rulesAt = rules, nil, time.Now()
	return rules, nil
}

// forgetRules makes the next allRules read the store.
func (s *Service) forgetRules() {
	s.rulesMu.Lock()
	s.rulesAt = time.Time{}
	s.rulesMu.Unlock()
}

// rule returns one rule, parsed (its secret included).
func (s *Service) rule(ctx context.Context, id string) (*Rule, error) {
	r, err := s.cfg.Store.GetAlertRule(ctx, id)
	if err != nil {
		return nil, err
	}
	return ParseSpec(r.ID, r.Name, r.Spec, r.Secret, r.CreatedAt)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
