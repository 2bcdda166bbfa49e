package vod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/metastore"
)

// transcode runs the ffmpeg processes of the ladder (at most
// Config.MaxParallel at once) while publishing finished segments and
// writing progress. It returns once every process has exited and every
// segment is published, or on the first error, after killing and reaping
// the processes still running.
func (r *run) transcode(ctx context.Context) error {
	w := r.w
	groups := groupRenditions(r.rs, w.cfg.RungsPerProcess)
	procCtx, stopProcs := context.WithCancelCause(ctx)
	defer stopProcs(nil)

	var (
		mu       sync.Mutex
		progress = make([]float64, len(groups))
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, w.cfg.MaxParallel)
	duration := r.info.Duration
	for gi, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-procCtx.Done():
				return
			}
			defer func() { <-sem }()
			err := r.runFFmpeg(procCtx, g, func(out time.Duration) {
				if duration <= 0 {
					return
				}
				mu.Lock()
				progress[gi] = min(out.Seconds()/duration.Seconds(), 1)
				mu.Unlock()
			})
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				stopProcs(err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// stop kills whatever still runs and waits for it, so no ffmpeg
	// outlives the job or writes into a directory being removed.
	stop := func(err error) error {
		stopProcs(err)
		<-done
		return err
	}

	tick := time.NewTicker(w.cfg.PollInterval)
	defer tick.Stop()
	lastProgress := time.Now()
	reported := -1.0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-ctx.Done():
			return stop(context.Cause(ctx))
		case <-tick.C:
			if err := r.pub.poll(ctx, false); err != nil {
				return stop(err)
			}
			if time.Since(lastProgress) < w.cfg.ProgressInterval {
				continue
			}
			lastProgress = time.Now()
			mu.Lock()
			var sum float64
			for _, p := range progress {
				sum += p
			}
			mu.Unlock()
			pct := round3(100 * sum / float64(len(groups)))
			if pct == reported {
				continue
			}
			reported = pct
			_, err := r.transition(ctx, metastore.StatusTranscoding, func(s *metastore.Stream) { s.Progress = min(pct, 99.9) })
			if errors.Is(err, errCancelled) || errors.Is(err, errAlreadyReady) {
				return stop(err) // cancelled (or finished) by another process
			}
			if err != nil {
				w.log.Warn("writing vod progress", "stream", r.id, "err", err)
			}
		}
	}
	mu.Lock()
	err := firstErr
	mu.Unlock()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return r.pub.poll(ctx, true)
}

// runFFmpeg runs one ffmpeg process for a group of renditions and reports
// its output time as it goes.
func (r *run) runFFmpeg(ctx context.Context, group []*rendition, onProgress func(time.Duration)) error {
	args := ffmpegArgs(&r.w.cfg, r.src, r.info, group)
	cmd := exec.CommandContext(ctx, r.w.cfg.FFmpeg, args...)
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readProgress(pr, func(out time.Duration, _ bool) { onProgress(out) })
	}()
	r.w.log.Debug("starting ffmpeg", "stream", r.id, "renditions", groupNames(group), "args", strings.Join(args, " "))
	err := cmd.Run()
	pw.Close()
	<-readDone
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// ffmpeg may exit 0 after a write failed for want of space (a segment
	// list it could not finish), so its output decides, not its status.
	if ranOutOfSpace(stderr) {
		return fmt.Errorf("transcoding %s: ffmpeg ran out of disk space: %s: %w", strings.Join(groupNames(group), ", "), stderr.lastLines(3), syscall.ENOSPC)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return failf("transcoding %s failed: ffmpeg %v: %s", strings.Join(groupNames(group), ", "), ee.ProcessState, stderr.lastLines(3))
		}
		return failf("could not run ffmpeg (%s): %v", r.w.cfg.FFmpeg, err)
	}
	return nil
}

