package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// consumeResults reads the job's results topic in the job's own consumer
// group until the job's context ends: a runner that takes the job over
// resumes after the last record this one committed. A record that stopped
// the consumer (the metadata store was down) is read again after a pause.
func (ru *run) consumeResults() {
	opts := bus.ConsumeOptions{
		Topics:         []string{protocol.ResultsTopic(ru.job.ID)},
		Group:          protocol.JobGroup(ru.job.ID),
		FromBeginning:  true,
		MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
		Handler:        ru.onResult,
	}
	pause := time.Second
	for {
		err := ru.r.cfg.Bus.Consume(ru.ctx, opts)
		if ru.ctx.Err() != nil {
			return
		}
		ru.log.Warn("results consumer stopped; starting again", "err", err, "after", pause)
		if !sleep(ru.ctx, pause) {
			return
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// onResult handles one record of the results topic. A record that is not
// a protocol message, or names a task that is not the job's, is
// dead-lettered; a store failure returns the error so the record is read
// again.
func (ru *run) onResult(ctx context.Context, rec *bus.Record) error {
	msg, err := protocol.Decode(rec.Key, rec.Value)
	if err == nil {
		err = msg.Validate()
	}
	if err != nil {
		return bus.Permanent(fmt.Errorf("results of job %s: %w", ru.job.ID, err))
	}
	switch m := msg.(type) {
	case *protocol.EngineOutput:
		return ru.onOutput(ctx, m)
	case *protocol.ChunkProcessedStatus:
		return ru.onStatus(m)
	case *protocol.EngineHeartbeat:
		ru.onHeartbeat(m)
	}
	return nil
}

func (ru *run) laneOf(taskID string) (*lane, error) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if l := ru.byTask[taskID]; l != nil {
		return l, nil
	}
	return nil, bus.Permanent(fmt.Errorf("results of job %s: taskId %q is not a task of the job", ru.job.ID, taskID))
}

// onOutput stores an engine's result, idempotently: the same output read
// twice (a redelivery, an engine that processed a chunk twice) is one row.
func (ru *run) onOutput(ctx context.Context, m *protocol.EngineOutput) error {
	l, err := ru.laneOf(m.TaskID)
	if err != nil {
		return err
	}
	content := m.Content
	if doc, err := m.Document(); err == nil && doc != nil {
		if b, err := json.Marshal(doc); err == nil {
			content = b
		}
	}
	uuid := m.ChunkUUID
	if uuid == "" {
		// Veritone lets an output answer no chunk (a stream engine's);
		// its start time tells it from the engine's others.
		uuid = noChunk
	}
	res := metastore.Result{JobID: ru.job.ID, Engine: l.engine, TaskID: m.TaskID, ChunkUUID: uuid,
		ChunkIndex: ru.chunkIndex(l, m.ChunkUUID), StartMs: m.StartOffsetMs, EndMs: m.EndOffsetMs,
		OutputType: m.OutputType, Rev: m.Rev, Content: content}
	if err := ru.r.cfg.Meta.PutResult(ctx, res); err != nil {
		err = fmt.Errorf("store result of %s for chunk %s: %w", l.engine, m.ChunkUUID, err)
		if errors.Is(err, metastore.ErrInvalid) {
			return bus.Permanent(err) // never storable: dead-lettered, not retried
		}
		return err
	}
	return nil
}

// noChunk stands for the chunk of an output that answers none.
const noChunk = "-"

// chunkIndex finds a chunk's index among the lane's unanswered chunks; 0
// when it is not there (the output of a stream engine, or of a chunk from
// before a restart).
func (ru *run) chunkIndex(l *lane, uuid string) int64 {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if w := l.inflight[uuid]; w != nil {
		return w.msg.ChunkIndex
	}
	for _, w := range l.queue {
		if w.uuid() == uuid {
			return w.msg.ChunkIndex
		}
	}
	return 0
}

// onStatus applies a chunk's answer: done, ignored, or an error that is
// retried or fails the chunk. The lane's freed room goes to the next
// chunks.
func (ru *run) onStatus(m *protocol.ChunkProcessedStatus) error {
	l, err := ru.laneOf(m.TaskID)
	if err != nil {
		return err
	}
	ru.mu.Lock()
	w, retry := l.answer(m)
	send := l.next(time.Now())
	ru.mu.Unlock()
	if w != nil {
		if retry {
			ru.log.Info("chunk will be sent again", "engine", l.engine, "chunk", w.uuid(), "reason", w.info)
		}
		ru.persist(l, w)
		ru.settled(l)
	}
	ru.send(l, send)
	select {
	case ru.wake <- struct{}{}:
	default:
	}
	return nil
}

// onHeartbeat notes an engine instance's heartbeat.
func (ru *run) onHeartbeat(m *protocol.EngineHeartbeat) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	l := ru.byTask[m.TaskID]
	if l == nil {
		for _, c := range ru.lanes {
			if c.engine == m.EngineID {
				l = c
			}
		}
	}
	if l == nil {
		return
	}
	now := time.Now()
	if m.Status == protocol.HeartbeatRunning {
		l.heartbeat(m.EngineInstanceID, now)
	} else {
		delete(l.instances, m.EngineInstanceID)
	}
	ru.lastHB[l.engine] = now
	ru.dirty = true
}
