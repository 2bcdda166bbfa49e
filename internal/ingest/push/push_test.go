package push

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	srt "github.com/datarhei/gosrt"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// checkStream checks a finished publisher session on the bus: stream_init
// (MPEG-TS) first, raw_stream records stamped with their receive time,
// stream_eof with the right length, a DONE heartbeat last. It returns the
// MPEG-TS bytes.
func checkStream(t *testing.T, recs []recorded, forced bool) []byte {
	t.Helper()
	if len(recs) < 4 {
		t.Fatalf("%d records on the stream topic, want a whole stream", len(recs))
	}
	init, ok := recs[0].msg.(*protocol.StreamInit)
	if !ok || init.MimeType != mpegts.MimeType || init.FFmpegFormat != mpegts.FFmpegFormat {
		t.Fatalf("first record: %#v, want stream_init of MPEG-TS", recs[0].msg)
	}
	var eof *protocol.StreamEOF
	var raws int64
	for _, r := range recs {
		if r.err != nil {
			t.Fatalf("record %s does not decode: %v", r.rec.Key, r.err)
		}
		switch m := r.msg.(type) {
		case *protocol.RawStream:
			raws += int64(len(m.Data))
			v, ok := r.rec.Header(protocol.HeaderReceivedAt)
			at, err := protocol.ParseReceivedAt(v)
			if !ok || err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
				t.Fatalf("raw_stream record without a sane %s header: %q", protocol.HeaderReceivedAt, v)
			}
		case *protocol.StreamEOF:
			eof = m
		}
	}
	if eof == nil || eof.ContentLength != raws || eof.ForcedEOF != forced {
		t.Fatalf("stream_eof %+v: want contentLength %d, forcedEOF %v", eof, raws, forced)
	}
	last, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
	if !ok || last.Status != protocol.HeartbeatDone {
		t.Fatalf("last record %#v, want a DONE heartbeat", recs[len(recs)-1].msg)
	}
	return rawBytes(recs)
}

// probeStreams writes ts to a file and returns ffprobe's codec list and
// duration.
func probeStreams(t *testing.T, ts []byte) (codecs string, duration float64) {
	t.Helper()
	needTool(t, "ffprobe")
	f := filepath.Join(t.TempDir(), "stream.ts")
	if err := os.WriteFile(f, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,codec_type:format=duration",
		"-of", "csv=p=0", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	d, _ := strconv.ParseFloat(lines[len(lines)-1], 64)
	return strings.Join(lines[:len(lines)-1], " "), d
}

func TestRTMPPublishIsRemuxedToMPEGTS(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	st := e.newStream()
	if out, err := ffmpeg(t, time.Minute, append(testPattern(3), "-f", "flv", e.rtmpURL(st.PublishKey))...); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	var ts []byte
	waitFor(t, 10*time.Second, "the stream to end on the bus", func() bool {
		recs := e.rec.stream(protocol.StreamTopic(st.ID))
		if len(recs) == 0 {
			return false
		}
		_, done := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return done && recs[len(recs)-1].msg.(*protocol.EngineHeartbeat).Status == protocol.HeartbeatDone
	})
	ts = checkStream(t, e.rec.stream(protocol.StreamTopic(st.ID)), false)
	codecs, d := probeStreams(t, ts)
	if !strings.Contains(codecs, "h264,video") || !strings.Contains(codecs, "aac,audio") {
		t.Fatalf("remuxed stream has %q, want h264 video and aac audio", codecs)
	}
	if d < 2.5 || d > 3.5 {
		t.Errorf("remuxed stream lasts %.2f s, want about 3", d)
	}
	info, err := hls.InspectTS(ts)
	if err != nil || !info.StartsWithKeyFrame {
		t.Fatalf("remuxed stream: starts with a key frame %v (err %v)", info.StartsWithKeyFrame, err)
	}
	if e.connections("rtmp", "accepted") != 1 {
		t.Errorf("accepted connections = %v, want 1", e.connections("rtmp", "accepted"))
	}
}

func TestSRTPublishPassesMPEGTSThrough(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	st := e.newStream()
	u := fmt.Sprintf("srt://%s?streamid=publish:%s&pkt_size=1316", e.srtAddr(), st.PublishKey)
	if out, err := ffmpeg(t, time.Minute, append(testPattern(3), "-f", "mpegts", u)...); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	waitFor(t, 15*time.Second, "the stream to end on the bus", func() bool {
		recs := e.rec.stream(protocol.StreamTopic(st.ID))
		if len(recs) == 0 {
			return false
		}
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return ok && hb.Status == protocol.HeartbeatDone
	})
	ts := checkStream(t, e.rec.stream(protocol.StreamTopic(st.ID)), false)
	if len(ts)%188 != 0 || ts[0] != 0x47 {
		t.Errorf("%d bytes passed through, starting with %#x: want whole transport packets", len(ts), ts[0])
	}
	codecs, d := probeStreams(t, ts)
	if !strings.Contains(codecs, "h264,video") || !strings.Contains(codecs, "aac,audio") || d < 2.5 {
		t.Fatalf("passed-through stream: %q, %.2f s", codecs, d)
	}
}

// srtDial connects to the SRT server with a stream id.
func srtDial(addr, streamID string) (srt.Conn, error) {
	conf := srt.DefaultConfig()
	conf.StreamId = streamID
	conf.ConnectionTimeout = 3 * time.Second
	return srt.Dial("srt", addr, conf)
}

func TestPublishRefusedForWrongOrEndedKey(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	ended := e.newStream()
	if _, err := e.meta.TransitionStatus(context.Background(), ended.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	good := e.newStream()
	tests := []struct {
		name     string
		protocol string
		target   string // RTMP URL or SRT stream id
	}{
		{"rtmp unknown key", "rtmp", e.rtmpURL("0123456789abcdef0123456789abcdef")},
		{"rtmp ended stream", "rtmp", e.rtmpURL(ended.PublishKey)},
		{"rtmp other application", "rtmp", strings.Replace(e.rtmpURL(good.PublishKey), "/live/", "/app/", 1)},
		{"srt unknown key", "srt", "publish:0123456789abcdef0123456789abcdef"},
		{"srt ended stream", "srt", "publish:" + ended.PublishKey},
		{"srt reading mode", "srt", "read:" + good.PublishKey},
		{"srt malformed stream id", "srt", "hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.connections(tc.protocol, "refused")
			switch tc.protocol {
			case "rtmp":
				args := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1",
					"-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", tc.target}
				if out, err := ffmpeg(t, 30*time.Second, args...); err == nil {
					t.Fatalf("ffmpeg published to %s without an error:\n%s", tc.target, out)
				}
			case "srt":
				conn, err := srtDial(e.srtAddr(), tc.target)
				if err == nil {
					conn.Close()
					t.Fatalf("SRT stream id %q was accepted", tc.target)
				}
			}
			waitFor(t, 5*time.Second, "the refusal to be counted", func() bool {
				return e.connections(tc.protocol, "refused") == before+1
			})
		})
	}
	if n := e.rec.count(); n != 0 {
		t.Fatalf("refused publishers produced %d records", n)
	}
}

