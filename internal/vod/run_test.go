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
	"github.com/weir-media/weir/internal/metastore"
)

// The wiring the server uses: Run over a Kafka consumer group on Topic,
// against weir's embedded broker.
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
		&bus.Record{Topic: Topic, Key: []byte("junk"), Value: []byte("not a job")},
		&bus.Record{Topic: Topic, Key: []byte(id), Value: job},
	); err != nil {
		t.Fatal(err)
	}

	w := e.worker(t, e.config(t))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(runCtx, func(ctx context.Context, handle Handler) error {
			return client.Consume(ctx, bus.ConsumeOptions{
				Topics:        []string{Topic},
				Group:         ConsumerGroup,
				FromBeginning: true,
				Handler:       handle,
			})
		})
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
}

func TestRunSubscribesAgainAfterAFailure(t *testing.T) {
	e := newEnv(t)
	w := e.worker(t, e.config(t))
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := w.Run(ctx, func(ctx context.Context, handle Handler) error {
		if calls.Add(1) == 1 {
			return errors.New("handler failed on a record")
		}
		return nil // the subscription ended cleanly
	})
	if err != nil || calls.Load() != 2 {
		t.Fatalf("Run returned %v after %d subscriptions, want nil after 2", err, calls.Load())
	}
}
