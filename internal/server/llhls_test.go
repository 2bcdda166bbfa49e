package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/internal/testenv/chromium"
)

// TestServeLowLatencyHLSFromAnRTMPPublish runs weir serve, starts a stream
// with "ll_hls": true and publishes 30 fps H.264 (a key frame a second) and
// AAC over RTMP with ffmpeg. The live playlist parses as LL-HLS (parts
// within the part target, independent on key frames, a preload hint), a
// blocking reload for the next part is answered once it exists, ffprobe
// decodes init + parts, and hls.js in low-latency mode plays the stream in
// headless Chromium with its parts and blocking reload.
func TestServeLowLatencyHLSFromAnRTMPPublish(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	cfg := testConfig(t.TempDir())
	cfg.LiveSegmentDuration = time.Second
	r := start(t, cfg)
	defer r.stop(t)
	base := r.HTTPURL()

	var started struct {
		ID         string `json:"stream_id"`
		PublishKey string `json:"publish_key"`
		Playback   string `json:"playback"`
		LLHLS      bool   `json:"ll_hls"`
	}
	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/start", "application/json", strings.NewReader(`{"title":"ll","ll_hls":true}`), &started); code != http.StatusCreated || !started.LLHLS {
		t.Fatalf("POST /streams/start: %d %s", code, raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "90", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", "rtmp://"+r.rtmp.Addr().String()+"/live/"+started.PublishKey)
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer pub.Wait()
	defer cancel()

	get := func(url string) (int, []byte) {
		res, err := http.Get(url)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	var p *hls.MediaPlaylist
	waitUntil(t, 60*time.Second, "an LL playlist with 3 segments", func() bool {
		code, b := get(started.Playback)
		if code != http.StatusOK {
			return false
		}
		pl, err := hls.ParseMediaPlaylist(b)
		if err != nil {
			t.Fatalf("live playlist: %v\n%s", err, b)
		}
		p = pl
		return len(pl.Segments) >= 3
	})
	if p.PartTarget != 333*time.Millisecond || p.ServerControl == nil || !p.ServerControl.CanBlockReload || p.PreloadHint == nil || p.Map == nil {
		t.Fatalf("not an LL playlist: %+v", p)
	}
	last := p.Segments[len(p.Segments)-1]
	if len(last.Parts) < 2 || !last.Parts[0].Independent {
		t.Fatalf("last segment's parts %+v", last.Parts)
	}
	for _, pt := range last.Parts {
		if pt.Duration > p.PartTarget {
			t.Errorf("part %s lasts %v", pt.URI, pt.Duration)
		}
	}

	// Blocking reload: the part after the last listed one.
	msn := int64(p.MediaSequence) + int64(len(p.Segments))
	next := int64(len(p.TrailingParts))
	code, b := get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", started.Playback, msn, next))
	if code != http.StatusOK {
		t.Fatalf("blocking reload: %d %s", code, b)
	}
	q, err := hls.ParseMediaPlaylist(b)
	if err != nil {
		t.Fatal(err)
	}
	got := int64(q.MediaSequence) + int64(len(q.Segments))
	if got < msn || got == msn && int64(len(q.TrailingParts)) <= next {
		t.Fatalf("blocking reload for %d.%d answered at %d with %d trailing parts", msn, next, got, len(q.TrailingParts))
	}
	if code, b := get(fmt.Sprintf("%s?_HLS_msn=%d", started.Playback, msn+5)); code != http.StatusBadRequest {
		t.Fatalf("_HLS_msn five ahead: %d %s", code, b)
	}

	// ffprobe decodes the init segment followed by the parts listed.
	dir := strings.TrimSuffix(started.Playback, "live.m3u8")
	_, all := get(dir + q.Map.URI)
	n := 0
	for _, sg := range q.Segments {
		for _, pt := range sg.Parts {
			_, data := get(dir + pt.URI)
			all = append(all, data...)
			n++
		}
	}
	f := filepath.Join(t.TempDir(), "parts.mp4")
	if err := os.WriteFile(f, all, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,width,nb_read_frames", "-of", "csv=p=0", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264,320,") || !strings.Contains(string(out), "aac") {
		t.Fatalf("ffprobe of init + %d parts: %v\n%s", n, err, out)
	}
	t.Logf("ffprobe of init + %d parts: %s", n, strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; "))

	if _, m := get(base + "/metrics"); len(m) > 0 {
		var sum, count float64
		for line := range strings.SplitSeq(string(m), "\n") {
			if v, ok := strings.CutPrefix(line, "weir_live_part_publish_latency_seconds_sum "); ok {
				fmt.Sscan(v, &sum)
			}
			if v, ok := strings.CutPrefix(line, "weir_live_part_publish_latency_seconds_count "); ok {
				fmt.Sscan(v, &count)
			}
		}
		if count == 0 {
			t.Error("no part publish latency in /metrics")
		} else {
			t.Logf("part publish latency: mean %.1f ms over %.0f parts (the first ones wait for the RTMP track probe to hand over; shared, loaded machine)", sum/count*1000, count)
		}
	}
	checkGohlslibPlays(t, started.Playback)
	checkHLSJSPlaysLowLatency(t, base, started.Playback)

	if code, raw := httpJSON(t, http.MethodPost, base+"/streams/"+started.ID+"/end", "", nil, nil); code != http.StatusAccepted {
		t.Fatalf("end: %d %s", code, raw)
	}
	waitUntil(t, 60*time.Second, "the VOD playlist", func() bool {
		code, b := get(dir + "vod.m3u8")
		pl, err := hls.ParseMediaPlaylist(b)
		return code == http.StatusOK && err == nil && pl.Ended && pl.Map != nil
	})
}

// llPlayer plays a live playlist with hls.js in low-latency mode in a bare
// video element of the console's page.
const llPlayer = `((src) => {
	const v = document.createElement('video');
	v.id = 'll';
	v.muted = true;
	document.body.prepend(v);
	const hls = new Hls({lowLatencyMode: true});
	window.llHls = hls;
	window.llErrors = [];
	window.llFrags = 0;
	hls.on(Hls.Events.ERROR, (e, d) => window.llErrors.push(d.details + (d.fatal ? ':fatal' : '')));
	hls.on(Hls.Events.FRAG_LOADED, (e, d) => { if (d.part) window.llFrags++; });
	hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(() => {}));
	hls.loadSource(src);
	hls.attachMedia(v);
})(%q)`

const llProbe = `(() => {
	const v = document.getElementById('ll'), hls = window.llHls;
	const d = hls && hls.levels[0] && hls.levels[0].details;
	return {time: v ? v.currentTime : 0, parts: d && d.partList ? d.partList.length : 0,
		blocking: !!(d && d.canBlockReload), partsLoaded: window.llFrags || 0,
		latency: hls ? hls.latency : 0, errors: window.llErrors || []};
})()`

// checkHLSJSPlaysLowLatency plays the stream in headless Chromium with
// hls.js in low-latency mode: it must see the parts and blocking reload,
// load parts, and play.
func checkHLSJSPlaysLowLatency(t *testing.T, base, playlist string) {
	t.Helper()
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	ctx := ctxFor(t, 2*time.Minute)
	tab := chromium.Start(t, ctx).NewTab(ctx)
	tab.Navigate(ctx, base+"/")
	var ready bool
	tab.WaitFor(ctx, "hls.js on the console's page", 30*time.Second, `typeof Hls === 'function'`, &ready, func() bool { return ready })
	if err := tab.Eval(ctx, fmt.Sprintf(llPlayer, playlist), nil); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Time        float64  `json:"time"`
		Parts       int      `json:"parts"`
		Blocking    bool     `json:"blocking"`
		PartsLoaded int      `json:"partsLoaded"`
		Latency     float64  `json:"latency"`
		Errors      []string `json:"errors"`
	}
	tab.WaitFor(ctx, "hls.js playing parts in low-latency mode", 90*time.Second, llProbe, &st, func() bool {
		return st.Parts > 0 && st.Blocking && st.PartsLoaded >= 6 && st.Time > 3
	})
	for _, e := range st.Errors {
		if strings.HasSuffix(e, ":fatal") {
			t.Errorf("hls.js: fatal error %s", e)
		}
	}
	t.Logf("hls.js low-latency: %.1f s played, %d parts listed, %d parts loaded, latency estimate %.2f s (noisy shared machine), errors %v",
		st.Time, st.Parts, st.PartsLoaded, st.Latency, st.Errors)
}

// checkGohlslibPlays plays the LL playlist with gohlslib's client, which
// reads the parts and uses blocking playlist reload, until it has 60 video
// access units, some audio and three parts.
func checkGohlslibPlays(t *testing.T, url string) {
	t.Helper()
	var v, a, parts, playlists atomic.Int64
	c := &gohlslib.Client{URI: url,
		OnDownloadPrimaryPlaylist: func(string) {},
		OnDownloadStreamPlaylist:  func(string) { playlists.Add(1) },
		OnDownloadSegment:         func(string) {},
		OnDownloadPart:            func(string) { parts.Add(1) },
	}
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
	waitUntil(t, 60*time.Second, "gohlslib to play the LL stream from its parts", func() bool {
		return v.Load() >= 60 && a.Load() > 0 && parts.Load() >= 3
	})
	t.Logf("gohlslib played %d video access units and %d audio frames; %d parts, %d playlist loads",
		v.Load(), a.Load(), parts.Load(), playlists.Load())
}
