package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// The clip of the task DAG tests: three scenes of flat colour, each with
// its word drawn in the middle, cut at dagCutsMs; and a sentence spoken
// from dagSpeechMs.
var (
	dagWords    = []string{"Harbour", "Lighthouse", "Meadow"}
	dagCutsMs   = []int64{0, 4000, 8000}
	dagSentence = "please call me at home tomorrow morning"
)

const dagSpeechMs = 2000

// makeDAGClip writes the clip (12 s, 640x360 H.264, AAC) and returns its
// path.
func makeDAGClip(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wav := filepath.Join(dir, "speech.wav")
	if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, dagSentence).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	font := "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
	colours := []string{"0x102060", "0xd07020", "0x0a4a1a"}
	var args []string
	var graph, concat string
	for i, c := range colours {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("color=c=%s:s=640x360:r=25:d=4", c))
		graph += fmt.Sprintf("[%d]drawtext=fontfile=%s:text=%s:fontsize=64:fontcolor=white:x=(w-tw)/2:y=(h-th)/2[s%d];", i, font, dagWords[i], i)
		concat += fmt.Sprintf("[s%d]", i)
	}
	graph += concat + "concat=n=3:v=1:a=0[v];" +
		fmt.Sprintf("[3]aresample=16000,adelay=%d:all=1[sp];[sp][4]amix=inputs=2:normalize=0:duration=longest[a]", dagSpeechMs)
	clip := filepath.Join(dir, "dag.mp4")
	args = append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	args = append(args, "-i", wav, "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.003:sample_rate=16000:seed=7:duration=12",
		"-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-c:a", "aac", "-ar", "16000", "-ac", "1", "-t", "12", clip)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return clip
}

// The two examples of docs/results.md (Task DAGs), on a title.
const (
	scenesOCRDAG = `{"title": "Text at each scene change", "tasks": [
  {"engineId": "adapter", "payload": {"vod": %q},
   "ioFolders": [{"referenceId": "src", "mode": "stream", "type": "output"}]},
  {"engineId": "scenes", "payload": {"threshold": 0.3, "thumbnails": false},
   "ioFolders": [{"referenceId": "scenesIn", "mode": "stream", "type": "input"},
                 {"referenceId": "scenesOut", "mode": "chunk", "type": "output"}]},
  {"engineId": "ocr-frame", "payload": {"psm": 11},
   "ioFolders": [{"referenceId": "ocrIn", "mode": "chunk", "type": "input"},
                 {"referenceId": "ocrOut", "mode": "chunk", "type": "output"}]},
  {"engineId": "aggregator", "payload": {"window": "2s"},
   "ioFolders": [{"referenceId": "aggIn", "mode": "chunk", "type": "input"}]},
  {"engineId": "output-writer",
   "ioFolders": [{"referenceId": "owIn", "mode": "chunk", "type": "input"}]}],
 "routes": [
  {"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "scenesIn"},
  {"parentIoFolderReferenceId": "scenesOut", "childIoFolderReferenceId": "ocrIn"},
  {"parentIoFolderReferenceId": "ocrOut", "childIoFolderReferenceId": "aggIn"},
  {"parentIoFolderReferenceId": "ocrOut", "childIoFolderReferenceId": "owIn"}]}`
	sttKeywordsDAG = `{"title": "Keywords in the transcript", "tasks": [
  {"engineId": "adapter", "payload": {"vod": %q},
   "ioFolders": [{"referenceId": "src", "mode": "stream", "type": "output"}]},
  {"engineId": "stt",
   "ioFolders": [{"referenceId": "sttIn", "mode": "stream", "type": "input"},
                 {"referenceId": "sttOut", "mode": "chunk", "type": "output"}]},
  {"engineId": "keywords", "payload": {"keywords": ["tomorrow morning", "weather"]},
   "ioFolders": [{"referenceId": "kwIn", "mode": "chunk", "type": "input"},
                 {"referenceId": "kwOut", "mode": "chunk", "type": "output"}]},
  {"engineId": "output-writer",
   "ioFolders": [{"referenceId": "owIn", "mode": "chunk", "type": "input"}]}],
 "routes": [
  {"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "sttIn"},
  {"parentIoFolderReferenceId": "sttOut", "childIoFolderReferenceId": "kwIn"},
  {"parentIoFolderReferenceId": "kwOut", "childIoFolderReferenceId": "owIn"}]}`
)

// dagJob is the part of a job's view the DAG tests read.
type dagJob struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Engines []struct {
		Name  string `json:"name"`
		Done  int64  `json:"done"`
		Total int64  `json:"total"`
		Input *struct {
			From string `json:"from"`
			Kind string `json:"kind"`
		} `json:"input"`
	} `json:"engines"`
	Tasks  []json.RawMessage `json:"tasks"`
	Routes []json.RawMessage `json:"routes"`
}

