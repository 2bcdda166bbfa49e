package server

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/console"
	"github.com/weir-media/weir/internal/testenv/chromium"
)

// e2eOCRIntervalMs is the ocr engine's frame_interval (its default).
const e2eOCRIntervalMs = 1000

// e2eChecks checks each built-in media engine's results against the clip.
var e2eChecks = map[string]func(t *testing.T, c e2eClip, ref string, rs []e2eResult){
	"scenes":      checkScenes,
	"stt":         checkSTT,
	"ocr":         checkOCR,
	"fingerprint": checkFingerprint,
	"silence":     checkSilence,
	"black":       checkBlack,
	"loudness":    checkLoudness,
	"probe":       checkProbe,
	"ocr-frame":   checkOCRFrame,
	"keywords":    checkKeywords,
}

// seriesOf lists the series of results, in order.
func seriesOf(rs []e2eResult) []e2eSeries {
	var out []e2eSeries
	for _, r := range rs {
		out = append(out, r.Content.Series...)
	}
	return out
}

// near reports whether got is within tol of want.
func near(got, want, tol int64) bool { return abs(got-want) <= tol }

// checkScenes: scene 0 at the start, then exactly the clip's cuts, each
// within two frames, each with a thumbnail.
func checkScenes(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	var cuts []int64
	for i, s := range seriesOf(rs) {
		n, ok := s.tag("scene")
		switch {
		case !ok || s.Object == nil || s.Object.Type != "thumbnail" || s.Object.URI == "":
			t.Errorf("scenes series %d: %+v, want a scene tag and a thumbnail", i, s)
		case n == "0":
			if i != 0 || s.StartTimeMs > 2*e2eFrameMs {
				t.Errorf("scene 0 is series %d at %d ms, want the first, at the start", i, s.StartTimeMs)
			}
		default:
			cuts = append(cuts, s.StartTimeMs)
		}
	}
	if len(cuts) != len(e2eCuts) {
		t.Fatalf("scene cuts at %v ms, want %v", cuts, e2eCuts)
	}
	for i, c := range cuts {
		if !near(c, e2eCuts[i], 2*e2eFrameMs) {
			t.Errorf("scene cut %d at %d ms, want %d (within two frames)", i, c, e2eCuts[i])
		}
	}
}

// checkSTT: each sentence is an utterance holding its word, starting and
// ending within 0.5 s of its speech.
func checkSTT(t *testing.T, c e2eClip, _ string, rs []e2eResult) {
	var utterances []e2eSeries
	for _, s := range seriesOf(rs) {
		if _, ok := s.tag("utterance"); ok {
			utterances = append(utterances, s)
		}
	}
	for i, want := range e2eSentences {
		span := c.speech[i]
		at := slices.IndexFunc(utterances, func(u e2eSeries) bool { return strings.Contains(u.text(), want.word) })
		if at < 0 {
			t.Errorf("no utterance holds %q (said at %v ms); utterances %+v", want.word, span, utterances)
			continue
		}
		u := utterances[at]
		if !near(u.StartTimeMs, span[0], 500) || !near(u.StopTimeMs, span[1], 500) {
			t.Errorf("%q heard over [%d, %d] ms, said over %v", u.text(), u.StartTimeMs, u.StopTimeMs, span)
		}
	}
}

// checkOCR: each drawn word is one line read from its first sample to the
// first sample without it (or the end), each within one frame interval of
// the truth.
func checkOCR(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	for _, want := range []struct {
		word     string
		from, to int64
	}{{e2eDrawnWord, e2eDrawnFromMs, e2eDrawnToMs}, {e2eCutWord, e2eCutWordFromMs, e2eClipMs}} {
		lines := linesWith(seriesOf(rs), want.word)
		if len(lines) != 1 {
			t.Errorf("%d lines read with %q, want one: %+v", len(lines), want.word, lines)
			continue
		}
		l := lines[0]
		within := func(got, truth int64) bool {
			return got >= truth-2*e2eFrameMs && got <= truth+e2eOCRIntervalMs+2*e2eFrameMs
		}
		if !within(l.StartTimeMs, want.from) || !within(l.StopTimeMs, want.to) {
			t.Errorf("%q read over [%d, %d] ms, drawn over [%d, %d] (read every %d ms)", l.Object.Text, l.StartTimeMs, l.StopTimeMs, want.from, want.to, e2eOCRIntervalMs)
		}
	}
}

