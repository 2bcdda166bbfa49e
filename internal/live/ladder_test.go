package live

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/hlsresults"
	"github.com/weir-media/weir/internal/liveladder"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// runTranscoder runs a live ladder transcoder on the env's bus and store
// until the returned stop is called (or the test ends).
func (e *liveEnv) runTranscoder(holder string) (stop func()) {
	e.t.Helper()
	return e.runTranscoderTTL(holder, 2*time.Second)
}

// runTranscoderTTL is runTranscoder with leases of the given lifetime.
func (e *liveEnv) runTranscoderTTL(holder string, ttl time.Duration) (stop func()) {
	e.t.Helper()
	tr, err := liveladder.New(liveladder.Config{Meta: e.meta, Bus: e.client, Logger: e.log.With("holder", holder),
		Holder: holder, LeaseTTL: ttl, Preset: "ultrafast", Registry: e.reg})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// newLadderStream creates a live stream with ladder, as POST
// /streams/start with "ladder" does.
func (e *liveEnv) newLadderStream(ladder ...string) metastore.Stream {
	e.t.Helper()
	return e.newStreamWith(func(st *metastore.Stream) { st.VariantsGenerated = ladder })
}

// firstVideoPTS is the presentation time of a segment's first video frame
// and whether ffprobe decodes it as a key frame.
func firstVideoPTS(t *testing.T, url string) (float64, bool) {
	t.Helper()
	out := strings.TrimSpace(probe(t, "-select_streams", "v:0", "-read_intervals", "%+#1",
		"-show_entries", "frame=pts_time,key_frame", "-of", "csv=p=0", url))
	line := strings.Split(out, "\n")[0]
	parts := strings.Split(line, ",")
	if len(parts) < 2 {
		t.Fatalf("ffprobe of %s: %q", url, out)
	}
	key := parts[0] == "1"
	pts, err := strconv.ParseFloat(parts[1], 64)
	if err != nil {
		// csv order follows the entries' order in ffprobe's frame section
		key = parts[1] == "1"
		pts, err = strconv.ParseFloat(parts[0], 64)
	}
	if err != nil {
		t.Fatalf("ffprobe of %s: %q", url, out)
	}
	return pts, key
}

func TestLadderRenditionsAlignWithTheSource(t *testing.T) {
	needTool(t, "ffprobe")
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20})
	e.runTranscoder("a")
	// The media is made while the transcoder joins its group, as it has
	// long joined before streams start in a running weir.
	ts := makeTSSized(t, "320x240", 7, 25, "libx264", 0)
	// 480p is taller than the 320x240 source: skipped, never upscaled.
	st := e.newLadderStream("480p=1000k", "180p=300k", "120p=150k")
	s := e.openSession(st.ID)
	writeAll(t, s, ts)
	if err := s.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	src := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if len(src.segments) < 5 {
		t.Fatalf("source has %d segments", len(src.segments))
	}
	for _, r := range []struct {
		name          string
		width, height int
	}{{"180p", 240, 180}, {"120p", 160, 120}} {
		var rp mediaPlaylist
		waitFor(t, 90*time.Second, "rendition "+r.name+" to end", func() bool {
			rp = parsePlaylist(t, e.getObject(st.ID+"/"+r.name+"/vod.m3u8"))
			return rp.ended
		})
		if len(rp.segments) != len(src.segments) {
			t.Fatalf("rendition %s has %d segments, the source %d", r.name, len(rp.segments), len(src.segments))
		}
		for i, seg := range rp.segments {
			data := e.getObject(st.ID + "/" + r.name + "/" + seg.uri)
			info, err := hls.InspectTS([]byte(data))
			if err != nil {
				t.Fatalf("%s %s: %v", r.name, seg.uri, err)
			}
			if info.Width != r.width || info.Height != r.height || !info.StartsWithKeyFrame {
				t.Errorf("%s %s: %dx%d, starts with a key frame: %v", r.name, seg.uri, info.Width, info.Height, info.StartsWithKeyFrame)
			}
			want, _ := firstVideoPTS(t, e.playlistURL(st.ID, src.segments[i].uri))
			got, key := firstVideoPTS(t, e.playlistURL(st.ID, r.name+"/"+seg.uri))
			if !key || math.Abs(got-want) > 0.04+1e-6 {
				t.Errorf("%s segment %d starts at %.3f s (key frame %v), the source's at %.3f s: more than a frame apart", r.name, i, got, key, want)
			}
			if math.Abs(seg.duration-src.segments[i].duration) > 0.04+1e-6 {
				t.Errorf("%s segment %d lasts %.3f s, the source's %.3f s", r.name, i, seg.duration, src.segments[i].duration)
			}
		}
		rows, err := e.meta.ListSegments(context.Background(), st.ID, r.name, 0, 0)
		if err != nil || len(rows) != len(rp.segments) {
			t.Fatalf("rendition %s: %d segment rows (%v), %d listed", r.name, len(rows), err, len(rp.segments))
		}
	}
	if e.getObject(st.ID+"/480p/live.m3u8") != "" {
		t.Error("a rung taller than the source was made")
	}
	checkLadderMaster(t, e, st.ID, []string{"180p", "120p"}, []string{"240x180", "160x120"})
	if n := counterValue(t, e.reg, "weir_liveladder_sessions_total"); n != 1 {
		t.Errorf("weir_liveladder_sessions_total = %v, want 1", n)
	}
	if n := counterValue(t, e.reg, "weir_liveladder_output_bytes_total"); n <= 0 {
		t.Errorf("weir_liveladder_output_bytes_total = %v", n)
	}
}

