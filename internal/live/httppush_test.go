package live

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/weir-media/weir/internal/metastore"
)

// checkVOD ends a stream once its publisher is done and checks what its
// VOD playlist plays with ffprobe: H.264 video, AAC audio, and a duration
// within 0.6 s of want.
func (e *liveEnv) checkVOD(t *testing.T, id string, want float64) {
	t.Helper()
	e.end(id)
	e.waitStatus(id, metastore.StatusVOD, 20*time.Second)
	url := e.playlistURL(id, "vod.m3u8")
	out := probe(t, "-show_entries", "stream=codec_name,codec_type:format=duration", "-of", "csv=p=0", url)
	if !strings.Contains(out, "h264,video") || !strings.Contains(out, "aac,audio") {
		t.Fatalf("ffprobe of vod.m3u8: want h264 video and aac audio, got\n%s", out)
	}
	fields := strings.Fields(out)
	d, err := strconv.ParseFloat(strings.TrimSuffix(fields[len(fields)-1], ","), 64)
	if err != nil || d < want-0.6 || d > want+0.6 {
		t.Fatalf("vod.m3u8 lasts %v (%v), want about %.1f s\n%s", d, err, want, out)
	}
}

// ffmpeg -method PUT and -method POST publish a live stream over HTTP that
// plays as HLS while it runs and as VOD after.
func TestHTTPPutAndPostPublishesPlayAsHLS(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 5})
	for _, method := range []string{"PUT", "POST"} {
		t.Run(method, func(t *testing.T) {
			st := e.newStream("")
			args := publishArgs(6, "mpegts", e.publishURL(st.PublishKey))
			ff := startFFmpeg(t, append(args[:len(args)-1], "-method", method, args[len(args)-1])...)
			e.waitStatus(st.ID, metastore.StatusLive, 20*time.Second)
			out := probe(t, "-show_entries", "stream=codec_name,codec_type", "-of", "csv=p=0", e.playlistURL(st.ID, "live.m3u8"))
			if !strings.Contains(out, "h264,video") || !strings.Contains(out, "aac,audio") {
				t.Fatalf("ffprobe of the live playlist: want h264 video and aac audio, got\n%s", out)
			}
			ff.wait(t, 30*time.Second)
			e.checkVOD(t, st.ID, 6)
		})
	}
}

// wsPublish sends data over a WebSocket to url in messages of size bytes,
// spread over about d, and closes it normally.
func wsPublish(t *testing.T, url string, data []byte, size int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	pause := d / time.Duration(len(data)/size+1)
	for rest := data; len(rest) > 0; {
		n := min(size, len(rest))
		if err := conn.Write(ctx, websocket.MessageBinary, rest[:n]); err != nil {
			t.Fatalf("websocket write: %v", err)
		}
		rest = rest[n:]
		time.Sleep(pause)
	}
	if err := conn.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("websocket close: %v", err)
	}
}

// A Go WebSocket client publishing MPEG-TS, and one publishing WebM
// (H.264 and Opus, as a browser's MediaRecorder makes it), both play as
// HLS.
func TestWebSocketPublishesPlayAsHLS(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 5})
	t.Run("mpegts", func(t *testing.T) {
		st := e.newStream("")
		ts := makeTS(t, 4, 25, "libx264", 0)
		wsPublish(t, e.publishURL(st.PublishKey), ts, 1316*7, 2*time.Second)
		e.waitStatus(st.ID, metastore.StatusLive, 20*time.Second)
		e.checkVOD(t, st.ID, 4)
	})
	t.Run("webm", func(t *testing.T) {
		st := e.newStream("")
		mkv := filepath.Join(t.TempDir(), "clip.mkv")
		makeMediaFile(t, mkv, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=4",
			"-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-c:v", "libx264", "-preset", "ultrafast",
			"-g", "25", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-f", "matroska")
		data, err := os.ReadFile(mkv)
		if err != nil {
			t.Fatal(err)
		}
		wsPublish(t, e.publishURL(st.PublishKey), data, 16<<10, 2*time.Second)
		e.waitStatus(st.ID, metastore.StatusLive, 20*time.Second)
		e.checkVOD(t, st.ID, 4)
	})
}

// makeMediaFile runs ffmpeg with args, writing to out.
func makeMediaFile(t *testing.T, out string, args ...string) {
	t.Helper()
	needTool(t, "ffmpeg")
	r := startFFmpeg(t, append(args, out)...)
	r.wait(t, time.Minute)
}
