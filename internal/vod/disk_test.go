package vod

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// waitingForSpace reads details.waiting_for_space.attempts (0 when absent).
func waitingForSpace(st metastore.Stream) int {
	var w struct {
		Attempts int `json:"attempts"`
	}
	if raw := metastore.DetailRaw(st.Details, "waiting_for_space"); raw != nil {
		_ = json.Unmarshal(raw, &w)
	}
	return w.Attempts
}

// The object store and work directory share a 64 MiB disk that fills up
// with the title's source on it: every attempt runs out of space (ffmpeg's
// output or the segments it makes). The job must wait and try again, more
// times than MaxAttempts allows crashes, without failing the title, and
// finish once space is freed.
func TestAJobThatRunsOutOfDiskWaitsAndFinishesWhenSpaceReturns(t *testing.T) {
	e := newEnv(t)
	disk := testenv.SmallDisk(t, 64)
	objects, err := objstore.NewFS(filepath.Join(disk, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	e.objects = objects
	clip := smallClip(t, "4")
	id, job := e.upload(t, clip)
	fi, err := os.Stat(clip)
	if err != nil {
		t.Fatal(err)
	}
	// Room for the work copy of the source and little more.
	filler := testenv.FillDisk(t, disk, fi.Size()+16<<10)

	cfg := e.config(t)
	cfg.Objects = objects
	cfg.WorkDir = filepath.Join(disk, "work")
	cfg.MaxAttempts = 2
	w := e.worker(t, cfg)
	b := bustest.New()
	ctx, stop := context.WithTimeout(context.Background(), 4*time.Minute)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, b) }()
	defer func() {
		stop()
		<-done
	}()
	if err := b.Produce(ctx, &bus.Record{Topic: protocol.TopicVODJobs, Key: []byte(id), Value: job}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "the job to run out of space more often than MaxAttempts", func() bool {
		st := e.stream(t, id)
		if st.Status.Terminal() {
			t.Fatalf("the title became %s on a full disk (%s); want it to wait for space", st.Status, st.Error)
		}
		return waitingForSpace(st) > cfg.MaxAttempts
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the title to finish once space is back", func() bool {
		return e.stream(t, id).Status.Terminal()
	})
	st := e.stream(t, id)
	if st.Status != metastore.StatusReady {
		t.Fatalf("after space returned: %s (%s), want ready", st.Status, st.Error)
	}
	if n := waitingForSpace(st); n != 0 {
		t.Errorf("a ready title still says it waits for space (%d)", n)
	}
}
