// Package objstore stores media objects (segments, playlists, uploads,
// thumbnails) by key. Two implementations share one contract: files under a
// directory (the embedded default) and S3-compatible storage.
//
// Keys are slash-separated relative paths such as "live/abc/seg_00001.ts".
// A key that is empty, absolute, contains "..", a backslash or a NUL byte is
// rejected with ErrInvalidKey by every implementation, so hostile paths never
// reach a file system or a bucket.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("object not found")

// ErrInvalidKey is returned (wrapped) for keys that are not clean relative paths.
var ErrInvalidKey = errors.New("invalid object key")

// ErrPresignUnsupported is returned by stores that cannot make presigned URLs.
var ErrPresignUnsupported = errors.New("presigned URLs not supported by this store")

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
	// ETag is an opaque validator that changes whenever the content changes.
	ETag string
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
