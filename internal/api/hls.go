package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/hlsresults"
	"github.com/weir-media/weir/internal/objstore"
)

// hlsPrefix is where HLS objects are served: /hls/{stream_id}/{path...} maps
// to the object key {stream_id}/{path}.
const hlsPrefix = "/hls/"

// maxPlaylistBytes bounds how much of a playlist is read into memory to
// decide its caching; real playlists are a few kilobytes.
const maxPlaylistBytes = 16 << 20

// Cache-Control values for HLS objects.
const (
	// A live media playlist changes every segment; players poll it about
	// once per target duration, so caches may hold it one second at most.
	cacheLivePlaylist = "public, max-age=1"
	// A multivariant (master) playlist rarely changes once written.
	cacheMasterPlaylist = "public, max-age=10"
	// An ended playlist (EXT-X-ENDLIST or PLAYLIST-TYPE:VOD) is final.
	cacheEndedPlaylist = "public, max-age=86400"
	// Segments and init sections are written once under a unique name.
	cacheImmutable = "public, max-age=31536000, immutable"
	// Everything else (thumbnails, JSON sidecars) may be rewritten.
	cacheShort = "public, max-age=5"
)

// hlsType describes how one file extension is served.
type hlsType struct {
	contentType string
	// playlist objects are read whole to pick a cache policy and are never
	// redirected, so their relative URIs resolve through this server.
	playlist bool
	// text objects are read whole and sent gzip-compressed to clients
	// that accept it (see negotiateGzip).
	text bool
	// segment objects are immutable and may be redirected to presigned URLs.
	segment bool
}

var hlsTypes = map[string]hlsType{
	".m3u8": {contentType: "application/vnd.apple.mpegurl", playlist: true, text: true},
	".ts":   {contentType: "video/mp2t", segment: true},
	".m4s":  {contentType: "video/mp4", segment: true},
	".mp4":  {contentType: "video/mp4", segment: true},
	".m4a":  {contentType: "audio/mp4", segment: true},
	".aac":  {contentType: "audio/aac", segment: true},
	".vtt":  {contentType: "text/vtt; charset=utf-8", segment: true},
	".jpg":  {contentType: "image/jpeg"},
	".jpeg": {contentType: "image/jpeg"},
	".png":  {contentType: "image/png"},
	".json": {contentType: "application/json", text: true},
}

// errHLSPath explains why a request path cannot name an HLS object.
type errHLSPath struct{ reason string }

func (e errHLSPath) Error() string { return e.reason }

// hlsKey maps the part of a request path after /hls/ (already
// percent-decoded) to an object key, rejecting anything that could escape
// the stream's prefix or that our packagers never produce: empty, "." or
// ".." segments (so "//", "/./" and traversal, encoded or not), backslashes,
// NUL and other control characters, '%' (double encoding), ':' (drive
// letters, schemes), invalid UTF-8, over-long paths, and stream ids outside
// [A-Za-z0-9_-]{1,64}. It returns the stream id and the object key.
func hlsKey(rest string) (streamID, key string, err error) {
	if len(rest) > 1024 {
		return "", "", errHLSPath{"path is longer than 1024 bytes"}
	}
	if !utf8.ValidString(rest) {
		return "", "", errHLSPath{"path is not valid UTF-8"}
	}
	if strings.HasPrefix(rest, "/") {
		return "", "", errHLSPath{"absolute paths are not allowed"}
	}
	for _, c := range rest {
		switch {
		case c == '\\':
			return "", "", errHLSPath{"backslashes are not allowed"}
		case c < 0x20 || c == 0x7f:
			return "", "", errHLSPath{"control characters are not allowed"}
		case c == '%':
			return "", "", errHLSPath{"'%' is not allowed (double-encoded path?)"}
		case c == ':':
			return "", "", errHLSPath{"':' is not allowed"}
		}
	}
	streamID, objectPath, found := strings.Cut(rest, "/")
	if !found || objectPath == "" {
		return "", "", errHLSPath{"want /hls/{stream_id}/{file}"}
	}
	if !validStreamID(streamID) {
		return "", "", errHLSPath{"stream id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'"}
	}
	for seg := range strings.SplitSeq(objectPath, "/") {
		switch seg {
		case "":
			return "", "", errHLSPath{"empty path segments are not allowed"}
		case ".", "..":
			return "", "", errHLSPath{"'.' and '..' path segments are not allowed"}
		}
	}
	return streamID, streamID + "/" + objectPath, nil
}

func validStreamID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// setCORS lets a browser player on any origin fetch HLS objects and read the
// headers it needs for byte ranges and revalidation.
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Cache-Control, Content-Type")
	h.Add("Vary", "Origin")
}

