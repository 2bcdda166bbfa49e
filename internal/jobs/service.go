package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// Errors of the Service; test them with errors.Is. Problems with a request
// are *RequestError values instead, naming the member at fault.
var (
	// ErrNotFound: no job has the id.
	ErrNotFound = errors.New("job not found")
	// ErrConflict: the job or its source is not in a state that allows
	// the operation (cancelling a finished job, a VOD without an uploaded
	// original, an engine that is unavailable).
	ErrConflict = errors.New("conflict")
	// ErrBus: the job was stored but its JobRun could not be produced;
	// the job is marked failed.
	ErrBus = errors.New("the bus did not take the job")
)

// kindError is an error of one of the kinds above whose text is its own
// message alone, so the REST API can show it as it is.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func errorOf(kind, cause error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// DefaultBusTimeout bounds how long Create waits for the bus to take a
// JobRun.
const DefaultBusTimeout = 10 * time.Second

// Service creates jobs, reads them and their results, and cancels them:
// the job side of the REST API. Running a job is the runner's work; the
// Service only announces it on protocol.TopicJobs.
type Service struct {
	Meta    metastore.Store
	Bus     bus.Bus
	Catalog *engines.Catalog
	// AllowPrivateSources lets a URL source name a loopback, private or
	// reserved address (weir serve --allow-private-sources).
	AllowPrivateSources bool

	// Lookup finds engines; nil uses Catalog.
	Lookup EngineLookup
	// TopicExists, when set, is asked whether a topic source exists;
	// nil accepts any legal topic name (it may be created later).
	TopicExists func(ctx context.Context, topic string) (bool, error)
	// LookupHost resolves a URL source's host name; nil uses
	// net.DefaultResolver.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
	// BusTimeout bounds the wait for the bus (default DefaultBusTimeout).
	BusTimeout time.Duration
	// Log receives what the Service does; nil logs to slog.Default().
	Log *slog.Logger
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) lookup() EngineLookup {
	if s.Lookup != nil {
		return s.Lookup
	}
	return s.Catalog
}

// NewJobID returns "job-" and 12 random hex digits.
func NewJobID() string {
	var b [6]byte
	rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}

// TaskID is the id of the task of engine in job jobID: "<jobID>-<engine>".
func TaskID(jobID, engine string) string { return jobID + "-" + engine }

// Create accepts a parsed request (ParseRequest): it resolves the engines
// and their options, checks the source, stores the job (pending) and one
// task per engine, and produces a protocol.JobRun on protocol.TopicJobs.
// It returns the job's view.
func (s *Service) Create(ctx context.Context, req *Request) (View, error) {
	if err := s.CheckEngines(ctx, req); err != nil {
		return View{}, err
	}
	streamID, err := s.checkSource(ctx, req.Source)
	if err != nil {
		return View{}, err
	}
	spec, err := json.Marshal(req)
	if err != nil {
		return View{}, fmt.Errorf("job request: %w", err)
	}
	job, err := s.createJob(ctx, metastore.Job{Kind: req.Source.Kind(), StreamID: streamID, Status: metastore.JobPending, Spec: spec})
	if err != nil {
		return View{}, err
	}
	tasks := make([]metastore.Task, 0, len(req.Engines))
	for _, e := range req.Engines {
		payload, err := json.Marshal(e.Options)
		if err != nil {
			return View{}, fmt.Errorf("engine %s options: %w", e.Name, err)
		}
		t := metastore.Task{ID: TaskID(job.ID, e.Name), JobID: job.ID, Name: e.Name, Engine: e.Name,
			Status: metastore.JobPending, Payload: payload}
		if err := s.Meta.UpsertTask(ctx, t); err != nil {
			s.fail(ctx, job, "could not store its tasks")
			return View{}, fmt.Errorf("job %s: task %s: %w", job.ID, t.ID, err)
		}
		tasks = append(tasks, t)
	}
	if err := s.announce(ctx, job); err != nil {
		s.fail(ctx, job, "could not queue the job on the bus")
		return View{}, errorOf(ErrBus, err, "job %s was stored but could not be queued on the bus (%v); it is marked failed", job.ID, err)
	}
	s.log().Info("job created", "job", job.ID, "source", req.Source.Kind(), "engines", req.EngineNames())
	return NewView(job, tasks, nil)
}

// CheckEngines resolves a parsed request's engines and options as Create
// does (ResolveEngines), without storing anything: a *RequestError for a
// member at fault, ErrConflict for an engine that is unavailable. The
// request's options are then normalized.
func (s *Service) CheckEngines(ctx context.Context, req *Request) error {
	if _, err := req.ResolveEngines(ctx, s.lookup()); err != nil {
		if errors.Is(err, ErrEngineUnavailable) {
			return errorOf(ErrConflict, err, "%s", strings.TrimPrefix(err.Error(), ErrEngineUnavailable.Error()+": "))
		}
		return err
	}
	return nil
}