// ranOutOfSpace reports whether ffmpeg's error output says a write failed
// for want of disk space: its exit status does not tell, and such a failure
// is the disk's, not the title's.
func ranOutOfSpace(stderr *tailBuffer) bool {
	stderr.mu.Lock()
	defer stderr.mu.Unlock()
	return bytes.Contains(bytes.ToLower(stderr.buf), []byte(syscall.ENOSPC.Error()))
}

func groupNames(g []*rendition) []string {
	out := make([]string, len(g))
	for i, r := range g {
		out[i] = r.Name
	}
	return out
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// lastLines returns up to n of the last non-empty lines, joined by " | ".
func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	if len(out) == 0 {
		return "no error output"
	}
	return strings.Join(out, " | ")
}

// thumbnail makes {id}/thumb.jpg from a frame a tenth of the way in,
// alongside the transcode. It is best effort: a failure is logged.
type thumbnail struct {
	r    *run
	path string
	done chan error
}

func (r *run) startThumbnail(ctx context.Context) *thumbnail {
	t := &thumbnail{r: r, path: filepath.Join(r.dir, "thumb.jpg"), done: make(chan error, 1)}
	if _, ok := r.info.Video(); !ok || r.w.cfg.NoThumbnail {
		t.done <- errNoThumbnail
		return t
	}
	args := thumbnailArgs(r.src, r.info, t.path)
	go func() {
		cmd := exec.CommandContext(ctx, r.w.cfg.FFmpeg, args...)
		dieWithParent(cmd)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.done <- fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
			return
		}
		// ffmpeg exits 0 without writing a frame when it cannot decode
		// one at the chosen time; that is a failure, not a thumbnail.
		if fi, err := os.Stat(t.path); err != nil || fi.Size() == 0 {
			t.done <- fmt.Errorf("ffmpeg wrote no frame at %s: %s", formatSeconds(thumbnailTime(r.info)), strings.TrimSpace(stderr.String()))
			return
		}
		t.done <- nil
	}()
	return t
}

var errNoThumbnail = errors.New("no thumbnail")

// thumbnailTime is where the thumbnail is taken: a tenth of the way in, at
// most 10 s.
func thumbnailTime(info *media.Info) time.Duration { return min(info.Duration/10, 10*time.Second) }

// thumbnailArgs grabs one frame at thumbnailTime, reading src like the
// transcode does: the probed demuxer pinned, local files only. The seek is
// on the output side: ffmpeg decodes from the start and keeps the first
// frame at or after the time. Seeking the input instead lands between key
// frames in containers without an index (MPEG-TS), where a clip whose only
// key frame is at 0 s yields no decodable frame and ffmpeg exits 0 with no
// output; decoding at most 10 s costs little beside the transcode.
func thumbnailArgs(src string, info *media.Info, out string) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}
	args = append(args, media.InputArgs(media.ProtocolsFile, info.Demuxer())...)
	return append(args, "-i", src, "-ss", formatSeconds(thumbnailTime(info)), "-frames:v", "1",
		"-vf", "scale=w='if(gte(iw,ih),-2,min(360,iw))':h='if(gte(iw,ih),min(360,ih),-2)'", "-q:v", "4", out)
}

func (t *thumbnail) wait() error {
	err := <-t.done
	t.done <- err
	return err
}

// upload stores the thumbnail and returns its key, or "" without one.
func (t *thumbnail) upload(ctx context.Context) string {
	if err := t.wait(); err != nil {
		if !errors.Is(err, errNoThumbnail) {
			t.r.w.log.Warn("vod thumbnail", "stream", t.r.id, "err", err)
		}
		return ""
	}
	f, err := os.Open(t.path)
	if err != nil {
		t.r.w.log.Warn("vod thumbnail", "stream", t.r.id, "err", err)
		return ""
	}
	defer f.Close()
	key := t.r.id + "/thumb.jpg"
	if _, err := t.r.w.cfg.Objects.Put(ctx, key, f, -1, "image/jpeg"); err != nil {
		t.r.w.log.Warn("vod thumbnail upload", "stream", t.r.id, "err", err)
		return ""
	}
	return key
}
