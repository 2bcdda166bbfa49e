package hlsresults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
)

// TestLiveMasterCodecsSkipASegmentWithoutAKeyFrame lists first a live
// segment that continues a GOP (cut by ffmpeg's segment muxer on a frame
// that is not a key frame, as the packager continues an over-long GOP): it
// has no parameter sets, so the master's CODECS must come from the next
// segment, which starts with one.
func TestLiveMasterCodecsSkipASegmentWithoutAKeyFrame(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=6",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=6",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-f", "segment", "-segment_time", "1", "-break_non_keyframes", "1",
		filepath.Join(dir, "seg_%d.ts")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	seg := func(i int) []byte {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("seg_%d.ts", i)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// With key frames every 2 s and 1 s segments, odd segments continue
	// a GOP and even ones start with a key frame.
	if info, err := hls.InspectTS(seg(1)); err == nil && info.StartsWithKeyFrame {
		t.Fatal("segment 1 starts with a key frame; the test needs one that does not")
	}

	f := newFixture(t)
	const id = "live-codecs"
	if _, err := f.meta.CreateStream(f.ctx, metastore.Stream{ID: id, Kind: metastore.KindLive, Status: metastore.StatusLive}); err != nil {
		t.Fatal(err)
	}
	pl := hls.MediaPlaylist{TargetDuration: 2, MediaSequence: 1}
	for i := 1; i <= 3; i++ {
		key := fmt.Sprintf("%s/seg_%d.ts", id, i)
		data := seg(i)
		f.put(key, data)
		row := metastore.Segment{StreamID: id, ChunkIndex: int64(i), Sequence: int64(i), Key: key,
			DurationUS: time.Second.Microseconds(), Size: int64(len(data)), CreatedAt: f.clock()}
		if err := f.meta.UpsertSegment(f.ctx, row); err != nil {
			t.Fatal(err)
		}
		pl.Segments = append(pl.Segments, hls.Segment{URI: fmt.Sprintf("seg_%d.ts", i), Duration: time.Second})
	}
	f.putPlaylist(id+"/live.m3u8", &pl)
	f.addJob("job-codecs", id, metastore.JobRunning, "stt")

	master := string(f.get(id, "master.m3u8").Body)
	if !strings.Contains(master, `CODECS="avc1.`) || !strings.Contains(master, "RESOLUTION=320x240") {
		t.Fatalf("live master lacks the video codec or picture size read from segment 2:\n%s", master)
	}
}

// TestLiveMasterCodecsOfAnLLStreamComeFromItsInit: a Low-Latency HLS
// stream's segments are fMP4 parts without parameter sets of their own;
// the master's CODECS and RESOLUTION come from the EXT-X-MAP init segment.
func TestLiveMasterCodecsOfAnLLStreamComeFromItsInit(t *testing.T) {
	init, err := os.ReadFile("../hls/testdata/init.mp4")
	if err != nil {
		t.Fatal(err)
	}
	tracks, err := hls.ParseInit(init)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	const id = "live-llcodecs"
	if _, err := f.meta.CreateStream(f.ctx, metastore.Stream{ID: id, Kind: metastore.KindLive, Status: metastore.StatusLive}); err != nil {
		t.Fatal(err)
	}
	f.put(id+"/init_0.mp4", init)
	pl := hls.MediaPlaylist{TargetDuration: 2, Map: &hls.Map{URI: "init_0.mp4"}, PartTarget: 333 * time.Millisecond,
		ServerControl: &hls.ServerControl{CanBlockReload: true}}
	for i := range 2 {
		key := fmt.Sprintf("%s/seg_%d.m4s", id, i)
		f.put(key, []byte("moof"))
		row := metastore.Segment{StreamID: id, ChunkIndex: int64(i), Sequence: int64(i), Key: key,
			DurationUS: time.Second.Microseconds(), Size: 4, CreatedAt: f.clock()}
		if err := f.meta.UpsertSegment(f.ctx, row); err != nil {
			t.Fatal(err)
		}
		pl.Segments = append(pl.Segments, hls.Segment{URI: fmt.Sprintf("seg_%d.m4s", i), Duration: time.Second})
	}
	f.putPlaylist(id+"/live.m3u8", &pl)
	f.addJob("job-llcodecs", id, metastore.JobRunning, "stt")

	master := string(f.get(id, "master.m3u8").Body)
	for _, tr := range tracks {
		if tr.Codec != "" && !strings.Contains(master, tr.Codec) {
			t.Errorf("master lacks %s codec %s", tr.Kind, tr.Codec)
		}
		if tr.Kind == "video" && !strings.Contains(master, fmt.Sprintf("RESOLUTION=%dx%d", tr.Width, tr.Height)) {
			t.Errorf("master lacks RESOLUTION=%dx%d", tr.Width, tr.Height)
		}
	}
	if t.Failed() {
		t.Logf("tracks %+v\n%s", tracks, master)
	}
}
