package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/internal/metastore"
)

// This file serves the fingerprint library (/fingerprints): the reference
// clips the fingerprint engine finds in streams. weir keeps each clip's
// Chromaprint fingerprint, not the clip.

// MaxFingerprintClipBytes caps the size of a reference clip.
const MaxFingerprintClipBytes = 10 << 20

// FingerprintInfo is one reference of the fingerprint library.
type FingerprintInfo struct {
	ID         string    `json:"id" example:"fp-3e87dd00aab5"`
	Name       string    `json:"name" example:"station jingle"`
	DurationMs int64     `json:"duration_ms" doc:"The clip's duration, in milliseconds"`
	Items      int       `json:"items" doc:"How many 32-bit items the fingerprint has (about 8 a second of audio)"`
	CreatedAt  time.Time `json:"created_at"`
	// Fingerprint is the raw fingerprint, in GET /fingerprints/{id} only.
	Fingerprint []uint32 `json:"fingerprint,omitempty" doc:"The raw Chromaprint fingerprint (fpcalc -raw), in GET /fingerprints/{id} only"`
}

// FingerprintList is the whole library, oldest first.
type FingerprintList struct {
	Items []FingerprintInfo `json:"items"`
}

type fingerprintIDInput struct {
	ID string `path:"id" maxLength:"64" example:"fp-3e87dd00aab5" doc:"Reference id"`
}

type fingerprintOutput struct{ Body FingerprintInfo }

type fingerprintCreatedOutput struct {
	Location string `header:"Location" doc:"Where the reference is"`
	Body     FingerprintInfo
}

type fingerprintListOutput struct{ Body FingerprintList }

func (s *Server) registerFingerprints() {
	huma.Register(s.api, huma.Operation{
		OperationID:   "fingerprint-create",
		Method:        http.MethodPost,
		Path:          "/fingerprints",
		Summary:       "Add a reference to the fingerprint library",
		Description:   "multipart/form-data with a `file` part (an audio or video clip of 5 s to 5 min, at most 10 MiB, in any container weir reads) and a `name` (defaults to the file name). weir fingerprints the clip's first audio stream with Chromaprint and keeps the fingerprint, not the clip; the fingerprint engine then reports where it occurs in jobs' sources. A clip that is not audio weir can decode, or too short or too long, is 422 saying which; a larger file 413; 503 when fpcalc is not installed.",
		Tags:          []string{"fingerprints"},
		DefaultStatus: http.StatusCreated,
		Security:      bearerSecurity,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.createFingerprint)
	s.api.OpenAPI().Paths["/fingerprints"].Post.RequestBody = &huma.RequestBody{
		Required: true,
		Content: map[string]*huma.MediaType{
			"multipart/form-data": {Schema: &huma.Schema{
				Type:     "object",
				Required: []string{"file"},
				Properties: map[string]*huma.Schema{
					"file": {Type: "string", Format: "binary", Description: "The reference clip: 5 s to 5 min of audio, at most 10 MiB"},
					"name": {Type: "string", MaxLength: ptr(MaxTitleLength), Description: "The reference's name, reported with each match; defaults to the file name"},
				},
			}},
		},
	}

	huma.Register(s.api, huma.Operation{
		OperationID: "fingerprints-list",
		Method:      http.MethodGet,
		Path:        "/fingerprints",
		Summary:     "List the fingerprint library",
		Description: "Every reference, oldest first: id, name, duration and fingerprint length.",
		Tags:        []string{"fingerprints"},
		Errors:      []int{http.StatusServiceUnavailable},
	}, s.listFingerprints)

	huma.Register(s.api, huma.Operation{
		OperationID: "fingerprint-get",
		Method:      http.MethodGet,
		Path:        "/fingerprints/{id}",
		Summary:     "Show a reference",
		Description: "One reference with its raw Chromaprint fingerprint.",
		Tags:        []string{"fingerprints"},
		Errors:      []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.getFingerprint)

	huma.Register(s.api, huma.Operation{
		OperationID:   "fingerprint-delete",
		Method:        http.MethodDelete,
		Path:          "/fingerprints/{id}",
		Summary:       "Remove a reference",
		Description:   "Removes a reference from the library; running jobs stop looking for it at their next read of the library (the fingerprint engine's refresh option).",
		Tags:          []string{"fingerprints"},
		DefaultStatus: http.StatusNoContent,
		Security:      bearerSecurity,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.deleteFingerprint)
}

func (s *Server) createFingerprint(ctx context.Context, in *uploadInput) (*fingerprintCreatedOutput, error) {
	mt, _, err := mime.ParseMediaType(in.req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, huma.Error415UnsupportedMediaType(`Content-Type must be multipart/form-data with a "file" part (the clip) and a "name"`)
	}
	name, fileName, clip, err := s.readFingerprintForm(in)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = titleFromFilename(fileName)
	}
	if name == "" {
		return nil, fieldError("body.name", "is required (the file part has no name to take it from)", nil)
	}
	items, dur, err := engines.FingerprintClip(ctx, bytes.NewReader(clip), "", engines.MaxFingerprintClip)
	if err != nil {
		return nil, s.fingerprintClipError(ctx, err)
	}
	f, err := s.cfg.Meta.CreateFingerprint(ctx, metastore.Fingerprint{ID: newFingerprintID(), Name: name, DurationMs: dur, Items: items})
	if err != nil {
		return nil, s.storeError(ctx, "add fingerprint", err)
	}
	s.log.Info("fingerprint added", "id", f.ID, "name", f.Name, "duration_ms", f.DurationMs)
	return &fingerprintCreatedOutput{Location: "/fingerprints/" + f.ID, Body: fingerprintInfo(f, false)}, nil
}

// readFingerprintForm reads the name and the clip of a POST /fingerprints.
func (s *Server) readFingerprintForm(in *uploadInput) (name, fileName string, clip []byte, err error) {
	limit := int64(MaxFingerprintClipBytes)
	if in.req.ContentLength > limit+multipartSlack {
		return "", "", nil, tooLarge(limit)
	}
	in.req.Body = http.MaxBytesReader(in.w, in.req.Body, limit+multipartSlack)
	mr, err := in.req.MultipartReader()
	if err != nil {
		return "", "", nil, huma.Error400BadRequest("malformed multipart body: " + err.Error())
	}
	var haveFile bool
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", "", nil, bodyReadError(err, limit)
		}
		switch part.FormName() {
		case "name":
			raw, err := io.ReadAll(io.LimitReader(part, 4*MaxTitleLength+1))
			if err != nil {
				return "", "", nil, bodyReadError(err, limit)
			}
			name = strings.TrimSpace(string(raw))
			if err := checkTitle("body.name", name); err != nil {
				return "", "", nil, err
			}
		case "file":
			if haveFile {
				return "", "", nil, fieldError("body.file", "send exactly one file part", nil)
			}
			haveFile, fileName = true, part.FileName()
			clip, err = io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				return "", "", nil, bodyReadError(err, limit)
			}
			if int64(len(clip)) > limit {
				return "", "", nil, tooLarge(limit)
			}
		default:
			return "", "", nil, fieldError("body."+part.FormName(), `unknown form field: send "file" and optionally "name"`, nil)
		}
		part.Close()
	}
	if !haveFile {
		return "", "", nil, fieldError("body.file", `is required: send the clip as a multipart part named "file"`, nil)
	}
	if len(clip) == 0 {
		return "", "", nil, fieldError("body.file", "is empty", nil)
	}
	return name, fileName, clip, nil
}

