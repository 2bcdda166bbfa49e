//go:build unix

package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/console"
)

// The clip of the timeline test: a sentence spoken by espeak-ng from
// speechAtMs, a cut from light grey to dark blue at cutAtMs (a second
// scene), and a word drawn on screen from drawnFromMs to drawnToMs, in
// clipMs of H.264 and AAC.
const (
	timelineSentence = "please call me at home tomorrow morning"
	timelineWord     = "tomorrow"
	timelineDrawn    = "Lighthouse"
	speechAtMs       = 2000
	drawnFromMs      = 6000
	drawnToMs        = 10000
	cutAtMs          = 4000
	clipMs           = 12000
)

func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s is not installed: `make test` installs it (scripts/deps.sh test)", n)
		}
	}
}

// makeTimelineClip writes the timeline test's clip.
func makeTimelineClip(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wav := filepath.Join(dir, "speech.wav")
	if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, timelineSentence).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	clip := filepath.Join(dir, "clip.mp4")
	sec := func(ms int) string { return fmt.Sprintf("%g", float64(ms)/1000) }
	video := fmt.Sprintf("color=c=0xc0c0c0:s=640x360:r=25:d=%s[a0];color=c=0x203040:s=640x360:r=25:d=%s[b0];[a0][b0]concat=n=2:v=1:a=0,"+
		"drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:text=%s:fontsize=64:fontcolor=white:x=(w-tw)/2:y=(h-th)/2:enable='between(t,%s,%s)'[v]",
		sec(cutAtMs), sec(clipMs-cutAtMs), timelineDrawn, sec(drawnFromMs), sec(drawnToMs-1))
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-i", wav,
		"-f", "lavfi", "-i", fmt.Sprintf("anoisesrc=color=pink:amplitude=0.003:sample_rate=16000:seed=7:duration=%s", sec(clipMs)),
		"-filter_complex", video+fmt.Sprintf(";[0]aresample=16000,adelay=%d:all=1[s];[s][1]amix=inputs=2:normalize=0:duration=longest[a]", speechAtMs),
		"-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-c:a", "aac", "-ar", "16000", "-ac", "1", "-t", sec(clipMs), "-movflags", "+faststart", clip)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return clip
}

// apiDo sends an authorised request and decodes a 2xx JSON answer into out.
func apiDo(t *testing.T, method, url, contentType string, body io.Reader, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
}

// jobView is the part of GET /jobs/{id} the test reads.
type jobView struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Engines []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Total  int    `json:"total"`
		Done   int    `json:"done"`
	} `json:"engines"`
}

// wordStart finds the start (ms) of a word in the stt results of a job.
func wordStart(t *testing.T, base, job, word string) float64 {
	t.Helper()
	var page struct {
		Items []struct {
			Content struct {
				Series []struct {
					Start float64 `json:"startTimeMs"`
					Tags  []struct {
						Key string `json:"key"`
					} `json:"tags"`
					Words []struct {
						Word string `json:"word"`
					} `json:"words"`
				} `json:"series"`
			} `json:"content"`
		} `json:"items"`
	}
	getJSON(t, base, "/jobs/"+job+"/results?engine=stt&limit=1000", &page)
	for _, it := range page.Items {
		for _, s := range it.Content.Series {
			if len(s.Tags) == 0 && len(s.Words) == 1 && s.Words[0].Word == word {
				return s.Start
			}
		}
	}
	t.Fatalf("stt did not hear %q: %+v", word, page.Items)
	return 0
}

// seeks is the page's record of where the player landed after each seek
// (a capture listener on the document: media events do not bubble).
const recordSeeks = `(() => {
	if (!window.weirSeeks) {
		window.weirSeeks = [];
		document.addEventListener('seeked', (ev) => window.weirSeeks.push(ev.target.currentTime), true);
	}
	window.weirSeeks.length = 0;
	return true;
})()`

