package api

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
)

// TestHLSServesGeneratedSubtitles goes through the HTTP handler for the
// renditions internal/hlsresults generates: the extended master, the
// subtitles playlist and a segment, with their types and caching, gzip,
// ETag revalidation and CORS like stored objects, and a problem for a
// segment that does not exist.
func TestHLSServesGeneratedSubtitles(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg")
	e := newEnv(t, "")
	ctx := context.Background()
	const id = "vod-0123456789ab"
	dir := t.TempDir()
	seg := filepath.Join(dir, "seg.ts")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", seg).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.meta.CreateStream(ctx, metastore.Stream{ID: id, Kind: metastore.KindVOD, Status: metastore.StatusReady}); err != nil {
		t.Fatal(err)
	}
	e.put(id+"/360p/seg_00000.ts", data)
	if err := e.meta.UpsertSegment(ctx, metastore.Segment{StreamID: id, Rendition: "360p", Key: id + "/360p/seg_00000.ts", DurationUS: 2e6, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	pl := hls.MediaPlaylist{Type: hls.Event, Ended: true, Segments: []hls.Segment{{URI: "seg_00000.ts", Duration: 2 * time.Second}}}
	b, _ := pl.Encode()
	e.put(id+"/360p/index.m3u8", b)
	e.put(id+"/master.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n360p/index.m3u8\n"))
	if _, err := e.meta.CreateJob(ctx, metastore.Job{ID: "job-0123456789ab", Kind: "vod", StreamID: id, Status: metastore.JobComplete}); err != nil {
		t.Fatal(err)
	}
	if err := e.meta.UpsertTask(ctx, metastore.Task{ID: "job-0123456789ab-stt", JobID: "job-0123456789ab", Engine: "stt", Status: metastore.JobComplete}); err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"series": []any{map[string]any{"startTimeMs": 200, "stopTimeMs": 1200,
		"tags": []any{map[string]any{"key": "utterance"}}, "words": []any{map[string]any{"word": "over the wire", "bestPath": true}}}}})
	if err := e.meta.PutResult(ctx, metastore.Result{JobID: "job-0123456789ab", Engine: "stt", ChunkUUID: "c", StartMs: 200, EndMs: 1200, Content: doc}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ path, ctype, cache, want string }{
		{"master.m3u8", "application/vnd.apple.mpegurl", "public, max-age=5", `SUBTITLES="subs"`},
		{"subs/360p/index.m3u8", "application/vnd.apple.mpegurl", "public, max-age=30", "0.vtt\n#EXT-X-ENDLIST"},
		{"subs/360p/0.vtt", "text/vtt; charset=utf-8", "public, max-age=30", "00:00:00.200 --> 00:00:01.200\nover the wire"},
	} {
		rec := e.do("GET", "/hls/"+id+"/"+c.path, nil, "Accept-Encoding", "gzip", "Origin", "https://player.example")
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", c.path, rec.Code, rec.Body)
		}
		h := rec.Header()
		if h.Get("Content-Type") != c.ctype || h.Get("Cache-Control") != c.cache || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: headers %v", c.path, h)
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(zr)
		if !strings.Contains(string(body), c.want) {
			t.Errorf("%s lacks %q:\n%s", c.path, c.want, body)
		}
		again := e.do("GET", "/hls/"+id+"/"+c.path, nil, "Accept-Encoding", "gzip", "If-None-Match", h.Get("ETag"))
		if again.Code != 304 {
			t.Errorf("%s revalidated with its ETag: %d", c.path, again.Code)
		}
	}
	if rec := e.do("GET", "/hls/"+id+"/subs/360p/7.vtt", nil); rec.Code != 404 || !strings.Contains(rec.Body.String(), "no media segment 7") {
		t.Errorf("missing subtitles segment: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("HEAD", "/hls/"+id+"/subs/360p/0.vtt", nil); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}
