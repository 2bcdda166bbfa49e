//go:build unix

package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/testenv"
)

// speech is a generated clip with known speech: sentence i starts at
// starts[i] ms and contains word[i], a word pocketsphinx reliably hears.
type speech struct {
	path   string
	starts []int64
	stops  []int64
	words  []string
}

// The clip's sentences and the word of each the checks look for.
var captionSentences = []struct{ text, word string }{
	{"the quick brown fox jumps over the lazy dog", "lazy"},
	{"please call me at home tomorrow morning", "morning"},
	{"the weather is cold and wet today", "weather"},
}

// makeSpeechClip speaks the sentences with espeak-ng (as the stt engine's
// tests do) at 1.8 s, 6.3 s and 10.7 s over a 14 s clip whose picture cuts
// from a test pattern to colour bars at 7 s: the first sentence spans the
// 4 s segment boundary, the scene cut is a result for the metadata.
func makeSpeechClip(t *testing.T) speech {
	t.Helper()
	testenv.RequireTool(t, "espeak-ng", "ffmpeg", "ffprobe")
	dir := t.TempDir()
	s := speech{path: filepath.Join(dir, "speech.mp4"), starts: []int64{1800, 6300, 10700}}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=7",
		"-f", "lavfi", "-i", "smptebars=size=640x360:rate=25:duration=7"}
	var filter, mix strings.Builder
	filter.WriteString("[0:v][1:v]concat=n=2:v=1:a=0,format=yuv420p[v];")
	for i, c := range captionSentences {
		wav := filepath.Join(dir, fmt.Sprintf("s%d.wav", i))
		if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, c.text).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v: %s", err, out)
		}
		s.stops = append(s.stops, s.starts[i]+wavMs(t, wav))
		s.words = append(s.words, c.word)
		args = append(args, "-i", wav)
		fmt.Fprintf(&filter, "[%d:a]aresample=48000,adelay=%d:all=1[a%d];", i+2, s.starts[i], i)
		fmt.Fprintf(&mix, "[a%d]", i)
	}
	n := len(captionSentences)
	args = append(args, "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.003:sample_rate=48000:duration=14")
	fmt.Fprintf(&filter, "%s[%d:a]amix=inputs=%d:normalize=0:duration=longest[a]", mix.String(), n+2, n+1)
	args = append(args, "-filter_complex", filter.String(), "-map", "[v]", "-map", "[a]", "-t", "14",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", s.path)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return s
}

func wavMs(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(sec * 1000)
}

// post sends an authorised request and decodes a 2xx JSON answer into out.
func post(t *testing.T, url, contentType string, body io.Reader, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, body)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 || json.Unmarshal(b, out) != nil {
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
}

func uploadFile(t *testing.T, base, path string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", filepath.Base(path))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	var out struct {
		StreamID string `json:"stream_id"`
	}
	post(t, base+"/vod/upload", mw.FormDataContentType(), &body, &out)
	return out.StreamID
}

// createJob starts a job and returns its id.
func createJob(t *testing.T, base string, source map[string]string, engines ...string) string {
	t.Helper()
	var es []map[string]string
	for _, e := range engines {
		es = append(es, map[string]string{"name": e})
	}
	body, _ := json.Marshal(map[string]any{"source": source, "engines": es})
	var out struct {
		ID string `json:"id"`
	}
	post(t, base+"/jobs", "application/json", bytes.NewReader(body), &out)
	return out.ID
}

