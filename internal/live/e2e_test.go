package live

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// TestRTMPPublishBecomesLiveThenVOD pushes a real ffmpeg RTMP publish
// through the whole pipeline and checks the live playlist while it runs and
// the VOD playlist after the stream ends.
func TestRTMPPublishBecomesLiveThenVOD(t *testing.T) {
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 3})
	st := e.newStream("")
	ff := startFFmpeg(t, publishArgs(8, "flv", e.rtmpURL(st.PublishKey))...)

	live := e.waitStatus(st.ID, metastore.StatusLive, 20*time.Second)
	if live.SegmentCount < 1 {
		t.Fatalf("stream is live with %d segments", live.SegmentCount)
	}
	// While it runs: the window holds at most 3 segments and slides.
	var seqs []int64
	waitFor(t, 20*time.Second, "the window to slide", func() bool {
		p := parsePlaylist(t, e.getObject(st.ID+"/live.m3u8"))
		if len(p.segments) > 3 {
			t.Fatalf("live playlist lists %d segments, window is 3", len(p.segments))
		}
		seqs = append(seqs, p.mediaSequence)
		return p.mediaSequence >= 2
	})
	video, audio := playHLS(t, e.playlistURL(st.ID, "live.m3u8"), 25)
	t.Logf("gohlslib played %d video access units and %d audio frames", video, audio)
	out := probe(t, "-show_entries", "stream=codec_name,codec_type", "-of", "csv=p=0", e.playlistURL(st.ID, "live.m3u8"))
	if !strings.Contains(out, "h264,video") || !strings.Contains(out, "aac,audio") {
		t.Fatalf("ffprobe of the live playlist: want h264 video and aac audio, got\n%s", out)
	}
	ff.wait(t, 30*time.Second)
	before := parsePlaylist(t, e.getObject(st.ID+"/live.m3u8"))
	e.end(st.ID)
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)

	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if !vp.ended || int64(len(vp.segments)) != vod.SegmentCount || vp.mediaSequence != 0 {
		t.Fatalf("vod playlist: ended=%v segments=%d (rows %d) media sequence %d", vp.ended, len(vp.segments), vod.SegmentCount, vp.mediaSequence)
	}
	// The live playlist keeps its window and gains ENDLIST: a player
	// reloading it never sees the media sequence go back (RFC 8216).
	lp := parsePlaylist(t, e.getObject(st.ID+"/live.m3u8"))
	if !lp.ended || lp.mediaSequence < before.mediaSequence || len(lp.segments) == 0 || len(lp.segments) > 3 ||
		lp.segments[len(lp.segments)-1].uri != vp.segments[len(vp.segments)-1].uri {
		t.Fatalf("final live playlist: ended=%v media sequence %d (was %d) segments=%d, want the window of at most 3 ending with the last of %d",
			lp.ended, lp.mediaSequence, before.mediaSequence, len(lp.segments), len(vp.segments))
	}
	var total float64
	for _, s := range vp.segments {
		total += s.duration
		data := e.getObject(st.ID + "/" + s.uri)
		info, err := hls.InspectTS([]byte(data))
		if err != nil {
			t.Fatalf("segment %s: %v", s.uri, err)
		}
		if !info.StartsWithKeyFrame {
			t.Errorf("segment %s does not start with a key frame", s.uri)
		}
		// ffprobe decodes the segment on its own: its first video frame
		// must be a key frame.
		first := probe(t, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries", "frame=key_frame,pict_type",
			"-of", "csv=p=0", e.playlistURL(st.ID, s.uri))
		if !strings.HasPrefix(strings.TrimSpace(first), "1,I") {
			t.Errorf("segment %s: ffprobe reads its first video frame as %q, want a key I frame", s.uri, first)
		}
	}
	if total < 7 || total > 9 {
		t.Errorf("segments add up to %.3f s of the 8 s published", total)
	}
	segs, err := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range segs {
		if s.Sequence != int64(i) || s.SHA256 == "" || s.Size == 0 || s.ProgramDateTime.IsZero() {
			t.Errorf("segment row %d: %+v", i, s)
		}
	}
	n, sum, _ := histogramStats(t, e.reg, "weir_live_segment_publish_latency_seconds")
	if n == 0 {
		t.Fatal("no publish latency observed")
	}
	t.Logf("publish latency: %d segments, mean %.1f ms; details %s", n, sum/float64(n)*1000, vod.Details)
}

// playHLS plays a live playlist with gohlslib's client until it has
// received minVideo H.264 access units, and fails the test unless audio
// came too.
func playHLS(t *testing.T, url string, minVideo int64) (video, audio int64) {
	t.Helper()
	var v, a atomic.Int64
	c := &gohlslib.Client{URI: url, StartDistance: 2}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch tr.Codec.(type) {
			case *hlscodecs.H264:
				c.OnDataH26x(tr, func(int64, int64, [][]byte) { v.Add(1) })
			case *hlscodecs.MPEG4Audio:
				c.OnDataMPEG4Audio(tr, func(_ int64, aus [][]byte) { a.Add(int64(len(aus))) })
			}
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 20*time.Second, "gohlslib to play the live stream", func() bool {
		return v.Load() >= minVideo && a.Load() > 0
	})
	return v.Load(), a.Load()
}