// TestConsoleShowsAJobAndTheResultsTimelineInChromium runs a real job
// (stt, ocr, scenes, loudness) on a title with a spoken sentence, a drawn
// word and a cut, in a whole weir, and checks in headless Chromium: the
// Jobs view lists the job with each engine's progress, the job's page draws
// its graph and counts, the title's page shows the transcript, the line on
// screen, the scenes' thumbnails and the loudness graph under the player;
// clicking a transcript word, an OCR line and a search hit seeks the
// player there, and a search from the Jobs page opens the title at the hit.
func TestConsoleShowsAJobAndTheResultsTimelineInChromium(t *testing.T) {
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	requireTools(t, "ffmpeg", "espeak-ng", "tesseract", "pocketsphinx_batch")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	clip := makeTimelineClip(t)
	base, serverLog := startWeir(t)
	vod := uploadFile(t, base, clip)
	waitReady(t, base, vod, serverLog)
	var job jobView
	apiDo(t, http.MethodPost, base+"/jobs", "application/json", strings.NewReader(fmt.Sprintf(`{
		"source": {"vod": %q}, "title": "Timeline test",
		"engines": [{"name": "stt"}, {"name": "ocr", "options": {"frame_interval": "500ms"}}, {"name": "scenes"}, {"name": "loudness"}]}`, vod)), &job)

	b := startBrowser(t, ctx)
	shots := screenshotDir(t)
	tb := b.newTab(ctx)

	// The Jobs view lists the job with its engines and follows it to
	// complete.
	tb.navigate(ctx, base+"/#/jobs")
	var row struct {
		Status  string   `json:"status"`
		Engines []string `json:"engines"`
		Source  string   `json:"source"`
	}
	const rowState = `(() => {
		const tr = document.querySelector('#jobs-table tr[data-id=%q]');
		return {status: tr ? tr.dataset.status : '',
			engines: tr ? Array.from(tr.querySelectorAll('.engine-progress')).map((e) => e.textContent) : [],
			source: tr ? tr.querySelector('td.source').textContent : ''};
	})()`
	tb.waitFor(ctx, "the Jobs view listing the job", 20*time.Second, fmt.Sprintf(rowState, job.ID), &row, func() bool { return row.Status != "" })
	deadline := time.Now().Add(5 * time.Minute)
	for job.Status != "complete" {
		getJSON(t, base, "/jobs/"+job.ID, &job)
		if job.Status == "failed" || job.Status == "cancelled" || time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%s)\nserver log:\n%s", job.ID, job.Status, job.Error, serverLog)
		}
		time.Sleep(500 * time.Millisecond)
	}
	tb.waitFor(ctx, "the Jobs view showing the job complete", 30*time.Second, fmt.Sprintf(rowState, job.ID), &row, func() bool { return row.Status == "complete" })
	if row.Source != "vod "+vod || len(row.Engines) != len(job.Engines) {
		t.Errorf("the job's row shows source %q and engines %q; want vod %s and %d engines", row.Source, row.Engines, vod, len(job.Engines))
	}
	for i, e := range job.Engines {
		if want := fmt.Sprintf("%s%d/%d", e.Name, e.Done, e.Total); i < len(row.Engines) && row.Engines[i] != want {
			t.Errorf("engine %d in the list reads %q, want %q", i, row.Engines[i], want)
		}
		if e.Status != "complete" || e.Total == 0 || e.Done != e.Total {
			t.Errorf("engine %s: %+v, want complete with every chunk done", e.Name, e)
		}
	}
	checkScreenshot(t, "jobs", tb.screenshot(ctx, filepath.Join(shots, "console-jobs.png")))

	// The job's page: its graph and its engines' counts.
	tb.navigate(ctx, base+"/#/jobs/"+job.ID)
	var page struct {
		Nodes  []string          `json:"nodes"`
		Edges  []string          `json:"edges"`
		Counts map[string]string `json:"counts"`
		Cancel bool              `json:"cancel"`
	}
	tb.waitFor(ctx, "the job's page with its graph", 20*time.Second, `(() => {
		const svg = document.querySelector('#job-dag svg.dag');
		const counts = {};
		for (const tr of document.querySelectorAll('#job-engines-table tbody tr')) {
			counts[tr.dataset.engine] = tr.querySelector('.count-done').textContent + '/' + tr.querySelector('.count-total').textContent;
		}
		const btn = document.getElementById('job-cancel');
		return {nodes: svg ? Array.from(svg.querySelectorAll('.node')).map((n) => n.dataset.id) : [],
			edges: svg ? Array.from(svg.querySelectorAll('.edge')).map((e) => e.dataset.from + '>' + e.dataset.to) : [],
			counts, cancel: !!btn && !btn.hidden};
	})()`, &page, func() bool { return len(page.Nodes) > 0 && len(page.Counts) == len(job.Engines) })
	wantNodes := []string{"source", "chunker"}
	wantEdges := []string{"source>chunker"}
	for _, e := range job.Engines {
		wantNodes = append(wantNodes, "engine:"+e.Name)
		wantEdges = append(wantEdges, "chunker>engine:"+e.Name, "engine:"+e.Name+">results")
		if got, want := page.Counts[e.Name], fmt.Sprintf("%d/%d", e.Done, e.Total); got != want {
			t.Errorf("the job's page counts %s as %s done, the API %s", e.Name, got, want)
		}
	}
	wantNodes = append(wantNodes, "results")
	if strings.Join(page.Nodes, " ") != strings.Join(wantNodes, " ") || len(page.Edges) != len(wantEdges) {
		t.Errorf("the graph has nodes %v and edges %v; want %v and %v", page.Nodes, page.Edges, wantNodes, wantEdges)
	}
	for _, e := range wantEdges {
		if !strings.Contains(" "+strings.Join(page.Edges, " ")+" ", " "+e+" ") {
			t.Errorf("the graph lacks the edge %s: %v", e, page.Edges)
		}
	}
	if page.Cancel {
		t.Error("a complete job's page offers to cancel it")
	}
	// A task DAG's route hangs the child off its parent (the graph of a
	// job's view as GET /jobs/{id} shows a DAG job).
	var routed []string
	if err := tb.eval(ctx, `weir.jobGraph({source: {vod: 'vod-1'}, chunking: {}, engines: [
		{name: 'scenes', status: 'complete', total: 1, done: 1},
		{name: 'ocr-frame', status: 'complete', total: 3, done: 3, input: {from: 'scenes', kind: 'frames', output_type: 'scene'}}]})
		.edges.map((e) => e.from + '>' + e.to + (e.label ? ':' + e.label : ''))`, &routed); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(routed, " "); !strings.Contains(got, "engine:scenes>engine:ocr-frame:frames") || strings.Contains(got, "chunker>engine:ocr-frame") {
		t.Errorf("a routed engine's edges: %s", got)
	}
	checkScreenshot(t, "job", tb.screenshot(ctx, filepath.Join(shots, "console-job.png")))

	// The title's page: the timeline under the player.
	tb.navigate(ctx, base+"/#/vod/"+vod)
	var tl struct {
		Utterances []string  `json:"utterances"`
		OCR        []string  `json:"ocr"`
		Loudness   int       `json:"loudness"`
		Scenes     []float64 `json:"scenes"`
		Thumbs     []int     `json:"thumbs"`
		Time       float64   `json:"time"`
		Ready      int       `json:"ready"`
	}
	tb.waitFor(ctx, "the timeline with the transcript, the line on screen, scenes and loudness", 40*time.Second, `(() => {
		const tl = document.getElementById('timeline');
		const v = document.querySelector('#player video');
		const q = (sel) => tl ? Array.from(tl.querySelectorAll(sel)) : [];
		const pl = tl && tl.querySelector('svg.loudness polyline.short-term');
		return {utterances: q('.transcript p.utt').map((p) => Array.from(p.querySelectorAll('.word')).map((w) => w.textContent).join(' ')),
			ocr: q('.ocr-line .ocr-text').map((b) => b.textContent),
			loudness: pl ? pl.getAttribute('points').trim().split(/\s+/).length : 0,
			scenes: q('button.scene').map((s) => Number(s.dataset.seek)),
			thumbs: q('button.scene img').map((i) => i.complete ? i.naturalWidth : -1),
			time: v ? v.currentTime : -1, ready: v ? v.readyState : 0};
	})()`, &tl, func() bool {
		return len(tl.Utterances) > 0 && len(tl.OCR) > 0 && tl.Loudness > 0 && len(tl.Scenes) > 0 && tl.Ready >= 2 && !contains(tl.Thumbs, -1)
	})
	if !anyContains(tl.Utterances, timelineWord) {
		t.Errorf("the transcript %q lacks %q", tl.Utterances, timelineWord)
	}
	if !anyContains(tl.OCR, timelineDrawn) {
		t.Errorf("the lines on screen %q lack %q", tl.OCR, timelineDrawn)
	}
	if tl.Loudness < clipMs/1000-1 {
		t.Errorf("the loudness graph has %d points for a %d s clip, want one a second", tl.Loudness, clipMs/1000)
	}
	if len(tl.Scenes) != 2 || tl.Scenes[0] > 200 || math.Abs(tl.Scenes[1]-cutAtMs) > 100 {
		t.Errorf("scenes at %v ms, want 0 and the cut at %d", tl.Scenes, cutAtMs)
	}
	for i, w := range tl.Thumbs {
		if w != 320 {
			t.Errorf("scene %d's thumbnail is %d px wide, want 320 (loaded)", i, w)
		}
	}
	t.Logf("timeline: transcript %q, on screen %q, %d loudness points, scenes %v", tl.Utterances, tl.OCR, tl.Loudness, tl.Scenes)

	// Clicking a word seeks the player to the word's start.
	start := wordStart(t, base, job.ID, timelineWord)
	seekTo := func(what, click string, wantMs float64) {
		t.Helper()
		if err := tb.eval(ctx, recordSeeks, nil); err != nil {
			t.Fatal(err)
		}
		if err := tb.eval(ctx, click, nil); err != nil {
			t.Fatal(err)
		}
		var seeks []float64
		tb.waitFor(ctx, what+" seeking the player", 15*time.Second, `window.weirSeeks`, &seeks, func() bool {
			for _, s := range seeks {
				if math.Abs(s*1000-wantMs) <= 500 {
					return true
				}
			}
			return false
		})
		t.Logf("%s: the player landed at %v s, want %.2f s", what, seeks, wantMs/1000)
	}
	seekTo("clicking the word "+timelineWord, fmt.Sprintf(`document.querySelector('#timeline .transcript .word[data-word=%q]').click()`, timelineWord), start)
	var cur struct {
		Utterance string `json:"utterance"`
	}
	tb.waitFor(ctx, "the transcript highlighting the utterance playing", 5*time.Second,
		`({utterance: (document.querySelector('#timeline .transcript p.utt.current') || {}).textContent || ''})`, &cur,
		func() bool { return strings.Contains(cur.Utterance, timelineWord) })
	if err := tb.eval(ctx, `document.getElementById('timeline').scrollIntoView()`, nil); err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, "timeline", tb.screenshot(ctx, filepath.Join(shots, "console-timeline.png")))

	// The line on screen seeks to where it appeared.
	var ocrStart float64
	if err := tb.eval(ctx, `Number(document.querySelector('#timeline .ocr-line').dataset.start)`, &ocrStart); err != nil {
		t.Fatal(err)
	}
	if math.Abs(ocrStart-drawnFromMs) > 1000 {
		t.Errorf("the line on screen starts at %v ms, it was drawn from %d ms", ocrStart, drawnFromMs)
	}
	seekTo("clicking the line on screen", `document.querySelector('#timeline .ocr-line .ocr-text').click()`, ocrStart)

	// The search box finds the spoken word; its hit seeks back there.
	var hit struct {
		Start  float64 `json:"start"`
		Stream string  `json:"stream"`
		Text   string  `json:"text"`
	}
	if err := tb.eval(ctx, fmt.Sprintf(`(() => {
		const f = document.querySelector('#timeline form.search');
		f.querySelector('input').value = %q;
		f.requestSubmit();
	})()`, timelineWord), nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "the search box listing the hit", 15*time.Second, `(() => {
		const b = document.querySelector('#timeline .search-hits button.hit');
		return b ? {start: Number(b.dataset.start), stream: b.dataset.stream, text: b.textContent} : {start: -1};
	})()`, &hit, func() bool { return hit.Start >= 0 })
	if hit.Stream != vod || !strings.Contains(hit.Text, timelineWord) || math.Abs(hit.Start-speechAtMs) > 1000 {
		t.Errorf("the search hit is %+v, want %q in %s near %d ms", hit, timelineWord, vod, speechAtMs)
	}
	seekTo("clicking the search hit", `document.querySelector('#timeline .search-hits button.hit').click()`, hit.Start)

	// A search from the Jobs page opens the title at the hit.
	tb.navigate(ctx, base+"/#/jobs")
	var present bool
	tb.waitFor(ctx, "the Jobs page's search box", 15*time.Second, `!!document.querySelector('#search-card form.search')`, &present, func() bool { return present })
	if err := tb.eval(ctx, recordSeeks, nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.eval(ctx, fmt.Sprintf(`(() => {
		const f = document.querySelector('#search-card form.search');
		f.querySelector('input').value = %q;
		f.requestSubmit();
	})()`, strings.ToLower(timelineDrawn)), nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, "the Jobs page's search listing the drawn word", 15*time.Second, `(() => {
		const b = document.querySelector('#search-card .search-hits button.hit');
		return b ? {start: Number(b.dataset.start), stream: b.dataset.stream, text: b.textContent} : {start: -1};
	})()`, &hit, func() bool { return hit.Start >= 0 })
	if hit.Stream != vod || !strings.Contains(hit.Text, timelineDrawn) {
		t.Errorf("the global search hit is %+v, want %q in %s", hit, timelineDrawn, vod)
	}
	if err := tb.eval(ctx, `document.querySelector('#search-card .search-hits button.hit').click()`, nil); err != nil {
		t.Fatal(err)
	}
	var landed struct {
		Hash  string    `json:"hash"`
		Seeks []float64 `json:"seeks"`
	}
	tb.waitFor(ctx, "the title's page opening at the hit", 30*time.Second, `({hash: location.hash, seeks: window.weirSeeks})`, &landed, func() bool {
		for _, s := range landed.Seeks {
			if math.Abs(s*1000-hit.Start) <= 500 {
				return true
			}
		}
		return false
	})
	if !strings.HasPrefix(landed.Hash, "#/vod/"+vod+"?t=") {
		t.Errorf("the hit opened %q, want the title's page #/vod/%s?t=...", landed.Hash, vod)
	}

	// The form starts a job: "Run engines on this" opens it with the
	// title chosen; with the token saved, probe ticked and 5 s chunks,
	// it creates the job and opens its page.
	if err := tb.eval(ctx, fmt.Sprintf(`localStorage.setItem('weir.apiToken', %q)`, testToken), nil); err != nil {
		t.Fatal(err)
	}
	var formLink string
	if err := tb.eval(ctx, `document.querySelector('#timeline .card-head a').getAttribute('href')`, &formLink); err != nil {
		t.Fatal(err)
	}
	tb.navigate(ctx, base+"/"+formLink)
	var form struct {
		Source string `json:"source"`
		Probe  bool   `json:"probe"`
	}
	tb.waitFor(ctx, "the job form with the title chosen", 15*time.Second, `(() => {
		const probe = document.querySelector('#job-engines input[value=probe]');
		return {source: document.getElementById('job-source').value, probe: !!probe && !probe.disabled};
	})()`, &form, func() bool { return form.Source != "" && form.Probe })
	checkScreenshot(t, "job form", tb.screenshot(ctx, filepath.Join(shots, "console-job-form.png")))
	if form.Source != "vod:"+vod {
		t.Errorf("%s chose %q, want vod:%s", formLink, form.Source, vod)
	}
	if err := tb.eval(ctx, `(() => {
		document.querySelector('#job-engines input[value=probe]').checked = true;
		document.getElementById('job-duration').value = '5s';
		document.getElementById('job-title').value = 'From the form';
		document.getElementById('job-form').requestSubmit();
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	var opened string
	tb.waitFor(ctx, "the new job's page", 20*time.Second, `location.hash`, &opened, func() bool {
		return strings.HasPrefix(opened, "#/jobs/job-")
	})
	var made struct {
		Title    string            `json:"title"`
		Source   map[string]string `json:"source"`
		Chunking struct {
			Duration string `json:"duration"`
		} `json:"chunking"`
		Engines []struct {
			Name string `json:"name"`
		} `json:"engines"`
	}
	getJSON(t, base, "/jobs/"+strings.TrimPrefix(opened, "#/jobs/"), &made)
	if made.Title != "From the form" || made.Source["vod"] != vod || made.Chunking.Duration != "5s" || len(made.Engines) != 1 || made.Engines[0].Name != "probe" {
		t.Errorf("the form made %+v; want probe on %s in 5s chunks titled \"From the form\"", made, vod)
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func anyContains(s []string, sub string) bool {
	for _, x := range s {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// TestConsoleTimelineFollowsALiveStream publishes a live test pattern with
// a tone over RTMP, runs the loudness engine on the live stream, and
// checks the live page's timeline gets the job's results and keeps
// getting more while the stream is live, with the playhead on the
// stream's timeline.
func TestConsoleTimelineFollowsALiveStream(t *testing.T) {
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	requireTools(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base, serverLog := startWeir(t)
	id, rtmp := startStream(t, base, "Live timeline")
	pushCtx, stopPush := context.WithCancel(ctx)
	push := exec.CommandContext(pushCtx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=120",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=120",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", rtmp)
	var pushOut lockedBuffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatalf("starting ffmpeg: %v", err)
	}
	pushDone := make(chan struct{})
	go func() {
		push.Wait()
		close(pushDone)
	}()
	t.Cleanup(func() {
		stopPush()
		<-pushDone
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		var m vodMeta
		getJSON(t, base, "/streams/"+id+"/metadata", &m)
		if m.Status == "live" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s is %s after a minute\nffmpeg: %s\nserver log:\n%s", id, m.Status, pushOut.String(), serverLog)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var job jobView
	// stt (spotting a keyword, cheap on a tone) gives the stream's master
	// its subtitles rendition, which the live player picks up.
	apiDo(t, http.MethodPost, base+"/jobs", "application/json", strings.NewReader(fmt.Sprintf(`{"source": {"live": %q},
		"engines": [{"name": "loudness"}, {"name": "stt", "options": {"keywords": ["weather"]}}]}`, id)), &job)

	b := startBrowser(t, ctx)
	tb := b.newTab(ctx)
	tb.navigate(ctx, base+"/#/live/"+id)
	var st struct {
		Points   int     `json:"points"`
		Playhead float64 `json:"playhead"`
		Time     float64 `json:"time"`
		Job      string  `json:"job"`
		Tracks   string  `json:"tracks"`
	}
	const probe = `(() => {
		const tl = document.getElementById('timeline');
		const pl = tl && tl.querySelector('svg.loudness polyline.short-term');
		const v = document.querySelector('#player video');
		const a = tl && tl.querySelector('.tl-jobs a');
		return {points: pl ? pl.getAttribute('points').trim().split(/\s+/).length : 0,
			playhead: tl ? Number(tl.dataset.playhead || -1) : -1, time: v ? v.currentTime : -1,
			job: a ? a.getAttribute('href') : '',
			tracks: v ? Array.from(v.textTracks).map((t) => t.kind + '|' + t.label).join(' ') : ''};
	})()`
	tb.waitFor(ctx, "the live timeline's first loudness points", 60*time.Second, probe, &st, func() bool { return st.Points >= 3 && st.Time > 0 })
	first := st.Points
	tb.waitFor(ctx, "the live timeline growing", 60*time.Second, probe, &st, func() bool { return st.Points >= first+4 })
	if st.Job != "#/jobs/"+job.ID {
		t.Errorf("the timeline names %q as its job, want #/jobs/%s", st.Job, job.ID)
	}
	// The live player plays the stream's master, so it has the stt job's
	// subtitles track.
	if !strings.Contains(st.Tracks, "subtitles|English (weir stt)") {
		t.Errorf("the live player's text tracks are %q, want the subtitles rendition English (weir stt)", st.Tracks)
	}
	// The playhead is on the stream's timeline, where the results are: a
	// live player is a few segments behind the newest result, never
	// ahead of the stream or back at the start of its own buffer.
	var results struct {
		Items []struct {
			End int64 `json:"end_ms"`
		} `json:"items"`
	}
	getJSON(t, base, "/jobs/"+job.ID+"/results?limit=1000", &results)
	last := results.Items[len(results.Items)-1].End
	if st.Playhead < 1000 || st.Playhead > float64(last)+15000 {
		t.Errorf("the playhead is at %v ms with the newest result ending at %d ms (player at %.2f s)", st.Playhead, last, st.Time)
	}
	t.Logf("live timeline: %d then %d loudness points; playhead %v ms, newest result ends %d ms, player at %.2f s", first, st.Points, st.Playhead, last, st.Time)

	// The job runs as long as the stream: its page cancels it (the
	// confirmation is accepted) once the API token is saved.
	if err := tb.eval(ctx, fmt.Sprintf(`localStorage.setItem('weir.apiToken', %q)`, testToken), nil); err != nil {
		t.Fatal(err)
	}
	tb.navigate(ctx, base+"/#/jobs/"+job.ID)
	var running struct {
		Status    string `json:"status"`
		Beat      string `json:"beat"`
		Instances string `json:"instances"`
		Total     int    `json:"total"`
	}
	tb.waitFor(ctx, "the running job's page with the engine's heartbeat", 30*time.Second, `(() => {
		const pill = document.querySelector('.card-head .pill');
		const row = document.querySelector('#job-engines-table tr[data-engine=loudness]');
		return {status: pill ? pill.textContent : '', beat: row ? row.children[10].textContent : '',
			instances: row ? row.children[11].textContent : '', total: row ? Number(row.querySelector('.count-total').textContent) : 0};
	})()`, &running, func() bool {
		return running.Status == "running" && running.Beat != "" && running.Beat != "—" && running.Instances != ""
	})
	t.Logf("the running job's page: heartbeat %q, instances %q, %d chunks", running.Beat, running.Instances, running.Total)
	var status string
	tb.waitFor(ctx, "cancelling the running job from its page", 30*time.Second, `(() => {
		const btn = document.getElementById('job-cancel');
		const pill = document.querySelector('.card-head .pill');
		if (btn && !btn.hidden && !btn.disabled && pill && pill.textContent === 'running') btn.click();
		return pill ? pill.textContent : '';
	})()`, &status, func() bool { return status == "cancelled" })
	getJSON(t, base, "/jobs/"+job.ID, &job)
	if job.Status != "cancelled" {
		t.Errorf("after Cancel job the job is %s, want cancelled", job.Status)
	}
}
