package push

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseSRTStreamID checks that any stream id either parses into a
// known mode and a clean key or is refused, without panicking.
func FuzzParseSRTStreamID(f *testing.F) {
	for _, s := range []string{"publish:abc", "read:abc", "#!::r=abc,m=publish", "#!::m=request", "", ":", "#!::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		mode, key, err := ParseSRTStreamID(id)
		if err != nil {
			if mode != "" || key != "" {
				t.Fatalf("error %v with mode %q key %q", err, mode, key)
			}
			return
		}
		if mode != srtModePublish && mode != srtModeRead {
			t.Fatalf("mode %q", mode)
		}
		if key == "" || strings.ContainsAny(key, " /,:") {
			t.Fatalf("key %q", key)
		}
		if !strings.Contains(id, key) {
			t.Fatalf("key %q is not in the stream id %q", key, id)
		}
	})
}

// FuzzRTMPPublishKey checks that any URL path either yields a key from the
// live application or is refused, without panicking.
func FuzzRTMPPublishKey(f *testing.F) {
	for _, s := range []string{"/live/abc", "/live/abc?x=1", "/live/", "/other/abc", "//", "/live/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, err := RTMPPublishKey(&url.URL{Scheme: "rtmp", Host: "h", Path: path})
		if err != nil {
			if key != "" {
				t.Fatalf("error %v with key %q", err, key)
			}
			return
		}
		if key == "" || strings.ContainsAny(key, "/ ?") {
			t.Fatalf("key %q from path %q", key, path)
		}
		if !strings.HasPrefix(strings.TrimLeft(path, "/"), RTMPApp+"/") {
			t.Fatalf("key %q from path %q outside the %s application", key, path, RTMPApp)
		}
	})
}
