package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
)

// sttLike is a result document shaped as the stt engine writes one: an
// utterance series per (start, stop, text).
func sttLike(texts ...any) json.RawMessage {
	var series []string
	for i := 0; i+2 < len(texts); i += 3 {
		series = append(series, fmt.Sprintf(`{"startTimeMs": %d, "stopTimeMs": %d, "tags": [{"key": "utterance", "value": "u"}],
			"words": [{"word": %q, "bestPath": true}]}`, texts[i], texts[i+1], texts[i+2]))
	}
	return json.RawMessage(`{"series": [` + strings.Join(series, ",") + `]}`)
}

// ocrLike is a result document shaped as the ocr engine writes one.
func ocrLike(start, stop int64, text string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"series": [{"startTimeMs": %d, "stopTimeMs": %d, "object": {"type": "text", "text": %q}}]}`, start, stop, text))
}

// putResult stores a result of engine in job id.
func (e *env) putResult(t *testing.T, id, engine, chunk string, start, end int64, content json.RawMessage) {
	t.Helper()
	if err := e.meta.PutResult(context.Background(), metastore.Result{JobID: id, Engine: engine, TaskID: id + "-" + engine,
		ChunkUUID: chunk, StartMs: start, EndMs: end, Content: content}); err != nil {
		t.Fatal(err)
	}
}

// searchEnv has two jobs on the uploaded title: the first with speech
// (engine probe) and on-screen text (engine loudness), the second with
// speech. The engines' names only need to be ones the job runs.
func searchEnv(t *testing.T) (*env, string, string) {
	t.Helper()
	e := jobsEnv(t)
	first := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}, {"name": "loudness"}]}`).ID
	second := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`).ID
	e.putResult(t, first, "probe", "c0", 0, 10000, sttLike(1200, 3400, "i would like a cup of coffee", 5000, 7000, "the weather is cold"))
	e.putResult(t, first, "probe", "c1", 10000, 20000, sttLike(11000, 12500, "more coffee please"))
	e.putResult(t, first, "loudness", "f0", 2000, 2000, ocrLike(2000, 6000, "Coffee & <Tea> shop"))
	e.putResult(t, second, "probe", "c0", 0, 10000, sttLike(500, 1500, "coffee"))
	return e, first, second
}

func TestSearchFindsTextsOfEveryJob(t *testing.T) {
	e, first, second := searchEnv(t)
	rec := e.do("GET", "/search?q=coffee", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	res := decode[SearchResults](t, rec)
	if res.Query != "coffee*" || len(res.Items) != 4 || res.NextCursor != "" {
		t.Fatalf("search coffee: %s", rec.Body)
	}
	// The shortest text matches best.
	top := res.Items[0]
	if top.JobID != second || top.StreamID != "vod-upload" || top.Source != "vod" || top.Engine != "probe" || top.Kind != "speech" ||
		top.StartMs != 500 || top.EndMs != 1500 || top.Text != "coffee" || top.Snippet != "<mark>coffee</mark>" || top.JobCreatedAt.IsZero() {
		t.Fatalf("best hit %+v", top)
	}
	var screen *SearchHit
	for i, h := range res.Items {
		if h.Kind == "screen" {
			screen = &res.Items[i]
		}
	}
	if screen == nil || screen.JobID != first || screen.StartMs != 2000 || screen.EndMs != 6000 ||
		screen.Snippet != "<mark>Coffee</mark> &amp; &lt;Tea&gt; shop" {
		t.Fatalf("screen hit %+v", screen)
	}
	// Filters.
	for query, want := range map[string]int{
		"q=coffee&kind=screen":                 1,
		"q=coffee&job=" + first:                3,
		"q=coffee&stream=vod-upload":           4,
		"q=coffee&stream=vod-import":           0,
		"q=coffee&engine=loudness":             1,
		"q=coffee&from=3400&to=20000":          2,
		`q=` + url.QueryEscape(`"cup of"`):     1,
		"q=" + url.QueryEscape("cold weather"): 1,
	} {
		got := decode[SearchResults](t, e.do("GET", "/search?"+query, nil))
		if len(got.Items) != want {
			t.Errorf("%s: %d hits, want %d: %+v", query, len(got.Items), want, got.Items)
		}
	}
	// Pages of one hit follow the order of the whole list.
	var paged []string
	cursor := ""
	for range 10 {
		page := decode[SearchResults](t, e.do("GET", "/search?q=coffee&limit=1&cursor="+url.QueryEscape(cursor), nil))
		for _, h := range page.Items {
			paged = append(paged, fmt.Sprint(h.JobID, h.StartMs))
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
		wantProblem(t, e.do("GET", "/search?q=tea&cursor="+url.QueryEscape(cursor), nil), http.StatusUnprocessableEntity, "cursor")
	}
	var whole []string
	for _, h := range res.Items {
		whole = append(whole, fmt.Sprint(h.JobID, h.StartMs))
	}
	if strings.Join(paged, " ") != strings.Join(whole, " ") {
		t.Fatalf("paged %v, whole %v", paged, whole)
	}
}

func TestSearchRefusesBadQueriesWithoutFailing(t *testing.T) {
	e, _, _ := searchEnv(t)
	for query, want := range map[string]string{
		"":                                       "query is empty",
		"q=":                                     "query is empty",
		"q=%20%20":                               "query is empty",
		"q=" + strings.Repeat("x", 10240):        "10240 bytes, longer than the 1000 allowed",
		"q=cof%00fee":                            "NUL byte",
		"q=%ff%fe":                               "not UTF-8",
		"q=" + url.QueryEscape(`"" * () - :`):    "has no word",
		"q=" + strings.Repeat("w+", 40):          "more than 32 words",
		"q=" + url.QueryEscape(`"`+"\u0301"+`"`): "has no word",
	} {
		p := wantProblem(t, e.do("GET", "/search?"+query, nil), http.StatusBadRequest, "query parameter q")
		if !strings.Contains(p.Detail, want) || len(p.Errors) != 1 || p.Errors[0].Location != "query.q" {
			t.Errorf("%.60s: %+v, want %q at query.q", query, p, want)
		}
		if len(p.Detail) > 300 {
			t.Errorf("%.60s: the problem echoes the query: %d bytes", query, len(p.Detail))
		}
	}
	// The search engines' operators are words: never a 500.
	for _, q := range []string{`coffee AND NOT tea`, `coffee OR tea`, `NEAR(coffee tea)`, `coffee*`, `"coffee`, `co:ffee`,
		`coffee & tea | !x <-> y:*`, `'; DROP TABLE results; --`, `^coffee -tea {text}:x`} {
		if rec := e.do("GET", "/search?q="+url.QueryEscape(q), nil); rec.Code != http.StatusOK {
			t.Errorf("%q: %d %s", q, rec.Code, rec.Body)
		}
	}
	wantProblem(t, e.do("GET", "/search?q=coffee&kind=video", nil), http.StatusUnprocessableEntity)
	wantProblem(t, e.do("GET", "/search?q=coffee&from=5000&to=100", nil), http.StatusUnprocessableEntity, "to: must be after from")
	wantProblem(t, e.do("GET", "/search?q=coffee&cursor=bm9wZQ", nil), http.StatusUnprocessableEntity, "cursor")
	wantProblem(t, e.do("GET", "/search?q=coffee&limit=1000", nil), http.StatusUnprocessableEntity)
}

