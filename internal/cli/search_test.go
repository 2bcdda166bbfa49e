package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// putTexts stores stt- and ocr-shaped results for job id (under the
// probe engine, the one the test server's jobs can run).
func putTexts(t *testing.T, meta metastore.Store, id string) {
	t.Helper()
	ctx := context.Background()
	docs := []string{
		`{"series": [{"startTimeMs": 61200, "stopTimeMs": 63400, "tags": [{"key": "utterance", "value": "u1"}], "words": [{"word": "i would like a cup of coffee", "bestPath": true}]}]}`,
		`{"series": [{"startTimeMs": 2000, "stopTimeMs": 4500, "object": {"type": "text", "text": "Coffee & <Tea>"}}]}`,
		`{"series": [{"startTimeMs": 500, "stopTimeMs": 1500, "tags": [{"key": "utterance", "value": "u0"}], "words": [{"word": "coffee", "bestPath": true}]}]}`,
	}
	for i, doc := range docs {
		if err := meta.PutResult(ctx, metastore.Result{JobID: id, Engine: "probe", ChunkUUID: fmt.Sprint("u", i),
			StartMs: int64(i) * 10000, EndMs: int64(i)*10000 + 10000, Content: json.RawMessage(doc)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSearchPrintsHitsWithTheirPlace(t *testing.T) {
	server, meta, _ := startJobsServer(t)
	id := createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	putTexts(t, meta, id)

	res := runWeir(testContext(t), "search", "coffee", "--server", server)
	if res.err != nil {
		t.Fatalf("search: %v\n%s", res.err, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(squeeze(res.stdout)), "\n")
	want := []string{
		"TIME STREAM JOB ENGINE KIND TEXT",
		"0:00.500-0:01.500 vod-match " + id + " probe speech [coffee]",
	}
	if len(lines) != 4 || !reflect.DeepEqual(lines[:2], want) {
		t.Fatalf("search coffee:\n%s\nwant the best hit first:\n%s", res.stdout, strings.Join(want, "\n"))
	}
	if !strings.Contains(res.stdout, "[Coffee] & <Tea>") || !strings.Contains(res.stdout, "1:01.200-1:03.400") {
		t.Fatalf("search coffee:\n%s", res.stdout)
	}

	res = runWeir(testContext(t), "search", `"cup of coffee"`, "--stream", "vod-match", "--json", "--server", server)
	var page struct {
		Query string `json:"query"`
		Items []struct {
			StartMs int64  `json:"start_ms"`
			Snippet string `json:"snippet"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &page); err != nil || page.Query != `"cup of coffee"` || len(page.Items) != 1 ||
		page.Items[0].StartMs != 61200 || page.Items[0].Snippet != "i would like a <mark>cup of coffee</mark>" {
		t.Fatalf("search --json: %v\n%s", err, res.stdout)
	}
	// More hits than one page of the server's, fewer than asked.
	res = runWeir(testContext(t), "search", "coffee", "--limit", "2", "--server", server)
	if n := strings.Count(res.stdout, id); res.err != nil || n != 2 {
		t.Fatalf("search --limit 2: %d hits, %v\n%s", n, res.err, res.stdout)
	}
	res = runWeir(testContext(t), "search", "zebra", "--server", server)
	if res.err != nil || !strings.Contains(res.stdout, "Nothing found for zebra*.") {
		t.Fatalf("search zebra: %v\n%s", res.err, res.stdout)
	}
	res = runWeir(testContext(t), "search", "--server", server, "--", "-")
	if res.err == nil || !strings.Contains(res.err.Error(), "400 Bad Request") || !strings.Contains(res.err.Error(), "has no word") {
		t.Fatalf("search -: %v", res.err)
	}
}

func TestJobsResultsExportsCaptions(t *testing.T) {
	server, meta, _ := startJobsServer(t)
	id := createJob(t, server, "--vod", "vod-match", "--engine", "probe")
	putTexts(t, meta, id)
	res := runWeir(testContext(t), "jobs", "results", id, "--format", "vtt", "--server", server)
	want := "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\ncoffee\n\n00:01:01.200 --> 00:01:03.400\ni would like a cup of coffee\n"
	if res.err != nil || res.stdout != want {
		t.Fatalf("--format vtt: %v\n%q\nwant\n%q", res.err, res.stdout, want)
	}
	res = runWeir(testContext(t), "jobs", "results", id, "--format", "srt", "--kind", "screen", "--server", server)
	if res.err != nil || res.stdout != "1\n00:00:02,000 --> 00:00:04,500\nCoffee & <Tea>\n\n" {
		t.Fatalf("--format srt --kind screen: %v\n%q", res.err, res.stdout)
	}
	for args, msg := range map[string]string{
		"--format ass":             `--format "ass": want json, vtt or srt`,
		"--kind screen":            "--kind selects the texts of --format vtt or srt",
		"--format vtt --json":      "--json and --format vtt: choose one",
		"--format vtt --kind wave": "422 Unprocessable Entity",
	} {
		res := runWeir(testContext(t), append([]string{"jobs", "results", id, "--server", server}, strings.Fields(args)...)...)
		if res.err == nil || !strings.Contains(res.err.Error(), msg) {
			t.Errorf("%s: %v, want %q", args, res.err, msg)
		}
	}
}
