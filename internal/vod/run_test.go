package vod

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// The wiring the server uses: Run over a Kafka consumer group on
// protocol.TopicVODJobs, against weir's embedded broker.
func TestRunConsumesJobsFromKafka(t *testing.T) {
	e := newEnv(t)
	quiet := bus.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	client, err := bus.NewClient([]string{broker.Addr()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	id, job := e.upload(t, smallClip(t, "2"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := client.Produce(ctx,
		&bus.Record{Topic: protocol.TopicVODJobs, Key: []byte("junk"), Value: []byte("not a job")},
		&bus.Record{Topic: protocol.TopicVODJobs, Key: []byte(id), Value: job},
	); err != nil {
		t.Fatal(err)
	}

	w := e.worker(t, e.config(t))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(runCtx, client)
	}()
	waitFor(t, "the title to be ready", func() bool {
		st := e.stream(t, id)
		return st.Status == metastore.StatusReady || st.Status == metastore.StatusFailed
	})
	if st := e.stream(t, id); st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s)", st.Status, st.Error)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The record that is not a job went to the dead-letter topic.
	dead, err := client.ReadAll(ctx, protocol.DeadLetterTopic(protocol.TopicVODJobs), 0)
	if err != nil || len(dead) != 1 || string(dead[0].Value) != "not a job" {
		t.Fatalf("dead letters of %s: %d, %v; want the junk record", protocol.TopicVODJobs, len(dead), err)
	}
}

// flakyBus fails its first Consume, as a handler failing on a record
// does, and ends the second cleanly, as a closed bus does.
type flakyBus struct {
	*bustest.Bus
	calls atomic.Int32
}

func (b *flakyBus) Consume(ctx context.Context, opts bus.ConsumeOptions) error {
	if b.calls.Add(1) == 1 {
		return errors.New("handler failed on a record")
	}
	return nil
}

func TestRunSubscribesAgainAfterAFailure(t *testing.T) {
	e := newEnv(t)
	w := e.worker(t, e.config(t))
	b := &flakyBus{Bus: bustest.New()}
	calls := &b.calls
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := w.Run(ctx, b)
	if err != nil || calls.Load() != 2 {
		t.Fatalf("Run returned %v after %d subscriptions, want nil after 2", err, calls.Load())
	}
}

// TestRunReadsJobsQueuedUnderTheOldTopicName: jobs an older weir queued on
// protocol.LegacyTopicVODJobs are still consumed, in the same group.
func TestRunReadsJobsQueuedUnderTheOldTopicName(t *testing.T) {
	e := newEnv(t)
	w := e.worker(t, e.config(t))
	b := bustest.New()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, topic := range []string{protocol.LegacyTopicVODJobs, protocol.TopicVODJobs} {
		// Jobs for a stream that does not exist: handled (dropped) and
		// committed without a transcode.
		if err := b.Produce(ctx, &bus.Record{Topic: topic, Key: []byte("vod-gone"), Value: []byte(`{"stream_id":"vod-gone"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, b) }()
	waitFor(t, "both jobs committed", func() bool {
		legacy, _ := b.Committed(protocol.GroupVOD, protocol.LegacyTopicVODJobs, 0)
		current, _ := b.Committed(protocol.GroupVOD, protocol.TopicVODJobs, 0)
		return legacy == 1 && current == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