// checkLadderMaster reads the stream's master as GET /hls/{id}/master.m3u8
// answers it, parses it, and checks it lists the source and the renditions
// with measured bandwidths, codecs and picture sizes; ffprobe then reads
// the lowest rendition through it.
func checkLadderMaster(t *testing.T, e *liveEnv, id string, names, sizes []string) {
	t.Helper()
	svc := &hlsresults.Service{Meta: e.meta, Objects: e.store}
	res, err := svc.Serve(context.Background(), id, "master.m3u8")
	if err != nil || res == nil {
		t.Fatalf("master.m3u8: %v, %v", res, err)
	}
	m, err := hls.ParseMasterPlaylist(res.Body)
	if err != nil {
		t.Fatalf("master does not parse: %v\n%s", err, res.Body)
	}
	if len(m.Variants) != 1+len(names) {
		t.Fatalf("master lists %d variants, want the source and %d renditions:\n%s", len(m.Variants), len(names), res.Body)
	}
	text := string(res.Body)
	t.Logf("master.m3u8:\n%s", text)
	for i, name := range names {
		if m.Variants[1+i] != name+"/vod.m3u8" {
			t.Errorf("variant %d is %q, want %s/vod.m3u8", 1+i, m.Variants[1+i], name)
		}
		if !strings.Contains(text, "RESOLUTION="+sizes[i]) {
			t.Errorf("master lacks RESOLUTION=%s:\n%s", sizes[i], text)
		}
	}
	if n := strings.Count(text, "AVERAGE-BANDWIDTH="); n != 1+len(names) {
		t.Errorf("%d variants have AVERAGE-BANDWIDTH:\n%s", n, text)
	}
	if n := strings.Count(text, `CODECS="avc1.`); n != 1+len(names) {
		t.Errorf("%d variants have an H.264 CODECS:\n%s", n, text)
	}
	// Bandwidths are measured: the renditions' are below the source's and
	// each below the one above it.
	bw := bandwidths(text)
	for i := 1; i < len(bw); i++ {
		if bw[i] <= 0 || bw[i] >= bw[i-1] {
			t.Errorf("BANDWIDTHs %v do not fall from the source down the ladder:\n%s", bw, text)
		}
	}
	// A real client reads every variant through the master.
	e.store.Put(context.Background(), id+"/master.m3u8", strings.NewReader(text), int64(len(text)), "application/vnd.apple.mpegurl")
	out := probe(t, "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", e.playlistURL(id, "master.m3u8"))
	for _, size := range sizes {
		if !strings.Contains(out, "h264,"+strings.ReplaceAll(size, "x", ",")) {
			t.Errorf("ffprobe of the master finds no %s H.264 stream:\n%s", size, out)
		}
	}
	if !strings.Contains(out, "aac") {
		t.Errorf("ffprobe of the master finds no AAC:\n%s", out)
	}
}

// bandwidths returns the BANDWIDTH of every EXT-X-STREAM-INF, in order.
func bandwidths(master string) []int64 {
	var out []int64
	for _, line := range strings.Split(master, "\n") {
		if !strings.HasPrefix(line, "#EXT-X-STREAM-INF:") {
			continue
		}
		for _, attr := range strings.Split(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"), ",") {
			if v, ok := strings.CutPrefix(attr, "BANDWIDTH="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out = append(out, n)
			}
		}
	}
	return out
}

