package engine

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoArtifacts is wrapped by the error of the Artifacts an Emitter gives
// when its host stores no artifacts (a test, a host without an object
// store).
var ErrNoArtifacts = errors.New("the host stores no artifacts")

// Artifacts stores the files an engine makes beside its documents (a
// scene's thumbnail, a clip) where the users of its results can fetch
// them. Put stores data under name, with its MIME type, and returns the
// URL to put in the result. Names are the engine's own: letters, digits,
// '.', '_' and '-', no path; storing a name again replaces the file. The
// host decides where the files go (weir's job runner keeps them in the
// object store with the job) and how long they live.
type Artifacts interface {
	Put(ctx context.Context, name, contentType string, data []byte) (url string, err error)
}

// WithArtifacts gives the engine the host's artifact store, which
// Emitter.Artifacts returns.
func WithArtifacts(a Artifacts) EmitterOption { return func(e *Emitter) { e.artifacts = a } }

// Artifacts returns where the engine stores its artifacts: the host's
// store (WithArtifacts), or, when the host gave none, one whose Put fails
// with an error wrapping ErrNoArtifacts. An engine for which artifacts
// are extras can carry on without them.
func (e *Emitter) Artifacts() Artifacts {
	if e.artifacts == nil {
		return noArtifacts{}
	}
	return e.artifacts
}

// noArtifacts is the store of a host that has none.
type noArtifacts struct{}

func (noArtifacts) Put(_ context.Context, name, _ string, _ []byte) (string, error) {
	return "", fmt.Errorf("store artifact %q: %w", name, ErrNoArtifacts)
}

// ValidArtifactName reports whether name is an acceptable artifact name:
// 1 to 128 letters, digits, '.', '_' or '-', not "." or "..". Hosts check
// names with it before storing.
func ValidArtifactName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("artifact name %.40q: want 1 to 128 characters", name)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("artifact name %q: not a file name", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("artifact name %.40q: only letters, digits, '.', '_' and '-' are allowed, got %q", name, c)
		}
	}
	return nil
}
