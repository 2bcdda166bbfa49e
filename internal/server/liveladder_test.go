package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/internal/testenv/chromium"
)

// TestServeWithALiveLadderTranscodesAnRTMPPublish runs weir serve with a
// default live ladder (--live-ladder) and publishes 720p over RTMP with
// ffmpeg: while the stream is live its master lists the source and both
// rungs with measured bandwidths, ffprobe reads each rung's picture size
// through the master, and once the stream ended the master lists the
// renditions' VOD playlists.
func TestServeWithALiveLadderTranscodesAnRTMPPublish(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	cfg := testConfig(t.TempDir())
	cfg.LiveLadder = "480p=1200k,360p=600k"
	cfg.VODPreset = "ultrafast" // the live transcoder's preset too: the machine is small
	cfg.LiveSegmentDuration = time.Second
	r := start(t, cfg)
	defer r.stop(t)
	base := r.HTTPURL()

	var started struct {
		ID         string   `json:"stream_id"`
		PublishKey string   `json:"publish_key"`
		Master     string   `json:"master"`
		Ladder     []string `json:"ladder"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/start", "application/json", strings.NewReader(`{"title":"ladder"}`), &started); code != http.StatusCreated {
		t.Fatalf("POST /streams/start: %d %s", code, raw)
	}
	if started.Master != base+"/hls/"+started.ID+"/master.m3u8" || strings.Join(started.Ladder, ",") != cfg.LiveLadder {
		t.Fatalf("started: master %q, ladder %q", started.Master, started.Ladder)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", "rtmp://"+r.rtmp.Addr().String()+"/live/"+started.PublishKey)
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer pub.Wait()
	defer cancel()

	master := func() (string, *hls.MasterInfo) {
		res, err := http.Get(started.Master)
		if err != nil {
			return "", nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		m, err := hls.ParseMasterPlaylist(b)
		if res.StatusCode != http.StatusOK || err != nil {
			return string(b), nil
		}
		return string(b), m
	}
	var text string
	waitUntil(t, 90*time.Second, "the master to list the source and both rungs", func() bool {
		var m *hls.MasterInfo
		text, m = master()
		return m != nil && len(m.Variants) == 3
	})
	t.Logf("master while live:\n%s", text)
	for _, want := range []string{"\nlive.m3u8", "\n480p/live.m3u8", "\n360p/live.m3u8", "RESOLUTION=1280x720", "RESOLUTION=854x480", "RESOLUTION=640x360"} {
		if !strings.Contains(text, want) {
			t.Errorf("master lacks %q", strings.TrimSpace(want))
		}
	}
	if n := strings.Count(text, "AVERAGE-BANDWIDTH="); n != 3 {
		t.Errorf("%d variants have AVERAGE-BANDWIDTH", n)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", started.Master).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe of the master: %v\n%s", err, out)
	}
	for _, want := range []string{"h264,1280,720", "h264,854,480", "h264,640,360", "aac"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ffprobe of the master finds no %s:\n%s", want, out)
		}
	}

	checkHLSJSPlaysARendition(t, base, started.Master, 360)

	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/"+started.ID+"/end", "", nil, nil); code != http.StatusAccepted {
		t.Fatalf("end: %d %s", code, raw)
	}
	waitUntil(t, 90*time.Second, "the master to list the renditions' VOD playlists", func() bool {
		text, _ = master()
		return strings.Contains(text, "\n480p/vod.m3u8") && strings.Contains(text, "\n360p/vod.m3u8")
	})
	for _, name := range []string{"480p", "360p"} {
		res, err := http.Get(base + "/hls/" + started.ID + "/" + name + "/vod.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		pl, err := hls.ParseMediaPlaylist(b)
		if err != nil || !pl.Ended || len(pl.Segments) == 0 {
			t.Fatalf("%s/vod.m3u8: %v\n%s", name, err, b)
		}
	}
}

// ladderPlayer starts hls.js on a master in a bare video element of the
// console's page and switches it to the level of the given picture height.
const ladderPlayer = `((master, height) => {
	const v = document.createElement('video');
	v.id = 'ladder';
	v.muted = true;
	document.body.prepend(v);
	const hls = new Hls({liveSyncDurationCount: 2});
	window.ladderHls = hls;
	window.ladderErrors = [];
	hls.on(Hls.Events.ERROR, (e, d) => window.ladderErrors.push(d.details + (d.fatal ? ':fatal' : '')));
	hls.on(Hls.Events.MANIFEST_PARSED, () => {
		hls.currentLevel = hls.levels.findIndex((l) => l.height === height);
		v.play().catch(() => {});
	});
	hls.loadSource(master);
	hls.attachMedia(v);
})(%q, %d)`

const ladderProbe = `(() => {
	const v = document.getElementById('ladder'), hls = window.ladderHls;
	return {levels: hls ? hls.levels.map((l) => l.height) : [], level: hls ? hls.currentLevel : -1,
		height: v ? v.videoHeight : 0, time: v ? v.currentTime : 0, errors: window.ladderErrors || []};
})()`

// checkHLSJSPlaysARendition plays the master with hls.js in headless
// Chromium, switched to the rendition of height: hls.js must see the
// source and both rungs and play that rendition's pictures.
func checkHLSJSPlaysARendition(t *testing.T, base, master string, height int) {
	t.Helper()
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	ctx := ctxFor(t, 2*time.Minute)
	tab := chromium.Start(t, ctx).NewTab(ctx)
	tab.Navigate(ctx, base+"/")
	var ready bool
	tab.WaitFor(ctx, "hls.js on the console's page", 30*time.Second, `typeof Hls === 'function'`, &ready, func() bool { return ready })
	if err := tab.Eval(ctx, fmt.Sprintf(ladderPlayer, master, height), nil); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Levels []int    `json:"levels"`
		Level  int      `json:"level"`
		Height int      `json:"height"`
		Time   float64  `json:"time"`
		Errors []string `json:"errors"`
	}
	tab.WaitFor(ctx, fmt.Sprintf("hls.js playing the %dp rendition", height), 90*time.Second, ladderProbe, &st, func() bool {
		return len(st.Levels) == 3 && st.Height == height && st.Time > 1
	})
	for _, e := range st.Errors {
		if strings.HasSuffix(e, ":fatal") {
			t.Errorf("hls.js: fatal error %s", e)
		}
	}
	t.Logf("hls.js: levels %v, playing level %d at %dp, %.1f s in, errors %v", st.Levels, st.Level, st.Height, st.Time, st.Errors)
}
