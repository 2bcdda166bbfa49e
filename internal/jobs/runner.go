package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/aggregator"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Bus     bus.Bus
	Meta    metastore.Store
	Objects objstore.Store
	Catalog *engines.Catalog
	// Engines holds the built-in engines the runner runs itself (stream
	// engines); default engine.Default().
	Engines *engine.Registry
	// PublicURL returns the base URL of weir's API
	// ("http://127.0.0.1:8080"): a chunk too large to travel inline, in an
	// object store that cannot presign, gets a cacheURI under it (GET
	// /jobs/{id}/chunks/...). It is a function because the HTTP
	// listener may be bound after the runner is made.
	PublicURL func() string
	// Holder names this process in the job leases.
	Holder string
	// MaxJobs bounds the jobs this runner runs at once; default 4.
	MaxJobs int
	// HTTPClient fetches URL sources; it should refuse private
	// addresses unless the operator allows them. Default
	// http.DefaultClient.
	HTTPClient *http.Client
	// TempDir holds the chunker's work files; default os.TempDir().
	TempDir string
	// HeartbeatInterval is the engines' heartbeat interval; an instance
	// silent for three of them is marked down. Default
	// protocol.HeartbeatInterval.
	HeartbeatInterval time.Duration
	// InlineMax is the largest chunk carried inline in its media_chunk
	// (base64) instead of through the object store; default 48 KiB.
	InlineMax int64
	// Tick is how often a running job checks for timeouts, cancellation
	// and completion, and records progress; default 500 ms.
	Tick time.Duration
	// FFmpeg is the ffmpeg program the chunker runs; default "ffmpeg".
	FFmpeg string
	// Registry receives the runner's Prometheus metrics; nil keeps them
	// unexported.
	Registry prometheus.Registerer
	Log      *slog.Logger
}

func (c *RunnerConfig) setDefaults() error {
	switch {
	case c.Bus == nil:
		return errors.New("job runner: no bus")
	case c.Meta == nil:
		return errors.New("job runner: no metadata store")
	case c.Objects == nil:
		return errors.New("job runner: no object store")
	case c.Catalog == nil:
		return errors.New("job runner: no engine catalog")
	}
	if c.Engines == nil {
		c.Engines = engine.Default()
	}
	if c.MaxJobs <= 0 {
		c.MaxJobs = 4
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = protocol.HeartbeatInterval
	}
	if c.InlineMax <= 0 {
		c.InlineMax = 48 << 10
	}
	if c.Tick <= 0 {
		c.Tick = 500 * time.Millisecond
	}
	if c.Holder == "" {
		c.Holder = metastore.DefaultHolder()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.TempDir != "" {
		if err := os.MkdirAll(c.TempDir, 0o700); err != nil {
			return fmt.Errorf("job runner: %w", err)
		}
	}
	return nil
}

// Runner runs jobs: it takes the protocol.JobRun records the API writes on
// protocol.TopicJobs (in consumer group protocol.GroupChunker, shared by
// every process with the chunker role) and runs each job to its end under
// the job's lease in the metadata store, so one runner runs a job however
// many processes read the topic. A runner that dies mid-job leaves the
// record unacknowledged; the runner that gets it next takes the lease over
// and goes on where the metadata store says the job was (see run.go).
type Runner struct {
	cfg   RunnerConfig
	log   *slog.Logger
	m     *metrics
	aggM  *aggregator.Metrics
	slots chan struct{}
	jobs  sync.WaitGroup
	// claims numbers this runner's lease claims.
	claims atomic.Int64
}

// NewRunner checks cfg and fills in its defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("job runner metrics: %w", err)
	}
	aggM, err := aggregator.NewMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("aggregator metrics: %w", err)
	}
	return &Runner{cfg: cfg, log: cfg.Log.With("component", "jobs"), m: m, aggM: aggM, slots: make(chan struct{}, cfg.MaxJobs)}, nil
}