// linesWith are the series of lines read on screen holding word.
func linesWith(ss []e2eSeries, word string) []e2eSeries {
	var out []e2eSeries
	for _, s := range ss {
		if s.Object != nil && s.Object.Type == "text" && strings.Contains(strings.ToLower(s.Object.Text), strings.ToLower(word)) {
			out = append(out, s)
		}
	}
	return out
}

// checkOCRFrame: routed from scenes, it reads the frame at each scene
// change (an instant at the change): the word drawn from the last cut is
// read there, and the word that was on screen only between cuts nowhere.
func checkOCRFrame(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	if len(rs) > len(e2eCuts)+1 {
		t.Errorf("ocr-frame has %d results, want one per scene at most (%d)", len(rs), len(e2eCuts)+1)
	}
	ss := seriesOf(rs)
	cut := linesWith(ss, e2eCutWord)
	if len(cut) != 1 || cut[0].StartTimeMs != cut[0].StopTimeMs || !near(cut[0].StartTimeMs, e2eCutWordFromMs, 2*e2eFrameMs) {
		t.Errorf("ocr-frame read %q at %+v, want once, at the cut at %d ms", e2eCutWord, cut, e2eCutWordFromMs)
	}
	if other := linesWith(ss, e2eDrawnWord); len(other) > 0 {
		t.Errorf("ocr-frame read %q, shown at no scene change: %+v", e2eDrawnWord, other)
	}
}

// checkKeywords: routed from stt, it spots each phrase once, at the times
// of the sentence holding it.
func checkKeywords(t *testing.T, c e2eClip, _ string, rs []e2eResult) {
	ss := seriesOf(rs)
	if len(ss) != len(e2eKeywords) {
		t.Errorf("keywords found %+v, want %v once each", ss, e2eKeywords)
	}
	for i, k := range e2eKeywords {
		at := slices.IndexFunc(ss, func(s e2eSeries) bool { return s.Object != nil && s.Object.Type == "keyword" && s.Object.Label == k })
		if at < 0 {
			t.Errorf("keyword %q not found in %+v", k, ss)
			continue
		}
		if s, span := ss[at], c.speech[i]; !near(s.StartTimeMs, span[0], 500) || !near(s.StopTimeMs, span[1], 500) {
			t.Errorf("keyword %q at [%d, %d] ms, said over %v", k, s.StartTimeMs, s.StopTimeMs, span)
		}
	}
}

// checkFingerprint: the jingle, once, within 0.5 s of where it was mixed in.
func checkFingerprint(t *testing.T, _ e2eClip, ref string, rs []e2eResult) {
	ss := seriesOf(rs)
	if len(ss) != 1 || ss[0].Object == nil || ss[0].Object.Type != "fingerprint" || ss[0].Object.EntityID != ref || ss[0].Object.Label != "station jingle" {
		t.Fatalf("fingerprint matches %+v, want the station jingle (%s) once", ss, ref)
	}
	if s := ss[0]; !near(s.StartTimeMs, e2eJingleFromMs, 500) || !near(s.StopTimeMs, e2eJingleFromMs+e2eJingleMs, 500) {
		t.Errorf("the jingle matched over [%d, %d] ms, mixed in over [%d, %d]", s.StartTimeMs, s.StopTimeMs, e2eJingleFromMs, e2eJingleFromMs+e2eJingleMs)
	}
}

// checkSilence: the silent stretch, and nothing else.
func checkSilence(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	ss := seriesOf(rs)
	if len(ss) != 1 {
		t.Fatalf("silences %+v, want one", ss)
	}
	if s := ss[0]; !near(s.StartTimeMs, e2eSilentFromMs, 100) || !near(s.StopTimeMs, e2eSilentToMs, 100) {
		t.Errorf("silence over [%d, %d] ms, want [%d, %d]", s.StartTimeMs, s.StopTimeMs, e2eSilentFromMs, e2eSilentToMs)
	}
}