func TestJobResultsExportCaptions(t *testing.T) {
	e, first, second := searchEnv(t)
	rec := e.do("GET", "/jobs/"+first+"/results?format=vtt&engine=probe", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("vtt: %d %s", rec.Code, rec.Body)
	}
	if ct, cd := rec.Header().Get("Content-Type"), rec.Header().Get("Content-Disposition"); ct != "text/vtt; charset=utf-8" ||
		cd != `attachment; filename=`+first+`-speech-probe.vtt` {
		t.Fatalf("vtt headers: %q, %q", ct, cd)
	}
	wantVTT := "WEBVTT\n\n00:00:01.200 --> 00:00:03.400\ni would like a cup of coffee\n\n" +
		"00:00:05.000 --> 00:00:07.000\nthe weather is cold\n\n00:00:11.000 --> 00:00:12.500\nmore coffee please\n"
	if rec.Body.String() != wantVTT {
		t.Fatalf("vtt:\n%s\nwant:\n%s", rec.Body, wantVTT)
	}
	// The second job has one speech engine: no engine= needed.
	rec = e.do("GET", "/jobs/"+second+"/results?format=srt", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-subrip; charset=utf-8" ||
		rec.Body.String() != "1\n00:00:00,500 --> 00:00:01,500\ncoffee\n\n" ||
		rec.Header().Get("Content-Disposition") != `attachment; filename=`+second+`-speech.srt` {
		t.Fatalf("srt: %d %q %q", rec.Code, rec.Header(), rec.Body)
	}
	// Lines read on screen, and a time window.
	rec = e.do("GET", "/jobs/"+first+"/results?format=vtt&kind=screen", nil)
	if rec.Code != http.StatusOK || rec.Body.String() != "WEBVTT\n\n00:00:02.000 --> 00:00:06.000\nCoffee &amp; &lt;Tea&gt; shop\n" {
		t.Fatalf("screen vtt: %d %q", rec.Code, rec.Body)
	}
	rec = e.do("GET", "/jobs/"+first+"/results?format=srt&engine=probe&from=4000&to=11001", nil)
	if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), " --> ") != 2 || strings.Contains(rec.Body.String(), "cup of coffee") {
		t.Fatalf("4 s to 11.001 s: %d %q", rec.Code, rec.Body)
	}
	// A job with nothing of a kind exports an empty file.
	if rec = e.do("GET", "/jobs/"+second+"/results?format=vtt&kind=keyword", nil); rec.Code != http.StatusOK || rec.Body.String() != "WEBVTT\n" {
		t.Fatalf("no keywords: %d %q", rec.Code, rec.Body)
	}
	// json stays what it was.
	if res := decode[JobResults](t, e.do("GET", "/jobs/"+first+"/results", nil)); len(res.Items) != 3 {
		t.Fatalf("json: %+v", res)
	}
	// Speech from two engines must be told apart.
	e.putResult(t, first, "loudness", "c9", 30000, 31000, sttLike(30000, 31000, "a second transcriber"))
	wantProblem(t, e.do("GET", "/jobs/"+first+"/results?format=vtt", nil), http.StatusUnprocessableEntity, "speech texts from engines loudness, probe; choose one with engine=")
	wantProblem(t, e.do("GET", "/jobs/"+first+"/results?kind=speech", nil), http.StatusUnprocessableEntity, "kind", "vtt or srt")
	wantProblem(t, e.do("GET", "/jobs/"+first+"/results?format=vtt&engine=probe&cursor=abc", nil), http.StatusUnprocessableEntity, "cursor")
	wantProblem(t, e.do("GET", "/jobs/"+first+"/results?format=vtt&engine=faces", nil), http.StatusUnprocessableEntity, "runs no engine faces")
	wantProblem(t, e.do("GET", "/jobs/"+first+"/results?format=ass", nil), http.StatusUnprocessableEntity)
	wantProblem(t, e.do("GET", "/jobs/job-nosuch/results?format=vtt", nil), http.StatusNotFound)
}