func waitJob(t *testing.T, base, id string, log *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var j struct {
			Status string `json:"status"`
		}
		getJSON(t, base, "/jobs/"+id, &j)
		switch {
		case j.Status == "complete":
			return
		case j.Status == "failed" || j.Status == "cancelled" || time.Now().After(deadline):
			t.Fatalf("job %s is %s\nserver log:\n%s", id, j.Status, log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

// playerScript starts hls.js on a bare video element with the stream's
// master playlist, turns its first subtitles track on, and records what
// the page can see: the tracks' cues, the session data, errors, and the
// start of each main fragment by sequence number.
func playerScript(master string, extra string) string {
	return fmt.Sprintf(`(() => {
		const v = document.createElement('video');
		v.id = 'cap';
		v.muted = true;
		v.playsInline = true;
		document.body.prepend(v);
		const st = window.capTest = {errors: [], frags: {}, subtitles: [], sessionData: null};
		const hls = window.capHls = new Hls(Object.assign({subtitleDisplay: true}, %s));
		hls.on(Hls.Events.ERROR, (e, d) => st.errors.push(d.type + ':' + d.details + (d.fatal ? ':fatal' : '')));
		hls.on(Hls.Events.MANIFEST_LOADED, (e, d) => {
			st.sessionData = d.sessionData ? Object.fromEntries(Object.entries(d.sessionData).map(([k, a]) => [k, a.URI])) : null;
			st.subtitles = (d.subtitles || []).map((s) => s.name + '|' + s.lang);
		});
		hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => { if (hls.subtitleTracks.length) hls.subtitleTrack = 0; });
		hls.on(Hls.Events.MANIFEST_PARSED, () => { v.play().catch(() => {}); });
		hls.on(Hls.Events.FRAG_CHANGED, (e, d) => { if (d.frag.type === 'main') st.frags[d.frag.sn] = d.frag.start; });
		hls.loadSource(%q);
		hls.attachMedia(v);
	})()`, extra, master)
}

// trackState is what the page reports about playback and the captions.
type trackState struct {
	Time   float64     `json:"time"`
	Ended  bool        `json:"ended"`
	Errors []string    `json:"errors"`
	Tracks []string    `json:"tracks"`
	Cues   [][3]any    `json:"cues"`
	Frags  map[int]any `json:"frags"`
}

const trackProbe = `(() => {
	const v = document.getElementById('cap'), st = window.capTest || {};
	const tracks = v ? Array.from(v.textTracks) : [];
	const subs = tracks.filter((t) => t.kind === 'subtitles' || t.kind === 'captions');
	return {time: v ? v.currentTime : 0, ended: v ? v.ended : false, errors: st.errors || [], frags: st.frags || {},
		tracks: tracks.map((t) => t.kind + '|' + t.label + '|' + t.language + '|' + t.mode),
		cues: subs.flatMap((t) => t.cues ? Array.from(t.cues).map((c) => [c.startTime, c.endTime, c.text]) : [])};
})()`

// cueStart is the earliest start of a cue holding word (a caption split
// at a segment boundary comes as two cues).
func (s trackState) cueStart(word string) (float64, bool) {
	best, found := 0.0, false
	for _, c := range s.Cues {
		text, _ := c[2].(string)
		start, _ := c[0].(float64)
		if strings.Contains(text, word) && (!found || start < best) {
			best, found = start, true
		}
	}
	return best, found
}

// TestCaptionsPlayInHLSJS uploads a title with generated speech, runs a
// real job with the stt and scenes engines on it, and checks what
// clients read: hls.js in Chromium, started while the job runs, lists the
// English (weir stt) track and shows the spoken words within a second of
// where they were spoken; ffprobe reads the master with its subtitles
// rendition, the subtitles playlist and a segment; the master's session
// data leads to the metadata, whose scene cut lands at 7 s of hls.js's own
// timeline.
func TestCaptionsPlayInHLSJS(t *testing.T) {
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	clip := makeSpeechClip(t)
	base, serverLog := startWeir(t)
	id := uploadFile(t, base, clip.path)
	waitReady(t, base, id, serverLog)
	// The player starts while the job runs: the subtitles playlist is an
	// EVENT playlist that grows with the transcript.
	job := createJob(t, base, map[string]string{"vod": id}, "stt", "scenes")
	master := base + "/hls/" + id + "/master.m3u8"
	b := startBrowser(t, ctx)
	tb := b.newTab(ctx)
	tb.navigate(ctx, base+"/")
	var ready bool
	tb.waitFor(ctx, "hls.js on the console page", 15*time.Second, `typeof Hls === 'function'`, &ready, func() bool { return ready })
	if err := tb.eval(ctx, playerScript(master, "{}"), nil); err != nil {
		t.Fatal(err)
	}
	var st trackState
	tb.waitFor(ctx, "hls.js playing the title to its end with every sentence captioned", 90*time.Second, trackProbe, &st, func() bool {
		for _, e := range st.Errors {
			if strings.HasSuffix(e, ":fatal") {
				return true
			}
		}
		_, last := st.cueStart(clip.words[len(clip.words)-1])
		return st.Ended || st.Time > 13 && last
	})
	t.Logf("text tracks %v, %d cues, errors %v", st.Tracks, len(st.Cues), st.Errors)
	if !strings.Contains(strings.Join(st.Tracks, " "), "subtitles|English (weir stt)|en|showing") {
		t.Errorf("the video's text tracks are %v, want English (weir stt) showing", st.Tracks)
	}
	for i, word := range clip.words {
		at, ok := st.cueStart(word)
		want := float64(clip.starts[i]) / 1000
		switch {
		case !ok:
			t.Errorf("no cue holds %q; cues %v", word, st.Cues)
		case at < want-1 || at > want+1:
			t.Errorf("the caption with %q starts at %.3f s in the player, the sentence at %.3f s", word, at, want)
		default:
			t.Logf("the caption with %q starts at %.3f s in the player, the sentence at %.3f s", word, at, want)
		}
	}

	waitJob(t, base, job, serverLog)
	text := getText(t, master)
	if !strings.Contains(text, `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English (weir stt)",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,URI="subs/`) {
		t.Fatalf("master has no subtitles rendition:\n%s", text)
	}
	checkFFprobeCaptions(t, base, id, text, clip)

	// The metadata: hls.js hands over the session data, which leads to
	// the metadata segments; the scene cut at 7 s is in the segment
	// hls.js played from 4 s, 3 s in.
	var scene struct {
		URI   string  `json:"uri"`
		At    float64 `json:"at"`
		Error string  `json:"error"`
	}
	tb.waitFor(ctx, "the scene cut read through the session data", 30*time.Second, `(async () => {
		try {
			const st = window.capTest, uri = st.sessionData && st.sessionData['io.weir.metadata'];
			if (!uri) return {error: 'no session data io.weir.metadata'};
			const idx = new URL(uri, window.capHls.url);
			const index = await (await fetch(idx)).json();
			const playlist = new URL(index.playlist, idx);
			const lines = (await (await fetch(playlist)).text()).split('\n');
			const seq = parseInt(lines.find((l) => l.startsWith('#EXT-X-MEDIA-SEQUENCE:')).split(':')[1], 10);
			const uris = lines.filter((l) => l && !l.startsWith('#'));
			for (let i = 0; i < uris.length; i++) {
				const doc = await (await fetch(new URL(uris[i], playlist))).json();
				const cut = doc.results.find((r) => r.engine === 'scenes' && r.series && (r.series.tags || []).some((t) => t.key === 'scene' && t.value !== '0'));
				if (cut && st.frags[seq + i] !== undefined) return {uri: uris[i], at: st.frags[seq + i] + cut.start};
			}
			return {error: 'no scene cut in ' + uris.length + ' segments'};
		} catch (e) { return {error: String(e)}; }
	})()`, &scene, func() bool { return scene.URI != "" || scene.Error != "" })
	if scene.Error != "" || scene.At < 6.5 || scene.At > 7.5 {
		t.Errorf("scene cut from the metadata: %+v, want it at 7 s of the player's timeline\npage log:\n%s", scene, b.pageLog())
	}
}

// checkFFprobeCaptions has ffprobe read what a non-browser client reads:
// the master (ffmpeg 5.1 names the subtitles rendition it does not play,
// and reads the video), the subtitles playlist as WebVTT, and one
// segment, whose cue for the first sentence starts where it was spoken.
func checkFFprobeCaptions(t *testing.T, base, id, master string, clip speech) {
	t.Helper()
	testenv.RequireTool(t, "ffprobe")
	uri := regexp.MustCompile(`URI="(subs/[^"]+)"`).FindStringSubmatch(master)[1]
	out, err := exec.Command("ffprobe", "-hide_banner", "-show_entries", "stream=codec_name", "-of", "csv=p=0", base+"/hls/"+id+"/master.m3u8").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264") || !strings.Contains(string(out), uri) {
		t.Fatalf("ffprobe of the master: %v\n%s", err, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name:packet=pts_time", "-of", "csv=p=0", base+"/hls/"+id+"/"+uri).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "webvtt") || strings.Count(string(out), "\n") < 3 {
		t.Fatalf("ffprobe of the subtitles playlist: %v\n%s", err, out)
	}
	seg := base + "/hls/" + id + "/" + strings.TrimSuffix(uri, "index.m3u8") + "0.vtt"
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", seg).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe of %s: %v\n%s", seg, err, out)
	}
	first, err := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(out), "\n")[0]), 64)
	if want := float64(clip.starts[0]) / 1000; err != nil || first < want-1 || first > want+1 {
		t.Errorf("ffprobe reads the first cue of segment 0 at %q, want about %.1f s", out, want)
	}
}

