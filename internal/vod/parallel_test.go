package vod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// countingFFmpeg is an ffmpeg wrapper that paces its input at real time
// (so processes overlap for seconds, not milliseconds) and records, as it
// starts, how many wrapped ffmpeg processes are alive at that moment. It
// returns the wrapper's path and a function reading those counts.
func countingFFmpeg(t *testing.T) (string, func() []int) {
	t.Helper()
	dir := t.TempDir()
	alive := filepath.Join(dir, "alive")
	if err := os.Mkdir(alive, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "starts.log")
	script := fmt.Sprintf(`#!/bin/sh
touch %[1]q/$$
ls %[1]q | wc -l >> %[2]q
ffmpeg -re "$@"
rc=$?
rm -f %[1]q/$$
exit $rc
`, alive, log)
	p := filepath.Join(dir, "ffmpeg-counting")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p, func() []int {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("no ffmpeg was started: %v", err)
		}
		var counts []int
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("start log %q: %v", b, err)
			}
			counts = append(counts, n)
		}
		return counts
	}
}

// With one process per rendition, the renditions transcode in parallel,
// never more at once than MaxParallel, and the title still comes out
// complete with its renditions' segments aligned.
func TestOneProcessPerRenditionRunsAtMostMaxParallelAtOnce(t *testing.T) {
	t.Parallel() // mostly waits on real-time pacing
	e := newEnv(t)
	src := makeClip(t, t.TempDir(), "source.mp4",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart")
	id, job := e.upload(t, src)
	ffmpeg, starts := countingFFmpeg(t)
	cfg := e.config(t)
	cfg.FFmpeg = ffmpeg
	cfg.NoThumbnail = true // only the ladder's processes are counted
	cfg.RungsPerProcess = 1
	cfg.MaxParallel = 2
	if err := e.worker(t, cfg).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}

	st := e.stream(t, id)
	if st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s), want ready", st.Status, st.Error)
	}
	want := []string{"720p", "480p", "360p"}
	if got := strings.Join(st.VariantsGenerated, ","); got != strings.Join(want, ",") {
		t.Fatalf("variants_generated %s, want %v", got, want)
	}
	counts := starts()
	if len(counts) != len(want) {
		t.Fatalf("%d ffmpeg processes started, want one per rendition (%d)", len(counts), len(want))
	}
	peak := 0
	for _, n := range counts {
		peak = max(peak, n)
	}
	// Each process runs for about three seconds of real time, so the first
	// two overlap and the third waits for a free slot.
	if peak != cfg.MaxParallel {
		t.Errorf("at most %d ffmpeg processes ran at once (starts saw %v), want exactly MaxParallel = %d", peak, counts, cfg.MaxParallel)
	}

	// Separate processes still cut segments at the same instants.
	ref := e.rows(t, id, want[0])
	if len(ref) == 0 {
		t.Fatalf("no segment rows for %s", want[0])
	}
	for _, name := range want[1:] {
		rows := e.rows(t, id, name)
		if len(rows) != len(ref) {
			t.Errorf("%s has %d segments, %s has %d", name, len(rows), want[0], len(ref))
			continue
		}
		for i := range rows {
			if d := rows[i].StartUS - ref[i].StartUS; d < -1000 || d > 1000 {
				t.Errorf("%s segment %d starts at %d µs, %s's at %d µs", name, i, rows[i].StartUS, want[0], ref[i].StartUS)
			}
		}
	}
}
