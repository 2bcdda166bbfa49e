package examples_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// pythonCandidates are the interpreters tried, in order: WEIR_PYTHON, then
// Debian's (whose dist-packages hold python3-opencv even when a pyenv or
// venv python3 comes first on PATH), then python3 on PATH.
func pythonCandidates() []string {
	var c []string
	if p := os.Getenv("WEIR_PYTHON"); p != "" {
		c = append(c, p)
	}
	return append(c, "/usr/bin/python3", "python3")
}

// requirePython returns a Python 3 that imports modules. Without one the
// test is skipped, or fails under CI (CI=true), where scripts/deps.sh test
// must have installed the Debian packages.
func requirePython(t *testing.T, modules ...string) string {
	t.Helper()
	script := "import " + strings.Join(modules, ", ")
	var tried []string
	for _, py := range pythonCandidates() {
		path, err := exec.LookPath(py)
		if err != nil {
			tried = append(tried, py+": not found")
			continue
		}
		out, err := exec.Command(path, "-c", script).CombinedOutput()
		if err == nil {
			return path
		}
		tried = append(tried, path+": "+lastLine(out))
	}
	msg := "no python3 that can `" + script + "` (" + strings.Join(tried, "; ") +
		"); install with: apt-get install -y python3-opencv python3-numpy python3-confluent-kafka opencv-data opencv-doc (scripts/deps.sh test does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// opencvSample returns the path of one of OpenCV's sample files from
// Debian's opencv-doc, decompressing it into a temporary directory when the
// package ships it gzipped. Missing samples skip the test (fail under CI).
func opencvSample(t *testing.T, name string) string {
	t.Helper()
	dir := "/usr/share/doc/opencv-doc/examples/data"
	if p := filepath.Join(dir, name); fileExists(p) {
		return p
	}
	gz := filepath.Join(dir, name+".gz")
	if !fileExists(gz) {
		msg := name + " not found in " + dir + "; install with: apt-get install -y opencv-doc"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f, err := os.Open(gz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", gz, err)
	}
	out := filepath.Join(t.TempDir(), name)
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, zr); err != nil {
		t.Fatalf("%s: %v", gz, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// frameAt cuts one JPEG frame from a media file at offset with ffmpeg;
// input are ffmpeg options for the input ("-loop", "1" for a still image).
func frameAt(t *testing.T, src string, offset time.Duration, input ...string) []byte {
	t.Helper()
	requireTool(t, "ffmpeg")
	args := append([]string{"-nostdin", "-v", "error"}, input...)
	if offset > 0 {
		args = append(args, "-ss", secs(offset))
	}
	args = append(args, "-i", src, "-frames:v", "1", "-q:v", "5", "-f", "image2pipe", "-c:v", "mjpeg", "-")
	out, err := exec.Command("ffmpeg", args...).Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v", args, err)
	}
	if len(out) < 1000 || !bytes.HasPrefix(out, []byte{0xff, 0xd8}) {
		t.Fatalf("ffmpeg %v gave %d bytes, not a JPEG", args, len(out))
	}
	return out
}

func secs(d time.Duration) string { return strings.TrimSuffix(d.String(), "s") }

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed; run `make test` (scripts/deps.sh test installs it)", name)
	}
}

// process is a started engine whose output is kept for the test's log.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

// startEngine starts a Python engine; onLine sees each line it writes to
// stdout. It is stopped (SIGTERM, then SIGKILL) when the test ends, and its
// output is logged when the test failed.
func startEngine(t *testing.T, env []string, onLine func(string), python string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(python, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = writerFunc(p.append)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.append([]byte(sc.Text() + "\n"))
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(args[0]), p.output())
		}
	})
	return p
}

func (p *process) append(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks the engine to stop and kills it when it does not within 10 s.
func (p *process) stop(t *testing.T) {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("engine did not stop within 10 s of SIGTERM; killing it")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

// testCtx ends with the test or after limit.
func testCtx(t *testing.T, limit time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}

// checkPoly checks a vtn boundingPoly: four corners, each in 0..1, making
// a box of positive area; it returns the box.
func checkPoly(t *testing.T, what string, poly []protocol.Point) (x0, y0, x1, y1 float64) {
	t.Helper()
	if len(poly) != 4 {
		t.Errorf("%s: boundingPoly has %d points, want 4", what, len(poly))
		return
	}
	x0, y0, x1, y1 = 1, 1, 0, 0
	for _, p := range poly {
		if p.X < 0 || p.X > 1 || p.Y < 0 || p.Y > 1 {
			t.Errorf("%s: boundingPoly point %+v is outside 0..1", what, p)
		}
		x0, y0, x1, y1 = min(x0, p.X), min(y0, p.Y), max(x1, p.X), max(y1, p.Y)
	}
	if x1-x0 <= 0 || y1-y0 <= 0 {
		t.Errorf("%s: boundingPoly %v has no area", what, poly)
	}
	return
}

// TestManifestsParseAndMatchTheEngines checks both manifests with weir's
// own parser, and that the options each engine applies, with their
// defaults, are the ones its manifest documents.
func TestManifestsParseAndMatchTheEngines(t *testing.T) {
	cases := []struct {
		dir, script, topic, group, url string
	}{
		{"people-kafka", "people_engine.py", "chunk_people", "weir_engine_people", ""},
		{"faces-http", "faces_engine.py", "", "", "http://127.0.0.1:8891"},
	}
	var python string
	for _, c := range cases {
		data, err := os.ReadFile(filepath.Join(c.dir, "manifest.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := engine.ParseManifest(data)
		if err != nil {
			t.Fatalf("%s/manifest.yaml: %v", c.dir, err)
		}
		if m.Mode != engine.ModeChunk || !reflect.DeepEqual(m.Inputs, []string{"image/jpeg"}) {
			t.Errorf("%s: mode %s inputs %v, want chunk [image/jpeg]", c.dir, m.Mode, m.Inputs)
		}
		switch {
		case c.url != "" && (m.HTTP == nil || m.HTTP.URL != c.url):
			t.Errorf("%s: http %+v, want url %s", c.dir, m.HTTP, c.url)
		case c.url == "" && (m.Kafka == nil || m.Kafka.Topic != c.topic || m.Kafka.Group != c.group):
			t.Errorf("%s: kafka %+v, want topic %s group %s", c.dir, m.Kafka, c.topic, c.group)
		}
		want := map[string]any{}
		for _, o := range m.Options {
			switch v := o.Default.(type) {
			case int64:
				want[o.Name] = float64(v)
			default:
				want[o.Name] = v
			}
		}
		if python == "" {
			python = requirePython(t, "cv2", "numpy", "confluent_kafka")
		}
		out, err := exec.Command(python, filepath.Join(c.dir, c.script), "--print-options").Output()
		if err != nil {
			t.Fatalf("%s --print-options: %v", c.script, err)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s --print-options: %v: %s", c.script, err, out)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s applies options %v, its manifest documents %v", c.script, got, want)
		}
	}
}

// writeTemp writes data to a file named name in the test's temporary
// directory and returns its path.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