// guardHLS validates /hls/ paths before the mux sees them: the mux would
// answer a path with ".." or "//" with a redirect to the cleaned path, which
// is not what a hostile request should get. Rejections are 400 problems.
func (s *Server) guardHLS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, hlsPrefix)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		setCORS(w.Header())
		if _, _, err := hlsKey(rest); err != nil {
			writeProblem(w, http.StatusBadRequest, "invalid HLS path: "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) registerHLS() {
	s.timed = &hlsresults.Service{Meta: s.cfg.Meta, Objects: s.cfg.Objects, Log: s.log}
	const pattern = hlsPrefix + "{stream_id}/{path...}"
	s.mux.HandleFunc("GET "+pattern, s.serveHLS)
	s.mux.HandleFunc("OPTIONS "+pattern, servePreflight)

	params := []*huma.Param{
		{Name: "stream_id", In: "path", Required: true, Description: "Stream id, e.g. vod-0123456789ab", Schema: &huma.Schema{Type: "string", Pattern: "^[A-Za-z0-9_-]{1,64}$"}},
		{Name: "path", In: "path", Required: true, Description: "Object path below the stream, may contain slashes: master.m3u8, 720p/index.m3u8, 720p/seg_00001.ts, subs/720p/index.m3u8, subs/720p/1.vtt, meta/index.json", Schema: &huma.Schema{Type: "string"}},
		{Name: "_HLS_msn", In: "query", Description: "Low-Latency HLS blocking playlist reload (live.m3u8 of an ll_hls stream): hold the request until the playlist holds media sequence number _HLS_msn; 400 when it is more than two past the last segment, 503 with Retry-After when it does not come within three target durations", Schema: &huma.Schema{Type: "integer", Minimum: new(float64)}},
		{Name: "_HLS_part", In: "query", Description: "With _HLS_msn: hold until part _HLS_part (from 0) of that segment is listed; 400 without _HLS_msn", Schema: &huma.Schema{Type: "integer", Minimum: new(float64)}},
		{Name: "_HLS_skip", In: "query", Description: "YES or v2: answer with a delta update, older segments replaced by EXT-X-SKIP (up to CAN-SKIP-UNTIL, six target durations, from the end)", Schema: &huma.Schema{Type: "string", Enum: []any{"YES", "v2"}}},
	}
	binary := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
			"application/vnd.apple.mpegurl": {Schema: &huma.Schema{Type: "string"}},
			"video/mp2t":                    {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			"video/mp4":                     {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}}
	}
	problem := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
			problemContentType: {Schema: &huma.Schema{Ref: "#/components/schemas/ErrorModel"}},
		}}
	}
	s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")
	hlsResponses := map[string]*huma.Response{
		"200": binary("The object. Playlists carry a short Cache-Control while live and a long one once ended; segments are immutable."),
		"206": binary("The requested byte range"),
		"302": {Description: "Redirect to a presigned object URL (segments only, when the server runs with presigning)"},
		"304": {Description: "Not modified (If-None-Match matched the ETag)"},
		"400": problem("Path is not a clean relative object path (traversal, backslash, encoded tricks)"),
		"404": problem("No such object"),
		"416": problem("Range not satisfiable"),
		"503": problem("Low-Latency HLS: the segment or part a blocking playlist reload asked for did not appear within three target durations (Retry-After)"),
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		s.api.OpenAPI().AddOperation(&huma.Operation{
			OperationID: "hls-" + strings.ToLower(method),
			Method:      method,
			Path:        hlsPrefix + "{stream_id}/{path}",
			Summary:     "HLS object (" + method + ")",
			Description: "Serves the object {stream_id}/{path} from the object store with its HLS content type, " +
				"byte ranges, ETag revalidation and CORS for browser players on other origins. " +
				"For a stream with jobs, master.m3u8 gains a WebVTT subtitles rendition (from stt) and an " +
				"EXT-X-SESSION-DATA io.weir.metadata, and subs/... (playlists, .vtt segments) and meta/... " +
				"(index.json, playlists, .json segments) are generated from the jobs' results (docs/results.md). " +
				"The live.m3u8 of a Low-Latency HLS stream takes the delivery directives _HLS_msn, _HLS_part and " +
				"_HLS_skip, and a request for the part its EXT-X-PRELOAD-HINT names is held until the part is written.",
			Tags:       []string{"hls"},
			Parameters: params,
			Responses:  hlsResponses,
		})
	}
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "hls-preflight",
		Method:      http.MethodOptions,
		Path:        hlsPrefix + "{stream_id}/{path}",
		Summary:     "CORS preflight for HLS objects",
		Tags:        []string{"hls"},
		Parameters:  params,
		Responses:   map[string]*huma.Response{"204": {Description: "CORS preflight answer"}},
	})
}

