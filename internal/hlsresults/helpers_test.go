package hlsresults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
)

// fixture is a metadata store and an object store with a Service over
// them whose clock the test moves.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	meta    metastore.Store
	objects objstore.Store
	svc     *Service

	mu  sync.Mutex
	now time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	objects, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: context.Background(), meta: meta, objects: objects,
		now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	f.svc = &Service{Meta: meta, Objects: objects, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CacheTTL: time.Second, LiveDelay: 10 * time.Second, Now: f.clock}
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// advance moves the clock past the cache TTL (and by d).
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d + 2*time.Second)
	f.mu.Unlock()
}

func (f *fixture) put(key string, data []byte) {
	f.t.Helper()
	if _, err := f.objects.Put(f.ctx, key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
		f.t.Fatal(err)
	}
}

// get serves a path and fails the test on an error.
func (f *fixture) get(id, path string) *Response {
	f.t.Helper()
	res, err := f.svc.Serve(f.ctx, id, path)
	if err != nil {
		f.t.Fatalf("GET %s/%s: %v", id, path, err)
	}
	if res == nil {
		f.t.Fatalf("GET %s/%s: not generated", id, path)
	}
	return res
}

// media is one rendition ffmpeg encoded, as the packagers store it.
type media struct {
	dir   string
	init  []byte // fMP4 only
	segs  [][]byte
	durs  []time.Duration
	ext   string
	video []time.Duration // ffprobe's first video presentation time of each segment
}