func TestGarbageDoesNotCrashTheServers(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	junk := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	// RTMP: random bytes, a plausible C0 followed by junk, a handshake cut
	// short.
	for _, payload := range [][]byte{junk(4096), append([]byte{3}, junk(3000)...), {3, 0, 0}, append([]byte{3}, make([]byte, 1536)...)} {
		c, err := net.Dial("tcp", e.rtmp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(payload)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 8192)
		c.Read(buf)
		c.Close()
	}
	// SRT: random datagrams, and datagrams with the control bit set.
	u, err := net.Dial("udp", e.srtAddr())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		p := junk(1 + i*7%1400)
		if i%2 == 0 && len(p) > 16 {
			p[0] = 0x80 // control packet
		}
		u.Write(p)
	}
	u.Close()

	// Both servers still take a real publisher (RTMP needs 2 s of media to
	// learn the tracks).
	st := e.newStream()
	if out, err := ffmpeg(t, time.Minute, append(testPattern(3), "-f", "flv", e.rtmpURL(st.PublishKey))...); err != nil {
		t.Fatalf("rtmp publish after garbage: %v\n%s", err, out)
	}
	st2 := e.newStream()
	u2 := fmt.Sprintf("srt://%s?streamid=publish:%s&pkt_size=1316", e.srtAddr(), st2.PublishKey)
	if out, err := ffmpeg(t, time.Minute, append(testPattern(1), "-f", "mpegts", u2)...); err != nil {
		t.Fatalf("srt publish after garbage: %v\n%s", err, out)
	}
	for _, id := range []string{st.ID, st2.ID} {
		waitFor(t, 10*time.Second, "stream "+id+" on the bus", func() bool {
			return len(rawBytes(e.rec.stream(protocol.StreamTopic(id)))) > 0
		})
	}
	if e.connections("rtmp", "failed") < 3 {
		t.Errorf("failed rtmp connections = %v, want the garbage ones counted", e.connections("rtmp", "failed"))
	}
}