// servePreflight answers CORS preflight requests for HLS objects.
func servePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since, If-Range, Accept, Accept-Encoding, Origin")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Allow", "GET, HEAD, OPTIONS")
	w.WriteHeader(http.StatusNoContent)
}

// serveHLS serves one object (GET and HEAD). Conditional requests and byte
// ranges are handled by http.ServeContent over a reader that opens the
// object lazily, so a 304 or a HEAD never reads object bytes and a range
// reads only from its start.
func (s *Server) serveHLS(w http.ResponseWriter, r *http.Request) {
	_, key, err := hlsKey(strings.TrimPrefix(r.URL.Path, hlsPrefix))
	if err != nil { // guardHLS already checked; kept so the handler is safe alone
		writeProblem(w, http.StatusBadRequest, "invalid HLS path: "+err.Error())
		return
	}
	ctx := r.Context()
	if id, rest, _ := strings.Cut(key, "/"); strings.HasPrefix(rest, sourcePrefix) {
		// Uploaded originals live beside the title's HLS objects but are
		// not part of what a title publishes.
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("HLS object %s not found: the uploaded original of %s is not served", key, id))
		return
	}
	if s.serveLowLatency(w, r, key) {
		return
	}
	if id, rest, _ := strings.Cut(key, "/"); s.timed != nil {
		res, err := s.timed.Serve(ctx, id, rest)
		if err != nil {
			s.generatedError(w, key, err)
			return
		}
		if res != nil {
			s.serveGenerated(w, r, res)
			return
		}
	}
	typ, known := hlsTypes[strings.ToLower(path.Ext(key))]
	if !known {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("HLS object %s not found: extension %q is not served", key, path.Ext(key)))
		return
	}
	h := w.Header()

	if typ.segment && s.cfg.Presign {
		u, err := s.cfg.Objects.PresignGet(ctx, key, s.cfg.PresignTTL)
		switch {
		case err == nil:
			// The presigned URL expires, so the redirect must not outlive it.
			h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(s.cfg.PresignTTL.Seconds()/2)))
			http.Redirect(w, r, u, http.StatusFound)
			return
		case errors.Is(err, objstore.ErrPresignUnsupported):
			// Serve it ourselves.
		default:
			s.log.Warn("presign failed, serving HLS object directly", "key", key, "err", err)
		}
	}

	var content io.ReadSeeker
	var info objstore.Info
	etag := ""
	if typ.text {
		rc, inf, err := s.cfg.Objects.Get(ctx, key)
		if err != nil {
			s.objectError(w, key, err)
			return
		}
		data, err := io.ReadAll(io.LimitReader(rc, maxPlaylistBytes+1))
		rc.Close()
		if err != nil {
			s.objectError(w, key, err)
			return
		}
		if len(data) > maxPlaylistBytes {
			writeProblem(w, http.StatusInternalServerError, fmt.Sprintf("text object %s is larger than %d bytes", key, maxPlaylistBytes))
			return
		}
		info = inf
		info.Size = int64(len(data))
		etag = etagOf(info)
		if typ.playlist {
			h.Set("Cache-Control", playlistCacheControl(data))
		} else {
			h.Set("Cache-Control", cacheShort)
		}
		data, etag = negotiateGzip(w.Header(), r, data, etag)
		content = bytes.NewReader(data)
	} else {
		inf, err := s.cfg.Objects.Stat(ctx, key)
		if err != nil {
			s.objectError(w, key, err)
			return
		}
		info = inf
		etag = etagOf(info)
		lazy := &objectReader{ctx: ctx, store: s.cfg.Objects, key: key, size: info.Size}
		defer lazy.Close()
		content = lazy
		if typ.segment {
			h.Set("Cache-Control", cacheImmutable)
		} else {
			h.Set("Cache-Control", cacheShort)
		}
	}
	h.Set("Content-Type", typ.contentType)
	h.Set("ETag", etag)
	pw := &problemWriter{ResponseWriter: w}
	http.ServeContent(pw, r, "", info.ModTime, content)
	pw.finish(fmt.Sprintf("HLS object %s is %d bytes", key, info.Size))
}

// serveGenerated answers with a playlist or segment hlsresults built:
// text, so gzip-compressed for clients that accept it, with an ETag of its
// content for revalidation.
func (s *Server) serveGenerated(w http.ResponseWriter, r *http.Request, res *hlsresults.Response) {
	h := w.Header()
	sum := sha256.Sum256(res.Body)
	etag := `"g-` + hex.EncodeToString(sum[:12]) + `"`
	data, etag := negotiateGzip(h, r, res.Body, etag)
	h.Set("Content-Type", res.ContentType)
	h.Set("Cache-Control", res.CacheControl)
	h.Set("ETag", etag)
	pw := &problemWriter{ResponseWriter: w}
	http.ServeContent(pw, r, "", time.Time{}, bytes.NewReader(data))
	pw.finish(fmt.Sprintf("generated HLS object %s is %d bytes", r.URL.Path, len(data)))
}

