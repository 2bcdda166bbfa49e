package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/aggregator"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/chunker"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// Why a running job stopped: the causes of its context.
var (
	errJobDone      = errors.New("job complete")
	errJobCancelled = errors.New("job cancelled")
	errSource       = errors.New("source")
)

// run is one job being run: the chunker on its source, a lane per engine,
// the consumer of its results topic and the aggregator of its results.
type run struct {
	r      *Runner
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc
	job    metastore.Job
	req    Request

	mu      sync.Mutex
	lanes   []*lane
	streams []*streamTask // the stream engines
	byTask  map[string]*lane
	tasks   map[string]*metastore.Task // by engine
	opts    map[string]json.RawMessage // engine → its taskPayload
	kinds   map[string]chunker.Kind    // engine → the chunks it reads
	lastHB  map[string]time.Time       // engine → its last heartbeat
	bounds  map[string]*taskBound      // engine → its timestamp bound
	dirty   bool                       // progress to record
	offset  int64                      // the source's relativeStartOffsetMS
	chunked atomic.Bool                // the chunker has cut the whole source
	wake    chan struct{}              // a lane made room
	agg     *aggregator.Aggregator
	routed  int64        // routed chunks made: the next one's index
	frames  *frameSource // where a route cuts frames from
	// keep is the local copy of the source kept for the frames of a
	// route, removed when the run ends.
	keep string
	// remuxSpool receives a file source's remux for the stream engines,
	// when a route cuts frames from it.
	remuxSpool *spoolFile
}

func newRun(r *Runner, ctx context.Context, job metastore.Job) (*run, error) {
	req, err := DecodeSpec(job.Spec)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job.ID, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	ru := &run{r: r, log: r.log.With("job", job.ID), ctx: ctx, cancel: cancel, job: job, req: *req,
		byTask: map[string]*lane{}, tasks: map[string]*metastore.Task{}, opts: map[string]json.RawMessage{},
		kinds: map[string]chunker.Kind{}, lastHB: map[string]time.Time{}, bounds: map[string]*taskBound{},
		wake: make(chan struct{}, 1), frames: newFrameSource()}
	if err := ru.setUpLanes(); err != nil {
		cancel(err)
		return nil, err
	}
	if ru.agg, err = ru.newAggregator(); err != nil {
		cancel(err)
		return nil, err
	}
	return ru, nil
}

// setUpLanes makes a lane per engine task, with the chunks an earlier run
// finished read back from the metadata store.
func (ru *run) setUpLanes() error {
	tasks, err := ru.r.cfg.Meta.ListTasks(ru.ctx, ru.job.ID)
	if err != nil {
		return err
	}
	live := ru.req.Source.Live != ""
	for i := range tasks {
		t := &tasks[i]
		entry, err := ru.r.cfg.Catalog.Get(ru.ctx, t.Engine)
		if err != nil {
			return fmt.Errorf("engine %s: %w", t.Engine, err)
		}
		if entry.Spec.Mode == engine.ModeStream {
			if err := ru.addStream(t); err != nil {
				return err
			}
			continue
		}
		in := ru.inputOf(t.Engine)
		kind, ok := chunker.KindFor(entry.Spec.Inputs)
		if !ok && in == nil {
			return fmt.Errorf("engine %s reads %v, none of which weir's chunker makes", t.Engine, entry.Spec.Inputs)
		}
		topic := protocol.ChunkTopic(t.Engine)
		if entry.Kafka != nil && entry.Kafka.Topic != "" {
			topic = entry.Kafka.Topic
		}
		done, err := ru.finishedChunks(t.Engine)
		if err != nil {
			return err
		}
		l := newLane(t.Engine, topic, ru.policy(t.Engine), live, done)
		ru.lanes = append(ru.lanes, l)
		ru.byTask[t.ID] = l
		ru.tasks[t.Engine] = t
		ru.opts[t.Engine] = payloadOf(t.Payload)
		if in != nil {
			l.route = newRouteState(in) // fed by the router, not the chunker
			continue
		}
		ru.kinds[t.Engine] = kind
	}
	if len(ru.lanes) == 0 {
		return errors.New("the job has no engine tasks")
	}
	return nil
}

