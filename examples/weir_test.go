package examples_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/testenv"
)

// This file runs weir itself for the end-to-end tests: the weir binary,
// built once per test run, started as `weir serve` on free ports with a
// data dir of its own, and driven with its CLI and REST API.

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveWeirBinary()
	os.Exit(code)
}

// weirServer is a running `weir serve` with every role.
type weirServer struct {
	bin     string
	data    string // its --data dir
	url     string // http://host:port of its API
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startWeir starts `weir serve` in a temporary data dir on free ports,
// with extra flags, and waits until GET /ready answers 200. It is stopped
// when the test ends, and its log is shown when the test failed.
func startWeir(t *testing.T, extra ...string) *weirServer {
	t.Helper()
	dir := t.TempDir()
	httpAddr := testenv.FreeAddr(t)
	s := &weirServer{bin: testenv.WeirBinary(t), data: filepath.Join(dir, "data"), url: "http://" + httpAddr,
		logPath: filepath.Join(dir, "weir.log"), exited: make(chan struct{})}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(s.bin, "serve", "--data", s.data, "--http", httpAddr,
		"--kafka-listen", testenv.FreeAddr(t), "--rtmp", testenv.FreeAddr(t), "--srt", testenv.FreeAddr(t),
		"--vod-preset", "ultrafast", "--log-level", "info")
	s.cmd.Args = append(s.cmd.Args, extra...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start weir serve: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("weir serve log (last 60 lines):\n%s", lastLines(s.logPath, 60))
		}
	})
	s.waitReady(t)
	return s
}

func (s *weirServer) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("weir serve exited before it was ready:\n%s", lastLines(s.logPath, 40))
		default:
		}
		resp, err := http.Get(s.url + "/ready")
		if err == nil {
			resp.Body.Close()
			// The kcat.conf in our own data dir tells that the answer came
			// from this process, not from one that took the port first.
			if resp.StatusCode == http.StatusOK && fileExists(s.kcatConf()) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir serve not ready within 60 s (last: %v):\n%s", err, lastLines(s.logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends weir with SIGTERM, then SIGKILL if it lingers.
func (s *weirServer) stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("weir serve did not stop within 20 s of SIGTERM; killing it")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// kcatConf is the librdkafka configuration weir writes for its embedded
// broker's superuser.
func (s *weirServer) kcatConf() string { return filepath.Join(s.data, "kafka", "kcat.conf") }

// cli runs `weir ARGS...` and returns its stdout, its stderr and whether it
// exited 0; a run that cannot start or outlives ctx fails the test.
func (s *weirServer) cli(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, ok bool) {
	t.Helper()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("weir %s: not done in time: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), ctx.Err(), out.String(), errb.String())
	}
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("weir %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), err == nil
}

// mustCLI is cli for a command that must succeed.
func (s *weirServer) mustCLI(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, errOut, ok := s.cli(t, ctx, args...)
	if !ok {
		t.Fatalf("weir %s failed:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
	}
	return out
}

// api calls weir's REST API; a 2xx answer is decoded into out.
func (s *weirServer) api(t *testing.T, method, path, contentType string, body []byte, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// registerEngine posts a YAML manifest to POST /engines.
func (s *weirServer) registerEngine(t *testing.T, manifest []byte) {
	t.Helper()
	if code, body := s.api(t, http.MethodPost, "/engines", "application/yaml", manifest, nil); code/100 != 2 {
		t.Fatalf("POST /engines: %d %s", code, body)
	}
}

// job reads GET /jobs/{id}.
func (s *weirServer) job(t *testing.T, id string) jobs.View {
	t.Helper()
	var v jobs.View
	if code, body := s.api(t, http.MethodGet, "/jobs/"+id, "", nil, &v); code != http.StatusOK {
		t.Fatalf("GET /jobs/%s: %d %s", id, code, body)
	}
	return v
}

// jobResult is one item of GET /jobs/{id}/results.
type jobResult struct {
	Engine     string          `json:"engine"`
	TaskID     string          `json:"task_id"`
	ChunkUUID  string          `json:"chunk_uuid"`
	ChunkIndex int64           `json:"chunk_index"`
	StartMs    int64           `json:"start_ms"`
	EndMs      int64           `json:"end_ms"`
	OutputType string          `json:"output_type"`
	Content    json.RawMessage `json:"content"`
}

// results reads every page of GET /jobs/{id}/results.
func (s *weirServer) results(t *testing.T, id string) []jobResult {
	t.Helper()
	var all []jobResult
	cursor := ""
	for {
		var page struct {
			Items      []jobResult `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		path := "/jobs/" + id + "/results?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code, body := s.api(t, http.MethodGet, path, "", nil, &page); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// createdJob finds the job id in the output of `weir jobs create`.
func createdJob(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "job-") {
			return f
		}
	}
	t.Fatalf("no job id in the output of weir jobs create:\n%s", out)
	return ""
}

// mediaFrame is a video frame of a file as ffprobe lists its packets.
type mediaFrame struct{ ptsMs, durMs int64 }

// videoFrames lists the presentation time and duration of every video
// packet of path, in milliseconds, in file order.
func videoFrames(t *testing.T, path string) []mediaFrame {
	t.Helper()
	requireTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var frames []mediaFrame
	for _, line := range strings.Fields(string(out)) {
		pts, dur, _ := strings.Cut(strings.TrimSuffix(line, ","), ",")
		p, err1 := strconv.ParseFloat(pts, 64)
		d, err2 := strconv.ParseFloat(dur, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ffprobe %s: packet line %q", path, line)
		}
		frames = append(frames, mediaFrame{int64(math.Round(p * 1000)), int64(math.Round(d * 1000))})
	}
	if len(frames) == 0 {
		t.Fatalf("ffprobe %s: no video packets", path)
	}
	return frames
}

// framesAtRate picks what a job's chunker cuts at rate frames per second:
// the first frame at or after every 1/rate seconds.
func framesAtRate(frames []mediaFrame, rate float64) []mediaFrame {
	frames = slices.Clone(frames)
	slices.SortFunc(frames, func(a, b mediaFrame) int { return cmp.Compare(a.ptsMs, b.ptsMs) })
	var out []mediaFrame
	for i := 0; ; i++ {
		at := int64(math.Round(float64(i) * 1000 / rate))
		j := 0
		for j < len(frames) && frames[j].ptsMs < at {
			j++
		}
		if j == len(frames) {
			return out
		}
		out = append(out, frames[j])
	}
}

// lastLines returns the last n lines of a file.
func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
