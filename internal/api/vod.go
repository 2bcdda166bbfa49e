package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// UploadURLRequest imports a VOD from an http(s) URL instead of uploading it.
type UploadURLRequest struct {
	URL   string `json:"url" maxLength:"2048" format:"uri" example:"https://example.com/episode.mp4" doc:"http or https URL of the media file"`
	Title string `json:"title,omitempty" maxLength:"200" doc:"Title; defaults to the URL's file name"`
}

// UploadResponse acknowledges an accepted VOD.
type UploadResponse struct {
	StreamID    string `json:"stream_id" example:"vod-3e87dd00aab5"`
	Status      string `json:"status" example:"uploaded"`
	Title       string `json:"title"`
	SourceKey   string `json:"source_key,omitempty" doc:"Object key of the stored upload"`
	SourceURL   string `json:"source_url,omitempty" doc:"URL the pipeline will fetch"`
	SizeBytes   int64  `json:"size_bytes,omitempty" doc:"Bytes stored for an upload"`
	MetadataURL string `json:"metadata_url" doc:"Where to poll progress"`
}

type uploadOutput struct{ Body UploadResponse }

// uploadInput carries the raw request: the upload route reads its body
// itself so a multi-gigabyte file streams to the object store instead of
// being buffered by the framework.
type uploadInput struct {
	requestBase
	req *http.Request
	w   http.ResponseWriter
}

// Resolve implements huma.Resolver.
func (in *uploadInput) Resolve(ctx huma.Context) []error {
	in.requestBase.Resolve(ctx)
	in.req, in.w = humago.Unwrap(ctx)
	return nil
}

type vodIDInput struct {
	requestBase
	ID string `path:"id" maxLength:"64" example:"vod-3e87dd00aab5" doc:"VOD stream id"`
}

// VODMetadata is a VOD's processing state.
type VODMetadata struct {
	StreamID  string  `json:"stream_id" example:"vod-3e87dd00aab5"`
	Title     string  `json:"title"`
	Status    string  `json:"status" enum:"uploaded,processing,transcoding,ready,failed" doc:"uploaded → processing → transcoding → ready, or failed"`
	Error     string  `json:"error,omitempty" doc:"Why the VOD failed"`
	Progress  float64 `json:"progress" doc:"Percent (0-100) of the current stage done"`
	SourceKey string  `json:"source_key,omitempty"`
	SourceURL string  `json:"source_url,omitempty"`

	CreatedAt            time.Time            `json:"created_at"`
	UpdatedAt            time.Time            `json:"updated_at"`
	UploadedAt           *time.Time           `json:"uploaded_at,omitempty"`
	ProcessingStartedAt  *time.Time           `json:"processing_started_at,omitempty"`
	TranscodingStartedAt *time.Time           `json:"transcoding_started_at,omitempty"`
	CompletedAt          *time.Time           `json:"completed_at,omitempty" doc:"When it became ready"`
	FailedAt             *time.Time           `json:"failed_at,omitempty"`
	StageTimes           map[string]time.Time `json:"stage_times" doc:"When the VOD entered each status"`

	ProcessingLatencyMS int64          `json:"processing_latency_ms" doc:"Upload to ready, in milliseconds (0 until ready)"`
	VariantsGenerated   []string       `json:"variants_generated" example:"[\"1080p\",\"720p\",\"480p\",\"360p\"]"`
	ManifestPath        string         `json:"manifest_path,omitempty" doc:"Object key of the master playlist"`
	ManifestURL         string         `json:"manifest_url,omitempty" doc:"Playback URL of the master playlist, once ready"`
	Details             map[string]any `json:"details,omitempty" doc:"Pipeline details (probe results, ladder)"`
}

type vodMetadataOutput struct{ Body VODMetadata }

