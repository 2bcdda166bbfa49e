package hlsresults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// Defaults of Service.
const (
	DefaultCacheTTL  = 2 * time.Second
	DefaultLiveDelay = 10 * time.Second
)

// Content types of what Service answers.
const (
	TypePlaylist = "application/vnd.apple.mpegurl"
	TypeWebVTT   = "text/vtt; charset=utf-8"
	TypeJSON     = "application/json"
)

// Cache-Control values of what Service answers.
const (
	// cacheGrowing is for playlists that may still change: live windows,
	// and subtitles or metadata while their job runs.
	cacheGrowing = "public, max-age=1"
	// cacheSettled is for what changes only if a newer job replaces the
	// one shown (a finished playlist, a segment of a finished job).
	cacheSettled = "public, max-age=30"
	// cacheMaster is for masters: a job started later adds renditions.
	cacheMaster = "public, max-age=5"
)

// The names a master playlist gives the renditions Service adds.
const (
	SubtitlesGroup = "subs"
	SubtitlesName  = "English (weir stt)"
	SubtitlesLang  = "en"
	// MetadataDataID is the EXT-X-SESSION-DATA DATA-ID of the metadata
	// index (meta/index.json).
	MetadataDataID = "io.weir.metadata"
	// CaptionEngine is the engine whose transcript becomes subtitles.
	CaptionEngine = "stt"
)

// ErrNotFound is returned (wrapped, with what is missing) for a request
// Service owns but cannot answer: no such stream, no job with the engine
// the request needs, a playlist or segment that does not exist.
var ErrNotFound = errors.New("not found")

// Response is a generated HLS object.
type Response struct {
	Body         []byte
	ContentType  string
	CacheControl string
}

// Service answers the subtitles and metadata requests of HLS streams.
// The zero value is not usable; set Meta and Objects. It is safe for
// concurrent use.
type Service struct {
	Meta    metastore.Store
	Objects objstore.Store
	// Log defaults to slog.Default().
	Log *slog.Logger
	// CacheTTL is how long a stream's jobs and their progress are reused
	// before the metadata store is asked again (default DefaultCacheTTL).
	CacheTTL time.Duration
	// LiveDelay is how long a live segment waits for its results before
	// the subtitles and metadata playlists list it anyway (default
	// DefaultLiveDelay): a live player must not stall on an engine that
	// is behind or silent.
	LiveDelay time.Duration
	// Now defaults to time.Now.
	Now func() time.Time

	once    sync.Once
	lines   *cache[string, *Timeline]
	streams *cache[string, *progressState]
	codecs  *cache[string, liveVariant]
}

func (s *Service) init() {
	s.once.Do(func() {
		if s.Log == nil {
			s.Log = slog.Default()
		}
		if s.CacheTTL <= 0 {
			s.CacheTTL = DefaultCacheTTL
		}
		if s.LiveDelay <= 0 {
			s.LiveDelay = DefaultLiveDelay
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		s.lines = newCache[string, *Timeline](1024)
		s.streams = newCache[string, *progressState](1024)
		s.codecs = newCache[string, liveVariant](1024)
	})
}

// Serve answers GET /hls/{streamID}/{path} when path is one Service
// generates, and returns nil, nil when the object store should serve it:
// any other path, a stream the metadata store does not know, the master
// of a title without jobs, the renditions of a stream without the job
// they need. Errors wrap ErrNotFound for what does not exist; others are
// the stores' failures.
func (s *Service) Serve(ctx context.Context, streamID, path string) (*Response, error) {
	s.init()
	switch {
	case path == "master.m3u8":
		return s.master(ctx, streamID)
	case strings.HasPrefix(path, subsDir):
		return s.rendition(ctx, streamID, subsKind, strings.TrimPrefix(path, subsDir))
	case path == metaDir+"index.json":
		return s.metaIndex(ctx, streamID)
	case strings.HasPrefix(path, metaDir):
		return s.rendition(ctx, streamID, metaKind, strings.TrimPrefix(path, metaDir))
	}
	return nil, nil
}

// rendition answers a playlist or a segment of the subtitles or metadata
// rendition.
func (s *Service) rendition(ctx context.Context, streamID string, kind renditionKind, rest string) (*Response, error) {
	st, err := s.stream(ctx, streamID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil // not a stream of ours: whatever the store has
	}
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(rest, ".m3u8") {
		return s.playlist(ctx, st, kind, rest)
	}
	return s.segment(ctx, st, kind, rest)
}

// stream reads the stream row, with ErrNotFound for an unknown id.
func (s *Service) stream(ctx context.Context, id string) (metastore.Stream, error) {
	st, err := s.Meta.GetStream(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return st, fmt.Errorf("stream %s: %w", id, ErrNotFound)
	}
	return st, err
}

// cache is a small map with a size cap: past it, an arbitrary half is
// dropped (what is dropped is recomputed on the next request).
type cache[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]V
}

func newCache[K comparable, V any](max int) *cache[K, V] {
	return &cache[K, V]{max: max, m: map[K]V{}}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		n := 0
		for key := range c.m {
			delete(c.m, key)
			if n++; n >= c.max/2 {
				break
			}
		}
	}
	c.m[k] = v
}
