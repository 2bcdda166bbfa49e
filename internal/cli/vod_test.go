package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/internal/vod"
)

// vodServer is the real HTTP API over real stores and an in-memory bus,
// with a real VOD worker consuming the jobs it announces (the wiring of
// `weir serve`, without Kafka).
type vodServer struct {
	*httptest.Server
	meta metastore.Store
}

func startVODServer(t *testing.T) *vodServer {
	t.Helper()
	dir := t.TempDir()
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := vod.NewWorker(vod.Config{
		Meta: meta, Objects: objects, Logger: discardLogger(),
		Preset: "ultrafast", SegmentDuration: time.Second, WorkDir: filepath.Join(dir, "work"),
		PollInterval: 50 * time.Millisecond, ProgressInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &vodServer{meta: meta}
	b := bustest.New()
	srv, err := api.New(api.Config{Meta: meta, Objects: objects, Bus: b, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	worked := make(chan error, 1)
	go func() { worked <- w.Run(ctx, b) }()
	s.Server = httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		s.Close()
		stop()
		<-worked
		meta.Close()
	})
	return s
}

func TestVodUploadWaitFollowsTheTitleToItsPlaybackURL(t *testing.T) {
	srv := startVODServer(t)
	clip := makeClip(t, "episode.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac")
	ctx := testContext(t)
	res := runWeir(ctx, "vod", "upload", clip, "--wait", "--title", "Episode 1", "--server", srv.URL, "--interval", "100ms")
	if res.err != nil {
		t.Fatalf("upload --wait: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	m := regexp.MustCompile(`Uploaded episode\.mp4 as (vod-\S+) \(status uploaded\)`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("no upload line in:\n%s", res.stdout)
	}
	id := m[1]
	// Every status appears once, in lifecycle order, with a time.
	order := regexp.MustCompile(`(?s)\[\d\d:\d\d:\d\d\] ● uploaded .*\[\d\d:\d\d:\d\d\] ● processing .*\[\d\d:\d\d:\d\d\] ● transcoding .*\[\d\d:\d\d:\d\d\] ● ready +— 240p in \d+\.\d s`)
	if !order.MatchString(res.stdout) {
		t.Errorf("status lines missing or out of order:\n%s", res.stdout)
	}
	if strings.Count(res.stdout, "● transcoding") != 1 {
		t.Errorf("a status was printed more than once:\n%s", res.stdout)
	}
	playback := srv.URL + "/hls/" + id + "/master.m3u8"
	if !strings.Contains(res.stdout, "Playback URL (HLS master playlist):\n  "+playback+"\n") {
		t.Errorf("no playback URL %s in:\n%s", playback, res.stdout)
	}
	// stderr is not a terminal here: plain progress lines up to 100 %.
	if !strings.Contains(res.stderr, "Uploading episode.mp4 (") || !regexp.MustCompile(`100 %  \d+\.\d KiB / \d+\.\d KiB\n`).MatchString(res.stderr) {
		t.Errorf("progress lines:\n%s", res.stderr)
	}
	resp, err := http.Get(playback)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("#EXT-X-STREAM-INF:")) {
		t.Errorf("playback URL answers %s:\n%s", resp.Status, body)
	}
	st, _ := srv.meta.GetStream(ctx, id)
	if st.Title != "Episode 1" {
		t.Errorf("title %q, want the --title", st.Title)
	}

	// list and show, as a table and as JSON.
	res = runWeir(ctx, "vod", "list", "--server", srv.URL)
	if res.err != nil || !regexp.MustCompile(`(?m)^ID +STATUS +PROGRESS +CREATED +TITLE\n`+regexp.QuoteMeta(id)+` +ready +100\.0 % +\S+ \S+ +Episode 1$`).MatchString(res.stdout) {
		t.Errorf("vod list: %v\n%s", res.err, res.stdout)
	}
	res = runWeir(ctx, "vod", "list", "--json", "--status", "ready", "--server", srv.URL)
	var listed struct{ Items []map[string]any }
	err = json.Unmarshal([]byte(res.stdout), &listed)
	if items := listed.Items; err != nil || len(items) != 1 || items[0]["stream_id"] != id {
		t.Errorf("vod list --json: %v %v\n%s", res.err, err, res.stdout)
	}
	res = runWeir(ctx, "vod", "list", "--status", "failed", "--server", srv.URL)
	if res.err != nil || res.stdout != "No VOD titles.\n" {
		t.Errorf("vod list --status failed: %v %q", res.err, res.stdout)
	}
	res = runWeir(ctx, "vod", "show", id, "--server", srv.URL)
	for _, want := range []string{`Status +ready`, `Variants +240p`, `Manifest +` + regexp.QuoteMeta(playback), `Transcoding +\d{4}-\d\d-\d\d `, `Ready +\d{4}-`} {
		if !regexp.MustCompile(`(?m)^` + want + `.*$`).MatchString(res.stdout) {
			t.Errorf("vod show lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runWeir(ctx, "vod", "show", id, "--json", "--server", srv.URL)
	var md map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &md); err != nil || md["status"] != "ready" || md["manifest_url"] != playback {
		t.Errorf("vod show --json: %v\n%s", err, res.stdout)
	}
}

func TestVodUploadWaitExitsNonZeroWhenTheTitleFails(t *testing.T) {
	srv := startVODServer(t)
	notes := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notes, []byte("not a video"), 0o644)
	res := runWeir(testContext(t), "vod", "upload", notes, "--wait", "--server", srv.URL, "--interval", "100ms")
	if res.exitCode() == 0 {
		t.Fatalf("exit code 0 for a failed title\n%s", res.stdout)
	}
	if !strings.Contains(res.err.Error(), "failed: the file is not audio or video") || !strings.Contains(res.stdout, "● failed") {
		t.Errorf("error %v\nstdout:\n%s", res.err, res.stdout)
	}
}

// The upload is streamed: an exact Content-Length, a well-formed multipart
// body carrying the file byte for byte, the token when one is given.
func TestVodUploadStreamsAWellFormedMultipartBody(t *testing.T) {
	file := filepath.Join(t.TempDir(), "big.bin")
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	os.WriteFile(file, data, 0o644)
	var got struct {
		contentLength, read int64
		title, name, auth   string
		file                []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.contentLength, got.auth = r.ContentLength, r.Header.Get("Authorization")
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(part)
			got.read += int64(len(b))
			switch part.FormName() {
			case "title":
				got.title = string(b)
			case "file":
				got.name, got.file = part.FileName(), b
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"stream_id":"vod-1","status":"uploaded"}`))
	}))
	defer srv.Close()
	res := runWeir(testContext(t), "vod", "upload", file, "--title", `A "quoted" title`, "--server", srv.URL, "--api-token", "s3cret")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !bytes.Equal(got.file, data) || got.name != "big.bin" || got.title != `A "quoted" title` {
		t.Errorf("server got file %d bytes named %q, title %q", len(got.file), got.name, got.title)
	}
	if got.contentLength <= int64(len(data)) || got.auth != "Bearer s3cret" {
		t.Errorf("content length %d, authorization %q", got.contentLength, got.auth)
	}
	if !strings.Contains(res.stdout, "Uploaded big.bin as vod-1 (status uploaded)\nFollow it with: weir vod show vod-1\n") {
		t.Errorf("stdout:\n%s", res.stdout)
	}
	var pcts []string
	for _, m := range regexp.MustCompile(`(?m)^ +(\d+) %`).FindAllStringSubmatch(res.stderr, -1) {
		pcts = append(pcts, m[1])
	}
	if strings.Join(pcts, ",") != "10,20,30,40,50,60,70,80,90,100" {
		t.Errorf("progress steps %v in:\n%s", pcts, res.stderr)
	}
}

func TestVodCommandsExplainServerErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"title":"Unauthorized","status":401,"detail":"missing Authorization header"}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"title":"Not Found","status":404,"detail":"vod vod-nope not found"}`))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "a.mp4")
	os.WriteFile(file, []byte("x"), 0o644)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"vod", "show", "vod-nope", "--server", srv.URL}, "GET /vod/vod-nope/metadata: 404 Not Found: vod vod-nope not found"},
		{[]string{"vod", "upload", file, "--server", srv.URL}, "401 Unauthorized: missing Authorization header"},
		{[]string{"vod", "cancel", "vod-nope", "--server", srv.URL}, "POST /vod/vod-nope/cancel: 401 Unauthorized"},
		{[]string{"vod", "list", "--server", down.URL}, "cannot reach weir at " + down.URL},
		{[]string{"vod", "list", "--server", "ftp://x"}, "want an http(s) URL"},
		{[]string{"vod", "upload", filepath.Join(t.TempDir(), "missing.mp4"), "--server", srv.URL}, "no such file"},
	}
	for _, tt := range tests {
		res := runWeir(testContext(t), tt.args...)
		if res.err == nil || !strings.Contains(res.err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to contain %q", tt.args, res.err, tt.want)
		}
	}
}

// Cancel fails a title no worker has finished; a second cancel is refused.
func TestVodCancelFailsAnUnfinishedTitle(t *testing.T) {
	dir := t.TempDir()
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "weir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	objects, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Meta: meta, Objects: objects, Bus: bustest.New(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	resp, err := http.Post(hs.URL+"/vod/upload", "application/json", strings.NewReader(`{"url":"https://example.com/a.mp4"}`))
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		StreamID string `json:"stream_id"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()

	res := runWeir(testContext(t), "vod", "cancel", up.StreamID, "--server", hs.URL)
	if res.err != nil || !strings.Contains(res.stdout, "cancelled (status failed)") {
		t.Fatalf("cancel: %v\n%s", res.err, res.stdout)
	}
	st, _ := meta.GetStream(context.Background(), up.StreamID)
	if st.Status != metastore.StatusFailed || st.Error != "cancelled" {
		t.Fatalf("stream after cancel: %s %q", st.Status, st.Error)
	}
	res = runWeir(testContext(t), "vod", "cancel", up.StreamID, "--server", hs.URL)
	if res.err == nil || !strings.Contains(res.err.Error(), "409") {
		t.Fatalf("second cancel: %v", res.err)
	}
}
