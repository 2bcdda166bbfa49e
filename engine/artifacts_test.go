package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// memArtifacts keeps artifacts in memory.
type memArtifacts map[string][]byte

func (m memArtifacts) Put(_ context.Context, name, contentType string, data []byte) (string, error) {
	if err := ValidArtifactName(name); err != nil {
		return "", err
	}
	m[name] = data
	return "mem://" + name + "?type=" + contentType, nil
}

func TestEmitterArtifactsAreTheHostsStore(t *testing.T) {
	store := memArtifacts{}
	e := NewEmitter(func(Piece) error { return nil }, WithArtifacts(store))
	url, err := e.Artifacts().Put(context.Background(), "scene-000001.jpg", "image/jpeg", []byte{0xff, 0xd8})
	if err != nil || url != "mem://scene-000001.jpg?type=image/jpeg" || len(store["scene-000001.jpg"]) != 2 {
		t.Fatalf("Put = %q, %v; store %v", url, err, store)
	}
}

func TestEmitterWithoutArtifactsFailsClearly(t *testing.T) {
	e := NewEmitter(func(Piece) error { return nil })
	url, err := e.Artifacts().Put(context.Background(), "thumb.jpg", "image/jpeg", []byte{1})
	if !errors.Is(err, ErrNoArtifacts) || url != "" || !strings.Contains(err.Error(), `"thumb.jpg"`) {
		t.Fatalf("Put = %q, %v; want an error naming the artifact and wrapping ErrNoArtifacts", url, err)
	}
}

func TestValidArtifactName(t *testing.T) {
	for _, ok := range []string{"a", "scene-000001.jpg", "A_b.C-9", strings.Repeat("x", 128), "..."} {
		if err := ValidArtifactName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                       "1 to 128",
		strings.Repeat("x", 129): "1 to 128",
		".":                      "not a file name",
		"..":                     "not a file name",
		"../etc/passwd":          `got '/'`,
		"a b":                    `got ' '`,
		"thumb\x00.jpg":          `got '\x00'`,
		"é.jpg":                  `got 'é'`,
	} {
		err := ValidArtifactName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", name, err, want)
		}
	}
}
