package live

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
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
	out := probe(t, "-show_entries", "stream=codec_name,codec_type", "-of", "csv=p=0", e.playlistURL(st.ID, "live.m3u8"))
	if !strings.Contains(out, "h264,video") || !strings.Contains(out, "aac,audio") {
		t.Fatalf("ffprobe of the live playlist: want h264 video and aac audio, got\n%s", out)
	}
	ff.wait(t, 30*time.Second)
	e.end(st.ID)
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)

	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if !vp.ended || int64(len(vp.segments)) != vod.SegmentCount || vp.mediaSequence != 0 {
		t.Fatalf("vod playlist: ended=%v segments=%d (rows %d) media sequence %d", vp.ended, len(vp.segments), vod.SegmentCount, vp.mediaSequence)
	}
	lp := parsePlaylist(t, e.getObject(st.ID+"/live.m3u8"))
	if !lp.ended || len(lp.segments) != len(vp.segments) {
		t.Fatalf("final live playlist: ended=%v segments=%d, want every one of %d", lp.ended, len(lp.segments), len(vp.segments))
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
