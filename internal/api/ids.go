package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/weir-media/weir/internal/metastore"
)

// newStreamID returns "vod-" or "live-" followed by 12 random hex digits.
func newStreamID(kind metastore.Kind) string {
	var b [6]byte
	rand.Read(b[:])
	return string(kind) + "-" + hex.EncodeToString(b[:])
}

// newPublishKey returns a 128-bit random publish key as 32 hex digits: long
// enough that guessing one is hopeless, and safe in RTMP paths and SRT
// stream ids without escaping.
func newPublishKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// maxFilenameLength bounds a sanitised upload name, in bytes.
const maxFilenameLength = 120

// sanitizeFilename turns a client-supplied upload name into one safe object
// key segment: the last path element (either slash), with every byte outside
// [A-Za-z0-9._-] replaced by '_', runs of dots collapsed to one, leading dots
// and underscores and trailing dots dropped (no hidden files, no ".."), and
// the stem shortened so the whole fits in maxFilenameLength while a real
// extension (up to 16 bytes) survives. A name with nothing usable becomes
// "upload". Sanitising a sanitised name changes nothing.
func sanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.' && strings.HasSuffix(b.String(), "."):
			// collapse ".." runs
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	clean := strings.TrimRight(strings.TrimLeft(b.String(), "._"), ".")
	if clean == "" {
		return "upload"
	}
	ext := path.Ext(clean)
	if len(ext) > 16 { // not a real extension
		ext = ""
	}
	stem := strings.TrimSuffix(clean, ext)
	if len(stem)+len(ext) > maxFilenameLength {
		stem = strings.TrimRight(stem[:maxFilenameLength-len(ext)], ".")
	}
	return stem + ext
}

// titleFromFilename derives a default title from an upload's name.
func titleFromFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSuffix(name, path.Ext(name))
	name = strings.ToValidUTF8(strings.TrimSpace(name), "")
	if utf8.RuneCountInString(name) > MaxTitleLength {
		name = string([]rune(name)[:MaxTitleLength])
	}
	return name
}

// checkTitle validates a title: at most MaxTitleLength characters of valid
// UTF-8 with no control characters.
func checkTitle(location, title string) error {
	if !utf8.ValidString(title) {
		return fieldError(location, "must be valid UTF-8", nil)
	}
	if n := utf8.RuneCountInString(title); n > MaxTitleLength {
		return fieldError(location, fmt.Sprintf("must be at most %d characters (got %d)", MaxTitleLength, n), nil)
	}
	for _, r := range title {
		if r < 0x20 || r == 0x7f {
			return fieldError(location, "must not contain control characters", title)
		}
	}
	return nil
}

// parseURL parses an absolute URL.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	return u, nil
}

// checkSourceURL validates a media source URL: at most MaxURLLength bytes,
// absolute, with a host, and one of the allowed schemes. It returns a 422
// problem naming location, or nil.
func checkSourceURL(location, raw string, schemes ...string) error {
	if raw == "" {
		return fieldError(location, "is required", nil)
	}
	if len(raw) > MaxURLLength {
		return fieldError(location, fmt.Sprintf("must be at most %d bytes", MaxURLLength), nil)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fieldError(location, "is not a valid URL", raw)
	}
	ok := false
	for _, s := range schemes {
		if strings.EqualFold(u.Scheme, s) {
			ok = true
		}
	}
	if !ok {
		return fieldError(location, fmt.Sprintf("scheme must be %s (got %q)", strings.Join(schemes, " or "), u.Scheme), raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fieldError(location, "must include a host", raw)
	}
	return nil
}

// redactURL hides any password in a URL before it is shown in a response.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
