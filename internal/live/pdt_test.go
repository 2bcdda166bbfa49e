package live

import (
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
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

// TestProgramDateTimeNeverInTheFutureWhenPublishedFasterThanRealTime
// publishes 30 s of media as fast as ffmpeg encodes it (no -re), reloading
// the live playlist all along and vod.m3u8 at the end: with media time
// running ahead of the clock, a PROGRAM-DATE-TIME taken from media time
// alone would lie seconds in the future. No date may be later than when
// the playlist was fetched, and the dates must increase.
func TestProgramDateTimeNeverInTheFutureWhenPublishedFasterThanRealTime(t *testing.T) {
	const media = 30.0
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 10})
	st := e.newStream("")
	args := publishArgs(media, "flv", e.rtmpURL(st.PublishKey))[1:] // drop -re
	began := time.Now()
	run := startFFmpeg(t, args...)

	check := func(name, text string, fetched time.Time) int {
		p := parsePlaylist(t, text)
		var last time.Time
		for _, s := range p.segments {
			if s.pdt.IsZero() {
				t.Fatalf("%s: segment %s has no EXT-X-PROGRAM-DATE-TIME", name, s.uri)
			}
			if s.pdt.After(fetched) {
				t.Fatalf("%s: segment %s has EXT-X-PROGRAM-DATE-TIME %s, %v after the playlist was fetched",
					name, s.uri, s.pdt.Format(time.RFC3339Nano), s.pdt.Sub(fetched))
			}
			if !last.IsZero() && !s.pdt.After(last) {
				t.Fatalf("%s: segment %s has EXT-X-PROGRAM-DATE-TIME %s, not after the one before (%s)",
					name, s.uri, s.pdt.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
			}
			last = s.pdt
		}
		return len(p.segments)
	}
	reloads := 0
	done := false
	var settle time.Time // reload a little longer once ffmpeg is done
	for settle.IsZero() || time.Now().Before(settle) {
		if done && settle.IsZero() {
			settle = time.Now().Add(3 * time.Second)
		}
		exited := run.done
		if done {
			exited = nil
		}
		select {
		case err := <-exited:
			run.done <- err // the cleanup waits for it too
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, run.out.String())
			}
			done = true
		case <-time.After(25 * time.Millisecond):
		}
		if text := e.getObject(st.ID + "/live.m3u8"); text != "" {
			check("live.m3u8", text, time.Now())
			reloads++
		}
		if time.Since(began) > 2*time.Minute {
			t.Fatal("ffmpeg still publishing after 2 minutes")
		}
	}
	sent := settle.Add(-3 * time.Second).Sub(began)
	if sent > time.Duration(media*0.8*float64(time.Second)) {
		t.Skipf("ffmpeg took %v to send %.0f s of media: not faster than real time on this machine", sent, media)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, time.Minute)
	vod := e.getObject(st.ID + "/vod.m3u8")
	n := check("vod.m3u8", vod, time.Now())
	if n < int(media)/2 {
		t.Fatalf("vod.m3u8 lists %d segments for %.0f s of media:\n%s", n, media, vod)
	}
	t.Logf("%.0f s of media sent in %v; %d live reloads checked, %d segments in vod.m3u8", media, sent.Round(time.Millisecond), reloads, n)
}