// TestLiveCaptionsAppearWhileLive publishes the speech clip in a loop over
// RTMP, starts an stt job on the stream after it went live, and plays the
// stream's generated master in hls.js: captions with the spoken words
// appear while the stream is still live. Each live subtitles segment,
// placed through its X-TIMESTAMP-MAP and the media segment's own PTS, has
// its words within a second of where the loop speaks them.
func TestLiveCaptionsAppearWhileLive(t *testing.T) {
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	clip := makeSpeechClip(t)
	base, serverLog := startWeir(t)
	id, rtmp := startStream(t, base, "Captions live")
	pushCtx, stopPush := context.WithCancel(ctx)
	push := exec.CommandContext(pushCtx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clip.path,
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "-f", "flv", rtmp)
	var pushOut lockedBuffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	pushDone := make(chan struct{})
	go func() { push.Wait(); close(pushDone) }()
	t.Cleanup(func() { stopPush(); <-pushDone })

	// The job starts once the stream is live, well after its start.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var m struct {
			Status string `json:"status"`
		}
		getJSON(t, base, "/streams/"+id+"/metadata", &m)
		if m.Status == "live" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not live after 60 s\npublisher:\n%s\nserver log:\n%s", pushOut.String(), serverLog)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	createJob(t, base, map[string]string{"live": id}, "stt")

	b := startBrowser(t, ctx)
	tb := b.newTab(ctx)
	tb.navigate(ctx, base+"/")
	var ready bool
	tb.waitFor(ctx, "hls.js on the console page", 15*time.Second, `typeof Hls === 'function'`, &ready, func() bool { return ready })
	// Play far enough behind the live edge for the transcript to be in:
	// the subtitles playlist lists a live segment once its results are,
	// or after 10 s.
	if err := tb.eval(ctx, playerScript(base+"/hls/"+id+"/master.m3u8", "{liveSyncDuration: 14, liveMaxLatencyDuration: 19}"), nil); err != nil {
		t.Fatal(err)
	}
	var st trackState
	tb.waitFor(ctx, "a live caption with a spoken word", 120*time.Second, trackProbe, &st, func() bool {
		select {
		case <-pushDone:
			t.Fatalf("the publisher exited:\n%s", pushOut.String())
		default:
		}
		for _, w := range clip.words {
			if _, ok := st.cueStart(w); ok {
				return true
			}
		}
		return false
	})
	var m struct {
		Status string `json:"status"`
	}
	getJSON(t, base, "/streams/"+id+"/metadata", &m)
	if m.Status != "live" {
		t.Fatalf("the stream is %s when the caption showed, want live", m.Status)
	}
	t.Logf("live captions: tracks %v, cues %v", st.Tracks, st.Cues)
	checkLiveCueTimes(t, base, id, clip)
}

