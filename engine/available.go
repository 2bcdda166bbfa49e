package engine

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// UnavailableError says an engine cannot run here because programs it
// requires are not on PATH, and how to install them. Its text has the form
//
//	engine "probe" is unavailable: ffprobe is not on PATH (to read the chunk's duration and codecs); install with: apt-get install -y ffmpeg
type UnavailableError struct {
	Engine  string
	Missing []Requirement
}

func (e *UnavailableError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, r := range e.Missing {
		parts[i] = r.Command + " is not on PATH"
		if r.File != "" {
			parts[i] = r.File + " is missing"
		}
		if r.Why != "" {
			parts[i] += " (" + r.Why + ")"
		}
	}
	msg := fmt.Sprintf("engine %q is unavailable: %s", e.Engine, strings.Join(parts, "; "))
	if install := e.Install(); install != "" {
		msg += "; install with: " + install
	}
	return msg
}

// Install is the command that installs what is missing, such as
// "apt-get install -y ffmpeg", or "" when no requirement names a Debian
// package.
func (e *UnavailableError) Install() string {
	var pkgs []string
	for _, r := range e.Missing {
		if r.DebianPackage != "" && !slices.Contains(pkgs, r.DebianPackage) {
			pkgs = append(pkgs, r.DebianPackage)
		}
	}
	if len(pkgs) == 0 {
		return ""
	}
	return "apt-get install -y " + strings.Join(pkgs, " ")
}

// Available reports whether every program the spec requires is on PATH
// and every file it requires exists: nil, or an *UnavailableError naming
// what is missing. It looks again on
// every call, so an engine becomes available as soon as its tool is
// installed, without a restart.
func (s Spec) Available() error {
	var missing []Requirement
	for _, r := range s.Requires {
		var err error
		if r.File != "" {
			_, err = os.Stat(r.File)
		} else {
			_, err = exec.LookPath(r.Command)
		}
		if err != nil {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return &UnavailableError{Engine: s.Name, Missing: missing}
	}
	return nil
}
