package live

import (
	"testing"
	"time"
)

// TestRTMPProgramDateTimeMatchesArrival publishes in real time over RTMP
// and watches the live playlist: each segment's EXT-X-PROGRAM-DATE-TIME
// plus its duration is when the media closing it arrived, so the segment
// is listed at or shortly after that moment. The RTMP server reads two
// seconds of media before it knows the tracks; were that media stamped
// when it was handed over, every PROGRAM-DATE-TIME would run two seconds
// late and segments would be listed "before" their media ended.
func TestRTMPProgramDateTimeMatchesArrival(t *testing.T) {
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 10})
	st := e.newStream("")
	startFFmpeg(t, publishArgs(8, "flv", e.rtmpURL(st.PublishKey))...)

	listed := map[string]time.Time{}
	var segs []playlistSegment
	waitFor(t, 40*time.Second, "six segments listed", func() bool {
		p := parsePlaylist(t, e.getObject(st.ID+"/live.m3u8"))
		seen := time.Now()
		for _, s := range p.segments {
			if _, ok := listed[s.uri]; !ok {
				listed[s.uri] = seen
				segs = append(segs, s)
			}
		}
		return len(segs) >= 6
	})
	for i, s := range segs {
		if s.pdt.IsZero() {
			t.Fatalf("segment %s has no EXT-X-PROGRAM-DATE-TIME", s.uri)
		}
		end := s.pdt.Add(time.Duration(s.duration * float64(time.Second)))
		// lag: from the end of the segment's media, by its
		// PROGRAM-DATE-TIME, to when the test saw it listed (the publish
		// latency plus up to one poll). Negative: listed before its
		// media was received, so the PROGRAM-DATE-TIME is late.
		lag := listed[s.uri].Sub(end)
		t.Logf("segment %d: PROGRAM-DATE-TIME %s, %.3f s, seen listed %v after its media end", i,
			s.pdt.Format("15:04:05.000"), s.duration, lag.Round(time.Millisecond))
		if lag < -500*time.Millisecond {
			t.Errorf("segment %d was listed %v before its media ended by its PROGRAM-DATE-TIME: the date-time runs late",
				i, -lag.Round(time.Millisecond))
		}
		// From the third segment on, the media closing a segment came
		// after the track probe's hand-over, so it was listed soon after
		// it arrived. The first segments wait for the hand-over: that is
		// real latency.
		if i >= 2 && lag > time.Second {
			t.Errorf("segment %d was listed %v after its media ended by its PROGRAM-DATE-TIME: the date-time runs early",
				i, lag.Round(time.Millisecond))
		}
	}
}