// checkLiveCueTimes reads the live subtitles playlist and its segments
// over HTTP and places every cue on the publisher's loop: the media
// segment's PTS (read from the segment itself) minus the stream's first
// timestamp is the job's time, which runs with the looped clip.
func checkLiveCueTimes(t *testing.T, base, id string, clip speech) {
	t.Helper()
	first := tsStarts(t, base+"/hls/"+id+"/seg_0.ts")
	loopMs := int64(14000)
	pl, err := hls.ParseMediaPlaylist([]byte(getText(t, base+"/hls/"+id+"/subs/live.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i, s := range pl.Segments {
		seq := int(pl.MediaSequence) + i
		vtt := getText(t, base+"/hls/"+id+"/subs/"+s.URI)
		m := regexp.MustCompile(`MPEGTS:(\d+),`).FindStringSubmatch(vtt)
		if m == nil {
			t.Fatalf("segment %s has no X-TIMESTAMP-MAP:\n%s", s.URI, vtt)
		}
		mpegts, _ := strconv.ParseInt(m[1], 10, 64)
		segPTS := tsStarts(t, fmt.Sprintf("%s/hls/%s/seg_%d.ts", base, id, seq)).First()
		if got := time.Duration(mpegts) * time.Second / 90000; (got - segPTS).Abs() > time.Millisecond {
			t.Errorf("segment %d: MPEGTS is %v, its first frame %v", seq, got, segPTS)
		}
		for _, c := range regexp.MustCompile(`(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> .*\n(.*)`).FindAllStringSubmatch(vtt, -1) {
			if c[1] != "00" || c[2] != "00" {
				continue
			}
			sec, _ := strconv.Atoi(c[3])
			ms, _ := strconv.Atoi(c[4])
			local := int64(sec*1000 + ms)
			if local == 0 {
				continue // the rest of a caption from the segment before
			}
			jobMs := (segPTS - first.Earliest()).Milliseconds() + local
			for w, word := range clip.words {
				if !strings.Contains(c[5], word) {
					continue
				}
				off := (jobMs - clip.starts[w]) % loopMs
				off = min(off, loopMs-off)
				if off > 1000 {
					t.Errorf("live caption %q at %d ms of the stream, %d ms from where the loop speaks it", c[5], jobMs, off)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Errorf("no live caption with a spoken word in the subtitles playlist:\n%s", getText(t, base+"/hls/"+id+"/subs/live.m3u8"))
	}
	t.Logf("%d live captions checked against the loop", checked)
}

func tsStarts(t *testing.T, url string) hls.Starts {
	t.Helper()
	s, err := hls.TSStarts([]byte(getText(t, url)))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return s
}
