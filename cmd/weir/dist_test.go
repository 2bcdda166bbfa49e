package main

import (
	"archive/tar"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// `make dist` builds a static linux binary with the version, the player and
// the docs renderer in it, packed with SHA256SUMS that check. Only the
// machine's own platform is built here (the other is the same command with
// another GOARCH), so the binary can also be run.
func TestMakeDistBuildsAStaticVersionedBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the archives are linux builds; this test runs the one it makes")
	}
	for _, tool := range []string{"make", "sha256sum", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed", tool)
		}
	}
	root, _ := filepath.Abs("../..")
	out := t.TempDir()
	platform := "linux/" + runtime.GOARCH
	cmd := exec.Command("make", "-C", root, "dist", "DIST="+out, "DIST_PLATFORMS="+platform, "VERSION=v9.8.7-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, b)
	}
	name := "weir_v9.8.7-test_linux_" + runtime.GOARCH
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err != nil || !strings.Contains(string(b), name+".tar.gz: OK") {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, b)
	}

	bin := extract(t, filepath.Join(out, name+".tar.gz"), name, filepath.Join(out, "x"))
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	v, err := exec.Command(bin, "--version").Output()
	if err != nil || !regexp.MustCompile(`^weir v9\.8\.7-test .* linux/`+runtime.GOARCH+`\n$`).Match(v) {
		t.Errorf("weir --version: %v %q", err, v)
	}
	// The bundled browser code is in the binary.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, marker := range []string{"elements-api", "MediaSource"} {
		if !strings.Contains(string(data), marker) {
			t.Errorf("the binary lacks %q: the docs renderer or hls.js was not embedded", marker)
		}
	}
}

// extract unpacks the archive into dir, checks it holds NAME/weir, the
// README and the licences, and returns the binary's path.
func extract(t *testing.T, archive, name, dir string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = true
		if h.Typeflag != tar.TypeReg {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(w, tr)
		w.Close()
	}
	for _, want := range []string{name + "/weir", name + "/README.md", name + "/licenses/stoplight-elements.txt", name + "/licenses/hls.js.txt"} {
		if !seen[want] {
			t.Errorf("the archive lacks %s (has %v)", want, seen)
		}
	}
	return filepath.Join(dir, name, "weir")
}
