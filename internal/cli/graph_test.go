package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// runGraphCmd runs `weir graph ...` in-process.
func runGraphCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetArgs(append([]string{"graph"}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	err := root.ExecuteContext(context.Background())
	switch e := err.(type) {
	case nil:
	case *exitError:
		code = e.code
	default:
		code = 1
	}
	return out.String(), errb.String(), code
}

func writeGraph(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodGraph = `input_streams: [frames]
nodes:
  - name: sample
    calculator: Throttle
    input_streams: [frames]
    output_streams: [sampled]
    options: {interval: 1s}
`

func TestGraphValidateCommand(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantOut  []string
		wantCode int
	}{
		{"valid", goodGraph, []string{"FILE: ok"}, 0},
		{"problems with lines", `input_streams: [frames]
nodes:
  - calculator: Throtle
    input_streams: [frames]
  - calculator: Counter
    input_streams: [nowhere]
`, []string{
			`FILE:3: node "Throtle": unknown calculator "Throtle" (did you mean "Throttle"?)`,
			`FILE:6: node "Counter": input stream "nowhere" is not connected`,
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeGraph(t, tt.yaml)
			out, _, code := runGraphCmd(t, "", "validate", path)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != len(tt.wantOut) {
				t.Fatalf("output %q, want %d lines", out, len(tt.wantOut))
			}
			for i, want := range tt.wantOut {
				want = strings.ReplaceAll(want, "FILE", path)
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
				}
			}
		})
	}
}

func TestGraphValidateReadsStdinAndReportsMissingFiles(t *testing.T) {
	out, _, code := runGraphCmd(t, "nodes: [\n", "validate", "-")
	if code != 1 || !strings.HasPrefix(out, "-:1: ") {
		t.Errorf("stdin: code %d out %q", code, out)
	}
	_, _, code = runGraphCmd(t, "", "validate", filepath.Join(t.TempDir(), "absent.yaml"))
	if code != 1 {
		t.Errorf("missing file: code %d", code)
	}
}

func TestGraphDotCommand(t *testing.T) {
	path := writeGraph(t, goodGraph)
	out, _, code := runGraphCmd(t, "", "dot", path)
	if code != 0 || !strings.HasPrefix(out, "digraph weir {") || !strings.Contains(out, `"input:frames" -> "node:sample"`) {
		t.Fatalf("code %d, output:\n%s", code, out)
	}
	testenv.RequireTool(t, "dot")
	cmd := exec.Command("dot", "-Tsvg")
	cmd.Stdin = strings.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("graphviz rejects the output: %v\n%s", err, msg)
	}
	_, errOut, code := runGraphCmd(t, "", "dot", writeGraph(t, "nodes: [\n"))
	if code != 1 || !strings.Contains(errOut, "pipeline.yaml:1:") {
		t.Errorf("unparsable file: code %d stderr %q", code, errOut)
	}
}

func TestGraphCalculatorsListsTheRegistry(t *testing.T) {
	out, _, code := runGraphCmd(t, "", "calculators")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"PassThrough\n", "Throttle\n", "option interval (duration, required)", "outputs: (untagged) int64"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
}
