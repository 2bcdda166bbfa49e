package objstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateKey(t *testing.T) {
	valid := []string{
		"a", "live/abc/seg_00001.ts", "vod/x/720p/index.m3u8", "..a", "a..", "a/..b/c", ".hidden",
		"a/.b", "sp ace", "ünïcødé/ключ", "a-b_c~d!e$f&g'h(i)j*k+l,m;n=o@p",
		strings.Repeat("k", MaxKeyLen),
	}
	for _, k := range valid {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range hostileKeys {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%.24q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"live/", true},
		{"live/ab", true},
		{"live", true},
		{".", true},  // ".x" is a valid key
		{"..", true}, // "..x" is a valid key
		{"a/..", true},
		{"../", false},
		{"a/../", false},
		{"/", false},
		{"/live", false},
		{"a//", false},
		{`a\`, false},
		{"a\x00", false},
		{"./", false},
		{strings.Repeat("k", MaxKeyLen), false}, // no room left for a key
	}
	for _, tt := range tests {
		err := ValidatePrefix(tt.prefix)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidKey)) {
			t.Errorf("ValidatePrefix(%.24q) = %v, want ok=%v", tt.prefix, err, tt.ok)
		}
	}
}

// FuzzValidateKey checks that every key ValidateKey accepts is a clean,
// local, slash-separated path, and that the file store keeps it inside its
// directory; every key it refuses wraps ErrInvalidKey.
func FuzzValidateKey(f *testing.F) {
	for _, k := range append([]string{"live/abc/seg_00001.ts", "a", "..a", "a/.b"}, hostileKeys[:len(hostileKeys)-1]...) {
		f.Add(k)
	}
	dir := f.TempDir()
	s, err := NewFS(filepath.Join(dir, "store"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, key string) {
		err := ValidateKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, not ErrInvalidKey", key, err)
			}
			if _, perr := s.Put(context.Background(), key, strings.NewReader("x"), 1, ""); !errors.Is(perr, ErrInvalidKey) {
				t.Fatalf("FS.Put(%q) = %v, want ErrInvalidKey", key, perr)
			}
			return
		}
		switch {
		case path.Clean(key) != key:
			t.Fatalf("valid key %q is not clean (%q)", key, path.Clean(key))
		case !filepath.IsLocal(key):
			t.Fatalf("valid key %q is not a local path", key)
		case strings.ContainsAny(key, "\\\x00") || !utf8.ValidString(key) || len(key) > MaxKeyLen:
			t.Fatalf("valid key %q has a forbidden byte or length", key)
		case ValidatePrefix(key) != nil:
			t.Fatalf("valid key %q is not a valid prefix", key)
		}
		for i := range key {
			if err := ValidatePrefix(key[:i]); err != nil {
				t.Fatalf("prefix %q of valid key %q rejected: %v", key[:i], key, err)
			}
		}
		// The file store must write it under its directory or refuse for
		// a reason other than the key's shape (reserved name, a file in
		// the way, a name too long for the file system).
		_, perr := s.Put(context.Background(), key, strings.NewReader("x"), 1, "")
		if perr == nil {
			if b, err := os.ReadFile(filepath.Join(s.Dir(), filepath.FromSlash(key))); err != nil || !bytes.Equal(b, []byte("x")) {
				t.Fatalf("Put(%q) did not write dir/key: %q, %v", key, b, err)
			}
			if err := s.Delete(context.Background(), key); err != nil {
				t.Fatalf("Delete(%q): %v", key, err)
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("Put(%q) wrote outside the store: %v", key, entries)
		}
	})
}
