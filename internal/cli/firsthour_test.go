package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/server"
	"github.com/weir-media/weir/internal/vod"
)

// Tests for what a new user meets in the first hour: help text, --version,
// URL imports, JSON output, a failing pulled source, upload progress, the
// Makefile and the README's tour.

func TestClientCommandsShowServerURLInHelp(t *testing.T) {
	var withServer [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Flags().Lookup("server") != nil {
			withServer = append(withServer, path)
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(NewRoot(), nil)
	if len(withServer) < 8 {
		t.Fatalf("only %d commands take --server: %v", len(withServer), withServer)
	}
	usage := regexp.MustCompile(`(?m)^\s+--server (\S+)\s`)
	for _, path := range withServer {
		res := runWeir(testContext(t), append(path, "--help")...)
		m := usage.FindStringSubmatch(res.stdout)
		if res.err != nil || m == nil || m[1] != "URL" {
			t.Errorf("weir %s --help: --server placeholder %q (want URL), err %v:\n%s", strings.Join(path, " "), m, res.err, res.stdout)
		}
	}
}

func TestVersionFlagPrintsTheVersion(t *testing.T) {
	flag := runWeir(testContext(t), "--version")
	cmd := runWeir(testContext(t), "version")
	if flag.err != nil || cmd.err != nil {
		t.Fatalf("--version: %v, version: %v", flag.err, cmd.err)
	}
	if !regexp.MustCompile(`^weir \S+ .*go1\.\d+.* \w+/\w+\n$`).MatchString(flag.stdout) || flag.stdout != cmd.stdout {
		t.Errorf("weir --version printed %q; weir version printed %q", flag.stdout, cmd.stdout)
	}
}

func TestVodUploadImportsAURL(t *testing.T) {
	srv := startVODServer(t)
	clip := makeClip(t, "lecture.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac")
	origin := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(clip))))
	t.Cleanup(origin.Close)
	src := origin.URL + "/lecture.mp4"

	res := runWeir(testContext(t), "vod", "upload", src, "--wait", "--server", srv.URL, "--interval", "100ms")
	if res.err != nil {
		t.Fatalf("vod upload URL --wait: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	m := regexp.MustCompile(`Importing ` + regexp.QuoteMeta(src) + ` as (vod-\S+) \(status uploaded\)`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("no import line in:\n%s", res.stdout)
	}
	st, err := srv.meta.GetStream(context.Background(), m[1])
	if err != nil || st.Status != metastore.StatusReady || st.SourceURL != src {
		t.Errorf("imported title %+v (%v): want ready from %s", st, err, src)
	}
	if strings.Contains(res.stderr, "Uploading") {
		t.Errorf("a URL import showed an upload bar:\n%s", res.stderr)
	}
}