// checkBlack: the black stretch, within two frames, and no frozen video
// where the picture moves.
func checkBlack(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	var black []e2eSeries
	for _, s := range seriesOf(rs) {
		switch kind, _ := s.tag("kind"); kind {
		case "black":
			black = append(black, s)
		case "frozen":
			if s.StartTimeMs < e2eMovingToMs-2*e2eFrameMs && s.StopTimeMs > e2eMovingFromMs+2*e2eFrameMs {
				t.Errorf("frozen video over [%d, %d] ms, where the picture moves (%d to %d)", s.StartTimeMs, s.StopTimeMs, e2eMovingFromMs, e2eMovingToMs)
			}
		default:
			t.Errorf("black series %+v: kind %q", s, kind)
		}
	}
	if len(black) != 1 || !near(black[0].StartTimeMs, e2eBlackFromMs, 2*e2eFrameMs) || !near(black[0].StopTimeMs, e2eBlackToMs, 2*e2eFrameMs) {
		t.Errorf("black over %+v, want [%d, %d] once", black, e2eBlackFromMs, e2eBlackToMs)
	}
}

// checkLoudness: a reading every second from the start to the end, and
// the programme's summary.
func checkLoudness(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	var end int64
	summary := false
	for _, r := range rs {
		for _, tag := range r.Content.Tags {
			if tag.Key == "summary" {
				summary = true
			}
		}
		for _, s := range r.Content.Series {
			if _, ok := s.tag("momentary_lufs"); !ok || s.StartTimeMs != end || s.StopTimeMs-s.StartTimeMs > 1000 {
				t.Fatalf("loudness series [%d, %d] %+v; want momentary_lufs, from %d, 1 s at most", s.StartTimeMs, s.StopTimeMs, s.Tags, end)
			}
			end = s.StopTimeMs
		}
	}
	if end < e2eClipMs-100 || !summary {
		t.Errorf("loudness series up to %d ms, summary %v; want the whole clip (%d ms) and a summary", end, summary, e2eClipMs)
	}
}

// checkProbe: the chunks cover the clip, each read as 1280x720 H.264 with
// AAC.
func checkProbe(t *testing.T, _ e2eClip, _ string, rs []e2eResult) {
	var end int64
	for _, r := range rs {
		if len(r.Content.Series) != 1 || r.StartMs != end {
			t.Fatalf("probe result [%d, %d] %+v, want one series from %d", r.StartMs, r.EndMs, r.Content, end)
		}
		s := r.Content.Series[0]
		for k, want := range map[string]string{"video_codec": "h264", "width": "1280", "height": "720", "audio_codec": "aac"} {
			if got, _ := s.tag(k); got != want {
				t.Errorf("probe of [%d, %d]: %s %q, want %q", r.StartMs, r.EndMs, k, got, want)
			}
		}
		end = r.EndMs
	}
	if end < e2eClipMs-100 {
		t.Errorf("probe results up to %d ms, want the whole clip (%d ms)", end, e2eClipMs)
	}
}

// checkE2ESearch: GET /search finds the spoken word (as speech: the
// keywords engine's keyword holding it is a hit too) and the drawn word on
// the title, at their times.
func checkE2ESearch(t *testing.T, p *weirProc, vod, job string, c e2eClip) {
	t.Helper()
	find := func(q, kind string) searchHit {
		t.Helper()
		var page struct {
			Items []searchHit `json:"items"`
		}
		target := "http://" + p.http + "/search?q=" + url.QueryEscape(q) + "&stream=" + vod + "&kind=" + kind
		if code, raw := httpJSON(t, http.MethodGet, target, "", nil, &page); code != http.StatusOK || len(page.Items) == 0 {
			t.Fatalf("GET /search?q=%s: %d %s", q, code, raw)
		}
		return page.Items[0]
	}
	spoken := find(e2eSentences[0].word, "speech")
	if spoken.JobID != job || spoken.StreamID != vod || spoken.Engine != "stt" || spoken.Kind != "speech" || !near(spoken.StartMs, c.speech[0][0], 500) {
		t.Errorf("search %q: %+v, want job %s's stt speech at %d ms", e2eSentences[0].word, spoken, job, c.speech[0][0])
	}
	drawn := find(strings.ToLower(e2eDrawnWord)+" ", "screen")
	if drawn.JobID != job || drawn.Engine != "ocr" || drawn.Kind != "screen" ||
		drawn.StartMs < e2eDrawnFromMs-2*e2eFrameMs || drawn.StartMs > e2eDrawnFromMs+e2eOCRIntervalMs+2*e2eFrameMs {
		t.Errorf("search %q: %+v, want job %s's ocr screen text at %d ms", e2eDrawnWord, drawn, job, e2eDrawnFromMs)
	}
}

