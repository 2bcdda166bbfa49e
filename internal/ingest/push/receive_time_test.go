package push

import (
	"testing"
	"time"

	"github.com/weir-media/weir/protocol"
)

// rawStamps returns the receive time and the first payload byte of every
// raw_stream record.
func rawStamps(t *testing.T, recs []recorded) (stamps []time.Time, first []byte) {
	t.Helper()
	for _, r := range recs {
		raw, ok := r.msg.(*protocol.RawStream)
		if !ok {
			continue
		}
		v, _ := r.rec.Header(protocol.HeaderReceivedAt)
		at, err := protocol.ParseReceivedAt(v)
		if err != nil {
			t.Fatalf("raw_stream record without %s: %v", protocol.HeaderReceivedAt, err)
		}
		stamps = append(stamps, at)
		first = append(first, raw.Data[0])
	}
	return stamps, first
}

// TestRTMPReceiveTimesFollowTheMedia publishes in real time over RTMP. The
// server reads two seconds of media before it knows the tracks and hands it
// over at once; the receive times must still be spread over the whole
// publish, as the media arrived, not start two seconds late.
func TestRTMPReceiveTimesFollowTheMedia(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	st := e.newStream()
	if out, err := ffmpeg(t, time.Minute, append(testPattern(4), "-f", "flv", e.rtmpURL(st.PublishKey))...); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the stream to end on the bus", func() bool {
		recs := e.rec.stream(protocol.StreamTopic(st.ID))
		if len(recs) == 0 {
			return false
		}
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return ok && hb.Status == protocol.HeartbeatDone
	})
	recs := e.rec.stream(protocol.StreamTopic(st.ID))
	_, media := probeStreams(t, checkStream(t, recs, false))
	stamps, _ := rawStamps(t, recs)
	for i := 1; i < len(stamps); i++ {
		if stamps[i].Before(stamps[i-1]) {
			t.Fatalf("record %d stamped %v before the record ahead of it", i, stamps[i-1].Sub(stamps[i]))
		}
	}
	// ffmpeg sends in real time (or slower, on a loaded machine), so
	// the stamps span about the media's duration; with the probe's two
	// seconds stamped at hand-over they would span two seconds less.
	span := stamps[len(stamps)-1].Sub(stamps[0]).Seconds()
	t.Logf("%d raw_stream records stamped over %.3f s for %.3f s of media", len(stamps), span, media)
	if span < media-0.7 {
		t.Errorf("receive times span %.3f s for %.3f s of media sent in real time: the start was stamped late", span, media)
	}
}
