package vod

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// silentHost accepts connections and never answers. It reports each
// accepted connection on accepted and its closing (by the client) on
// closed.
func silentHost(t *testing.T) (addr string, accepted, closed <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	acc, cls := make(chan struct{}, 16), make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			acc <- struct{}{}
			go func() {
				defer c.Close()
				c.Read(make([]byte, 64<<10)) // the request
				for {
					if _, err := c.Read(make([]byte, 1)); err != nil {
						cls <- struct{}{}
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), acc, cls
}

func TestAHangingURLImportBlocksNoOtherTitleAndStopsAtCancel(t *testing.T) {
	e := newEnv(t)
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	host, accepted, closed := silentHost(t)

	const hungID = "vod-hanging-import"
	if _, err := e.meta.CreateStream(ctx, metastore.Stream{
		ID: hungID, Kind: metastore.KindVOD, Title: "hangs", Status: metastore.StatusUploaded,
		SourceURL: "http://" + host + "/movie.mp4",
	}); err != nil {
		t.Fatal(err)
	}
	hungJob, _ := json.Marshal(protocol.VODJob{StreamID: hungID, SourceURL: "http://" + host + "/movie.mp4", SubmittedAt: time.Now()})
	otherID, otherJob := e.upload(t, smallClip(t, "2"))

	b := bustest.New()
	cfg := e.config(t)
	cfg.MaxJobs = 2
	w := e.worker(t, cfg)
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx, b) }()
	defer func() {
		stopRun()
		<-done
	}()
	if err := b.Produce(ctx,
		&bus.Record{Topic: protocol.TopicVODJobs, Key: []byte(hungID), Value: hungJob},
		&bus.Record{Topic: protocol.TopicVODJobs, Key: []byte(otherID), Value: otherJob},
	); err != nil {
		t.Fatal(err)
	}

	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the URL import never connected to its host")
	}
	waitFor(t, "the other title to be transcoded while the import hangs", func() bool {
		st := e.stream(t, otherID)
		return st.Status.Terminal()
	})
	if st := e.stream(t, otherID); st.Status != metastore.StatusReady {
		t.Fatalf("other title: %s (%s), want ready", st.Status, st.Error)
	}

	// Cancel as the API does, through the metadata store only (the API
	// may run in another process).
	if _, err := e.meta.TransitionStatus(ctx, hungID, metastore.StatusFailed, func(s *metastore.Stream) { s.Error = "cancelled" }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled import is still connected to its host 30 s after the cancel")
	}
	if st := e.stream(t, hungID); st.Status != metastore.StatusFailed || st.Error != "cancelled" {
		t.Fatalf("cancelled import: %s (%s)", st.Status, st.Error)
	}
}
