// Package objstore stores media objects (segments, playlists, uploads,
// thumbnails) by key. Two implementations share one contract: files under a
// directory (the embedded default) and S3-compatible storage.
//
// Keys are slash-separated relative paths such as "live/abc/seg_00001.ts".
// A key that is empty, absolute, contains "..", a backslash or a NUL byte is
// rejected with ErrInvalidKey by every implementation, so hostile paths never
// reach a file system or a bucket. ValidateKey spells out the full rule.
//
// # Choosing a store
//
// Open picks the implementation from a URL, which is what `weir serve
// --objects` takes:
//
//	./weir-data/objects                 files under a directory (NewFS)
//	file:///var/lib/weir/objects        the same, as a URL
//	s3://bucket                         AWS S3, credentials from the environment
//	s3://bucket/some/prefix?endpoint=http://127.0.0.1:7070&region=us-east-1&path_style=true
//
// The s3 query parameters are:
//
//	endpoint       base URL of an S3-compatible server (http or https); empty means AWS
//	region         signing region; default us-east-1
//	path_style     true or false; default true when endpoint is set, false otherwise
//	access_key     access key id; default $AWS_ACCESS_KEY_ID
//	secret_key     secret access key; default $AWS_SECRET_ACCESS_KEY
//	create_bucket  true to create the bucket when it does not exist; default false
//	part_size      multipart upload part size in bytes (at least 5 MiB); default 8 MiB
//
// Unknown parameters are an error, so a typo never silently falls back to a
// default. Without access_key/secret_key and without the environment
// variables, the AWS SDK's default credential chain is used (shared config
// files, instance roles).
//
// # Behaviour common to every store
//
// An empty content type is stored as "application/octet-stream". ETags are
// reported without surrounding quotes. Put with a known size fails, and stores
// nothing, when the reader yields fewer or more bytes than declared. GetRange
// returns the Info of the whole object (Size is the object size, not the range
// length); an offset past the end is ErrInvalidRange, an offset equal to the
// size reads nothing. List may leave ContentType empty: S3 listings do not
// carry it.
package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("object not found")

// ErrInvalidKey is returned (wrapped) for keys that are not clean relative paths.
var ErrInvalidKey = errors.New("invalid object key")

// ErrPresignUnsupported is returned by stores that cannot make presigned URLs.
var ErrPresignUnsupported = errors.New("presigned URLs not supported by this store")

// ErrInvalidRange is returned (wrapped) by GetRange when the offset lies past
// the end of the object or the offset or length is negative (other than a
// length of -1). An HTTP server answers it with 416.
var ErrInvalidRange = errors.New("invalid byte range")

// MaxKeyLen is the longest key accepted, in bytes (S3's limit).
const MaxKeyLen = 1024

// ValidateKey reports whether key is a clean relative object key, returning
// an error wrapping ErrInvalidKey when it is not. A valid key is 1 to
// MaxKeyLen bytes of UTF-8 without control characters (NUL included) or
// backslashes, does not start with "/", and every "/"-separated segment is
// non-empty and neither "." nor "..". So "a//b", "a/", "./a" and "a/../b" are
// all rejected: one object has exactly one spelling.
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return fmt.Errorf("key %q: %s: %w", key, reason, ErrInvalidKey)
	}
	return nil
}

// ValidatePrefix reports whether prefix can start a valid key, returning an
// error wrapping ErrInvalidKey when no valid key could match it. The empty
// prefix (every key) and prefixes ending in "/" ("live/abc/") are valid.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	// A prefix is acceptable exactly when some key extending it is valid;
	// appending one ordinary byte completes any partial segment.
	if reason := keyProblem(prefix + "x"); reason != "" {
		return fmt.Errorf("prefix %q: %s: %w", prefix, reason, ErrInvalidKey)
	}
	return nil
}

// keyProblem returns why key is not valid, or "" when it is.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "not valid UTF-8"
	case strings.HasPrefix(key, "/"):
		return "absolute"
	}
	for _, r := range key {
		switch {
		case r == '\\':
			return "contains a backslash"
		case r < 0x20 || r == 0x7f:
			return "contains a control character"
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return "empty path segment"
		case ".", "..":
			return "dot segment"
		}
	}
	return ""
}

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
	// ETag is an opaque validator that changes whenever the content changes.
	ETag string
	// SHA256 is the hex SHA-256 of the bytes Put read from its reader,
	// set by a store that hashed them while writing (FS); empty from
	// stores that do not (S3) and from Get, Stat and List. A wrapper that
	// changes the bytes on their way must clear it.
	SHA256 string
}

// Store is the object store seam. Implementations are safe for concurrent use.
type Store interface {
	// Put stores the bytes read from r under key, replacing any previous
	// object atomically: readers see the old object or the new one, never a
	// partial one. size may be -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error)
	// Get opens the object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// GetRange opens length bytes starting at offset; length -1 reads to the end.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error)
	// Stat describes the object without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// PresignGet returns a URL that fetches the object without credentials
	// for ttl, or ErrPresignUnsupported.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// PutBytes stores data under key with s.Put and returns the Info with its
// SHA256 always set: the store's own, when it hashed the bytes while
// writing them, or computed here when it did not. Callers that record a
// checksum of what they stored use it so that the bytes are hashed once.
func PutBytes(ctx context.Context, s Store, key string, data []byte, contentType string) (Info, error) {
	inf, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentType)
	if err != nil {
		return Info{}, err
	}
	if inf.SHA256 == "" {
		sum := sha256.Sum256(data)
		inf.SHA256 = hex.EncodeToString(sum[:])
	}
	return inf, nil
}