// ManifestResponse points a player at a playlist.
type ManifestResponse struct {
	StreamID string `json:"stream_id"`
	URL      string `json:"url" example:"http://127.0.0.1:8080/hls/vod-3e87dd00aab5/master.m3u8" doc:"Playlist URL served by this server (works with any object store)"`
	// PresignedURL is only set when the server presigns and the store can.
	PresignedURL string     `json:"presigned_url,omitempty" doc:"Presigned object-store URL of the playlist, when the server presigns (S3); its relative variant URIs resolve only if the bucket allows it"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty" doc:"When presigned_url stops working"`
}

type manifestOutput struct{ Body ManifestResponse }

type vodListInput struct {
	Status string `query:"status" enum:"uploaded,processing,transcoding,ready,failed" doc:"Only VODs in this status"`
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"1000" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page"`
}

var vodStatuses = []metastore.Status{
	metastore.StatusUploaded, metastore.StatusProcessing, metastore.StatusTranscoding,
	metastore.StatusReady, metastore.StatusFailed,
}

func (s *Server) registerVOD() {
	huma.Register(s.api, huma.Operation{
		OperationID:   "vod-upload",
		Method:        http.MethodPost,
		Path:          "/vod/upload",
		Summary:       "Upload or import a VOD",
		Description:   "multipart/form-data with a `file` part (and optional `title`) streams the file to the object store; or a JSON body `{url, title}` imports from an http(s) URL. Creates the VOD (status uploaded) and queues its transcode job. Uploads larger than the server's limit get 413.",
		Tags:          []string{"vod"},
		DefaultStatus: http.StatusAccepted,
		Security:      bearerSecurity,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusInsufficientStorage, http.StatusServiceUnavailable},
	}, s.upload)
	// The handler reads the body itself (see uploadInput), so describe the
	// accepted bodies by hand.
	jsonSchema := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[UploadURLRequest](), true, "")
	op := s.api.OpenAPI().Paths["/vod/upload"].Post
	op.RequestBody = &huma.RequestBody{
		Required: true,
		Content: map[string]*huma.MediaType{
			"multipart/form-data": {Schema: &huma.Schema{
				Type:     "object",
				Required: []string{"file"},
				Properties: map[string]*huma.Schema{
					"file":  {Type: "string", Format: "binary", Description: "The media file; stored as {stream_id}/source/{sanitised name}"},
					"title": {Type: "string", MaxLength: ptr(MaxTitleLength), Description: "Title; defaults to the file name"},
				},
			}},
			"application/json": {Schema: jsonSchema},
		},
	}

	huma.Register(s.api, huma.Operation{
		OperationID: "vod-metadata",
		Method:      http.MethodGet,
		Path:        "/vod/{id}/metadata",
		Summary:     "VOD status and metadata",
		Description: "Status, stage timestamps, progress, processing latency, variants and manifest path of a VOD.",
		Tags:        []string{"vod"},
		Errors:      []int{http.StatusNotFound},
	}, s.vodMetadata)

	huma.Register(s.api, huma.Operation{
		OperationID: "vod-manifest",
		Method:      http.MethodGet,
		Path:        "/vod/{id}/manifest",
		Summary:     "VOD playback URL",
		Description: "URL of the master playlist. 409 until the VOD is ready.",
		Tags:        []string{"vod"},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, s.vodManifest)

	huma.Register(s.api, huma.Operation{
		OperationID:   "vod-cancel",
		Method:        http.MethodPost,
		Path:          "/vod/{id}/cancel",
		Summary:       "Cancel a VOD job",
		Description:   "Marks an unfinished VOD failed with the error \"cancelled\". The worker transcoding it stops at its next progress update and deletes its partial output. 409 when the VOD is already ready or failed.",
		Tags:          []string{"vod"},
		DefaultStatus: http.StatusAccepted,
		Security:      bearerSecurity,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict},
	}, s.cancelVOD)

	huma.Register(s.api, huma.Operation{
		OperationID: "vod-list",
		Method:      http.MethodGet,
		Path:        "/vod",
		Summary:     "List VODs",
		Description: "VODs newest first, optionally filtered by status (uploaded, processing, transcoding, ready, failed); page with limit and cursor.",
		Tags:        []string{"vod"},
	}, func(ctx context.Context, in *vodListInput) (*listOutput, error) {
		return s.list(ctx, metastore.KindVOD, listQuery{Status: in.Status, Limit: in.Limit, Cursor: in.Cursor}, vodStatuses)
	})
}