// TestSRTPublishEndsAfterPublisherTimeout pushes MPEG-TS over SRT and lets
// the publisher go: the stream must become VOD on its own once the
// publisher timeout passes.
func TestSRTPublishEndsAfterPublisherTimeout(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 4, timeout: 2 * time.Second})
	st := e.newStream("")
	ff := startFFmpeg(t, publishArgs(6, "mpegts", e.srtURL(st.PublishKey))...)
	e.waitStatus(st.ID, metastore.StatusLive, 20*time.Second)
	out := probe(t, "-show_entries", "stream=codec_name,codec_type", "-of", "csv=p=0", e.playlistURL(st.ID, "live.m3u8"))
	if !strings.Contains(out, "h264,video") || !strings.Contains(out, "aac,audio") {
		t.Fatalf("ffprobe of the live playlist: want h264 video and aac audio, got\n%s", out)
	}
	ff.wait(t, 30*time.Second)
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if !vp.ended || int64(len(vp.segments)) != vod.SegmentCount || len(vp.segments) < 4 {
		t.Fatalf("vod playlist after the timeout: ended=%v, %d segments (rows %d)", vp.ended, len(vp.segments), vod.SegmentCount)
	}
	for _, s := range vp.segments {
		info, err := hls.InspectTS([]byte(e.getObject(st.ID + "/" + s.uri)))
		if err != nil || !info.StartsWithKeyFrame {
			t.Errorf("segment %s: starts with key frame %v, err %v", s.uri, info.StartsWithKeyFrame, err)
		}
	}
}

// TestPublisherReconnectContinuesWithDiscontinuity publishes, drops the
// publisher and publishes again within the timeout: one stream, one
// discontinuity, counted as a gap.
func TestPublisherReconnectContinuesWithDiscontinuity(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: 15 * time.Second})
	st := e.newStream("")
	startFFmpeg(t, publishArgs(4, "flv", e.rtmpURL(st.PublishKey))...).wait(t, 30*time.Second)
	first := e.waitStatus(st.ID, metastore.StatusLive, 10*time.Second)
	waitFor(t, 10*time.Second, "the first session's last segment", func() bool {
		return len(parsePlaylist(t, e.getObject(st.ID+"/live.m3u8")).segments) >= 4
	})
	startFFmpeg(t, publishArgs(4, "flv", e.rtmpURL(st.PublishKey))...).wait(t, 30*time.Second)
	e.end(st.ID)
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	if vod.ID != first.ID || vod.Gaps != 1 {
		t.Fatalf("after a reconnect: gaps %d, want 1", vod.Gaps)
	}
	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	var disc []int
	for i, s := range vp.segments {
		if s.discontinuity {
			disc = append(disc, i)
		}
	}
	if len(disc) != 1 || disc[0] < 3 || disc[0] > len(vp.segments)-3 {
		t.Fatalf("vod playlist: discontinuities before segments %v of %d, want one in the middle\n%s", disc, len(vp.segments), e.getObject(st.ID+"/vod.m3u8"))
	}
	if g := counterValue(t, e.reg, "weir_live_gaps_total"); g != 1 {
		t.Errorf("weir_live_gaps_total = %v, want 1", g)
	}
}

// TestSimultaneousStreamsStayIsolated runs two publishers at once, one per
// protocol and picture size: each stream's segments hold its own picture.
func TestSimultaneousStreamsStayIsolated(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 5})
	a, b := e.newStream(""), e.newStream("")
	argsB := publishArgs(5, "mpegts", e.srtURL(b.PublishKey))
	for i, v := range argsB {
		if strings.HasPrefix(v, "testsrc2=size=320x240") {
			argsB[i] = strings.Replace(v, "320x240", "160x120", 1)
		}
	}
	fa := startFFmpeg(t, publishArgs(5, "flv", e.rtmpURL(a.PublishKey))...)
	fb := startFFmpeg(t, argsB...)
	fa.wait(t, 30*time.Second)
	fb.wait(t, 30*time.Second)
	e.end(a.ID)
	e.end(b.ID)
	for _, c := range []struct {
		id   string
		w, h int
	}{{a.ID, 320, 240}, {b.ID, 160, 120}} {
		vod := e.waitStatus(c.id, metastore.StatusVOD, 20*time.Second)
		vp := parsePlaylist(t, e.getObject(c.id+"/vod.m3u8"))
		if len(vp.segments) < 3 || int64(len(vp.segments)) != vod.SegmentCount {
			t.Fatalf("stream %s: %d segments listed, %d rows", c.id, len(vp.segments), vod.SegmentCount)
		}
		for _, s := range vp.segments {
			info, err := hls.InspectTS([]byte(e.getObject(c.id + "/" + s.uri)))
			if err != nil || info.Width != c.w || info.Height != c.h {
				t.Errorf("stream %s segment %s: %dx%d (err %v), want %dx%d", c.id, s.uri, info.Width, info.Height, err, c.w, c.h)
			}
		}
	}
}

