package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/prom"
)

// Task is one engine task of a job.
type Task struct {
	// ID is the task's id, the taskId of its messages.
	ID string
	// Engine is the engine's name, as windows name missing engines.
	Engine string
}

// Store is what the aggregator needs of the metadata store;
// metastore.Store is one.
type Store interface {
	PutWindow(ctx context.Context, w metastore.Window) (bool, error)
	WindowMarks(ctx context.Context, jobID string) ([]metastore.Window, error)
	ListWindows(ctx context.Context, q metastore.WindowQuery) ([]metastore.Window, string, error)
	PutLateResult(ctx context.Context, l metastore.LateResult) (bool, error)
}

// Config configures an Aggregator.
type Config struct {
	// JobID is the job; its results topic is read and its windows topic
	// written.
	JobID string
	// TDOID is the tdoId of the windows produced.
	TDOID string
	// Tasks are the job's engine tasks, one graph input each.
	Tasks []Task
	// Window is the windows' width; StallTimeout how long a task's bound
	// may stand still while another is past the next window.
	Window, StallTimeout time.Duration
	Bus                  bus.Bus
	Store                Store
	// Metrics receives the counters; nil keeps none.
	Metrics *Metrics
	// Tick is how often stalls are looked for; default StallTimeout/10,
	// at most a second.
	Tick time.Duration
	// OnWindow, when set, is called with every window once it is stored
	// and produced.
	OnWindow func(metastore.Window)
	Log      *slog.Logger
}

func (c *Config) check() error {
	switch {
	case c.JobID == "":
		return errors.New("aggregator: no job")
	case len(c.Tasks) == 0:
		return fmt.Errorf("aggregator: job %s: no tasks", c.JobID)
	case c.Window < time.Millisecond || c.StallTimeout <= 0:
		return fmt.Errorf("aggregator: job %s: window %v and stall timeout %v must be positive", c.JobID, c.Window, c.StallTimeout)
	case c.Bus == nil || c.Store == nil:
		return fmt.Errorf("aggregator: job %s: no bus or no store", c.JobID)
	}
	seen := map[string]bool{}
	for _, t := range c.Tasks {
		if t.ID == "" || t.Engine == "" || seen[t.ID] {
			return fmt.Errorf("aggregator: job %s: task %q of engine %q: ids must be set and distinct", c.JobID, t.ID, t.Engine)
		}
		seen[t.ID] = true
	}
	if c.Tick <= 0 {
		c.Tick = min(c.StallTimeout/10, time.Second)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Metrics are the aggregators' Prometheus series, shared by every job's.
type Metrics struct {
	windows *prometheus.CounterVec
	late    prometheus.Counter
}

// NewMetrics makes the series and registers them with reg (nil: not
// exported).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_aggregator_windows_total",
			Help: "Windows of merged results the aggregators emitted, by state: complete (every engine had passed the window) or partial (a stalled engine was timed out).",
		}, []string{"state"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_aggregator_late_results_total",
			Help: "Results that arrived after their engine's share of a window was settled, counted once per window they overlap.",
		}),
	}
	m.windows.WithLabelValues(string(metastore.WindowComplete))
	m.windows.WithLabelValues(string(metastore.WindowPartial))
	if reg == nil {
		return m, nil
	}
	var err error
	if m.windows, err = prom.Register(reg, m.windows); err != nil {
		return nil, err
	}
	if m.late, err = prom.Register(reg, m.late); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) window(status metastore.WindowStatus) {
	if m != nil {
		m.windows.WithLabelValues(string(status)).Inc()
	}
}

func (m *Metrics) lateResult() {
	if m != nil {
		m.late.Inc()
	}
}