// upload dispatches on the request's media type.
func (s *Server) upload(ctx context.Context, in *uploadInput) (*uploadOutput, error) {
	mt, _, err := mime.ParseMediaType(in.req.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "multipart/form-data":
		return s.uploadMultipart(ctx, in)
	case err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")):
		return s.uploadURL(ctx, in)
	}
	return nil, huma.Error415UnsupportedMediaType(`Content-Type must be multipart/form-data (a "file" part and optional "title") or application/json ({"url": "https://...", "title": "..."})`)
}

// multipartSlack is what a multipart body may carry beyond the file itself
// (boundaries, part headers, the title).
const multipartSlack = 64 << 10

// uploadMultipart streams the "file" part to the object store, enforcing
// MaxUploadBytes on the file. On any failure the partial object is deleted.
func (s *Server) uploadMultipart(ctx context.Context, in *uploadInput) (*uploadOutput, error) {
	limit := s.cfg.MaxUploadBytes
	if in.req.ContentLength > limit+multipartSlack {
		return nil, tooLarge(limit)
	}
	in.req.Body = http.MaxBytesReader(in.w, in.req.Body, limit+multipartSlack)
	mr, err := in.req.MultipartReader()
	if err != nil {
		return nil, huma.Error400BadRequest("malformed multipart body: " + err.Error())
	}

	id, err := s.unusedID(ctx, metastore.KindVOD)
	if err != nil {
		return nil, err
	}
	var (
		key, origName, title string
		titleSet             bool
		size                 int64
	)
	cleanup := func() {
		if key == "" {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.cfg.Objects.Delete(dctx, key); err != nil {
			s.log.Error("delete partial upload", "key", key, "err", err)
		}
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			cleanup()
			return nil, bodyReadError(err, limit)
		}
		switch part.FormName() {
		case "title":
			raw, err := io.ReadAll(io.LimitReader(part, 4*MaxTitleLength+1))
			if err != nil {
				cleanup()
				return nil, bodyReadError(err, limit)
			}
			if len(raw) > 4*MaxTitleLength {
				cleanup()
				return nil, fieldError("body.title", fmt.Sprintf("must be at most %d characters", MaxTitleLength), nil)
			}
			title, titleSet = strings.TrimSpace(string(raw)), true
			if err := checkTitle("body.title", title); err != nil {
				cleanup()
				return nil, err
			}
		case "file":
			if key != "" {
				cleanup()
				return nil, fieldError("body.file", "send exactly one file part", nil)
			}
			origName = part.FileName()
			key = id + "/" + sourcePrefix + sanitizeFilename(origName)
			lr := &uploadLimiter{r: part, max: limit}
			info, err := s.cfg.Objects.Put(ctx, key, lr, -1, partContentType(part.Header.Get("Content-Type"), key))
			s.metrics.uploadBytes.Add(float64(lr.n))
			if lr.exceeded {
				cleanup()
				return nil, tooLarge(limit)
			}
			if err != nil {
				cleanup()
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return nil, tooLarge(limit)
				}
				if slow := bodyTooSlow(lr.readErr); slow != nil {
					return nil, slow
				}
				if ctx.Err() != nil {
					return nil, huma.Error400BadRequest("upload interrupted: the request ended before the file arrived")
				}
				if lr.readErr != nil {
					return nil, bodyReadError(lr.readErr, limit)
				}
				s.log.Error("store upload", "key", key, "err", err)
				return nil, storeUploadError(err)
			}
			size = info.Size
			if size <= 0 {
				size = lr.n
			}
		default:
			cleanup()
			return nil, fieldError("body."+part.FormName(), `unknown form field: send "file" and optionally "title"`, nil)
		}
		part.Close()
	}
	if key == "" {
		return nil, fieldError("body.file", `is required: send the media as a multipart part named "file"`, nil)
	}
	if size == 0 {
		cleanup()
		return nil, fieldError("body.file", "is empty", nil)
	}
	if !titleSet || title == "" {
		title = titleFromFilename(origName)
	}
	st, err := s.newStream(ctx, metastore.Stream{
		ID:        id,
		Kind:      metastore.KindVOD,
		Title:     title,
		Status:    metastore.StatusUploaded,
		SourceKey: key,
		Details:   mustJSON(map[string]any{"source_filename": origName, "source_size": size}),
	})
	if err != nil {
		cleanup()
		return nil, err
	}
	if err := s.announceVOD(ctx, st); err != nil {
		return nil, err
	}
	return &uploadOutput{Body: UploadResponse{
		StreamID:    st.ID,
		Status:      string(st.Status),
		Title:       st.Title,
		SourceKey:   key,
		SizeBytes:   size,
		MetadataURL: s.httpBase(in.requestBase) + "/vod/" + st.ID + "/metadata",
	}}, nil
}