// TestLadderMovesToAnotherTranscoder stops the transcoder making a
// stream's ladder mid-stream, as a crash or a rolling restart does: the
// other transcoder of the group takes the stream's topic and its lease
// and carries on, and every rendition segment still starts where a source
// segment does.
func TestLadderMovesToAnotherTranscoder(t *testing.T) {
	needTool(t, "ffprobe")
	// The rendition's publisher, the transcoder, is gone for a moment:
	// a publisher timeout above that keeps the rendition going.
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 30, timeout: 15 * time.Second})
	stops := map[string]func(){"a": e.runTranscoder("a"), "b": e.runTranscoder("b")}
	st := e.newLadderStream("120p=150k")
	ts := makeTSSized(t, "320x240", 12, 25, "libx264", 0)
	half := len(ts) / 2 / 188 * 188
	s := e.openSession(st.ID)
	writeAll(t, s, ts[:half])
	ctx := context.Background()
	waitFor(t, 30*time.Second, "the rendition's first segments", func() bool {
		rows, err := e.meta.ListSegments(ctx, st.ID, "120p", 0, 0)
		return err == nil && len(rows) >= 2
	})
	lease, err := e.meta.GetLease(ctx, metastore.LiveLadderLeaseName(st.ID))
	if err != nil {
		t.Fatal(err)
	}
	first := lease.Holder
	other := map[string]string{"a": "b", "b": "a"}[first]
	if other == "" {
		t.Fatalf("lease holder %q is neither transcoder", first)
	}
	stops[first]()
	before, _ := e.meta.ListSegments(ctx, st.ID, "120p", 0, 0)
	// The rest comes in real time or so, and the stream ends only once
	// the other transcoder has made segments of it.
	rest := ts[half:]
	step := (len(rest)/12 + 187) / 188 * 188
	for len(rest) > 0 {
		n := min(step, len(rest))
		writeAll(t, s, rest[:n])
		rest = rest[n:]
		time.Sleep(400 * time.Millisecond)
	}
	waitFor(t, 40*time.Second, "segments from the other transcoder", func() bool {
		rows, err := e.meta.ListSegments(ctx, st.ID, "120p", 0, 0)
		return err == nil && len(rows) > len(before)+2
	})
	if err := s.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	var rp mediaPlaylist
	waitFor(t, 40*time.Second, "the rendition to end", func() bool {
		rp = parsePlaylist(t, e.getObject(st.ID+"/120p/vod.m3u8"))
		return rp.ended
	})
	lease, err = e.meta.GetLease(ctx, metastore.LiveLadderLeaseName(st.ID))
	if err == nil && lease.Holder != other {
		t.Errorf("lease held by %q after the takeover, want %q", lease.Holder, other)
	}
	if len(rp.segments) <= len(before)+2 {
		t.Fatalf("rendition has %d segments, %d before the takeover: the other transcoder did not carry on", len(rp.segments), len(before))
	}
	src := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	starts := map[int64]bool{}
	for _, seg := range src.segments {
		pts, _ := firstVideoPTS(t, e.playlistURL(st.ID, seg.uri))
		starts[int64(math.Round(pts*25))] = true
	}
	disc := 0
	for i, seg := range rp.segments {
		if seg.discontinuity {
			disc++
		}
		pts, key := firstVideoPTS(t, e.playlistURL(st.ID, "120p/"+seg.uri))
		if !key || !starts[int64(math.Round(pts*25))] {
			t.Errorf("rendition segment %d starts at %.3f s (key frame %v), where no source segment starts", i, pts, key)
		}
	}
	if disc == 0 {
		t.Error("no discontinuity marks the takeover")
	}
	t.Logf("source %d segments; rendition %d (%d before the takeover), %d discontinuities", len(src.segments), len(rp.segments), len(before), disc)
}

// TestLadderTranscoderLetsGoOfAStreamThatTimedOut: a stream whose
// publisher left and never came back ends by the publisher timeout, with
// no end marker for the transcoder to read; the transcoder still stops
// and releases the stream's lease, and the rendition ends too.
func TestLadderTranscoderLetsGoOfAStreamThatTimedOut(t *testing.T) {
	e := newLiveEnv(t, envOptions{segment: time.Second, timeout: 2 * time.Second})
	e.runTranscoder("a")
	st := e.newLadderStream("120p=150k")
	s := e.openSession(st.ID)
	writeAll(t, s, makeTSSized(t, "320x240", 3, 25, "libx264", 0))
	if err := s.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "the transcoder to release the stream's lease", func() bool {
		l, err := e.meta.GetLease(ctx, metastore.LiveLadderLeaseName(st.ID))
		return err == nil && !l.Held
	})
	waitFor(t, 30*time.Second, "the rendition to end", func() bool {
		return parsePlaylist(t, e.getObject(st.ID+"/120p/vod.m3u8")).ended
	})
}