// dagResult is a stored result as GET /jobs/{id}/results lists it.
type dagResult struct {
	Engine  string `json:"engine"`
	StartMs int64  `json:"start_ms"`
	EndMs   int64  `json:"end_ms"`
	Content struct {
		Series []struct {
			StartTimeMs int64 `json:"startTimeMs"`
			StopTimeMs  int64 `json:"stopTimeMs"`
			Tags        []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"tags"`
			Words []struct {
				Word string `json:"word"`
			} `json:"words"`
			Object *struct {
				Type  string `json:"type"`
				Text  string `json:"text"`
				Label string `json:"label"`
			} `json:"object"`
		} `json:"series"`
	} `json:"content"`
}

// runDAG creates a DAG job and waits for it to complete.
func runDAG(t *testing.T, base, body string) dagJob {
	t.Helper()
	var job dagJob
	if code, raw := httpJSON(t, http.MethodPost, base+"/jobs", "application/json", strings.NewReader(body), &job); code != http.StatusCreated {
		t.Fatalf("POST /jobs: %d %s", code, raw)
	}
	waitUntil(t, 4*time.Minute, "job "+job.ID+" to end", func() bool {
		httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID, "", nil, &job)
		return job.Status == "complete" || job.Status == "failed" || job.Status == "cancelled"
	})
	if job.Status != "complete" {
		t.Fatalf("job %s ended %s: %s", job.ID, job.Status, job.Error)
	}
	return job
}

// jobResultsOf lists a job's results by engine.
func jobResultsOf(t *testing.T, base, id string) map[string][]dagResult {
	t.Helper()
	var page struct {
		Items []dagResult `json:"items"`
	}
	if code, raw := httpJSON(t, http.MethodGet, base+"/jobs/"+id+"/results?limit=1000", "", nil, &page); code != http.StatusOK {
		t.Fatalf("results: %d %s", code, raw)
	}
	out := map[string][]dagResult{}
	for _, r := range page.Items {
		out[r.Engine] = append(out[r.Engine], r)
	}
	return out
}

// checkWindowsComplete reads the job's windows: there are some, and none
// is partial (every engine, the routed ones included, passed each).
func checkWindowsComplete(t *testing.T, base, id string) int {
	t.Helper()
	var page struct {
		Items []struct {
			StartMs int64    `json:"start_ms"`
			Status  string   `json:"status"`
			Missing []string `json:"missing"`
		} `json:"items"`
	}
	if code, raw := httpJSON(t, http.MethodGet, base+"/jobs/"+id+"/windows?limit=100", "", nil, &page); code != http.StatusOK || len(page.Items) == 0 {
		t.Fatalf("windows: %d %s", code, raw)
	}
	for _, w := range page.Items {
		if w.Status != "complete" {
			t.Errorf("window at %d ms is %s, missing %v", w.StartMs, w.Status, w.Missing)
		}
	}
	return len(page.Items)
}

// TestDAGScenesToOCRReadsTheFrameAtEachSceneChange runs the scenes → ocr
// DAG on a title in a whole weir: the runner cuts one frame at each scene
// change scenes reports and ocr-frame reads it; each reading is at its
// cut's time and holds that scene's word (a frame cut one frame early
// would hold the previous scene's); search finds the word there; the
// aggregator's windows are all complete; the job's view keeps the DAG.
func TestDAGScenesToOCRReadsTheFrameAtEachSceneChange(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe", "espeak-ng", "tesseract")
	clip := makeDAGClip(t)
	r := start(t, testConfig(t.TempDir()))
	defer r.stop(t)
	base := r.HTTPURL()
	vod := searchUpload(t, base, clip)

	job := runDAG(t, base, fmt.Sprintf(scenesOCRDAG, vod))
	if len(job.Tasks) != 5 || len(job.Routes) != 4 || len(job.Engines) != 2 || job.Engines[1].Input == nil ||
		job.Engines[1].Input.From != "scenes" || job.Engines[1].Input.Kind != "frames" {
		t.Fatalf("the job's view: %+v", job)
	}
	res := jobResultsOf(t, base, job.ID)
	var cuts []int64
	for _, s := range res["scenes"] {
		cuts = append(cuts, s.StartMs)
	}
	if len(cuts) != len(dagCutsMs) {
		t.Fatalf("scenes found cuts at %v, want %v", cuts, dagCutsMs)
	}
	read := map[int64]string{}
	for _, o := range res["ocr-frame"] {
		if o.EndMs != o.StartMs {
			t.Errorf("ocr-frame result [%d, %d] is not the instant of its frame", o.StartMs, o.EndMs)
		}
		for _, s := range o.Content.Series {
			if s.Object != nil && s.Object.Type == "text" {
				read[o.StartMs] += s.Object.Text + " "
			}
		}
	}
	for i, want := range dagCutsMs {
		if d := cuts[i] - want; d < -80 || d > 80 {
			t.Errorf("cut %d at %d ms, drawn at %d", i, cuts[i], want)
		}
		if got := read[cuts[i]]; !strings.Contains(strings.ToLower(got), strings.ToLower(dagWords[i])) {
			t.Errorf("the frame at cut %d (%d ms) reads %q, want %q", i, cuts[i], got, dagWords[i])
		}
	}
	if len(read) != len(cuts) {
		t.Errorf("ocr-frame read frames at %v; the cuts are %v", read, cuts)
	}
	t.Logf("cuts %v, read %v", cuts, read)

	var hits struct {
		Items []searchHit `json:"items"`
	}
	httpJSON(t, http.MethodGet, base+"/search?q=lighthouse&job="+job.ID, "", nil, &hits)
	if len(hits.Items) == 0 || hits.Items[0].Engine != "ocr-frame" || hits.Items[0].Kind != "screen" || hits.Items[0].StartMs != cuts[1] {
		t.Fatalf("search for the second scene's word: %+v", hits.Items)
	}
	t.Logf("%d windows, all complete", checkWindowsComplete(t, base, job.ID))
}

// TestDAGSTTToKeywordsSpotsPhrasesInTheTranscript runs the stt →
// keywords DAG on a title in a whole weir: keywords reads each utterance
// stt writes and answers the phrase it holds as a keyword at the
// utterance's times; search finds it as a keyword, and the keyword
// captions export it; the windows are all complete.
func TestDAGSTTToKeywordsSpotsPhrasesInTheTranscript(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg", "ffprobe", "espeak-ng", "pocketsphinx_batch")
	clip := makeDAGClip(t)
	r := start(t, testConfig(t.TempDir()))
	defer r.stop(t)
	base := r.HTTPURL()
	vod := searchUpload(t, base, clip)

	job := runDAG(t, base, fmt.Sprintf(sttKeywordsDAG, vod))
	res := jobResultsOf(t, base, job.ID)
	// The utterance: stt's output holding it, and its sentence series.
	var output *dagResult
	var from, to int64
	for i, u := range res["stt"] {
		for _, s := range u.Content.Series {
			if len(s.Words) > 0 && strings.Contains(s.Words[0].Word, "tomorrow morning") && len(s.Tags) > 0 && s.Tags[0].Key == "utterance" {
				output, from, to = &res["stt"][i], s.StartTimeMs, s.StopTimeMs
			}
		}
	}
	if output == nil {
		t.Fatalf("stt did not hear %q: %+v", dagSentence, res["stt"])
	}
	kws := res["keywords"]
	if len(kws) != 1 || len(kws[0].Content.Series) != 1 {
		t.Fatalf("keywords results: %+v", kws)
	}
	k := kws[0].Content.Series[0]
	// The keyword is at the utterance's times; its result spans stt's
	// output, the chunk routed to keywords.
	if k.Object == nil || k.Object.Type != "keyword" || k.Object.Label != "tomorrow morning" || k.StartTimeMs != from || k.StopTimeMs != to ||
		kws[0].StartMs != output.StartMs || kws[0].EndMs != output.EndMs {
		t.Fatalf("keyword %+v (object %+v) in [%d, %d] for the utterance at [%d, %d] in stt's output [%d, %d]",
			k, k.Object, kws[0].StartMs, kws[0].EndMs, from, to, output.StartMs, output.EndMs)
	}
	if d := k.StartTimeMs - dagSpeechMs; d < -500 || d > 500 {
		t.Errorf("the keyword is at %d ms; the sentence is spoken from %d", k.StartTimeMs, dagSpeechMs)
	}

	var hits struct {
		Items []searchHit `json:"items"`
	}
	httpJSON(t, http.MethodGet, base+"/search?kind=keyword&q="+url.QueryEscape(`"tomorrow morning"`), "", nil, &hits)
	if len(hits.Items) != 1 || hits.Items[0].Engine != "keywords" || hits.Items[0].JobID != job.ID || hits.Items[0].StartMs != k.StartTimeMs {
		t.Fatalf("search for the keyword: %+v", hits.Items)
	}
	code, vtt := httpJSON(t, http.MethodGet, base+"/jobs/"+job.ID+"/results?format=vtt&kind=keyword", "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(vtt), "tomorrow morning") {
		t.Fatalf("keyword captions: %d %s", code, vtt)
	}
	t.Logf("keyword at [%d, %d]; %d windows, all complete", k.StartTimeMs, k.StopTimeMs, checkWindowsComplete(t, base, job.ID))
}
