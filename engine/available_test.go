package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAvailableLooksForEveryRequiredCommandOnPath(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "weir-test-tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	s := specNamed("probe", ModeChunk)
	s.Requires = []Requirement{
		{Command: "weir-test-tool", DebianPackage: "weir-tools"},
		{Command: "weir-test-other", DebianPackage: "weir-tools", Why: "to compare"},
		{Command: "weir-test-third", DebianPackage: "weir-extra"},
		{Command: "weir-test-unpackaged"},
	}
	err := s.Available()
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("Available = %v", err)
	}
	if len(ue.Missing) != 3 || ue.Missing[0].Command != "weir-test-other" {
		t.Errorf("missing = %+v", ue.Missing)
	}
	if got := ue.Install(); got != "apt-get install -y weir-tools weir-extra" {
		t.Errorf("Install = %q", got)
	}
	want := `engine "probe" is unavailable: weir-test-other is not on PATH (to compare); weir-test-third is not on PATH; weir-test-unpackaged is not on PATH; install with: apt-get install -y weir-tools weir-extra`
	if err.Error() != want {
		t.Errorf("error = %s\nwant    %s", err, want)
	}

	s.Requires = s.Requires[:1]
	if err := s.Available(); err != nil {
		t.Errorf("Available with the tool on PATH = %v", err)
	}
	if err := os.Chmod(tool, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Available(); err == nil {
		t.Error("a tool that is not executable counts as available")
	}
}

func TestUnavailableWithoutPackagesHasNoInstallLine(t *testing.T) {
	e := &UnavailableError{Engine: "x", Missing: []Requirement{{Command: "y"}}}
	if e.Install() != "" || e.Error() != `engine "x" is unavailable: y is not on PATH` {
		t.Errorf("Install %q, Error %q", e.Install(), e.Error())
	}
}