// createJob stores job under a fresh id, retrying the unlikely collision.
func (s *Service) createJob(ctx context.Context, job metastore.Job) (metastore.Job, error) {
	for attempt := 0; ; attempt++ {
		job.ID = NewJobID()
		created, err := s.Meta.CreateJob(ctx, job)
		if errors.Is(err, metastore.ErrExists) && attempt < 3 {
			continue
		}
		return created, err
	}
}

// announce produces the job's JobRun and waits for the broker.
func (s *Service) announce(ctx context.Context, job metastore.Job) error {
	key, value, err := protocol.EncodeControl(&protocol.JobRun{JobID: job.ID, SubmittedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	timeout := s.BusTimeout
	if timeout <= 0 {
		timeout = DefaultBusTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.Bus.Produce(ctx, &bus.Record{Topic: protocol.TopicJobs, Key: key, Value: value})
}

// fail marks a job that could not be set up failed, detached from the
// request so a client hanging up does not leave it pending forever.
func (s *Service) fail(ctx context.Context, job metastore.Job, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	job.Status, job.Error = metastore.JobFailed, reason
	if _, err := s.Meta.UpdateJob(ctx, job); err != nil {
		s.log().Error("mark job failed", "job", job.ID, "reason", reason, "err", err)
	}
}

// checkSource checks the request's source can be read and returns the
// stream id the job concerns ("" for topic and URL sources).
func (s *Service) checkSource(ctx context.Context, src Source) (string, error) {
	switch src.Kind() {
	case SourceVOD:
		st, err := s.sourceStream(ctx, "source.vod", src.VOD, metastore.KindVOD)
		if err != nil {
			return "", err
		}
		if st.SourceKey == "" {
			why := "it has no uploaded original"
			if st.SourceURL != "" {
				why = "it was imported from a URL and weir keeps no original of it; give that URL as source.url"
			}
			return "", errorOf(ErrConflict, nil, "source.vod: vod %s cannot be processed: %s", st.ID, why)
		}
		return st.ID, nil
	case SourceLive:
		st, err := s.sourceStream(ctx, "source.live", src.Live, metastore.KindLive)
		if err != nil {
			return "", err
		}
		return st.ID, nil
	case SourceTopic:
		if s.TopicExists != nil {
			ok, err := s.TopicExists(ctx, src.Topic)
			if err != nil {
				return "", fmt.Errorf("source.topic: checking topic %s: %w", src.Topic, err)
			}
			if !ok {
				return "", &RequestError{Problems: []*FieldError{{Field: "source.topic", Problem: fmt.Sprintf("topic %s does not exist", src.Topic)}}}
			}
		}
		return "", nil
	case SourceURL:
		return "", s.checkURLHost(ctx, src.URL)
	}
	return "", &RequestError{Problems: []*FieldError{{Field: "source", Problem: "is required"}}}
}

// sourceStream loads the stream a vod or live source names.
func (s *Service) sourceStream(ctx context.Context, field, id string, kind metastore.Kind) (metastore.Stream, error) {
	st, err := s.Meta.GetStream(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		list := "GET /vod"
		if kind == metastore.KindLive {
			list = "GET /streams"
		}
		return st, &RequestError{Problems: []*FieldError{{Field: field, Problem: fmt.Sprintf("no %s stream is called %s; %s lists them", kind, id, list)}}}
	}
	if err != nil {
		return st, fmt.Errorf("%s: reading stream %s: %w", field, id, err)
	}
	if st.Kind != kind {
		return st, &RequestError{Problems: []*FieldError{{Field: field, Problem: fmt.Sprintf("stream %s is a %s stream, not a %s one; give it as source.%s", id, st.Kind, kind, st.Kind)}}}
	}
	return st, nil
}

// checkURLHost refuses a URL whose host is, or resolves to, an address
// that is not public, unless AllowPrivateSources. The fetch checks every
// address it dials again (ingest.PublicAddr), so a name that resolves
// differently later is still refused then.
func (s *Service) checkURLHost(ctx context.Context, raw string) error {
	if s.AllowPrivateSources {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return &RequestError{Problems: []*FieldError{{Field: "source.url", Problem: "is not a valid URL"}}}
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		lookup := s.LookupHost
		if lookup == nil {
			lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if addrs, err = lookup(lctx, host); err != nil || len(addrs) == 0 {
			return &RequestError{Problems: []*FieldError{{Field: "source.url", Problem: fmt.Sprintf("host %s does not resolve: %v", host, err)}}}
		}
	}
	for _, ip := range addrs {
		if !ingest.PublicAddr(ip) {
			return &RequestError{Problems: []*FieldError{{Field: "source.url", Problem: fmt.Sprintf(
				"refusing a source at %s, a loopback, private or reserved address (start weir serve with --allow-private-sources to allow it)", ip)}}}
		}
	}
	return nil
}

// Get returns the job's view; ErrNotFound when there is none.
func (s *Service) Get(ctx context.Context, id string) (View, error) {
	job, err := s.getJob(ctx, id)
	if err != nil {
		return View{}, err
	}
	return s.view(ctx, job)
}

func (s *Service) getJob(ctx context.Context, id string) (metastore.Job, error) {
	job, err := s.Meta.GetJob(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return job, errorOf(ErrNotFound, err, "job %s not found; GET /jobs lists them", id)
	}
	return job, err
}

func (s *Service) view(ctx context.Context, job metastore.Job) (View, error) {
	tasks, err := s.Meta.ListTasks(ctx, job.ID)
	if err != nil {
		return View{}, err
	}
	counts, err := s.Meta.CountJobChunks(ctx, job.ID)
	if err != nil {
		return View{}, err
	}
	return NewView(job, tasks, counts)
}

// List pages jobs newest first, with their progress; status "" lists
// every status. next is "" on the last page. An unknown status or a
// cursor List did not make is a *RequestError naming "status" or
// "cursor".
func (s *Service) List(ctx context.Context, status string, limit int, cursor string) ([]View, string, error) {
	return s.ListWhere(ctx, ListFilter{Status: status}, limit, cursor)
}

// ListFilter selects the jobs ListWhere pages; "" fields match every job.
type ListFilter struct {
	// Status keeps the jobs in this status.
	Status string
	// Stream keeps the jobs whose source is this VOD title or live
	// stream ({"vod": id} or {"live": id}).
	Stream string
}

// ListWhere pages the jobs f selects, newest first, like List.
func (s *Service) ListWhere(ctx context.Context, f ListFilter, limit int, cursor string) ([]View, string, error) {
	st := metastore.JobStatus(f.Status)
	if f.Status != "" && !st.Valid() {
		return nil, "", &RequestError{Problems: []*FieldError{{Field: "status", Problem: fmt.Sprintf("must be one of %s, got %q", statusNames(), f.Status)}}}
	}
	jobs, next, err := s.Meta.ListJobsWhere(ctx, metastore.JobFilter{Status: st, StreamID: f.Stream}, limit, cursor)
	if errors.Is(err, metastore.ErrInvalid) && cursor != "" {
		return nil, "", &RequestError{Problems: []*FieldError{{Field: "cursor", Problem: "is not a cursor this server issued; list again without it"}}}
	}
	if err != nil {
		return nil, "", err
	}
	views := make([]View, 0, len(jobs))
	for _, j := range jobs {
		v, err := s.view(ctx, j)
		if err != nil {
			return nil, "", err
		}
		views = append(views, v)
	}
	return views, next, nil
}

func statusNames() string {
	names := make([]string, len(metastore.JobStatuses))
	for i, s := range metastore.JobStatuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Cancel moves a pending or running job to cancelled; its runner stops at
// its next look at the job. A finished job is ErrConflict.
func (s *Service) Cancel(ctx context.Context, id string) (View, error) {
	for attempt := 0; ; attempt++ {
		job, err := s.getJob(ctx, id)
		if err != nil {
			return View{}, err
		}
		if job.Status.Terminal() {
			return View{}, errorOf(ErrConflict, nil, "job %s is already %s and cannot be cancelled", id, job.Status)
		}
		job.Status, job.Error = metastore.JobCancelled, "cancelled"
		updated, err := s.Meta.UpdateJob(ctx, job)
		if errors.Is(err, metastore.ErrConflict) && attempt < 5 {
			continue // the runner wrote the job meanwhile: look again
		}
		if err != nil {
			return View{}, err
		}
		s.log().Info("job cancelled", "job", id)
		return s.view(ctx, updated)
	}
}

// ResultPage is one page of a job's results.
type ResultPage struct {
	Items []metastore.Result
	// Next is the cursor of the next page, "" on the last.
	Next string
}

// Results pages the results of job id in time order, filtered by q (its
// JobID is set from id). An engine the job does not run, a bad time range
// or cursor is a *RequestError; an unknown job ErrNotFound.
func (s *Service) Results(ctx context.Context, id string, q metastore.ResultQuery) (ResultPage, error) {
	job, err := s.getJob(ctx, id)
	if err != nil {
		return ResultPage{}, err
	}
	var problems RequestError
	if q.Engine != "" {
		req, err := DecodeSpec(job.Spec)
		if err != nil {
			return ResultPage{}, fmt.Errorf("job %s: %w", id, err)
		}
		if _, ok := req.Engine(q.Engine); !ok {
			problems.add("engine", "job %s runs no engine %s (it runs %s)", id, q.Engine, strings.Join(req.EngineNames(), ", "))
		}
	}
	if q.FromMs < 0 {
		problems.add("from", "must not be negative, got %d", q.FromMs)
	}
	if q.ToMs < 0 || (q.ToMs != 0 && q.ToMs <= q.FromMs) {
		problems.add("to", "must be after from (%d ms), got %d", q.FromMs, q.ToMs)
	}
	if err := problems.errOrNil(); err != nil {
		return ResultPage{}, err
	}
	q.JobID = id
	items, next, err := s.Meta.ListResults(ctx, q)
	if errors.Is(err, metastore.ErrInvalid) && q.After != "" {
		return ResultPage{}, &RequestError{Problems: []*FieldError{{Field: "cursor", Problem: "is not a cursor this server issued; ask again without it"}}}
	}
	if err != nil {
		return ResultPage{}, err
	}
	return ResultPage{Items: items, Next: next}, nil
}
