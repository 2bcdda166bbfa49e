//go:build unix

package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/protocol"
)

// TestPullReadsANamedPipeUntilStopped: a named pipe is a live local source,
// recognised from its first bytes (it cannot be probed by path without
// consuming it) and read until ctx is cancelled, which ends the stream
// with forcedEOF true.
func TestPullReadsANamedPipeUntilStopped(t *testing.T) {
	_, client := startBroker(t)
	ts := readFile(t, testMedia(t, "av.ts"))
	fifo := filepath.Join(t.TempDir(), "feed.ts")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for the reader
		if err != nil {
			return
		}
		defer f.Close()
		for off := 0; ; {
			n := min(4096, len(ts)-off)
			if _, err := f.Write(ts[off : off+n]); err != nil {
				return // the reader is gone
			}
			off = (off + n) % len(ts)
			time.Sleep(2 * time.Millisecond)
		}
	}()

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	watch := &rawWatcher{Bus: client, first: make(chan struct{})}
	go func() {
		select {
		case <-watch.first:
		case <-ctx.Done():
		}
		cancel()
	}()
	res, err := Pull(ctx, PullOptions{Source: fifo, Live: true, Topic: "stream_fifo", Logger: quietLogger()}, watch)
	if !errors.Is(err, context.Canceled) || res.End != EndStopped {
		t.Fatalf("Pull = %v, %s; want stopped by cancellation", err, res.End)
	}
	<-writerDone
	recs, _ := readTopic(t, client, "stream_fifo")
	d := decodeStream(t, recs)
	if d.init.MimeType != "video/mp2t" || d.init.DurationMS != 0 {
		t.Errorf("stream_init %+v, want video/mp2t of unknown duration", d.init)
	}
	got := d.bytes()
	if len(got) == 0 || !equalBytes(got, cycle(ts, len(got))) {
		t.Errorf("%d bytes published, want the pipe's bytes from the start", len(got))
	}
	if !d.eof.ForcedEOF || d.eof.MD5Checksum != md5hex(got) {
		t.Errorf("stream_eof %+v, want forced with the md5 of what was sent", d.eof)
	}
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
}

// TestPullStopsASilentPipe: a read blocked on a pipe whose writer went
// quiet is interrupted by the record duration, and by cancellation.
func TestPullStopsASilentPipe(t *testing.T) {
	_, client := startBroker(t)
	ts := readFile(t, testMedia(t, "av.ts"))
	for i, tc := range []struct {
		name   string
		opts   PullOptions
		cancel bool
		end    EndReason
		forced bool
	}{
		{"record duration", PullOptions{RecordDuration: time.Second}, false, EndRecorded, false},
		{"cancelled", PullOptions{Live: true}, true, EndStopped, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "feed.ts")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			defer close(release)
			go func() {
				f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					return
				}
				defer f.Close()
				f.Write(ts[:200<<10]) // then silence, the pipe held open
				<-release
			}()
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			watch := &rawWatcher{Bus: client, first: make(chan struct{})}
			if tc.cancel {
				go func() {
					select {
					case <-watch.first:
						time.Sleep(300 * time.Millisecond) // let Pull block on the silent pipe
					case <-ctx.Done():
					}
					cancel()
				}()
			}
			tc.opts.Source, tc.opts.Topic, tc.opts.Logger = fifo, fmt.Sprintf("stream_silent_%d", i), quietLogger()
			res, err := Pull(ctx, tc.opts, watch)
			if res.End != tc.end || (err == nil) != (tc.end == EndRecorded) {
				t.Fatalf("Pull = %v, %s; want %s", err, res.End, tc.end)
			}
			recs, _ := readTopic(t, client, tc.opts.Topic)
			d := decodeStream(t, recs)
			if !equalBytes(d.bytes(), ts[:200<<10]) || d.eof.ForcedEOF != tc.forced {
				t.Errorf("%d bytes, forcedEOF %v; want the 200 KiB written, forcedEOF %v", len(d.bytes()), d.eof.ForcedEOF, tc.forced)
			}
		})
	}
}