// generatedError answers a failed hlsresults request like objectError.
func (s *Server) generatedError(w http.ResponseWriter, key string, err error) {
	switch {
	case errors.Is(err, hlsresults.ErrNotFound):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("HLS object %s not found: %v", key, err))
	case errors.Is(err, context.Canceled):
	default:
		s.log.Error("generate HLS object", "key", key, "err", err)
		writeProblem(w, http.StatusInternalServerError, fmt.Sprintf("could not generate HLS object %s", key))
	}
}

// objectError answers a failed object store read: 404 for a missing key,
// 400 for a key the store rejects, 500 (logged) otherwise.
func (s *Server) objectError(w http.ResponseWriter, key string, err error) {
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("HLS object %s not found", key))
	case errors.Is(err, objstore.ErrInvalidKey):
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("invalid HLS path %s: %v", key, err))
	case errors.Is(err, context.Canceled):
		// The client went away; nobody is listening.
	default:
		s.log.Error("read HLS object", "key", key, "err", err)
		writeProblem(w, http.StatusInternalServerError, fmt.Sprintf("could not read HLS object %s from the object store", key))
	}
}

// playlistCacheControl picks the Cache-Control of a playlist from its text:
// ended media playlists are final, multivariant playlists change rarely,
// and everything else is a live playlist that changes every segment.
func playlistCacheControl(data []byte) string {
	var media, ended, master bool
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		switch {
		case bytes.HasPrefix(line, []byte("#EXT-X-ENDLIST")):
			ended = true
		case bytes.Equal(line, []byte("#EXT-X-PLAYLIST-TYPE:VOD")):
			ended = true
		case bytes.HasPrefix(line, []byte("#EXTINF:")), bytes.HasPrefix(line, []byte("#EXT-X-TARGETDURATION:")):
			media = true
		case bytes.HasPrefix(line, []byte("#EXT-X-STREAM-INF:")):
			master = true
		}
	}
	switch {
	case ended:
		return cacheEndedPlaylist
	case master && !media:
		return cacheMasterPlaylist
	default:
		return cacheLivePlaylist
	}
}

// etagOf returns the object's ETag as a quoted HTTP entity tag, deriving
// one from size and modification time when the store has none.
func etagOf(info objstore.Info) string {
	tag := info.ETag
	if tag == "" {
		tag = strconv.FormatInt(info.Size, 36) + "-" + strconv.FormatInt(info.ModTime.UnixNano(), 36)
	}
	if strings.HasPrefix(tag, `"`) || strings.HasPrefix(tag, `W/"`) {
		return tag
	}
	return `"` + strings.ReplaceAll(tag, `"`, "") + `"`
}

// objectReader is an io.ReadSeeker over an object that opens the store only
// when first read, at the current offset, and reopens after a seek. That
// lets http.ServeContent find the size, answer 304s and serve ranges without
// fetching bytes it does not send.
type objectReader struct {
	ctx   context.Context
	store objstore.Store
	key   string
	size  int64
	off   int64
	rc    io.ReadCloser
}

func (o *objectReader) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.rc == nil {
		rc, _, err := o.store.GetRange(o.ctx, o.key, o.off, -1)
		if err != nil {
			return 0, fmt.Errorf("object %s at offset %d: %w", o.key, o.off, err)
		}
		o.rc = rc
	}
	n, err := o.rc.Read(p)
	o.off += int64(n)
	return n, err
}

func (o *objectReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, fmt.Errorf("object %s: invalid whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("object %s: negative position %d", o.key, abs)
	}
	if abs != o.off {
		o.Close()
	}
	o.off = abs
	return abs, nil
}

// Close releases the open object reader, if any.
func (o *objectReader) Close() error {
	if o.rc == nil {
		return nil
	}
	err := o.rc.Close()
	o.rc = nil
	return err
}

// presignedURL returns a presigned URL for key when presigning is on and the
// store supports it, or "" (after logging unexpected failures).
func (s *Server) presignedURL(ctx context.Context, key string) (string, time.Time) {
	if !s.cfg.Presign {
		return "", time.Time{}
	}
	u, err := s.cfg.Objects.PresignGet(ctx, key, s.cfg.PresignTTL)
	if err != nil {
		if !errors.Is(err, objstore.ErrPresignUnsupported) {
			s.log.Warn("presign failed", "key", key, "err", err)
		}
		return "", time.Time{}
	}
	return u, time.Now().Add(s.cfg.PresignTTL).UTC()
}