// Run consumes protocol.TopicJobs until ctx ends, then waits for the jobs
// it started (which stop unfinished and unacknowledged, to be taken over).
func (r *Runner) Run(ctx context.Context) error {
	defer r.jobs.Wait()
	opts := bus.ConsumeOptions{
		Topics:         []string{protocol.TopicJobs},
		Group:          protocol.GroupChunker,
		FromBeginning:  true,
		MaxRecordBytes: protocol.MaxControlMessageBytes,
		Handler:        r.handleRecord,
	}
	pause := time.Second
	for {
		err := r.cfg.Bus.Consume(ctx, opts)
		if ctx.Err() != nil || err == nil {
			return nil
		}
		r.log.Warn("job subscription stopped; subscribing again", "err", err, "after", pause)
		if !sleep(ctx, pause) {
			return nil
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// handleRecord defers the record and runs its job in the background, so a
// long job never holds up the consumer group; the record is acknowledged
// when the job has ended.
func (r *Runner) handleRecord(ctx context.Context, rec *bus.Record) error {
	m, err := protocol.DecodeJobRun(rec.Key, rec.Value)
	if err != nil {
		return bus.Permanent(err)
	}
	ack := rec.Defer()
	r.jobs.Add(1)
	go func() {
		defer r.jobs.Done()
		if r.runUntilEnded(ctx, m.JobID) {
			ack()
		}
	}()
	return nil
}

// runUntilEnded runs the job in a slot, again after a pause when an
// attempt fails for a reason that may pass (the store was down, another
// runner holds the lease). It reports false when ctx ended first.
func (r *Runner) runUntilEnded(ctx context.Context, id string) bool {
	pause := time.Second
	for {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		err := r.runJob(ctx, id)
		<-r.slots
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.log.Warn("job will be tried again", "job", id, "err", err, "after", pause)
		if !sleep(ctx, pause) {
			return false
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// leaseTTL is how long a job lease lives without renewal: a runner that
// died is replaced after at most this long.
const leaseTTL = 15 * time.Second

// LeaseName is the metadata-store lease that keeps a job to one runner.
func LeaseName(jobID string) string { return "job/" + jobID }

// runJob runs one job under its lease. nil means the job has ended (or
// was already over, or does not exist); an error means try again.
func (r *Runner) runJob(ctx context.Context, id string) error {
	job, err := r.cfg.Meta.GetJob(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		r.log.Warn("job run for an unknown job; dropped", "job", id)
		return nil
	}
	if err != nil {
		return err
	}
	if jobOver(job.Status) {
		return nil
	}
	holder := fmt.Sprintf("%s#%d", r.cfg.Holder, r.claims.Add(1))
	held, err := metastore.Hold(ctx, r.cfg.Meta, LeaseName(id), holder, leaseTTL, r.log)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	defer held.Release(context.WithoutCancel(ctx))
	run, err := newRun(r, held.Context(), job)
	if err != nil {
		r.m.jobs.WithLabelValues(string(metastore.JobFailed)).Inc()
		return r.fail(ctx, id, err)
	}
	r.m.running.Inc()
	defer r.m.running.Dec()
	return run.execute()
}

// fail ends a job as failed with err's text. A job that cannot even start
// (its spec unreadable, an engine gone) fails for good: running it again
// would not help.
func (r *Runner) fail(ctx context.Context, id string, cause error) error {
	r.log.Warn("job failed", "job", id, "err", cause)
	return r.setStatus(ctx, id, metastore.JobFailed, cause.Error())
}

// setStatus moves a job to status unless it is already over, retrying on
// a concurrent write.
func (r *Runner) setStatus(ctx context.Context, id string, status metastore.JobStatus, msg string) error {
	for range 5 {
		job, err := r.cfg.Meta.GetJob(ctx, id)
		if err != nil {
			return err
		}
		if jobOver(job.Status) || job.Status == status {
			return nil
		}
		job.Status, job.Error = status, msg
		if _, err = r.cfg.Meta.UpdateJob(ctx, job); !errors.Is(err, metastore.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("job %s: status %s: too many concurrent writes", id, status)
}

func jobOver(s metastore.JobStatus) bool {
	return s == metastore.JobComplete || s == metastore.JobFailed || s == metastore.JobCancelled
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