var (
	subsRendition = regexp.MustCompile(`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English \(weir stt\)",LANGUAGE="en",[^\n]*URI="(subs/[^"]+)"`)
	vttCue        = regexp.MustCompile(`(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> [^\n]+\n([^\n]+)`)
)

// checkE2ECaptions: once the title is ready, its master playlist has the
// subtitles rendition; ffprobe reads the master (naming the rendition) and
// the subtitles playlist as WebVTT; the playlist is complete and mirrors
// the video's segments; each sentence's word is in a cue of the segment
// where it is said, within 0.5 s on the title's timeline.
func checkE2ECaptions(t *testing.T, p *weirProc, vod string, c e2eClip) {
	t.Helper()
	base := "http://" + p.http + "/hls/" + vod + "/"
	waitUntil(t, 2*time.Minute, "title "+vod+" to be ready", func() bool {
		var m struct {
			Status string `json:"status"`
		}
		code, _ := httpJSON(t, http.MethodGet, "http://"+p.http+"/vod/"+vod+"/metadata", "", nil, &m)
		return code == http.StatusOK && m.Status == "ready"
	})
	master := getBody(t, base+"master.m3u8")
	m := subsRendition.FindStringSubmatch(master)
	if m == nil || strings.Count(master, "#EXT-X-STREAM-INF:") != strings.Count(master, `SUBTITLES="subs"`) {
		t.Fatalf("the master has no subtitles rendition on every variant:\n%s", master)
	}
	subs := m[1]
	out, err := exec.Command("ffprobe", "-hide_banner", "-show_entries", "stream=codec_name", "-of", "csv=p=0", base+"master.m3u8").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264") || !(strings.Contains(string(out), subs) || strings.Contains(string(out), "webvtt")) {
		t.Fatalf("ffprobe of the master: %v\n%s", err, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name:packet=pts_time", "-of", "csv=p=0", base+subs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "webvtt") || strings.Count(string(out), "\n") < len(e2eSentences)+1 {
		t.Fatalf("ffprobe of the subtitles playlist %s: %v\n%s", subs, err, out)
	}
	playlist := getBody(t, base+subs)
	video := getBody(t, base+strings.TrimPrefix(subs, "subs/"))
	if !strings.Contains(playlist, "#EXT-X-ENDLIST") || strings.Count(playlist, "#EXTINF:") != strings.Count(video, "#EXTINF:") {
		t.Fatalf("subtitles playlist (want every segment of the video's and an end):\n%s\nvideo playlist:\n%s", playlist, video)
	}
	cues := playlistCues(t, base+subs[:strings.LastIndex(subs, "/")+1], playlist)
	for i, s := range e2eSentences {
		at := slices.IndexFunc(cues, func(c e2eCue) bool { return strings.Contains(c.text, s.word) })
		if at < 0 || !near(cues[at].startMs, c.speech[i][0], 500) {
			t.Errorf("the caption with %q: %+v, said from %d ms; cues %+v", s.word, cues[max(at, 0)], c.speech[i][0], cues)
		}
	}
	checkHLSJSCaptions(t, p, base+"master.m3u8", c)
}

// e2ePlayer starts hls.js on the master in a bare video element of the
// console's page (which loads hls.js), with the first subtitles track on.
const e2ePlayer = `((master) => {
	const v = document.createElement('video');
	v.id = 'e2e';
	v.muted = true;
	document.body.prepend(v);
	const hls = new Hls({subtitleDisplay: true});
	window.e2eErrors = [];
	hls.on(Hls.Events.ERROR, (e, d) => window.e2eErrors.push(d.details + (d.fatal ? ':fatal' : '')));
	hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => { if (hls.subtitleTracks.length) hls.subtitleTrack = 0; });
	hls.on(Hls.Events.MANIFEST_PARSED, () => { v.play().catch(() => {}); });
	hls.loadSource(master);
	hls.attachMedia(v);
})(%q)`

