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

// A model file an engine reads is a requirement too: missing, it makes the
// engine unavailable with the package that installs it.
func TestAvailableChecksRequiredFiles(t *testing.T) {
	model := filepath.Join(t.TempDir(), "en-us.model")
	s := specNamed("stt", ModeStream)
	s.Requires = []Requirement{{File: model, DebianPackage: "weir-model-en", Why: "the model"}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	err := s.Available()
	want := `engine "stt" is unavailable: ` + model + ` is missing (the model); install with: apt-get install -y weir-model-en`
	if err == nil || err.Error() != want {
		t.Fatalf("Available = %v\nwant %s", err, want)
	}
	if err := os.WriteFile(model, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Available(); err != nil {
		t.Fatalf("Available with the file there = %v", err)
	}
	for _, bad := range []Requirement{{File: "relative/model"}, {File: "/a/../b"}, {File: "/a", Command: "b"}} {
		s.Requires = []Requirement{bad}
		if err := s.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", bad)
		}
	}
}
