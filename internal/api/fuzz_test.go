package api

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/objstore"
)

// FuzzHLSKey checks the HLS path guard: whatever it accepts is a valid
// object key confined to the named stream's prefix.
func FuzzHLSKey(f *testing.F) {
	for _, s := range []string{
		"vod-0123456789ab/master.m3u8", "live-0123456789ab/720p/seg_00001.ts", "a/../b.ts",
		"a/./b", "a//b", "/abs", `a\b`, "a/%2e%2e", "a/b\x00", "a", "a/", "a/C:/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		id, key, err := hlsKey(rest)
		if err != nil {
			var pathErr errHLSPath
			if !errors.As(err, &pathErr) || pathErr.reason == "" {
				t.Fatalf("error %v carries no reason", err)
			}
			return
		}
		if key != rest {
			t.Fatalf("key %q differs from the request path %q", key, rest)
		}
		if !validStreamID(id) || !strings.HasPrefix(key, id+"/") {
			t.Fatalf("key %q escapes stream %q", key, id)
		}
		if err := objstore.ValidateKey(key); err != nil {
			t.Fatalf("accepted %q but the object store rejects it: %v", rest, err)
		}
		if strings.ContainsAny(key, `\%:`) {
			t.Fatalf("accepted %q with a forbidden character", key)
		}
	})
}

// FuzzSanitizeFilename checks upload names always become one safe, stable
// key segment.
func FuzzSanitizeFilename(f *testing.F) {
	for _, s := range []string{
		"farmer.mp4", "../../etc/passwd", `C:\Users\me\clip.mov`, "", ".", "..", ".hidden",
		"My Episode (1).mkv", strings.Repeat("a", 300) + ".mp4", "a." + strings.Repeat("b", 40), "é.mp4", "abc.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := sanitizeFilename(name)
		if got == "" || len(got) > maxFilenameLength {
			t.Fatalf("sanitizeFilename(%q) = %q: empty or longer than %d", name, got, maxFilenameLength)
		}
		if strings.HasPrefix(got, ".") || strings.HasSuffix(got, ".") {
			t.Fatalf("sanitizeFilename(%q) = %q: leading or trailing dot", name, got)
		}
		for i := 0; i < len(got); i++ {
			c := got[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				t.Fatalf("sanitizeFilename(%q) = %q: byte %q", name, got, c)
			}
		}
		if err := objstore.ValidateKey("vod-0123456789ab/source/" + got); err != nil {
			t.Fatalf("sanitizeFilename(%q) = %q: not a valid key segment: %v", name, got, err)
		}
		if again := sanitizeFilename(got); again != got {
			t.Fatalf("not stable: %q → %q → %q", name, got, again)
		}
	})
}

// FuzzPlaylistCacheControl checks every playlist gets one of the three
// policies, and that an end marker always wins.
func FuzzPlaylistCacheControl(f *testing.F) {
	for _, s := range []string{livePlaylist, endedPlaylist, vodPlaylist, masterList, "", "#EXTM3U\r\n#EXT-X-ENDLIST\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := playlistCacheControl(data)
		switch got {
		case cacheLivePlaylist, cacheEndedPlaylist, cacheMasterPlaylist:
		default:
			t.Fatalf("policy %q", got)
		}
		ended := playlistCacheControl(append(append(bytes.Clone(data), '\n'), "#EXT-X-ENDLIST\n"...))
		if ended != cacheEndedPlaylist {
			t.Fatalf("playlist with EXT-X-ENDLIST got %q", ended)
		}
	})
}

// FuzzUploadURLRequest checks the JSON import body parser: any input gives
// either a valid request or a 4xx problem, never a panic or a 5xx.
func FuzzUploadURLRequest(f *testing.F) {
	for _, s := range []string{
		`{"url": "https://example.com/a.mp4", "title": "A"}`, `{"url": 5}`, `{"url": "ftp://x"}`,
		`{`, ``, `[]`, `null`, `{"url": "https://x.com/a.mp4"} trailing`, `{"colour": "red"}`, `"string"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req UploadURLRequest
		err := decodeJSON(bytes.NewReader(body), &req, DefaultMaxJSONBytes)
		if err == nil {
			err = checkSourceURL("body.url", req.URL, "http", "https")
		}
		if err == nil {
			err = checkTitle("body.title", req.Title)
		}
		if err == nil {
			if !strings.HasPrefix(strings.ToLower(req.URL), "http") {
				t.Fatalf("accepted url %q", req.URL)
			}
			return
		}
		var se huma.StatusError
		if !errors.As(err, &se) || se.GetStatus() < 400 || se.GetStatus() >= 500 || se.GetStatus() == http.StatusNotFound {
			t.Fatalf("error %v is not a client problem", err)
		}
		if se.Error() == "" {
			t.Fatal("problem without detail")
		}
	})
}