// An export holds the whole job, not one page of results, and ffmpeg
// reads it.
func TestJobResultsExportTheWholeJob(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg")
	e := jobsEnv(t)
	id := e.createJob(t, `{"source": {"vod": "vod-upload"}, "engines": [{"name": "probe"}]}`).ID
	const n = exportPage + 5
	for i := range n {
		start := int64(i) * 2000
		e.putResult(t, id, "probe", fmt.Sprintf("c%05d", i), start, start+2000, sttLike(start, start+1500, fmt.Sprintf("line %d", i)))
	}
	rec := e.do("GET", "/jobs/"+id+"/results?format=vtt", nil)
	if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), " --> ") != n {
		t.Fatalf("%d cues in %d bytes (status %d), want %d", strings.Count(rec.Body.String(), " --> "), rec.Body.Len(), rec.Code, n)
	}
	path := filepath.Join(t.TempDir(), "job.vtt")
	if err := os.WriteFile(path, rec.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "srt", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	last := fmt.Sprintf("%d\n00:33:28,000 --> 00:33:29,500\nline %d\n", n, n-1)
	if strings.Count(string(out), " --> ") != n || !strings.Contains(string(out), last) {
		t.Fatalf("ffmpeg read %d cues; the last is not %q:\n%.300s", strings.Count(string(out), " --> "), last, out[max(0, len(out)-300):])
	}
}

func TestSearchAndExportsAreInTheOpenAPIDocument(t *testing.T) {
	e := newEnv(t, "")
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
			} `json:"parameters"`
			Responses map[string]struct {
				Content map[string]any `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(e.do("GET", "/openapi.json", nil).Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	params := func(path string) string {
		var names []string
		for _, p := range doc.Paths[path]["get"].Parameters {
			names = append(names, p.Name)
		}
		return strings.Join(names, " ")
	}
	if got := params("/search"); got != "q stream job engine kind from to limit cursor" {
		t.Errorf("/search parameters: %s", got)
	}
	if got := params("/jobs/{id}/results"); !strings.Contains(got, "format kind engine") {
		t.Errorf("/jobs/{id}/results parameters: %s", got)
	}
	for _, ct := range []string{"application/json", "text/vtt", "application/x-subrip"} {
		if _, ok := doc.Paths["/jobs/{id}/results"]["get"].Responses["200"].Content[ct]; !ok {
			t.Errorf("/jobs/{id}/results does not answer %s", ct)
		}
	}
}