func TestListJSONIsTheServersAnswer(t *testing.T) {
	hs, meta, _ := startStreamsServer(t)
	ctx := context.Background()
	for _, st := range []metastore.Stream{
		{ID: "live-00000000000a", Kind: metastore.KindLive, Title: "One", PublishKey: "k1"},
		{ID: "live-00000000000b", Kind: metastore.KindLive, Title: "Two", PublishKey: "k2"},
		{ID: "vod-00000000000a", Kind: metastore.KindVOD, Title: "Three", Status: metastore.StatusUploaded},
		{ID: "vod-00000000000b", Kind: metastore.KindVOD, Title: "Four", Status: metastore.StatusUploaded},
	} {
		if _, err := meta.CreateStream(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ cmd, path, kind string }{
		{"streams", "/streams", "live"},
		{"vod", "/vod", "vod"},
	} {
		res := runWeir(testContext(t), tc.cmd, "list", "--json", "--limit", "1", "--server", hs.URL)
		var got struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || res.err != nil {
			t.Fatalf("%s list --json: %v %v\n%s", tc.cmd, res.err, err, res.stdout)
		}
		// The same page, straight from the server.
		resp, err := http.Get(hs.URL + tc.path + "?limit=1")
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		json.NewDecoder(resp.Body).Decode(&want)
		resp.Body.Close()
		if len(got.Items) != 1 || got.NextCursor == "" || got.NextCursor != want.NextCursor {
			t.Fatalf("%s list --json --limit 1: %d items, next_cursor %q (server: %q)\n%s", tc.cmd, len(got.Items), got.NextCursor, want.NextCursor, res.stdout)
		}
		for _, key := range []string{"kind", "updated_at", "created_at", "stream_id", "status"} {
			if got.Items[0][key] == nil || fmt.Sprint(got.Items[0][key]) != fmt.Sprint(want.Items[0][key]) {
				t.Errorf("%s list --json: %s = %v, the server said %v", tc.cmd, key, got.Items[0][key], want.Items[0][key])
			}
		}
		if got.Items[0]["kind"] != tc.kind {
			t.Errorf("%s list --json: kind %v", tc.cmd, got.Items[0]["kind"])
		}
		// Without a limit the last page comes back without a cursor.
		res = runWeir(testContext(t), tc.cmd, "list", "--json", "--server", hs.URL)
		if strings.Contains(res.stdout, "next_cursor") || strings.Count(res.stdout, `"stream_id"`) != 2 {
			t.Errorf("%s list --json (all):\n%s", tc.cmd, res.stdout)
		}
	}
}

// startWeirServe runs a whole weir serve in the test, as a user would.
func startWeirServe(t *testing.T, cfg server.Config) string {
	t.Helper()
	cfg.Data = t.TempDir()
	cfg.HTTP, cfg.KafkaListen, cfg.RTMP, cfg.SRT = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	srv, err := server.Start(context.Background(), cfg, discardLogger())
	if err != nil {
		t.Fatalf("starting weir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("weir Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("weir did not stop within 60s")
		}
	})
	return "http://" + srv.HTTPAddr()
}

func TestStreamsStartReportsASourceThatFails(t *testing.T) {
	base := startWeirServe(t, server.Config{AllowPrivateSources: true})
	gone := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(gone.Close)

	res := runWeir(testContext(t), "streams", "start", "--title", "Gone", "--source-url", gone.URL+"/live.ts", "--server", base)
	if res.exitCode() == 0 || res.err == nil {
		t.Fatalf("streams start of a missing source exited 0:\n%s", res.stdout)
	}
	if !regexp.MustCompile(`live stream live-\w+ failed: .*404 Not Found`).MatchString(res.err.Error()) {
		t.Errorf("error %q does not carry the server's reason", res.err)
	}
	if strings.Contains(res.stdout, "created") {
		t.Errorf("a failed source was reported created:\n%s", res.stdout)
	}

	// A source that works is reported as it is.
	clip := makeTSClip(t)
	works := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp2t")
		http.ServeFile(w, r, clip)
	}))
	t.Cleanup(works.Close)
	res = runWeir(testContext(t), "streams", "start", "--source-url", works.URL+"/live.ts", "--server", base)
	if res.err != nil || !regexp.MustCompile(`Live stream live-\w+ created \(status (live|vod)\)`).MatchString(res.stdout) {
		t.Errorf("streams start of a working source: %v\n%s", res.err, res.stdout)
	}
}

func TestUploadProgressShowsSpeedAndTimeLeft(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	b := newVodProgressBar(&out, "big.mp4", 100<<20)
	b.now = func() time.Time { return clock }
	b.started = clock
	for range 10 {
		clock = clock.Add(time.Second)
		b.add(10 << 20) // 10 MiB a second
	}
	b.finish(true)
	for _, want := range []string{
		"Uploading big.mp4 (100.0 MiB)\n",
		"   10 %  10.0 MiB / 100.0 MiB  10.0 MiB/s, 0:09 left\n",
		"   50 %  50.0 MiB / 100.0 MiB  10.0 MiB/s, 0:05 left\n",
		"  100 %  100.0 MiB / 100.0 MiB\n",
		"  sent 100.0 MiB in 10.0 s, 10.0 MiB/s\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, out.String())
		}
	}
	if got := vodClock(3*time.Hour + 4*time.Minute + 5*time.Second); got != "3:04:05" {
		t.Errorf("vodClock = %q", got)
	}
}

