package live

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// targetWatcher reloads a live playlist, as a player does, and records
// every violation of RFC 8216's rules for a playlist's life: the target
// duration changing, a segment longer than it, the media sequence going
// back.
type targetWatcher struct {
	mu       sync.Mutex
	reloads  int
	targets  map[int]int // target duration → reloads that showed it
	lastSeq  int64
	problems []string
	longest  float64
}

func (w *targetWatcher) observe(p mediaPlaylist) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reloads++
	w.targets[p.targetDuration]++
	if p.mediaSequence < w.lastSeq {
		w.problems = append(w.problems, "media sequence went back from "+strconv.FormatInt(w.lastSeq, 10)+" to "+strconv.FormatInt(p.mediaSequence, 10))
	}
	w.lastSeq = p.mediaSequence
	for _, s := range p.segments {
		w.longest = max(w.longest, s.duration)
		// RFC 8216 4.3.3.1: the EXTINF duration rounded to the nearest
		// integer must not exceed the target. weir holds itself to
		// the stricter "not longer than the target".
		if math.Round(s.duration) > float64(p.targetDuration) || s.duration > float64(p.targetDuration) {
			w.problems = append(w.problems, s.uri+" lasts "+strconv.FormatFloat(s.duration, 'f', 3, 64)+
				" s, over EXT-X-TARGETDURATION "+strconv.Itoa(p.targetDuration))
		}
	}
}

// watch reloads url every 100 ms until ctx ends.
func (w *targetWatcher) watch(ctx context.Context, t *testing.T, e *liveEnv, id string) {
	for ctx.Err() == nil {
		if text := e.getObject(id + "/live.m3u8"); text != "" {
			w.observe(parsePlaylist(t, text))
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// gopArgs are ffmpeg arguments for seconds of a 25 fps test pattern with a
// key frame every gop frames and a tone, in real time, as MPEG-TS to url.
func gopArgs(seconds, gop int, url string) []string {
	d := itoa(seconds)
	return []string{
		"-re",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + d,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-g", itoa(gop), "-keyint_min", itoa(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k", "-f", "mpegts", url,
	}
}

// TestTargetDurationHoldsAcrossAReconnectWithALongerGOP publishes with 1 s
// key frames, then reconnects with 4 s ones (twice the 2 s longest segment
// of a 1 s segment duration), reloading the live playlist all along:
// EXT-X-TARGETDURATION never changes, no segment outlasts it, the media
// sequence never goes back, vod.m3u8 declares the same target, and the
// recording decodes to every frame sent, with no gap in the long-GOP
// session.
func TestTargetDurationHoldsAcrossAReconnectWithALongerGOP(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 6, timeout: 15 * time.Second})
	st := e.newStream("")
	w := &targetWatcher{targets: map[int]int{}}
	ctx, stop := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); w.watch(ctx, t, e, st.ID) }()
	defer func() { stop(); <-watched }()

	startFFmpeg(t, gopArgs(4, 25, e.srtURL(st.PublishKey))...).wait(t, 30*time.Second)
	e.waitStatus(st.ID, metastore.StatusLive, 10*time.Second)
	waitFor(t, 10*time.Second, "the first session's segments", func() bool {
		return len(parsePlaylist(t, e.getObject(st.ID+"/live.m3u8")).segments) >= 4
	})
	ff := startFFmpeg(t, gopArgs(9, 100, e.srtURL(st.PublishKey))...)
	// A player joining during the long-GOP session plays it, starting
	// two segments from the end: on a continuing segment.
	waitFor(t, 20*time.Second, "a continuing segment", func() bool {
		return counterValue(t, e.reg, "weir_live_long_segment_cuts_total") >= 2
	})
	video, audio := playHLS(t, e.playlistURL(st.ID, "live.m3u8"), 50)
	t.Logf("gohlslib played %d video access units and %d audio frames of the long-GOP session", video, audio)
	ff.wait(t, 40*time.Second)
	waitFor(t, 10*time.Second, "the long-GOP session's cuts", func() bool {
		return counterValue(t, e.reg, "weir_live_long_segment_cuts_total") >= 2
	})
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	stop()
	<-watched
	w.observe(parsePlaylist(t, e.getObject(st.ID+"/live.m3u8")))

	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d reloads, targets seen %v, longest segment %.3f s", w.reloads, w.targets, w.longest)
	if len(w.targets) != 1 || w.targets[2] == 0 {
		t.Errorf("EXT-X-TARGETDURATION took the values %v over %d reloads; want 2 (ceil of 2 × 1 s) throughout", w.targets, w.reloads)
	}
	for _, p := range w.problems {
		t.Error(p)
	}
	if w.reloads < 20 {
		t.Errorf("only %d reloads of the live playlist", w.reloads)
	}

	vod := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if vod.targetDuration != 2 || vod.independent {
		t.Errorf("vod.m3u8: target %d (want the live playlist's 2), independent segments %v (want none declared)", vod.targetDuration, vod.independent)
	}
	disc := 0
	for _, s := range vod.segments {
		if s.duration > 2 {
			t.Errorf("vod.m3u8: %s lasts %.3f s, over the target", s.uri, s.duration)
		}
		if s.discontinuity {
			disc++
		}
	}
	if disc != 1 {
		t.Errorf("vod.m3u8 has %d discontinuities, want 1 (the reconnect)", disc)
	}
	// Nothing was dropped at the cuts: each session's video runs without
	// a gap from its first frame to its last. (ffmpeg's SRT output closes
	// without lingering, so the last 100-odd milliseconds of a session
	// may not reach the server; the count allows for that.)
	url := e.playlistURL(st.ID, "vod.m3u8")
	var times []float64
	for _, f := range strings.Fields(probe(t, "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0", url)) {
		if v, err := strconv.ParseFloat(strings.TrimSuffix(f, ","), 64); err == nil {
			times = append(times, v)
		}
	}
	sessions := [][]float64{nil}
	for i, v := range times {
		if i > 0 && v < times[i-1] {
			sessions = append(sessions, nil) // the reconnect: timestamps start again
		}
		sessions[len(sessions)-1] = append(sessions[len(sessions)-1], v)
	}
	if len(sessions) != 2 || len(sessions[0]) < 90 || len(sessions[0]) > 100 || len(sessions[1]) < 215 || len(sessions[1]) > 225 {
		t.Fatalf("vod.m3u8 plays %d sessions of %v video frames, want 2 of about 100 and 225", len(sessions), lens(sessions))
	}
	for n, sess := range sessions {
		for i := 1; i < len(sess); i++ {
			if step := sess[i] - sess[i-1]; step > 0.041 || step < 0.039 {
				t.Errorf("session %d: video frame %d follows %.3f s after the one before, want 0.040", n+1, i, step)
				break
			}
		}
	}
}

func lens(s [][]float64) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = len(v)
	}
	return out
}