// fingerprintClipError maps FingerprintClip's errors: 422 for a clip that
// is not a usable reference, 503 when a program is missing or the request
// ended.
func (s *Server) fingerprintClipError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, engines.ErrNotAudio):
		return fieldError("body.file", err.Error(), nil)
	case errors.Is(err, exec.ErrNotFound):
		return huma.Error503ServiceUnavailable("cannot fingerprint: fpcalc or ffmpeg is not installed (apt-get install -y libchromaprint-tools ffmpeg)")
	case ctx.Err() != nil:
		return huma.Error503ServiceUnavailable("fingerprint: request cancelled or timed out")
	}
	s.log.Error("fingerprint clip", "err", err)
	return huma.Error500InternalServerError("could not fingerprint the clip (see server log)")
}

func (s *Server) listFingerprints(ctx context.Context, _ *struct{}) (*fingerprintListOutput, error) {
	list, err := s.cfg.Meta.ListFingerprints(ctx)
	if err != nil {
		return nil, s.storeError(ctx, "list fingerprints", err)
	}
	out := &fingerprintListOutput{Body: FingerprintList{Items: make([]FingerprintInfo, 0, len(list))}}
	for _, f := range list {
		out.Body.Items = append(out.Body.Items, fingerprintInfo(f, false))
	}
	return out, nil
}

func (s *Server) getFingerprint(ctx context.Context, in *fingerprintIDInput) (*fingerprintOutput, error) {
	f, err := s.cfg.Meta.GetFingerprint(ctx, in.ID)
	if err != nil {
		return nil, s.fingerprintError(ctx, in.ID, "read", err)
	}
	return &fingerprintOutput{Body: fingerprintInfo(f, true)}, nil
}

func (s *Server) deleteFingerprint(ctx context.Context, in *fingerprintIDInput) (*struct{}, error) {
	if err := s.cfg.Meta.DeleteFingerprint(ctx, in.ID); err != nil {
		return nil, s.fingerprintError(ctx, in.ID, "remove", err)
	}
	s.log.Info("fingerprint removed", "id", in.ID)
	return nil, nil
}

// fingerprintError maps the store's errors: 404, else a store problem.
func (s *Server) fingerprintError(ctx context.Context, id, op string, err error) error {
	if errors.Is(err, metastore.ErrNotFound) {
		return huma.Error404NotFound(fmt.Sprintf("fingerprint %s not found; GET /fingerprints lists them", id))
	}
	return s.storeError(ctx, fmt.Sprintf("%s fingerprint %s", op, id), err)
}

func fingerprintInfo(f metastore.Fingerprint, withItems bool) FingerprintInfo {
	info := FingerprintInfo{ID: f.ID, Name: f.Name, DurationMs: f.DurationMs, Items: len(f.Items), CreatedAt: f.CreatedAt.UTC()}
	if withItems {
		info.Fingerprint = f.Items
	}
	return info
}

// newFingerprintID returns "fp-" followed by 12 random hex digits.
func newFingerprintID() string {
	var b [6]byte
	rand.Read(b[:])
	return "fp-" + hex.EncodeToString(b[:])
}