// uploadURL registers a VOD fetched from an http(s) URL by the pipeline.
func (s *Server) uploadURL(ctx context.Context, in *uploadInput) (*uploadOutput, error) {
	var body UploadURLRequest
	if err := decodeJSON(http.MaxBytesReader(in.w, in.req.Body, s.cfg.MaxJSONBytes), &body, s.cfg.MaxJSONBytes); err != nil {
		return nil, err
	}
	body.URL = strings.TrimSpace(body.URL)
	body.Title = strings.TrimSpace(body.Title)
	if err := checkSourceURL("body.url", body.URL, "http", "https"); err != nil {
		return nil, err
	}
	if err := checkTitle("body.title", body.Title); err != nil {
		return nil, err
	}
	if body.Title == "" {
		if u, err := parseURL(body.URL); err == nil {
			body.Title = titleFromFilename(path.Base(u.Path))
		}
	}
	st, err := s.newStream(ctx, metastore.Stream{
		Kind:      metastore.KindVOD,
		Title:     body.Title,
		Status:    metastore.StatusUploaded,
		SourceURL: body.URL,
	})
	if err != nil {
		return nil, err
	}
	if err := s.announceVOD(ctx, st); err != nil {
		return nil, err
	}
	return &uploadOutput{Body: UploadResponse{
		StreamID:    st.ID,
		Status:      string(st.Status),
		Title:       st.Title,
		SourceURL:   redactURL(st.SourceURL),
		MetadataURL: s.httpBase(in.requestBase) + "/vod/" + st.ID + "/metadata",
	}}, nil
}

// announceVOD queues the transcode job; if the bus refuses it the VOD is
// marked failed (so it does not sit in "uploaded" forever) and the client
// gets 503.
func (s *Server) announceVOD(ctx context.Context, st metastore.Stream) error {
	err := s.publish(ctx, &protocol.VODJob{
		StreamID:    st.ID,
		SourceKey:   st.SourceKey,
		SourceURL:   st.SourceURL,
		Title:       st.Title,
		SubmittedAt: time.Now().UTC(),
	})
	if err == nil {
		return nil
	}
	s.log.Error("queue vod job", "stream", st.ID, "err", err)
	s.failStream(ctx, st.ID, "could not queue the transcode job on the bus")
	return huma.Error503ServiceUnavailable(fmt.Sprintf("vod %s was stored but its transcode job could not be queued on the bus; retry later", st.ID))
}

// unusedID picks a stream id that no stream has yet. Uploads write objects
// under the id before the row exists, so a collision must be ruled out first.
func (s *Server) unusedID(ctx context.Context, kind metastore.Kind) (string, error) {
	for range 4 {
		id := newStreamID(kind)
		_, err := s.cfg.Meta.GetStream(ctx, id)
		if errors.Is(err, metastore.ErrNotFound) {
			return id, nil
		}
		if err != nil {
			return "", s.storeError(ctx, "pick a stream id", err)
		}
	}
	return "", huma.Error500InternalServerError("could not pick an unused stream id")
}

