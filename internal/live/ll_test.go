package live

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
)

// newLLStream creates a live stream packaged as Low-Latency HLS, as POST
// /streams/start with "ll_hls": true does.
func (e *liveEnv) newLLStream() metastore.Stream {
	e.t.Helper()
	return e.newStreamWith(func(st *metastore.Stream) { st.Details = json.RawMessage(`{"ll_hls":true}`) })
}

// makeTS30 makes seconds of 30 fps H.264 (a key frame a second) and AAC.
func makeTS30(t testing.TB, seconds int) []byte {
	t.Helper()
	d := itoa(seconds)
	return makeMedia(t, "mpegts", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration="+d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+d,
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k")
}

// TestLowLatencyPackaging publishes 6 s of 30 fps media into an LL stream
// and checks the live playlist while it grows (parts within the part
// target, independent exactly on key frames, a preload hint for the next
// part, segments made of their parts), then the VOD playlist and that
// ffprobe decodes every frame of init + parts and of init + segments.
func TestLowLatencyPackaging(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	st := e.newLLStream()
	ts := makeTS30(t, 6)
	sess := e.openSession(st.ID)
	writeAll(t, sess, ts[:len(ts)/2/188*188])

	var live *hls.MediaPlaylist
	waitFor(t, 20*time.Second, "an LL playlist with two segments and trailing parts", func() bool {
		data := e.getObject(st.ID + "/live.m3u8")
		if data == "" {
			return false
		}
		p, err := hls.ParseMediaPlaylist([]byte(data))
		if err != nil {
			t.Fatalf("live playlist does not parse: %v\n%s", err, data)
		}
		live = p
		return len(p.Segments) >= 2
	})
	if live.PartTarget != DefaultPartTarget || live.ServerControl == nil || !live.ServerControl.CanBlockReload ||
		live.ServerControl.PartHoldBack < 3*DefaultPartTarget.Round(time.Millisecond) || live.Map == nil || live.PreloadHint == nil {
		t.Fatalf("LL playlist header: part target %v, server control %+v, map %+v, hint %+v", live.PartTarget, live.ServerControl, live.Map, live.PreloadHint)
	}
	for _, s := range live.Segments {
		if len(s.Parts) == 0 {
			t.Fatalf("segment %s lists no parts", s.URI)
		}
		var sum time.Duration
		var concat []byte
		for i, pt := range s.Parts {
			if pt.Duration > live.PartTarget {
				t.Errorf("part %s lasts %v, over the part target", pt.URI, pt.Duration)
			}
			if pt.Independent != (i == 0) {
				t.Errorf("part %d (%s) of %s: independent %v (key frames every second, segments of 1 s)", i, pt.URI, s.URI, pt.Independent)
			}
			sum += pt.Duration
			concat = append(concat, e.getObject(st.ID+"/"+pt.URI)...)
		}
		if d := sum - s.Duration; d < -2*time.Millisecond*time.Duration(len(s.Parts)) || d > 2*time.Millisecond*time.Duration(len(s.Parts)) {
			t.Errorf("segment %s lasts %v, its parts %v", s.URI, s.Duration, sum)
		}
		if !bytes.Equal(concat, []byte(e.getObject(st.ID+"/"+s.URI))) {
			t.Errorf("segment %s is not its parts concatenated", s.URI)
		}
	}
	if want := "part_"; !strings.HasPrefix(live.PreloadHint.URI, want) || live.PreloadHint.Type != "PART" {
		t.Errorf("preload hint %+v", live.PreloadHint)
	}

	writeAll(t, sess, ts[len(ts)/2/188*188:])
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	done := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	vod, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/vod.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	if vod.Map == nil || int64(len(vod.Segments)) != done.SegmentCount || len(vod.Segments) < 5 {
		t.Fatalf("vod playlist: map %+v, %d segments (rows %d)", vod.Map, len(vod.Segments), done.SegmentCount)
	}
	var d Details
	if err := json.Unmarshal(done.Details, &d); err != nil || !d.LowLatency || d.NextPart == 0 {
		t.Errorf("details %s", done.Details)
	}
	final, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/live.m3u8")))
	if err != nil || !final.Ended || final.PreloadHint != nil {
		t.Errorf("final live playlist: ended %v, hint %+v (%v)", final != nil && final.Ended, final, err)
	}

	if n := counterValue(t, e.reg, "weir_live_parts_written_total"); int64(n) != d.NextPart {
		t.Errorf("weir_live_parts_written_total = %v, want %d", n, d.NextPart)
	}
	if n, sum, _ := histogramStats(t, e.reg, "weir_live_part_publish_latency_seconds"); int64(n) != d.NextPart {
		t.Errorf("part publish latency observed %d times, want %d", n, d.NextPart)
	} else {
		t.Logf("part publish latency: mean %.1f ms over %d parts (shared machine)", sum/float64(n)*1000, n)
	}

	// ffprobe decodes init + every segment, and init + every part: all
	// 180 frames either way.
	init := e.getObject(st.ID + "/" + vod.Map.URI)
	var segs, parts []byte
	segs = append(segs, init...)
	parts = append(parts, init...)
	var total time.Duration
	for _, s := range vod.Segments {
		segs = append(segs, e.getObject(st.ID+"/"+s.URI)...)
		total += s.Duration
	}
	for k := int64(0); k < d.NextPart; k++ {
		parts = append(parts, e.getObject(partKey(st.ID, k))...)
	}
	if total < 5900*time.Millisecond || total > 6100*time.Millisecond {
		t.Errorf("segments add up to %v of the 6 s published", total)
	}
	for name, data := range map[string][]byte{"segments": segs, "parts": parts} {
		f := filepath.Join(t.TempDir(), name+".mp4")
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out := probe(t, "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", f)
		if strings.TrimSpace(out) != "h264,180" {
			t.Errorf("ffprobe of init + %s: %q, want h264,180", name, out)
		}
		out = probe(t, "-count_frames", "-select_streams", "a:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0", f)
		if strings.TrimSpace(out) != "aac" {
			t.Errorf("ffprobe of init + %s audio: %q", name, out)
		}
	}
}

// TestLowLatencyReconnectStartsANewInit: a publisher that reconnects
// (here with another picture size) gets a discontinuity, a new init
// segment named by EXT-X-MAP before the segment it starts, and both
// timelines decode from their own init (ffprobe).
func TestLowLatencyReconnectStartsANewInit(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	st := e.newLLStream()
	sess := e.openSession(st.ID)
	writeAll(t, sess, makeTS30(t, 3))
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	sess = e.openSession(st.ID)
	second := makeMedia(t, "mpegts", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k")
	writeAll(t, sess, second)
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	text := e.getObject(st.ID + "/vod.m3u8")
	vod, err := hls.ParseMediaPlaylist([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var at int
	for i, s := range vod.Segments {
		if s.Discontinuity {
			if at != 0 || s.Map == nil {
				t.Fatalf("discontinuity at segment %d with map %+v:\n%s", i, s.Map, text)
			}
			at = i
		} else if s.Map != nil {
			t.Fatalf("EXT-X-MAP without a discontinuity at segment %d:\n%s", i, text)
		}
	}
	if at < 2 || vod.Map == nil || vod.Segments[at].Map.URI == vod.Map.URI {
		t.Fatalf("want a new init at the reconnect:\n%s", text)
	}
	for i, part := range [][]hls.Segment{vod.Segments[:at], vod.Segments[at:]} {
		m := vod.Map.URI
		if i == 1 {
			m = vod.Segments[at].Map.URI
		}
		data := []byte(e.getObject(st.ID + "/" + m))
		for _, s := range part {
			data = append(data, e.getObject(st.ID+"/"+s.URI)...)
		}
		f := filepath.Join(t.TempDir(), "timeline.mp4")
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out := strings.TrimSpace(probe(t, "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=width,nb_read_frames", "-of", "csv=p=0", f))
		want := []string{"160,90", "320,90"}[i]
		if out != want {
			t.Errorf("timeline %d (init %s): ffprobe reads %q, want %q (width, frames)", i, m, out, want)
		}
	}
}

// TestLowLatencyPartsGoWithTheWindow: parts of segments that left the live
// window are deleted; the window's parts and every segment stay.
func TestLowLatencyPartsGoWithTheWindow(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 2, timeout: time.Minute})
	st := e.newLLStream()
	sess := e.openSession(st.ID)
	writeAll(t, sess, makeTS30(t, 6))
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	done := e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	final, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/live.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Segments) != 2 {
		t.Fatalf("final window of %d segments", len(final.Segments))
	}
	for _, s := range final.Segments {
		for _, pt := range s.Parts {
			if e.getObject(st.ID+"/"+pt.URI) == "" {
				t.Errorf("part %s of the window is gone", pt.URI)
			}
		}
	}
	if e.getObject(partKey(st.ID, 0)) != "" {
		t.Error("part 0, of a segment long out of the window, is still stored")
	}
	vod, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/vod.m3u8")))
	if err != nil || int64(len(vod.Segments)) != done.SegmentCount {
		t.Fatalf("vod: %v", err)
	}
	for _, s := range vod.Segments {
		if e.getObject(st.ID+"/"+s.URI) == "" {
			t.Errorf("segment %s is gone", s.URI)
		}
	}
}

// TestLowLatencyH265BecomesAudioOnly: LL-HLS packages H.264 and AAC only;
// an H.265 + AAC publisher gets an audio-only LL stream, not a failure.
func TestLowLatencyH265BecomesAudioOnly(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	st := e.newLLStream()
	sess := e.openSession(st.ID)
	writeAll(t, sess, makeTS(t, 4, 25, "libx265", 0))
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	vod, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/vod.m3u8")))
	if err != nil || vod.Map == nil || len(vod.Segments) < 3 {
		t.Fatalf("vod playlist %+v: %v", vod, err)
	}
	tracks, err := hls.ParseInit([]byte(e.getObject(st.ID + "/" + vod.Map.URI)))
	if err != nil || len(tracks) != 1 || tracks[0].Kind != "audio" {
		t.Fatalf("init tracks %+v (%v), want audio only", tracks, err)
	}
}

// TestLowLatencyKeyFramesAtTheLongestSegment packages media whose
// timestamps went through FLV (RTMP's millisecond clock: 30 fps steps of 33
// and 34 ms) into an LL stream whose longest segment equals its target and
// its key frame interval. Every segment must start on a key frame, with its
// first part INDEPENDENT: the rounding must not cut the frame before each
// key frame off into a segment of its own.
func TestLowLatencyKeyFramesAtTheLongestSegment(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, maxSegment: time.Second, window: 20, timeout: time.Minute})
	st := e.newLLStream()
	flv := filepath.Join(t.TempDir(), "in.flv")
	if err := os.WriteFile(flv, makeMedia(t, "flv", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=5",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := makeMedia(t, "mpegts", "-i", flv, "-c", "copy")
	sess := e.openSession(st.ID)
	writeAll(t, sess, ts)
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	vod, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/vod.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	if len(vod.Segments) < 4 {
		t.Fatalf("%d segments for 5 s of media with a key frame a second", len(vod.Segments))
	}
	for i, s := range vod.Segments {
		if s.Duration < 900*time.Millisecond && i < len(vod.Segments)-1 {
			t.Errorf("segment %d (%s) lasts %v: cut before its key frame", i, s.URI, s.Duration)
		}
	}
	live, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/live.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range live.Segments {
		if len(s.Parts) > 0 && !s.Parts[0].Independent {
			t.Errorf("segment %s: first part %s is not INDEPENDENT", s.URI, s.Parts[0].URI)
		}
	}
}

// TestLowLatencyTakeoverDropsTheEarlierPackagersParts: a packager that
// takes an LL stream over deletes the parts the earlier one wrote once its
// own playlists have moved past them, and the parts its final playlist
// lists stay.
func TestLowLatencyTakeoverDropsTheEarlierPackagersParts(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 30, timeout: time.Minute})
	st := e.newLLStream()
	ctx := context.Background()
	media := makeTS30(t, 10)
	sess := e.openSession(st.ID)
	writeAll(t, sess, media[:len(media)/4])
	parts := func() []string {
		infos, err := e.store.List(ctx, st.ID+"/part_")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, inf := range infos {
			keys = append(keys, inf.Key)
		}
		return keys
	}
	waitFor(t, 30*time.Second, "parts of the first packager", func() bool { return len(parts()) >= 4 })
	e.stopPackager()
	// The next packager numbers its parts from the stream's nextPart: the
	// earlier packager's parts below it are the ones it cannot know (those
	// from nextPart on, of the segment cut short, it writes again).
	row, err := e.meta.GetStream(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	var d Details
	if err := json.Unmarshal(row.Details, &d); err != nil || d.NextPart == 0 {
		t.Fatalf("details %s (%v): want a nextPart", row.Details, err)
	}
	var old []string
	for _, k := range parts() {
		if n, ok := partNumber(strings.TrimPrefix(k, st.ID+"/")); ok && n < d.NextPart {
			old = append(old, k)
		}
	}
	if len(old) == 0 {
		t.Fatal("no parts below nextPart before the takeover")
	}
	e.startPackager()
	writeAll(t, sess, media[len(media)/4:])
	if err := sess.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the earlier packager's parts to go", func() bool {
		for _, k := range old {
			if e.getObject(k) != "" {
				return false
			}
		}
		return true
	})
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	final, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/live.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	if final == nil {
		t.Fatal("no final playlist")
	}
	for _, s := range final.Segments {
		for _, pt := range s.Parts {
			listed++
			if e.getObject(st.ID+"/"+pt.URI) == "" {
				t.Errorf("part %s, listed in the final playlist, is gone", pt.URI)
			}
		}
	}
	if listed == 0 {
		t.Fatal("the final playlist lists no parts")
	}
	t.Logf("%d parts of the first packager deleted; %d parts stored at the end, %d listed", len(old), len(parts()), listed)
}