// TestLadderRenditionsOfAnLLStreamGetParts: the renditions of a
// Low-Latency stream are packaged as LL too, with the stream's part
// target, parts within it, and segments aligned with the source's.
func TestLadderRenditionsOfAnLLStreamGetParts(t *testing.T) {
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	e.runTranscoder("a")
	st := e.newStreamWith(func(st *metastore.Stream) {
		st.Details = json.RawMessage(`{"ll_hls":true}`)
		st.VariantsGenerated = []string{"90p=100k"}
	})
	sess := e.openSession(st.ID)
	writeAll(t, sess, makeTS30(t, 5))
	var live *hls.MediaPlaylist
	waitFor(t, 60*time.Second, "an LL playlist of the rendition with two segments", func() bool {
		data := e.getObject(st.ID + "/90p/live.m3u8")
		if data == "" {
			return false
		}
		p, err := hls.ParseMediaPlaylist([]byte(data))
		if err != nil {
			t.Fatalf("rendition playlist does not parse: %v\n%s", err, data)
		}
		live = p
		return len(p.Segments) >= 2
	})
	if live.PartTarget != DefaultPartTarget || live.ServerControl == nil || live.Map == nil {
		t.Fatalf("rendition playlist: part target %v, server control %+v, map %+v", live.PartTarget, live.ServerControl, live.Map)
	}
	// Parts are listed for the last llPartSegments segments; the poll may
	// see the playlist after more than that many.
	for _, s := range live.Segments[max(0, len(live.Segments)-llPartSegments):] {
		if len(s.Parts) == 0 {
			t.Fatalf("rendition segment %s lists no parts", s.URI)
		}
		for i, pt := range s.Parts {
			if pt.Duration > live.PartTarget || pt.Independent != (i == 0) {
				t.Errorf("rendition part %s: %v, independent %v", pt.URI, pt.Duration, pt.Independent)
			}
		}
	}
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 30*time.Second)
	var vod *hls.MediaPlaylist
	waitFor(t, 60*time.Second, "the rendition to end", func() bool {
		p, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/90p/vod.m3u8")))
		vod = p
		return err == nil && p.Ended
	})
	src, err := hls.ParseMediaPlaylist([]byte(e.getObject(st.ID + "/vod.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	if len(vod.Segments) != len(src.Segments) {
		t.Fatalf("rendition has %d segments, the source %d", len(vod.Segments), len(src.Segments))
	}
	for i := range vod.Segments {
		if d := vod.Segments[i].Duration - src.Segments[i].Duration; d > 34*time.Millisecond || d < -34*time.Millisecond {
			t.Errorf("segment %d: rendition %v, source %v", i, vod.Segments[i].Duration, src.Segments[i].Duration)
		}
	}
	// The master lists the LL rendition, its CODECS and RESOLUTION read
	// from its init segment.
	res, err := (&hlsresults.Service{Meta: e.meta, Objects: e.store}).Serve(context.Background(), st.ID, "master.m3u8")
	if err != nil || res == nil {
		t.Fatalf("master.m3u8: %v, %v", res, err)
	}
	if m := string(res.Body); !strings.Contains(m, "\n90p/vod.m3u8") || !strings.Contains(m, "RESOLUTION=120x90") || strings.Count(m, `CODECS="avc1.`) != 2 {
		t.Errorf("master of the LL stream:\n%s", m)
	}
	t.Logf("rendition: %d segments, %d parts listed live; source %d segments", len(vod.Segments), len(live.Segments[0].Parts)+len(live.Segments[1].Parts), len(src.Segments))
}

func TestRenditionNextPartPassesEveryUsedNumber(t *testing.T) {
	if n := renditionNextPart(nil, 2*time.Second, 333*time.Millisecond); n != 0 {
		t.Errorf("no segments: %d", n)
	}
	// 2 s segments of parts up to 333 ms: at most 7 parts each, 8 with a
	// cut at the limit; segments 0..4 and the lost 5th used < 6*8.
	segs := []metastore.Segment{{ChunkIndex: 3}, {ChunkIndex: 4}}
	if n := renditionNextPart(segs, 2*time.Second, 333*time.Millisecond); n != 6*8 {
		t.Errorf("after segment 4: %d, want %d", n, 6*8)
	}
}

// TestLadderWaitsForADeadTranscodersLease: a transcoder that died holding
// a stream's lease (killed: nothing released it) keeps the next one out
// until the lease lapses; then the next one transcodes the stream, its
// records stamped with a higher token.
func TestLadderWaitsForADeadTranscodersLease(t *testing.T) {
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	ts := makeTSSized(t, "320x240", 4, 25, "libx264", 0)
	st := e.newLadderStream("120p=150k")
	ctx := context.Background()
	dead, err := e.meta.AcquireLease(ctx, metastore.LiveLadderLeaseName(st.ID), "dead", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.runTranscoder("b")
	s := e.openSession(st.ID)
	writeAll(t, s, ts)
	if err := s.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	var rows []metastore.Segment
	waitFor(t, 60*time.Second, "the rendition's segments", func() bool {
		rows, err = e.meta.ListSegments(ctx, st.ID, "120p", 0, 0)
		return err == nil && len(rows) >= 3
	})
	l, err := e.meta.GetLease(ctx, metastore.LiveLadderLeaseName(st.ID))
	if err != nil || l.Holder != "b" || l.Token <= dead.Token {
		t.Fatalf("lease %+v (%v), want held by b with a token above the dead holder's %d", l, err, dead.Token)
	}
	if first := rows[0].CreatedAt; first.Sub(dead.Acquired) < 2*time.Second {
		t.Errorf("the first rendition segment was listed %v after the dead holder took the lease, before it could lapse", first.Sub(dead.Acquired))
	}
}

// TestLadderLeaseWaitHoldsUpNoOtherStream: while a transcoder waits for
// one stream's lease (left by a transcoder that died), it transcodes its
// other streams; once the lease lapses it transcodes the waiting stream
// from its first record, the records that came meanwhile included.
func TestLadderLeaseWaitHoldsUpNoOtherStream(t *testing.T) {
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	// More records than the bus lets a consumer defer by default (256):
	// the transcoder must make room for a whole wait's worth.
	ts := makeTSSized(t, "1280x720", 5, 25, "libx264", 0)
	if min := 300 * protocol.DefaultChunkSize; len(ts) < min {
		t.Fatalf("the media is %d bytes, fewer than %d records' worth", len(ts), 300)
	}
	waiting := e.newLadderStream("120p=150k")
	free := e.newLadderStream("120p=150k")
	ctx := context.Background()
	const deadTTL = 20 * time.Second
	dead, err := e.meta.AcquireLease(ctx, metastore.LiveLadderLeaseName(waiting.ID), "dead", deadTTL)
	if err != nil {
		t.Fatal(err)
	}
	// Leases of 2 s: the wait (20 s) is far longer than the transcoder's
	// own lease lifetime, and every record of the waiting stream has come
	// before it ends.
	e.runTranscoderTTL("b", 2*time.Second)
	for _, st := range []metastore.Stream{waiting, free} {
		s := e.openSession(st.ID)
		writeAll(t, s, ts)
		if err := s.Close(ctx, false); err != nil {
			t.Fatal(err)
		}
		e.end(st.ID)
	}
	ended := func(st metastore.Stream) func() bool {
		return func() bool { return parsePlaylist(t, e.getObject(st.ID+"/120p/vod.m3u8")).ended }
	}
	waitFor(t, 60*time.Second, "the free stream's rendition to end", ended(free))
	if l, err := e.meta.GetLease(ctx, metastore.LiveLadderLeaseName(waiting.ID)); err != nil || l.Holder != "dead" || !l.Held {
		t.Fatalf("the waiting stream's lease is %+v (%v) when the free stream's rendition ended; want it still the dead holder's: the wait held up the other stream", l, err)
	}
	waitFor(t, 90*time.Second, "the waiting stream's rendition to end", ended(waiting))
	l, err := e.meta.GetLease(ctx, metastore.LiveLadderLeaseName(waiting.ID))
	if err != nil || l.Token <= dead.Token {
		t.Fatalf("lease %+v (%v), want one taken after the dead holder's token %d", l, err, dead.Token)
	}
	got := parsePlaylist(t, e.getObject(waiting.ID+"/120p/vod.m3u8"))
	want := parsePlaylist(t, e.getObject(free.ID+"/120p/vod.m3u8"))
	if len(got.segments) != len(want.segments) || len(got.segments) < 3 {
		t.Fatalf("the waiting stream's rendition has %d segments, the free one's %d from the same media: records kept during the wait were lost", len(got.segments), len(want.segments))
	}
	rows, err := e.meta.ListSegments(ctx, waiting.ID, "120p", 0, 0)
	if err != nil || len(rows) == 0 || rows[0].CreatedAt.Before(dead.Acquired.Add(deadTTL-time.Second)) {
		t.Fatalf("the waiting stream's first rendition segment (%v, %v) came before its lease could lapse at %v", rows, err, dead.Acquired.Add(deadTTL))
	}
}