// TestIcecastAACPullIsPackagedAudioOnly starts a stream with a source URL
// through the control topic: an Icecast-style station streaming ADTS AAC
// forever is pulled, segmented on time, and ended through the control
// topic again.
func TestIcecastAACPullIsPackagedAudioOnly(t *testing.T) {
	t.Parallel()
	needTool(t, "ffmpeg")
	aac := filepath.Join(t.TempDir(), "tone.aac")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=44100:duration=4", "-c:a", "aac", "-b:a", "64k", "-f", "adts", aac).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	tone, err := os.ReadFile(aac)
	if err != nil {
		t.Fatal(err)
	}
	var listeners atomic.Int64
	station := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		listeners.Add(1)
		defer listeners.Add(-1)
		w.Header().Set("Content-Type", "audio/aac")
		w.Header().Set("icy-name", "weir test tone")
		// 4 s of audio in 40 pieces: one every 100 ms is real time.
		piece := len(tone)/40 + 1
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for off := 0; off < len(tone); off += piece {
				select {
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
				w.Write(tone[off:min(off+piece, len(tone))])
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(station.Close) // after the pipeline's cleanup, which hangs up

	e := newLiveEnv(t, envOptions{segment: time.Second, window: 4})
	st := e.newStream(station.URL + "/live.aac")
	e.control(protocol.LiveControl{Action: protocol.LiveStart, StreamID: st.ID, SourceURL: st.SourceURL})
	e.waitStatus(st.ID, metastore.StatusLive, 20*time.Second)
	waitFor(t, 20*time.Second, "three audio segments", func() bool {
		return len(parsePlaylist(t, e.getObject(st.ID+"/live.m3u8")).segments) >= 3
	})
	out := probe(t, "-show_entries", "stream=codec_name,codec_type", "-of", "csv=p=0", e.playlistURL(st.ID, "live.m3u8"))
	if lines := strings.Fields(out); len(lines) == 0 || slices.ContainsFunc(lines, func(l string) bool { return l != "aac,audio" }) {
		t.Fatalf("ffprobe of the pulled stream: want only aac audio, got\n%s", out)
	}
	e.control(protocol.LiveControl{Action: protocol.LiveEnd, StreamID: st.ID})
	e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	waitFor(t, 10*time.Second, "the pull to hang up", func() bool { return listeners.Load() == 0 })
	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	// The target duration is the longest segment allowed (2 × 1 s), as
	// declared from the first live playlist; audio is cut at or under the
	// 1 s segment duration all the same.
	if !vp.ended || vp.targetDuration != 2 {
		t.Fatalf("vod playlist: ended %v, target duration %d (want 2, the longest segment allowed)", vp.ended, vp.targetDuration)
	}
	for _, s := range vp.segments[:len(vp.segments)-1] {
		if s.duration < 0.9 || s.duration > 1.0 {
			t.Errorf("segment %s lasts %.3f s, want 0.95–1.0", s.uri, s.duration)
		}
		info, err := hls.InspectTS([]byte(e.getObject(st.ID + "/" + s.uri)))
		if err != nil || info.HasVideo || len(info.Codecs) != 1 || info.Codecs[0] != "mp4a.40.2" {
			t.Errorf("segment %s: video %v, codecs %v, err %v", s.uri, info.HasVideo, info.Codecs, err)
		}
	}
}

// TestPullReconnectsWhenTheSourceDrops pulls an HTTP MPEG-TS feed that
// hangs up once: the puller reconnects and the stream goes on after a
// discontinuity.
func TestPullReconnectsWhenTheSourceDrops(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 4, 25, "libx264", 0)
	var requests atomic.Int64
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Type", "video/mp2t")
		piece := len(ts)/40/mpegts.PacketSize*mpegts.PacketSize + mpegts.PacketSize
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for off := 0; off < len(ts); off += piece {
				select {
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
				w.Write(ts[off:min(off+piece, len(ts))])
				w.(http.Flusher).Flush()
			}
			if n == 1 {
				return // the first connection drops after one pass
			}
		}
	}))
	t.Cleanup(feed.Close)

	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20})
	st := e.newStream(feed.URL + "/live.ts")
	e.control(protocol.LiveControl{Action: protocol.LiveStart, StreamID: st.ID, SourceURL: st.SourceURL})
	waitFor(t, 30*time.Second, "a discontinuity after the reconnect", func() bool {
		p := parsePlaylist(t, e.getObject(st.ID+"/live.m3u8"))
		for i, s := range p.segments {
			if s.discontinuity && i >= 3 && len(p.segments) > i+1 {
				return true
			}
		}
		return false
	})
	e.control(protocol.LiveControl{Action: protocol.LiveEnd, StreamID: st.ID})
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	if vod.Gaps != 1 || requests.Load() != 2 {
		t.Fatalf("gaps %d after %d requests, want 1 gap and 2 requests", vod.Gaps, requests.Load())
	}
	e.checkSegments(st.ID, 0)
}