// TestLowLatencyWithNothingToPackageFails: an LL stream whose publisher
// sends only what LL-HLS cannot carry (MP3 audio) fails with an error that
// says why and what to do, instead of staying live without a segment.
func TestLowLatencyWithNothingToPackageFails(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	st := e.newLLStream()
	sess := e.openSession(st.ID)
	writeAll(t, sess, makeMedia(t, "mpegts", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3", "-c:a", "libmp3lame", "-b:a", "64k"))
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	failed := e.waitStatus(st.ID, metastore.StatusFailed, 30*time.Second)
	t.Logf("stream failed: %s", failed.Error)
	for _, want := range []string{"low-latency HLS packages H.264 video and AAC audio", "only mp3", "without ll_hls"} {
		if !strings.Contains(failed.Error, want) {
			t.Errorf("error %q lacks %q", failed.Error, want)
		}
	}
}

// TestLowLatencyLaterSessionWithNothingToPackageIsSkipped: once a stream
// has segments, a publisher session with only MP3 audio is skipped (the
// stream is not failed) and the stream ends with what it had.
func TestLowLatencyLaterSessionWithNothingToPackageIsSkipped(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	st := e.newLLStream()
	ctx := context.Background()
	first := e.openSession(st.ID)
	writeAll(t, first, makeTS30(t, 3))
	if err := first.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "segments of the first session", func() bool {
		segs, err := e.meta.ListSegments(ctx, st.ID, "", 0, 0)
		return err == nil && len(segs) >= 2
	})
	second := e.openSession(st.ID)
	writeAll(t, second, makeMedia(t, "mpegts", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2", "-c:a", "libmp3lame", "-b:a", "64k"))
	if err := second.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	done := e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	vod, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/vod.m3u8")))
	if err != nil || len(vod.Segments) < 2 || int64(len(vod.Segments)) != done.SegmentCount {
		t.Fatalf("vod playlist %+v (%v), want the first session's segments", vod, err)
	}
}