// addStream sets up a stream engine's task: a lane with no chunks, for
// its results and progress, and the stream task that runs it.
func (ru *run) addStream(t *metastore.Task) error {
	reg, ok := ru.r.cfg.Engines.Lookup(t.Engine)
	if !ok {
		return fmt.Errorf("stream engine %s is not built into this weir", t.Engine)
	}
	done, err := ru.finishedChunks(t.Engine)
	if err != nil {
		return err
	}
	pol := ru.policy(t.Engine)
	pol.retries = 0 // a stream engine that failed has read the source: it cannot run again
	pol.chunkTimeout = 1<<63 - 1
	l := newLane(t.Engine, "", pol, false, done)
	ru.lanes = append(ru.lanes, l)
	ru.byTask[t.ID] = l
	ru.tasks[t.Engine] = t
	ru.opts[t.Engine] = payloadOf(t.Payload)
	st, err := ru.newStreamTask(l, reg, ru.opts[t.Engine])
	if err != nil {
		return err
	}
	if st != nil {
		ru.streams = append(ru.streams, st)
	}
	return nil
}

// inputOf is the engine's input when it reads another engine's output.
func (ru *run) inputOf(engineName string) *EngineInput {
	e, _ := ru.req.Engine(engineName)
	if e.Input == nil || e.Input.From == "" || (e.Input.Kind != RouteFrames && e.Input.Kind != RouteDocuments) {
		return nil
	}
	return e.Input
}

// payloadOf returns a task's options as a taskPayload: a JSON object.
func payloadOf(p json.RawMessage) json.RawMessage {
	if len(p) == 0 || string(p) == "null" {
		return json.RawMessage(`{}`)
	}
	return p
}

func (ru *run) finishedChunks(engineName string) (map[string]metastore.ChunkState, error) {
	chunks, err := ru.r.cfg.Meta.ListJobChunks(ru.ctx, ru.job.ID, engineName)
	if err != nil {
		return nil, err
	}
	done := map[string]metastore.ChunkState{}
	for _, c := range chunks {
		if terminal(c.State) {
			done[c.ChunkUUID] = c.State
		}
	}
	return done, nil
}

// policy is an engine's flow policy as the API stored it (defaults
// filled in there; an explicit 0 retries stays 0), made safe against a
// hand-written row.
func (ru *run) policy(engineName string) lanePolicy {
	e, _ := ru.req.Engine(engineName)
	p := lanePolicy{maxInFlight: max(e.Policy.MaxInFlight, 1), maxBacklog: e.Policy.MaxBacklog,
		retries: max(e.Policy.Retries, 0), chunkTimeout: e.Policy.Timeout(), silence: 3 * ru.r.cfg.HeartbeatInterval}
	if p.chunkTimeout <= 0 {
		p.chunkTimeout = 2 * time.Minute
	}
	p.maxBacklog = max(p.maxBacklog, p.maxInFlight+1)
	return p
}

// execute runs the job until it completes, fails, is cancelled, or its
// lease is lost. nil means the job is over; an error, that it must run
// again (the lease was lost or the process is stopping).
func (ru *run) execute() error {
	defer ru.cancel(nil)
	if err := ru.start(); err != nil {
		return err
	}
	defer func() {
		if ru.keep != "" {
			os.Remove(ru.keep)
		}
	}()
	var wg sync.WaitGroup
	wg.Go(ru.consumeResults)
	wg.Go(func() { _ = ru.agg.Run(ru.ctx) })
	if ru.hasRoutes() {
		wg.Go(ru.routeOutputs)
	}
	wg.Go(func() {
		if err := ru.chunkSource(); err != nil {
			ru.cancel(fmt.Errorf("%w: %w", errSource, err))
			return
		}
		ru.chunked.Store(true)
	})
	ru.loop()
	wg.Wait()
	return ru.end(context.Cause(ru.ctx))
}