// The API is scripted here so that the transcoding → playable → ready
// order is certain; the real server's progressive publishing is the VOD
// package's business (its pipeline tests).
func TestVodUploadWaitSaysWhenTheTitleBecomesPlayable(t *testing.T) {
	var polls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := polls.Load()
		switch {
		case r.URL.Path == "/vod/vod-000000000001/metadata":
			n = polls.Add(1)
			status := map[bool]string{true: "transcoding", false: "ready"}[n < 6]
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"stream_id":"vod-000000000001","status":%q,"progress":%d,"variants_generated":["720p","360p"]}`, status, n*15)
		case r.URL.Path == "/hls/vod-000000000001/master.m3u8" && n >= 3:
			w.Write([]byte("#EXTM3U\n"))
		case r.URL.Path == "/vod/vod-000000000001/manifest":
			fmt.Fprintf(w, `{"url":"%s/hls/vod-000000000001/master.m3u8"}`, "http://"+r.Host)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(api.Close)
	var out, errw strings.Builder
	c := &vodClient{base: api.URL, http: &http.Client{}}
	if err := waitForVOD(testContext(t), c, "vod-000000000001", 10*time.Millisecond, &out, &errw); err != nil {
		t.Fatalf("waitForVOD: %v\n%s", err, out.String())
	}
	order := regexp.MustCompile(`(?s)● transcoding .*● playable +— ` + regexp.QuoteMeta(api.URL) + `/hls/vod-000000000001/master\.m3u8 \(the rest of the ladder is still encoding\)\n.*● ready `)
	if !order.MatchString(out.String()) || strings.Count(out.String(), "● playable") != 1 {
		t.Errorf("no single playable line between transcoding and ready:\n%s", out.String())
	}
}

// repoRoot is the repository's top directory (tests run in their package's).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Makefile")); err != nil {
		t.Fatalf("no Makefile at %s: %v", root, err)
	}
	return root
}

func TestMakeRunPassesARGSToServe(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed")
	}
	// -n prints what make would run without running it.
	out, err := exec.Command("make", "-n", "-C", repoRoot(t), "run", `ARGS=--allow-private-sources --log-level debug`).CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^exec \./bin/weir serve --allow-private-sources --log-level debug$`).Match(out) {
		t.Errorf("make run does not hand ARGS to weir serve:\n%s", out)
	}
}

func TestReadmeTourWorksOnLinux(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	// macOS's open(1) is not on Linux.
	if m := regexp.MustCompile(`(?m)^\s*open \S+`).FindString(text); m != "" {
		t.Errorf("the README runs %q; use xdg-open or the bare URL", m)
	}
	// The tour's clip is tall enough for more than one rung of the
	// default ladder.
	m := regexp.MustCompile(`testsrc2=size=(\d+)x(\d+)\S* .*clip\.ts`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the README's tour makes no clip.ts from testsrc2")
	}
	height, _ := strconv.Atoi(m[2])
	ladder, err := vod.ParseLadder(defaultLadder(t))
	if err != nil {
		t.Fatal(err)
	}
	rungs := 0
	for _, r := range ladder {
		if r.Height <= height {
			rungs++
		}
	}
	if rungs < 2 {
		t.Errorf("the tour's %sp clip gets %d rung(s) of the default ladder; want at least 2", m[2], rungs)
	}
	// Every graph the README validates is shipped, and valid.
	graphs := regexp.MustCompile(`weir graph validate (\S+)`).FindAllStringSubmatch(text, -1)
	if len(graphs) == 0 {
		t.Fatal("the README validates no graph")
	}
	for _, g := range graphs {
		path := strings.Trim(g[1], "`")
		stdout, stderr, code := runGraphCmd(t, "", "validate", filepath.Join(root, path))
		if code != 0 {
			t.Errorf("weir graph validate %s: exit %d\n%s%s", path, code, stdout, stderr)
		}
	}
}

// defaultLadder is weir serve's --vod-ladder default.
func defaultLadder(t *testing.T) string {
	t.Helper()
	f := newServeCmd().Flags().Lookup("vod-ladder")
	if f == nil {
		t.Fatal("weir serve has no --vod-ladder")
	}
	return f.DefValue
}
