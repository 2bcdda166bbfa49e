package enginehost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// ErrMalformedOutput starts the message of a chunk whose engine answered
// with something that is not a valid vtn-standard document.
var ErrMalformedOutput = errors.New("malformed output")

// Produce retries: a result the bus refuses is tried again a few times,
// then given up (and logged); the job's runner times the chunk out and
// sends it again.
const (
	produceAttempts = 4
	produceBackoff  = 200 * time.Millisecond
)

func stack() []byte { return debug.Stack() }

// parseOptions reads a task payload (a JSON object, or nothing) as the
// engine's options.
func parseOptions(spec engine.Spec, payload json.RawMessage) (engine.Options, error) {
	var raw map[string]any
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &raw); err != nil {
			return engine.Options{}, fmt.Errorf("taskPayload is not a JSON object: %w", err)
		}
	}
	return spec.ParseOptions(raw)
}

// writeOutput writes the engine_output answering chunk with doc, already
// on the TDO timeline.
func (h *Host) writeOutput(ctx context.Context, chunk *protocol.MediaChunk, doc *protocol.Document) error {
	out := &protocol.EngineOutput{
		Header:        protocol.Header{TaskID: chunk.TaskID, TDOID: chunk.TDOID, JobID: chunk.JobID},
		OutputType:    h.cfg.Spec.Outputs[0],
		MimeType:      "application/json",
		StartOffsetMs: chunk.StartOffsetMs,
		EndOffsetMs:   chunk.EndOffsetMs,
		ChunkUUID:     chunk.ChunkUUID,
	}
	if err := out.SetDocument(doc); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedOutput, err)
	}
	if err := h.write(ctx, chunk.JobID, out); err != nil {
		if errors.Is(err, errEncode) {
			return fmt.Errorf("%w: %v", ErrMalformedOutput, err)
		}
		return err
	}
	return nil
}

// answer writes the chunk_processed_status of a chunk.
func (h *Host) answer(ctx context.Context, chunk *protocol.MediaChunk, out outcome) {
	st := &protocol.ChunkProcessedStatus{
		Header:    protocol.Header{TaskID: chunk.TaskID, TDOID: chunk.TDOID, JobID: chunk.JobID},
		ChunkUUID: chunk.ChunkUUID,
		Status:    out.status,
	}
	if out.status == protocol.ChunkError {
		st.ErrorMsg = out.msg
	} else {
		st.InfoMsg = out.msg
	}
	if err := h.write(ctx, chunk.JobID, st); err != nil {
		h.log.Error("chunk status lost", "job", chunk.JobID, "chunk", chunk.ChunkUUID, "status", out.status, "error", err)
	}
}

var errEncode = errors.New("encode")

// write produces msg on the job's results topic, retrying a failing bus a
// few times.
func (h *Host) write(ctx context.Context, jobID string, msg protocol.Message) error {
	key, value, err := protocol.Encode(msg)
	if err != nil {
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	topic := protocol.ResultsTopic(jobID)
	delay := produceBackoff
	for attempt := 1; ; attempt++ {
		err = h.cfg.Bus.Produce(ctx, &bus.Record{Topic: topic, Key: key, Value: value})
		if err == nil {
			h.messagesWritten.Add(1)
			h.bytesWritten.Add(int64(len(key) + len(value)))
			return nil
		}
		if attempt == produceAttempts || ctx.Err() != nil {
			return fmt.Errorf("write %s to %s: %w", msg.MessageType(), topic, err)
		}
		select {
		case <-time.After(delay):
			delay *= 2
		case <-ctx.Done():
			return fmt.Errorf("write %s to %s: %w", msg.MessageType(), topic, ctx.Err())
		}
	}
}

// heartbeats sends engine_heartbeat messages for the jobs a host has
// chunks of: one when the host takes a job's first chunk, then one every
// HeartbeatInterval while it has any.
type heartbeats struct {
	h     *Host
	mu    sync.Mutex
	jobs  map[jobKey]*activeJob
	count int64 // heartbeats sent, for the next one's count
}

type jobKey struct{ job, task string }

type activeJob struct {
	tdo      string
	inFlight int
	last     time.Time // when the last heartbeat for the job went out
}

func newHeartbeats(h *Host) *heartbeats {
	return &heartbeats{h: h, jobs: map[jobKey]*activeJob{}}
}

// begin counts a chunk of its job in flight, and sends the job a
// heartbeat when none went out for an interval.
func (b *heartbeats) begin(ctx context.Context, c *protocol.MediaChunk) {
	k := jobKey{c.JobID, c.TaskID}
	b.mu.Lock()
	j := b.jobs[k]
	if j == nil {
		j = &activeJob{tdo: c.TDOID}
		b.jobs[k] = j
	}
	j.inFlight++
	due := time.Since(j.last) >= b.h.cfg.HeartbeatInterval
	b.mu.Unlock()
	if due {
		b.send(ctx, k)
	}
}

// end counts a chunk of its job done.
func (b *heartbeats) end(c *protocol.MediaChunk) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if j := b.jobs[jobKey{c.JobID, c.TaskID}]; j != nil {
		j.inFlight--
	}
}

// loop sends the heartbeats every interval until ctx ends, and forgets
// jobs the host no longer has chunks of.
func (b *heartbeats) loop(ctx context.Context) {
	t := time.NewTicker(b.h.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var due []jobKey
		b.mu.Lock()
		for k, j := range b.jobs {
			switch {
			case j.inFlight <= 0:
				delete(b.jobs, k)
			case time.Since(j.last) >= b.h.cfg.HeartbeatInterval/2:
				due = append(due, k)
			}
		}
		b.mu.Unlock()
		for _, k := range due {
			b.send(ctx, k)
		}
	}
}

// send writes one RUNNING heartbeat for a job.
func (b *heartbeats) send(ctx context.Context, k jobKey) {
	b.mu.Lock()
	j := b.jobs[k]
	if j == nil {
		b.mu.Unlock()
		return
	}
	j.last = time.Now()
	b.count++
	hb := &protocol.EngineHeartbeat{
		Header:           protocol.Header{TaskID: k.task, TDOID: j.tdo, JobID: k.job},
		EngineID:         b.h.cfg.Spec.Name,
		EngineInstanceID: b.h.cfg.InstanceID,
		Count:            b.count,
		Status:           protocol.HeartbeatRunning,
		UpTime:           time.Since(b.h.started).Milliseconds(),
		BytesRead:        b.h.bytesRead.Load(),
		BytesWritten:     b.h.bytesWritten.Load(),
		MessagesWritten:  b.h.messagesWritten.Load(),
	}
	b.mu.Unlock()
	if err := b.h.write(ctx, k.job, hb); err != nil && ctx.Err() == nil {
		b.h.log.Warn("heartbeat lost", "job", k.job, "error", err)
	}
}