// encode makes a clip of secs seconds (a test pattern and a tone) cut
// into segments of segSecs seconds by ffmpeg's HLS muxer, with key frames
// forced at every segment start as weir's transcoder does, in MPEG-TS or
// fMP4, its timestamps starting at offset.
func encode(t testing.TB, format string, secs, segSecs int, offset time.Duration) media {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	m := media{dir: dir, ext: "ts"}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(secs), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-force_key_frames", "expr:gte(t,n_forced*" + strconv.Itoa(segSecs) + ")", "-c:a", "aac", "-b:a", "64k"}
	if offset > 0 {
		args = append(args, "-output_ts_offset", strconv.FormatFloat(offset.Seconds(), 'f', -1, 64))
	}
	args = append(args, "-f", "hls", "-hls_time", strconv.Itoa(segSecs), "-hls_list_size", "0", "-hls_playlist_type", "event")
	if format == "fmp4" {
		m.ext = "m4s"
		args = append(args, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4")
	}
	args = append(args, "-hls_segment_filename", filepath.Join(dir, "seg_%05d."+m.ext), filepath.Join(dir, "ff.m3u8"))
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	list, err := hls.ParseMediaPlaylist(readFile(t, filepath.Join(dir, "ff.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	if format == "fmp4" {
		m.init = readFile(t, filepath.Join(dir, "init.mp4"))
	}
	for _, s := range list.Segments {
		data := readFile(t, filepath.Join(dir, s.URI))
		m.segs = append(m.segs, data)
		m.durs = append(m.durs, s.Duration)
		m.video = append(m.video, probeVideoStart(t, append(bytes.Clone(m.init), data...), format == "fmp4"))
	}
	return m
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// probeVideoStart has ffprobe read the first video presentation time. In
// fMP4 it is read without the edit lists of the init section, as hls.js
// reads fragments (ffmpeg's muxer shifts the tracks by the AAC encoder's
// priming there, which the fragments' own times do not include).
func probeVideoStart(t testing.TB, data []byte, fmp4 bool) time.Duration {
	t.Helper()
	p := filepath.Join(t.TempDir(), "seg")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-v", "error", "-select_streams", "v", "-show_entries", "stream=start_time", "-of", "csv=p=0", p}
	if fmp4 {
		args = append([]string{"-ignore_editlist", "1"}, args...)
	}
	out, err := exec.Command("ffprobe", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(out), "\n")[0]), 64)
	if err != nil {
		t.Fatalf("ffprobe start time %q: %v", out, err)
	}
	return time.Duration(sec * float64(time.Second)).Round(time.Microsecond)
}

// addTitle stores m as the only rendition (360p) of a ready VOD title, as
// the VOD publisher does: segments, rows with cumulative starts, the
// rendition's EVENT playlist with ENDLIST and a master.
func (f *fixture) addTitle(id string, m media) {
	f.t.Helper()
	if _, err := f.meta.CreateStream(f.ctx, metastore.Stream{ID: id, Kind: metastore.KindVOD, Status: metastore.StatusReady}); err != nil {
		f.t.Fatal(err)
	}
	pl := hls.MediaPlaylist{Type: hls.Event, TargetDuration: 2, IndependentSegments: true, Ended: true}
	if m.init != nil {
		f.put(id+"/360p/init.mp4", m.init)
		pl.Map = &hls.Map{URI: "init.mp4"}
	}
	var start time.Duration
	for i, data := range m.segs {
		name := fmt.Sprintf("seg_%05d.%s", i, m.ext)
		key := id + "/360p/" + name
		f.put(key, data)
		row := metastore.Segment{StreamID: id, Rendition: "360p", ChunkIndex: int64(i), Sequence: int64(i), Key: key,
			StartUS: start.Microseconds(), DurationUS: m.durs[i].Microseconds(), Size: int64(len(data)), CreatedAt: f.clock()}
		if err := f.meta.UpsertSegment(f.ctx, row); err != nil {
			f.t.Fatal(err)
		}
		pl.Segments = append(pl.Segments, hls.Segment{URI: name, Duration: m.durs[i]})
		start += m.durs[i]
	}
	f.putPlaylist(id+"/360p/index.m3u8", &pl)
	master := hls.MasterPlaylist{Version: 6, IndependentSegments: true, Variants: []hls.Variant{
		{URI: "360p/index.m3u8", Bandwidth: 900_000, Codecs: []string{"avc1.4d400d", "mp4a.40.2"}, Width: 320, Height: 180, Name: "360p"}}}
	f.putPlaylist(id+"/master.m3u8", &master)
}

type encoder interface{ Encode() ([]byte, error) }

func (f *fixture) putPlaylist(key string, pl encoder) {
	f.t.Helper()
	data, err := pl.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(key, data)
}

// addJob records a job on a stream with one task per engine, all with
// status st.
func (f *fixture) addJob(id, streamID string, st metastore.JobStatus, engines ...string) {
	f.t.Helper()
	if _, err := f.meta.CreateJob(f.ctx, metastore.Job{ID: id, Kind: "vod", StreamID: streamID, Status: st}); err != nil {
		f.t.Fatal(err)
	}
	for _, e := range engines {
		f.setTask(id, e, st)
	}
}

func (f *fixture) setTask(jobID, engine string, st metastore.JobStatus) {
	f.t.Helper()
	if err := f.meta.UpsertTask(f.ctx, metastore.Task{ID: jobID + "-" + engine, JobID: jobID, Name: engine, Engine: engine, Status: st}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) finishJob(jobID string) {
	f.t.Helper()
	j, err := f.meta.GetJob(f.ctx, jobID)
	if err != nil {
		f.t.Fatal(err)
	}
	tasks, err := f.meta.ListTasks(f.ctx, jobID)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, task := range tasks {
		f.setTask(jobID, task.Engine, metastore.JobComplete)
	}
	j.Status = metastore.JobComplete
	if _, err := f.meta.UpdateJob(f.ctx, j); err != nil {
		f.t.Fatal(err)
	}
}

// utter records an stt result: one utterance, as weir's stt writes it.
func (f *fixture) utter(jobID string, startMs, endMs int64, text string) {
	f.t.Helper()
	doc := map[string]any{"series": []any{
		map[string]any{"startTimeMs": startMs, "stopTimeMs": endMs, "tags": []any{map[string]any{"key": "utterance", "value": "u"}},
			"words": []any{map[string]any{"word": text, "confidence": 0.9, "bestPath": true}}},
	}}
	f.result(jobID, "stt", startMs, endMs, doc)
}

func (f *fixture) result(jobID, engine string, startMs, endMs int64, doc any) {
	f.t.Helper()
	content, err := json.Marshal(doc)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.meta.PutResult(f.ctx, metastore.Result{JobID: jobID, Engine: engine, TaskID: jobID + "-" + engine,
		ChunkUUID: fmt.Sprintf("%s-%d", engine, startMs), StartMs: startMs, EndMs: endMs, OutputType: "transcript", Content: content}); err != nil {
		f.t.Fatal(err)
	}
}

// cue is a WebVTT cue as a segment carries it.
type cue struct {
	start, end time.Duration
	text       string
}

var (
	vttMap    = regexp.MustCompile(`^WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:00:00:00\.000\n`)
	vttTiming = regexp.MustCompile(`(?m)^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)\n(.*)$`)
)

// parseVTT reads a subtitles segment: its MPEGTS and its cues.
func parseVTT(t *testing.T, body []byte) (int64, []cue) {
	t.Helper()
	m := vttMap.FindSubmatch(body)
	if m == nil {
		t.Fatalf("segment does not start with WEBVTT and an X-TIMESTAMP-MAP:\n%s", body)
	}
	mpegts, _ := strconv.ParseInt(string(m[1]), 10, 64)
	var cues []cue
	for _, c := range vttTiming.FindAllSubmatch(body, -1) {
		at := func(i int) time.Duration {
			n := func(j int) time.Duration { v, _ := strconv.Atoi(string(c[j])); return time.Duration(v) }
			return n(i)*time.Hour + n(i+1)*time.Minute + n(i+2)*time.Second + n(i+3)*time.Millisecond
		}
		cues = append(cues, cue{at(1), at(5), string(c[9])})
	}
	return mpegts, cues
}

// serveErr serves a path and returns its error.
func (f *fixture) serveErr(id, path string) error {
	res, err := f.svc.Serve(f.ctx, id, path)
	if err == nil && res == nil {
		return errors.New("not generated")
	}
	return err
}
