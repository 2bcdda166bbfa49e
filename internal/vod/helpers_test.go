package vod

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

func needFFmpeg(t testing.TB) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
}

// makeClip renders a clip with ffmpeg lavfi sources into dir.
func makeClip(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	needFFmpeg(t)
	out := filepath.Join(dir, name)
	full := append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	full = append(full, out)
	if b, err := exec.Command("ffmpeg", full...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", name, err, b)
	}
	return out
}

// smallClip is a 320x240 25 fps clip with a tone.
func smallClip(t testing.TB, seconds string) string {
	return makeClip(t, t.TempDir(), "small.mp4",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", seconds, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart")
}

type env struct {
	meta    metastore.Store
	objects objstore.Store
	dir     string
}

func newEnv(t testing.TB) *env {
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
	return &env{meta: meta, objects: objects, dir: dir}
}

// testConfig is a fast configuration for tests on a small machine.
func (e *env) config(t testing.TB) Config {
	return Config{
		Meta:             e.meta,
		Objects:          e.objects,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Preset:           "ultrafast",
		SegmentDuration:  time.Second,
		WorkDir:          filepath.Join(e.dir, "work"),
		PollInterval:     50 * time.Millisecond,
		ProgressInterval: 100 * time.Millisecond,
	}
}

func (e *env) worker(t testing.TB, cfg Config) *Worker {
	t.Helper()
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// upload stores file as an uploaded VOD the way the API does and returns
// the stream id and the job message.
func (e *env) upload(t testing.TB, file string) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	id := "vod-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	id = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, id)
	if len(id) > 60 {
		id = id[:60]
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key := id + "/source/" + path.Base(file)
	if _, err := e.objects.Put(ctx, key, f, -1, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.meta.CreateStream(ctx, metastore.Stream{
		ID: id, Kind: metastore.KindVOD, Title: path.Base(file), Status: metastore.StatusUploaded, SourceKey: key,
		Details: json.RawMessage(`{"source_filename":"` + path.Base(file) + `"}`),
	}); err != nil {
		t.Fatal(err)
	}
	job, _ := json.Marshal(protocol.VODJob{StreamID: id, SourceKey: key, SubmittedAt: time.Now()})
	return id, job
}

func (e *env) stream(t testing.TB, id string) metastore.Stream {
	t.Helper()
	st, err := e.meta.GetStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *env) object(t testing.TB, key string) []byte {
	t.Helper()
	rc, _, err := e.objects.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) exists(key string) bool {
	_, err := e.objects.Stat(context.Background(), key)
	return err == nil
}

// serve exposes the object store over HTTP the way weir's /hls/ route
// does, for players.
func (e *env) serve(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		rc, info, err := e.objects.Get(r.Context(), key)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", info.ContentType)
		http.ServeContent(w, r, path.Base(key), info.ModTime, readSeeker(t, rc))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func readSeeker(t testing.TB, r io.Reader) io.ReadSeeker {
	b, err := io.ReadAll(r)
	if err != nil {
		t.Error(err)
	}
	return bytes.NewReader(b)
}

// decodeMaster parses a master playlist strictly.
func decodeMaster(t testing.TB, data []byte) *m3u8.MasterPlaylist {
	t.Helper()
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(data), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("master playlist: type %d, %v\n%s", typ, err, data)
	}
	return pl.(*m3u8.MasterPlaylist)
}

// decodeMediaPlaylist parses a media playlist strictly.
func decodeMediaPlaylist(t testing.TB, data []byte) *m3u8.MediaPlaylist {
	t.Helper()
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(data), true)
	if err != nil || typ != m3u8.MEDIA {
		t.Fatalf("media playlist: type %d, %v\n%s", typ, err, data)
	}
	return pl.(*m3u8.MediaPlaylist)
}

// ffprobeJSON runs ffprobe with args and decodes its JSON output into v.
func ffprobeJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error", "-of", "json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v", args, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatal(err)
	}
}