// start creates the job's topics and marks it running.
func (ru *run) start() error {
	b := ru.r.cfg.Bus
	for _, topic := range []string{protocol.ResultsTopic(ru.job.ID), protocol.WindowsTopic(ru.job.ID)} {
		if err := b.CreateTopic(ru.ctx, topic, 1); err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	for _, l := range ru.lanes {
		if l.topic == "" {
			continue // a stream engine's: it gets no chunks
		}
		if err := b.CreateTopic(ru.ctx, l.topic, 1); err != nil {
			return fmt.Errorf("create topic %s: %w", l.topic, err)
		}
	}
	ru.log.Info("job running", "engines", len(ru.lanes), "source", describeSource(ru.req.Source))
	return ru.r.setStatus(ru.ctx, ru.job.ID, metastore.JobRunning, "")
}

// loop ticks until the job's context ends: timeouts and retries,
// cancellation, progress, completion.
func (ru *run) loop() {
	t := time.NewTicker(ru.r.cfg.Tick)
	defer t.Stop()
	checkedStatus := time.Now()
	for {
		select {
		case <-ru.ctx.Done():
			return
		case now := <-t.C:
			ru.expire(now)
			if now.Sub(checkedStatus) >= time.Second {
				checkedStatus = now
				ru.checkCancelled()
			}
			ru.recordProgress(false)
			ru.tickBounds(now)
			if ru.chunked.Load() && ru.allIdle() && ru.streamsDone() && ru.boundsDone() && ru.agg.Finished() {
				ru.cancel(errJobDone)
			}
		}
	}
}

func (ru *run) allIdle() bool {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	for _, l := range ru.lanes {
		if !l.idle() {
			return false
		}
	}
	return true
}

// checkCancelled stops the job when the API cancelled it.
func (ru *run) checkCancelled() {
	job, err := ru.r.cfg.Meta.GetJob(ru.ctx, ru.job.ID)
	if err == nil && job.Status == metastore.JobCancelled {
		ru.cancel(errJobCancelled)
	}
}

// expire retries or fails the chunks whose answers are overdue.
func (ru *run) expire(now time.Time) {
	type step struct {
		l       *lane
		changed []*work
		send    []*work
	}
	var steps []step
	ru.mu.Lock()
	for _, l := range ru.lanes {
		changed, down := l.expire(now)
		for _, id := range down {
			ru.log.Warn("engine instance silent; marked down and its chunks sent again", "engine", l.engine, "instance", id)
		}
		if send := l.next(now); len(changed)+len(send) > 0 {
			steps = append(steps, step{l, changed, send})
		}
	}
	ru.mu.Unlock()
	for _, s := range steps {
		for _, w := range s.changed {
			ru.persist(s.l, w)
		}
		ru.send(s.l, s.send)
		ru.settled(s.l)
	}
}

// end records how the job ended. nil means it is over.
func (ru *run) end(cause error) error {
	ctx := context.WithoutCancel(ru.ctx)
	switch {
	case errors.Is(cause, errJobDone):
		ru.r.m.jobs.WithLabelValues(string(metastore.JobComplete)).Inc()
		ru.finishTasks(ctx, metastore.JobComplete)
		ru.log.Info("job complete")
		return ru.r.setStatus(ctx, ru.job.ID, metastore.JobComplete, "")
	case errors.Is(cause, errJobCancelled):
		ru.r.m.jobs.WithLabelValues(string(metastore.JobCancelled)).Inc()
		ru.finishTasks(ctx, metastore.JobCancelled)
		ru.log.Info("job cancelled")
		return nil
	case ru.ctx.Err() != nil && errors.Is(cause, errSource):
		ru.r.m.jobs.WithLabelValues(string(metastore.JobFailed)).Inc()
		ru.finishTasks(ctx, metastore.JobFailed)
		return ru.r.fail(ctx, ru.job.ID, cause)
	}
	return fmt.Errorf("job %s stopped: %w", ru.job.ID, cause)
}

// finishTasks records the tasks' final progress with status s.
func (ru *run) finishTasks(ctx context.Context, s metastore.JobStatus) {
	ru.mu.Lock()
	for _, t := range ru.tasks {
		t.Status = s
	}
	ru.mu.Unlock()
	ru.recordProgressCtx(ctx, true)
}

// recordProgress writes each task's heartbeat summary when it changed (or
// always, with force).
func (ru *run) recordProgress(force bool) { ru.recordProgressCtx(ru.ctx, force) }

func (ru *run) recordProgressCtx(ctx context.Context, force bool) {
	ru.mu.Lock()
	if !ru.dirty && !force {
		ru.mu.Unlock()
		return
	}
	ru.dirty = false
	var tasks []metastore.Task
	for name, t := range ru.tasks {
		out := TaskOutput{Instances: ru.instancesOf(name)}
		out.LastHeartbeat = ru.lastHB[name]
		t.Output, _ = json.Marshal(out)
		if t.Status == metastore.JobPending {
			t.Status = metastore.JobRunning
		}
		tasks = append(tasks, *t)
	}
	ru.mu.Unlock()
	for _, t := range tasks {
		if err := ru.r.cfg.Meta.UpsertTask(ctx, t); err != nil {
			ru.log.Warn("record task progress", "task", t.ID, "err", err)
		}
	}
}

// instancesOf lists the engine's instances heard from lately; ru.mu held.
func (ru *run) instancesOf(engineName string) []string {
	for _, l := range ru.lanes {
		if l.engine == engineName {
			ids := make([]string, 0, len(l.instances))
			for id := range l.instances {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return ids
		}
	}
	return nil
}

// persist records a chunk's state in the metadata store, as it is now:
// the lanes change their chunks under ru.mu, so the state is read under
// it too.
func (ru *run) persist(l *lane, w *work) {
	ru.mu.Lock()
	c := metastore.JobChunk{JobID: ru.job.ID, Engine: l.engine, ChunkUUID: w.uuid(), ChunkIndex: w.msg.ChunkIndex,
		StartMs: w.msg.StartOffsetMs, EndMs: w.msg.EndOffsetMs, Kind: w.kind, State: w.state,
		Attempts: w.attempts, Info: w.info}
	ru.dirty = true
	ru.mu.Unlock()
	ru.r.m.chunks.WithLabelValues(l.engine, string(c.State)).Inc()
	if err := ru.r.cfg.Meta.PutJobChunk(context.WithoutCancel(ru.ctx), c); err != nil {
		ru.log.Warn("record chunk state", "engine", l.engine, "chunk", c.ChunkUUID, "err", err)
	}
}

// send produces chunks on the lane's topic. A chunk that cannot be
// produced stays in flight and is retried when its answer is overdue.
func (ru *run) send(l *lane, ws []*work) {
	for _, w := range ws {
		ru.mu.Lock()
		w.msg.TimestampUTC = protocol.NowMillis()
		key, value, err := protocol.Encode(w.msg)
		ru.mu.Unlock()
		if err == nil {
			err = ru.r.cfg.Bus.Produce(ru.ctx, &bus.Record{Topic: l.topic, Key: key, Value: value})
		}
		if err != nil {
			ru.log.Warn("send chunk", "engine", l.engine, "chunk", w.uuid(), "err", err)
		}
		ru.persist(l, w)
	}
}

// announceDropped writes chunk_processed_status IGNORED for chunks flow
// control dropped, so whoever reads the results topic sees them too.
func (ru *run) announceDropped(l *lane, ws []*work) {
	for _, w := range ws {
		ru.persist(l, w)
		st := &protocol.ChunkProcessedStatus{Header: protocol.Header{Type: protocol.TypeChunkProcessedStatus,
			TimestampUTC: protocol.NowMillis(), TaskID: w.msg.TaskID, TDOID: w.msg.TDOID, JobID: ru.job.ID},
			ChunkUUID: w.uuid(), Status: protocol.ChunkIgnored, InfoMsg: w.info}
		key, value, err := protocol.Encode(st)
		if err == nil {
			err = ru.r.cfg.Bus.Produce(ru.ctx, &bus.Record{Topic: protocol.ResultsTopic(ru.job.ID), Key: key, Value: value})
		}
		if err != nil {
			ru.log.Warn("announce dropped chunk", "engine", l.engine, "chunk", w.uuid(), "err", err)
		}
	}
}
