//go:build unix

package console_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/console"
)

// syntheticTimeline mounts a timeline in the page over a stand-in for the
// API (weir.api answers one job and its results), with results shaped as
// docs/engines.md shows each engine's output: silence, black and frozen
// video, a fingerprint match, a person on consecutive frames, a spotted
// keyword, and an external engine's transcript of words without
// utterances.
const syntheticTimeline = `(() => {
	const results = [
		{engine: 'silence', start_ms: 3000, end_ms: 4500, content: {series: [{startTimeMs: 3000, stopTimeMs: 4500,
			tags: [{key: 'silence'}, {key: 'duration_ms', value: '1500'}]}]}},
		{engine: 'black', start_ms: 5000, end_ms: 9000, content: {series: [
			{startTimeMs: 5000, stopTimeMs: 6000, tags: [{key: 'kind', value: 'black'}, {key: 'duration_ms', value: '1000'}]},
			{startTimeMs: 7000, stopTimeMs: 9000, tags: [{key: 'kind', value: 'frozen'}, {key: 'duration_ms', value: '2000'}]}]}},
		{engine: 'fingerprint', start_ms: 10000, end_ms: 20000, content: {series: [{startTimeMs: 10000, stopTimeMs: 20000,
			object: {type: 'fingerprint', label: 'station jingle', entityId: 'fp-3e87dd00aab5', libraryId: 'fingerprints', confidence: 0.931}}]}},
		{engine: 'people', start_ms: 21000, end_ms: 22000, content: {series: [{startTimeMs: 21000, stopTimeMs: 22000,
			object: {type: 'object', label: 'person', confidence: 0.91}}]}},
		{engine: 'people', start_ms: 22000, end_ms: 23000, content: {series: [{startTimeMs: 22000, stopTimeMs: 23000,
			object: {type: 'object', label: 'person', confidence: 0.85}}]}},
		{engine: 'people', start_ms: 40000, end_ms: 41000, content: {object: [{type: 'object', label: 'dog', confidence: 0.5}]}},
		{engine: 'keywords', start_ms: 24000, end_ms: 25000, content: {series: [{startTimeMs: 24000, stopTimeMs: 25000,
			words: [{word: 'tomorrow morning', confidence: 0.8, bestPath: true, utteranceLength: 2}],
			object: {type: 'keyword', label: 'tomorrow morning', text: 'tomorrow morning'}}]}},
		{engine: 'transcribe', start_ms: 30000, end_ms: 40000, content: {series: [
			{startTimeMs: 30000, stopTimeMs: 30400, words: [{word: 'good', bestPath: true}]},
			{startTimeMs: 30500, stopTimeMs: 31000, words: [{word: 'evening', bestPath: true}]},
			{startTimeMs: 33000, stopTimeMs: 33500, words: [{word: 'welcome', bestPath: true}]}]}},
		{engine: 'probe', start_ms: 0, end_ms: 40000, content: {series: [{startTimeMs: 0, stopTimeMs: 40000, tags: [{key: 'format', value: 'mp4'}]}]}},
	];
	const engines = [...new Set(results.map((r) => r.engine))].map((name) => ({name}));
	weir.api = async (method, path) => {
		if (path.startsWith('/jobs?')) return {items: [{id: 'job-synthetic', status: 'complete', engines}]};
		if (path.startsWith('/jobs/job-synthetic/results')) return {job_id: 'job-synthetic', items: results.map((r) => Object.assign({chunk_uuid: 'u-' + r.start_ms, rev: 0}, r))};
		throw new Error('unexpected ' + method + ' ' + path);
	};
	const scope = {alive: true, onDispose() {}};
	const tl = weir.timeline.mount(scope, {stream: 'vod-synthetic', video: () => null, live: () => false, offset: () => 0});
	document.getElementById('app').replaceChildren(tl.el);
	return true;
})()`

// lanesState is what the test reads back from the drawn lanes.
type lanesState struct {
	Lanes       []string `json:"lanes"`
	Spans       []string `json:"spans"`
	Fingerprint []string `json:"fingerprint"`
	People      []string `json:"people"`
	Keywords    []string `json:"keywords"`
	Transcript  []string `json:"transcript"`
}

const readLanes = `(() => {
	const tl = document.getElementById('timeline');
	const texts = (sel) => tl ? Array.from(tl.querySelectorAll(sel)).map((e) => e.className.replace(/^span /, '') + ':' + e.dataset.seek + ':' + e.textContent) : [];
	return {
		lanes: tl ? Array.from(tl.querySelectorAll('.lane')).map((l) => l.dataset.lane + (l.dataset.engine ? '/' + l.dataset.engine : '')) : [],
		spans: texts('[data-lane=silence] button.span'),
		fingerprint: texts('[data-lane=fingerprint] button.span'),
		people: texts('[data-lane=detections][data-engine=people] button.span'),
		keywords: texts('[data-lane=keywords] button.span'),
		transcript: tl ? Array.from(tl.querySelectorAll('.transcript p.utt')).map((p) => p.dataset.start + ':' + Array.from(p.querySelectorAll('.word')).map((w) => w.textContent).join(' ')) : [],
	};
})()`

// TestTimelineDrawsEachEnginesShapeInItsLane checks the lanes that the
// end-to-end job does not reach, from documents shaped as the engines
// write them: each lands in its lane at its time, consecutive detections
// of one label merge, words without utterances are joined at pauses, and
// results without a lane (probe's tags) draw nothing.
func TestTimelineDrawsEachEnginesShapeInItsLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts := httptest.NewServer(console.Handler())
	defer ts.Close()
	b := startBrowser(t, ctx)
	tb := b.newTab(ctx)
	tb.navigate(ctx, ts.URL+"/#/vod")
	var ready bool
	tb.waitFor(ctx, "the console's scripts", 15*time.Second, `!!(window.weir && weir.timeline && weir.timeline.mount)`, &ready, func() bool { return ready })
	if err := tb.eval(ctx, syntheticTimeline, nil); err != nil {
		t.Fatal(err)
	}
	var got lanesState
	tb.waitFor(ctx, "the lanes drawn", 15*time.Second, readLanes, &got, func() bool { return len(got.Transcript) > 0 })
	want := lanesState{
		Lanes:       []string{"axis", "silence", "fingerprint", "keywords", "detections/people", "transcript"},
		Spans:       []string{"silence:3000:silence", "black:5000:black", "frozen:7000:frozen"},
		Fingerprint: []string{"match:10000:station jingle (0.93)"},
		People:      []string{"object:21000:person 91 % ×2", "object:40000:dog 50 %"},
		Keywords:    []string{"keyword:24000:tomorrow morning"},
		Transcript:  []string{"30000:good evening", "33000:welcome"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lanes:\n got %+v\nwant %+v\npage log:\n%s", got, want, b.pageLog())
	}
}