// sourcePrefix is where, under a stream's prefix, the uploaded original is
// stored. /hls/ never serves it.
const sourcePrefix = "source/"

// CancelledError is the error a cancelled VOD carries.
const CancelledError = "cancelled"

// cancelVOD fails the title in the metadata store; workers notice because
// their next status or progress write is refused.
func (s *Server) cancelVOD(ctx context.Context, in *vodIDInput) (*streamStatusOutput, error) {
	st, err := s.getStream(ctx, metastore.KindVOD, in.ID)
	if err != nil {
		return nil, err
	}
	if st.Status.Terminal() {
		return nil, huma.Error409Conflict(fmt.Sprintf("vod %s is already %s and cannot be cancelled", st.ID, st.Status))
	}
	st, err = s.cfg.Meta.TransitionStatus(ctx, st.ID, metastore.StatusFailed, func(cur *metastore.Stream) {
		if cur.Error == "" {
			cur.Error = CancelledError
		}
	})
	if errors.Is(err, metastore.ErrConflict) {
		return nil, huma.Error409Conflict(fmt.Sprintf("vod %s finished before it could be cancelled", in.ID))
	}
	if err != nil {
		return nil, s.storeError(ctx, "cancel vod "+in.ID, err)
	}
	return &streamStatusOutput{Body: StreamStatus{StreamID: st.ID, Status: string(st.Status)}}, nil
}

func (s *Server) vodMetadata(ctx context.Context, in *vodIDInput) (*vodMetadataOutput, error) {
	st, err := s.getStream(ctx, metastore.KindVOD, in.ID)
	if err != nil {
		return nil, err
	}
	md := VODMetadata{
		StreamID:             st.ID,
		Title:                st.Title,
		Status:               string(st.Status),
		Error:                st.Error,
		Progress:             st.Progress,
		SourceKey:            st.SourceKey,
		SourceURL:            redactURL(st.SourceURL),
		CreatedAt:            st.CreatedAt.UTC(),
		UpdatedAt:            st.UpdatedAt.UTC(),
		UploadedAt:           stageTime(st, metastore.StatusUploaded),
		ProcessingStartedAt:  stageTime(st, metastore.StatusProcessing),
		TranscodingStartedAt: stageTime(st, metastore.StatusTranscoding),
		CompletedAt:          stageTime(st, metastore.StatusReady),
		FailedAt:             stageTime(st, metastore.StatusFailed),
		StageTimes:           stageTimes(st),
		ProcessingLatencyMS:  st.ProcessingLatencyMS,
		VariantsGenerated:    st.VariantsGenerated,
		ManifestPath:         st.ManifestPath,
		Details:              details(st),
	}
	if md.VariantsGenerated == nil {
		md.VariantsGenerated = []string{}
	}
	if md.ProcessingLatencyMS == 0 && md.CompletedAt != nil {
		start := md.UploadedAt
		if start == nil {
			start = &md.CreatedAt
		}
		md.ProcessingLatencyMS = md.CompletedAt.Sub(*start).Milliseconds()
	}
	if st.Status == metastore.StatusReady {
		md.ManifestURL = s.hlsURL(in.requestBase, vodManifestKey(st))
	}
	return &vodMetadataOutput{Body: md}, nil
}

// vodManifestKey is the object key of a VOD's master playlist: the
// pipeline's ManifestPath when it is under the stream's prefix, otherwise
// the conventional {id}/master.m3u8.
func vodManifestKey(st metastore.Stream) string {
	if p := strings.TrimPrefix(st.ManifestPath, "/"); strings.HasPrefix(p, st.ID+"/") {
		if _, _, err := hlsKey(p); err == nil {
			return p
		}
	}
	return st.ID + "/master.m3u8"
}