func TestEndedStreamDisconnectsItsPublisher(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	st := e.newStream()
	done := make(chan error, 1)
	go func() {
		_, err := ffmpeg(t, time.Minute, append(testPattern(20), "-f", "flv", e.rtmpURL(st.PublishKey))...)
		done <- err
	}()
	waitFor(t, 15*time.Second, "media on the bus", func() bool {
		return len(rawBytes(e.rec.stream(protocol.StreamTopic(st.ID)))) > 0
	})
	if _, err := e.meta.TransitionStatus(context.Background(), st.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher of an ended stream is still connected")
	}
	waitFor(t, 5*time.Second, "stream_eof", func() bool {
		recs := e.rec.stream(protocol.StreamTopic(st.ID))
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return ok && hb.Status == protocol.HeartbeatDone
	})
	checkStream(t, e.rec.stream(protocol.StreamTopic(st.ID)), true)
}

func TestParsePublishKeys(t *testing.T) {
	rtmp := []struct {
		url, key string
		ok       bool
	}{
		{"rtmp://h:1935/live/abc", "abc", true},
		{"rtmp://h/live/abc?token=1", "abc", true},
		{"rtmp://h/live/abc/", "abc", true},
		{"rtmp://h/live/", "", false},
		{"rtmp://h/live", "", false},
		{"rtmp://h/other/abc", "", false},
		{"rtmp://h/live/a/b", "", false},
	}
	for _, tc := range rtmp {
		u, _ := url.Parse(tc.url)
		key, err := RTMPPublishKey(u)
		if (err == nil) != tc.ok || key != tc.key {
			t.Errorf("RTMPPublishKey(%s) = %q, %v; want %q, ok %v", tc.url, key, err, tc.key, tc.ok)
		}
	}
	srtIDs := []struct {
		id, mode, key string
		ok            bool
	}{
		{"publish:abc", "publish", "abc", true},
		{"read:abc", "read", "abc", true},
		{"play:abc", "read", "abc", true},
		{"#!::r=abc,m=publish", "publish", "abc", true},
		{"#!::m=publish,r=abc,u=me", "publish", "abc", true},
		{"#!::r=abc", "read", "abc", true},
		{"#!::r=abc,m=sideways", "", "", false},
		{"#!::r", "", "", false},
		{"publish:", "", "", false},
		{"publish:a b", "", "", false},
		{"abc", "", "", false},
		{"", "", "", false},
		{"steal:abc", "", "", false},
	}
	for _, tc := range srtIDs {
		mode, key, err := ParseSRTStreamID(tc.id)
		if (err == nil) != tc.ok || mode != tc.mode || key != tc.key {
			t.Errorf("ParseSRTStreamID(%q) = %q, %q, %v; want %q, %q, ok %v", tc.id, mode, key, err, tc.mode, tc.key, tc.ok)
		}
	}
}

// TestLongPublishOutlivesTheHandshakeDeadline publishes several megabytes
// for longer than the read timeout plus the time allowed for learning the
// tracks: neither deadline, set before media flows, may cut it off.
func TestLongPublishOutlivesTheHandshakeDeadline(t *testing.T) {
	t.Parallel()
	e := newPushEnvWith(t, func(c *Config) { c.ReadTimeout = time.Second })
	st := e.newStream()
	// 8 s of noise, losslessly coded (about 1 MB/s): well past the 1 s
	// timeout plus the 5 s allowed for learning the tracks.
	args := []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=8",
		"-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25",
		"-f", "flv", e.rtmpURL(st.PublishKey)}
	if out, err := ffmpeg(t, time.Minute, args...); err != nil {
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
	ts := checkStream(t, e.rec.stream(protocol.StreamTopic(st.ID)), false)
	if _, d := probeStreams(t, ts); d < 7.5 {
		t.Fatalf("the publish was cut short: %.2f s of 8 s (%d bytes) reached the bus", d, len(ts))
	}
}

// TestHoldForLowLatencyStreams: an RTMP publisher's frame hold applies to
// standard streams; a stream packaged as Low-Latency HLS holds at most the
// short hold, and "no hold" (negative) stays so.
func TestHoldForLowLatencyStreams(t *testing.T) {
	std := metastore.Stream{ID: "s"}
	ll := metastore.Stream{ID: "l", Details: json.RawMessage(`{"ll_hls":true,"next_part":7}`)}
	for _, c := range []struct {
		st          metastore.Stream
		hold, short time.Duration
		want        time.Duration
	}{
		{std, DefaultFrameHold, DefaultHold, DefaultFrameHold},
		{ll, DefaultFrameHold, DefaultHold, DefaultHold},
		{ll, -1, DefaultHold, -1},
		{ll, 5 * time.Millisecond, DefaultHold, 5 * time.Millisecond},
		{metastore.Stream{Details: json.RawMessage(`not json`)}, DefaultFrameHold, DefaultHold, DefaultFrameHold},
	} {
		if got := holdFor(c.st, c.hold, c.short); got != c.want {
			t.Errorf("holdFor(%s, %v, %v) = %v, want %v", c.st.Details, c.hold, c.short, got, c.want)
		}
	}
}