// e2eTrackProbe reports the subtitles tracks of the video and their cues.
const e2eTrackProbe = `(() => {
	const v = document.getElementById('e2e');
	const subs = v ? Array.from(v.textTracks).filter((t) => t.kind === 'subtitles') : [];
	return {tracks: subs.map((t) => t.label + '|' + t.language + '|' + t.mode), errors: window.e2eErrors || [],
		cues: subs.flatMap((t) => t.cues ? Array.from(t.cues).map((c) => [c.startTime, c.text]) : [])};
})()`

// checkHLSJSCaptions plays the title's master with hls.js in headless
// Chromium: it lists the English (weir stt) track, and each sentence's
// word is in a cue starting within 0.5 s of its speech on the player's
// timeline.
func checkHLSJSCaptions(t *testing.T, p *weirProc, master string, c e2eClip) {
	t.Helper()
	if !console.HLSJSBundled() {
		t.Fatal("hls.js is not bundled (internal/console/static/vendor/hls.min.js is missing): run `make build` or scripts/fetch-vendor.sh, which `make test` runs for you")
	}
	ctx := ctxFor(t, 2*time.Minute)
	tab := chromium.Start(t, ctx).NewTab(ctx)
	tab.Navigate(ctx, "http://"+p.http+"/")
	var ready bool
	tab.WaitFor(ctx, "hls.js on the console's page", 30*time.Second, `typeof Hls === 'function'`, &ready, func() bool { return ready })
	if err := tab.Eval(ctx, fmt.Sprintf(e2ePlayer, master), nil); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Tracks []string `json:"tracks"`
		Errors []string `json:"errors"`
		Cues   [][2]any `json:"cues"`
	}
	starts := map[string]float64{}
	tab.WaitFor(ctx, "hls.js showing a caption for every sentence", time.Minute, e2eTrackProbe, &st, func() bool {
		clear(starts)
		for _, cue := range st.Cues {
			at, _ := cue[0].(float64)
			text, _ := cue[1].(string)
			for _, s := range e2eSentences {
				if old, ok := starts[s.word]; strings.Contains(text, s.word) && (!ok || at < old) {
					starts[s.word] = at
				}
			}
		}
		return len(starts) == len(e2eSentences) || slices.ContainsFunc(st.Errors, func(e string) bool { return strings.HasSuffix(e, ":fatal") })
	})
	if len(st.Tracks) != 1 || !strings.HasPrefix(st.Tracks[0], "English (weir stt)|en|") {
		t.Errorf("hls.js's subtitles tracks: %v (errors %v), want English (weir stt)", st.Tracks, st.Errors)
	}
	for i, s := range e2eSentences {
		if at, ok := starts[s.word]; !ok || !near(int64(at*1000), c.speech[i][0], 500) {
			t.Errorf("hls.js shows %q from %.3f s (found %v), said from %d ms; cues %v, errors %v", s.word, at, ok, c.speech[i][0], st.Cues, st.Errors)
		}
	}
	t.Logf("hls.js: tracks %v, %d cues, caption starts %v", st.Tracks, len(st.Cues), starts)
}

// e2eCue is a WebVTT cue placed on the title's timeline.
type e2eCue struct {
	startMs int64
	text    string
}

// playlistCues reads every segment of a subtitles playlist and returns
// their cues, each placed at its segment's start plus its own.
func playlistCues(t *testing.T, dir, playlist string) []e2eCue {
	t.Helper()
	var cues []e2eCue
	var segStart, dur float64
	for _, line := range strings.Split(playlist, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXTINF:"):
			dur, _ = strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ","), 64)
		case line != "" && !strings.HasPrefix(line, "#"):
			for _, m := range vttCue.FindAllStringSubmatch(getBody(t, dir+line), -1) {
				h, _ := strconv.Atoi(m[1])
				mi, _ := strconv.Atoi(m[2])
				s, _ := strconv.Atoi(m[3])
				f, _ := strconv.Atoi(m[4])
				at := int64(segStart*1000) + int64(((h*60+mi)*60+s)*1000+f)
				cues = append(cues, e2eCue{startMs: at, text: m[5]})
			}
			segStart += dur
		}
	}
	return cues
}

// getBody GETs url and returns the body of a 200 answer.
func getBody(t *testing.T, url string) string {
	t.Helper()
	code, body := httpJSON(t, http.MethodGet, url, "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return string(body)
}