func (s *Server) vodManifest(ctx context.Context, in *vodIDInput) (*manifestOutput, error) {
	st, err := s.getStream(ctx, metastore.KindVOD, in.ID)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case metastore.StatusReady:
	case metastore.StatusFailed:
		return nil, huma.Error409Conflict(fmt.Sprintf("vod %s failed and has no manifest: %s", st.ID, st.Error))
	default:
		return nil, huma.Error409Conflict(fmt.Sprintf("vod %s is not playable yet (status %s); poll /vod/%s/metadata until it is ready", st.ID, st.Status, st.ID))
	}
	key := vodManifestKey(st)
	out := &manifestOutput{Body: ManifestResponse{StreamID: st.ID, URL: s.hlsURL(in.requestBase, key)}}
	if u, exp := s.presignedURL(ctx, key); u != "" {
		out.Body.PresignedURL, out.Body.ExpiresAt = u, &exp
	}
	return out, nil
}

// storeUploadError is the problem for an upload the object store could
// not take: 507 when its disk is full (the client may retry once space is
// freed), else 503.
func storeUploadError(err error) error {
	if objstore.NoSpace(err) {
		return huma.NewError(http.StatusInsufficientStorage, "could not store upload: no space left on device; retry once space is freed")
	}
	return huma.Error503ServiceUnavailable("could not store upload: the object store failed; retry later")
}

// tooLarge is the 413 problem for an upload over the limit.
func tooLarge(limit int64) error {
	return huma.NewError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("upload is larger than this server's limit of %d bytes (%s)", limit, humanBytes(limit)))
}

// bodyReadError maps a failure reading the request body to a problem.
func bodyReadError(err error, limit int64) error {
	if slow := bodyTooSlow(err); slow != nil {
		return slow
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	return huma.Error400BadRequest("malformed multipart body: " + err.Error())
}

// uploadLimiter passes through at most max bytes; reading past that makes
// it fail (so the store aborts the write) and remember why.
type uploadLimiter struct {
	r        io.Reader
	max, n   int64
	exceeded bool
	readErr  error
}

var errUploadTooLarge = errors.New("upload exceeds the size limit")

func (l *uploadLimiter) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, errUploadTooLarge
	}
	if room := l.max - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		l.exceeded = true
		return n, errUploadTooLarge
	}
	if err != nil && err != io.EOF {
		l.readErr = err
	}
	return n, err
}

// partContentType is the stored content type of an upload: the part's own
// when it parses, else one guessed from the extension.
func partContentType(declared, key string) string {
	if mt, _, err := mime.ParseMediaType(declared); err == nil && mt != "" && mt != "application/octet-stream" {
		return mt
	}
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// decodeJSON strictly decodes one JSON value: unknown fields, type
// mismatches, trailing data and oversized bodies are all errors that say
// what to fix.
func decodeJSON(r io.Reader, v any, limit int64) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err, limit)
		}
		return huma.Error400BadRequest("malformed JSON: the body holds data after the first JSON value")
	}
	return nil
}

func jsonError(err error, limit int64) error {
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	if slow := bodyTooSlow(err); slow != nil {
		return slow
	}
	switch {
	case errors.As(err, &mbe):
		return huma.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	case errors.Is(err, io.EOF):
		return huma.Error400BadRequest("request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return huma.Error400BadRequest("malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &syntax):
		return huma.Error400BadRequest(fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return huma.Error400BadRequest(fmt.Sprintf("request body must be a JSON object, not %s", typ.Value))
		}
		return fieldError("body."+typ.Field, fmt.Sprintf("expected %s, got %s", jsonTypeName(typ.Type.Kind().String()), typ.Value), nil)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fieldError("body."+name, "unknown field", nil)
	}
	return huma.Error400BadRequest("malformed JSON: " + err.Error())
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

// humanBytes formats n in binary units ("1.5 GiB").
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
