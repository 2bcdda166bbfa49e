package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// JobList is a page of jobs, newest first.
type JobList struct {
	Items      []jobs.View `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

// JobResult is one engine output of a job.
type JobResult struct {
	Engine     string `json:"engine" example:"people"`
	TaskID     string `json:"task_id" example:"job-3e87dd00aab5-people"`
	ChunkUUID  string `json:"chunk_uuid"`
	ChunkIndex int64  `json:"chunk_index"`
	StartMs    int64  `json:"start_ms" doc:"Start on the source's timeline, in milliseconds"`
	EndMs      int64  `json:"end_ms" doc:"End on the source's timeline, in milliseconds"`
	OutputType string `json:"output_type" example:"object"`
	Rev        int64  `json:"rev" doc:"Revision of this output; a later one replaces an earlier one"`
	// Content is the engine's vtn-standard document, its series times on
	// the source's timeline.
	Content   any       `json:"content" doc:"The engine's vtn-standard document; series times are on the source's timeline"`
	CreatedAt time.Time `json:"created_at"`
}

// JobResults is a page of a job's results in time order.
type JobResults struct {
	JobID      string      `json:"job_id"`
	Items      []JobResult `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

type jobCreateInput struct {
	RawBody []byte `contentType:"application/json"`
}

type jobOutput struct {
	Body jobs.View
}

type jobCreatedOutput struct {
	Location string `header:"Location" doc:"Where to poll the job"`
	Body     jobs.View
}

type jobListInput struct {
	Status string `query:"status" enum:"pending,running,complete,failed,cancelled" doc:"Only jobs in this status"`
	Stream string `query:"stream" maxLength:"128" example:"vod-3e87dd00aab5" doc:"Only jobs whose source is this VOD title or live stream (source vod or live)"`
	Limit  int    `query:"limit" default:"20" minimum:"1" maximum:"100" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page"`
}

type jobListOutput struct{ Body JobList }

type jobIDInput struct {
	ID string `path:"id" maxLength:"128" example:"job-3e87dd00aab5" doc:"Job id"`
}

type jobResultsInput struct {
	ID     string `path:"id" maxLength:"128" example:"job-3e87dd00aab5" doc:"Job id"`
	Format string `query:"format" enum:"json,vtt,srt" default:"json" doc:"json: the results, a page at a time; vtt or srt: the whole job's texts of one kind as captions (WebVTT or SubRip)"`
	Kind   string `query:"kind" enum:"speech,screen,keyword" doc:"For vtt and srt: which texts become captions, speech (the transcript, the default), screen (lines read on screen) or keyword"`
	Engine string `query:"engine" maxLength:"63" doc:"Only this engine's results"`
	From   int64  `query:"from" minimum:"0" doc:"Only results ending after this time, in milliseconds on the source's timeline"`
	To     int64  `query:"to" minimum:"0" doc:"Only results starting before this time, in milliseconds (0: no end)"`
	Limit  int    `query:"limit" default:"100" minimum:"1" maximum:"1000" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page"`
}

// jobResultsOutput is a page of JobResults (format json) or a caption
// file (vtt, srt: Body is its bytes, with its type and file name).
type jobResultsOutput struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               any
}

func (s *Server) registerJobs() {
	huma.Register(s.api, huma.Operation{
		OperationID:   "job-create",
		Method:        http.MethodPost,
		Path:          "/jobs",
		Summary:       "Create a job",
		Description:   "Runs engines over the chunks of one source: `{\"vod\": id}` (the uploaded original), `{\"live\": id}`, `{\"topic\": name}` (any stream topic) or `{\"url\": \"https://...\"}`. Each engine's options are checked against its spec and its defaults filled in; the answer is the job (status pending) as GET /jobs/{id} shows it. A malformed body is 400, a request naming a member it does not know, a bad value or an unknown engine 422 naming the member (`engines[1].options.threshold`); a VOD without an uploaded original or an unavailable engine 409. docs/api.md describes the request.",
		Tags:          []string{"jobs"},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  jobs.MaxRequestBytes,
		// The handler reads and checks the body itself (jobs.ParseRequest).
		SkipValidateBody: true,
		Security:         bearerSecurity,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.createJob)
	// The handler parses the body itself, to name the member at fault, so
	// describe it by hand.
	requestSchema := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[jobs.Request](), true, "")
	s.api.OpenAPI().Paths["/jobs"].Post.RequestBody = &huma.RequestBody{
		Required:    true,
		Description: "The job: its source, its engines with their options and flow policy, and how to cut chunks.",
		Content:     map[string]*huma.MediaType{"application/json": {Schema: requestSchema}},
	}

	huma.Register(s.api, huma.Operation{
		OperationID: "jobs-list",
		Method:      http.MethodGet,
		Path:        "/jobs",
		Summary:     "List jobs",
		Description: "Jobs newest first, each with its engines' progress, optionally filtered by status and by the VOD title or live stream they read (stream); page with limit and cursor.",
		Tags:        []string{"jobs"},
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listJobs)

	huma.Register(s.api, huma.Operation{
		OperationID: "job-get",
		Method:      http.MethodGet,
		Path:        "/jobs/{id}",
		Summary:     "Show a job",
		Description: "The job's status (pending, running, complete, failed or cancelled) and each engine's progress: chunks total, queued, sent, done, ignored, dropped and failed, the last heartbeat and the instances working on it.",
		Tags:        []string{"jobs"},
		Errors:      []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.getJob)

	huma.Register(s.api, huma.Operation{
		OperationID: "job-cancel",
		Method:      http.MethodPost,
		Path:        "/jobs/{id}/cancel",
		Summary:     "Cancel a job",
		Description: "Moves a pending or running job to cancelled; its runner stops sending chunks at its next look at the job, and the results so far stay. 409 when the job has already ended.",
		Tags:        []string{"jobs"},
		Security:    bearerSecurity,
		Errors:      []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
	}, s.cancelJob)

	huma.Register(s.api, huma.Operation{
		OperationID: "job-results",
		Method:      http.MethodGet,
		Path:        "/jobs/{id}/results",
		Summary:     "A job's results",
		Description: "The engines' outputs in time order (start, end, engine, chunk), each a vtn-standard document on the source's timeline; filter by engine and by time (from and to in milliseconds select the outputs that overlap [from, to)), page with limit and cursor. With format=vtt or format=srt, the whole job's texts of one kind (kind=speech, the default: the transcript; kind=screen: lines read on screen) as a WebVTT or SubRip file; engine= picks the engine when several wrote that kind.",
		Tags:        []string{"jobs"},
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.jobResults)
	s.describeResultFormats()

	s.registerJobWindows()
	s.registerJobChunks()
	s.registerJobArtifacts()
}

func (s *Server) createJob(ctx context.Context, in *jobCreateInput) (*jobCreatedOutput, error) {
	req, err := jobs.ParseRequest(bytes.NewReader(in.RawBody))
	if err != nil {
		return nil, s.jobError(ctx, "create job", err)
	}
	v, err := s.cfg.Jobs.Create(ctx, req)
	if err != nil {
		return nil, s.jobError(ctx, "create job", err)
	}
	return &jobCreatedOutput{Location: "/jobs/" + v.ID, Body: v}, nil
}

func (s *Server) listJobs(ctx context.Context, in *jobListInput) (*jobListOutput, error) {
	views, next, err := s.cfg.Jobs.ListWhere(ctx, jobs.ListFilter{Status: in.Status, Stream: in.Stream}, in.Limit, in.Cursor)
	if err != nil {
		return nil, s.jobError(ctx, "list jobs", err)
	}
	return &jobListOutput{Body: JobList{Items: views, NextCursor: next}}, nil
}

func (s *Server) getJob(ctx context.Context, in *jobIDInput) (*jobOutput, error) {
	v, err := s.cfg.Jobs.Get(ctx, in.ID)
	if err != nil {
		return nil, s.jobError(ctx, "read job "+in.ID, err)
	}
	return &jobOutput{Body: v}, nil
}

func (s *Server) cancelJob(ctx context.Context, in *jobIDInput) (*jobOutput, error) {
	v, err := s.cfg.Jobs.Cancel(ctx, in.ID)
	if err != nil {
		return nil, s.jobError(ctx, "cancel job "+in.ID, err)
	}
	return &jobOutput{Body: v}, nil
}

func (s *Server) jobResults(ctx context.Context, in *jobResultsInput) (*jobResultsOutput, error) {
	if in.Format == "vtt" || in.Format == "srt" {
		return s.exportCaptions(ctx, in)
	}
	if in.Kind != "" {
		return nil, huma.NewError(http.StatusUnprocessableEntity, "query parameter kind: selects the texts of a vtt or srt export; format json lists whole results",
			&huma.ErrorDetail{Location: "query.kind", Message: "only with format vtt or srt", Value: in.Kind})
	}
	page, err := s.cfg.Jobs.Results(ctx, in.ID, metastore.ResultQuery{
		Engine: in.Engine, FromMs: in.From, ToMs: in.To, Limit: in.Limit, After: in.Cursor,
	})
	if err != nil {
		return nil, s.jobError(ctx, "read results of job "+in.ID, err)
	}
	out := JobResults{JobID: in.ID, Items: make([]JobResult, 0, len(page.Items)), NextCursor: page.Next}
	for _, r := range page.Items {
		out.Items = append(out.Items, JobResult{
			Engine: r.Engine, TaskID: r.TaskID, ChunkUUID: r.ChunkUUID, ChunkIndex: r.ChunkIndex,
			StartMs: r.StartMs, EndMs: r.EndMs, OutputType: r.OutputType, Rev: r.Rev,
			Content: json.RawMessage(r.Content), CreatedAt: r.CreatedAt.UTC(),
		})
	}
	return &jobResultsOutput{Body: out}, nil
}

// jobError maps the job service's errors to problems: a request's
// problems are 400 (the body is not a JSON object of the right form) or
// 422 (a member at fault, each in errors[]), ErrNotFound 404, ErrConflict
// 409, ErrBus 503; anything else is a metadata store failure.
func (s *Server) jobError(ctx context.Context, what string, err error) error {
	var re *jobs.RequestError
	switch {
	case errors.As(err, &re):
		return requestProblem(re)
	case errors.Is(err, jobs.ErrNotFound):
		return huma.Error404NotFound(err.Error())
	case errors.Is(err, jobs.ErrConflict):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, jobs.ErrBus):
		s.log.Error("queue job", "err", err)
		return huma.Error503ServiceUnavailable(err.Error() + "; retry later")
	}
	return s.storeError(ctx, what, err)
}

// requestProblem is the problem of a refused job request. Problems of the
// body as a whole (malformed JSON, not an object, too large) make it 400;
// otherwise it is 422 with each member at fault in errors[], located as
// "body.engines[1].options.threshold" (or "query.status" for a listing's
// parameters).
func requestProblem(re *jobs.RequestError) error {
	details := make([]error, 0, len(re.Problems))
	parts := make([]string, 0, len(re.Problems))
	status, what := http.StatusUnprocessableEntity, "invalid query: "
	for _, p := range re.Problems {
		var loc string
		switch p.Field {
		case "":
			status, what = http.StatusBadRequest, "invalid job request: "
			parts = append(parts, p.Problem)
			continue
		case "status", "cursor", "engine", "from", "to":
			loc = "query." + p.Field
		default:
			loc, what = "body."+p.Field, "invalid job request: "
		}
		parts = append(parts, describeLocation(loc)+": "+p.Problem)
		details = append(details, &huma.ErrorDetail{Location: loc, Message: p.Problem})
	}
	return huma.NewError(status, what+strings.Join(parts, "; "), details...)
}

// jobChunkFile is a chunk's file name, as the runner writes it:
// <index, six digits or more>.<extension>.
var jobChunkFile = regexp.MustCompile(`^[0-9]{6,19}\.[a-z0-9]{1,8}$`)

// jobChunkKinds are the chunk kinds the chunker makes, and the chunks a
// task DAG's routes make (frames cut at a parent's times, its documents).
var jobChunkKinds = map[string]bool{"video": true, "audio": true, "frame": true, "routed": true}

// JobChunkKey is the object key of a chunk of a job:
// jobs/<jobID>/chunks/<kind>/<file>.
func JobChunkKey(jobID, kind, file string) string {
	return "jobs/" + jobID + "/chunks/" + kind + "/" + file
}

// registerJobChunks serves GET /jobs/{id}/chunks/{kind}/{file}: the bytes
// of a chunk a job's runner stored, which an engine fetches through the
// media_chunk's cacheURI. It streams from the object store (with ranges),
// so it is a plain handler documented by hand.
func (s *Server) registerJobChunks() {
	const pattern = "/jobs/{id}/chunks/{kind}/{file}"
	s.mux.HandleFunc("GET "+pattern, s.serveJobChunk)
	problem := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
			problemContentType: {Schema: &huma.Schema{Ref: "#/components/schemas/ErrorModel"}},
		}}
	}
	s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "job-chunk",
		Method:      http.MethodGet,
		Path:        pattern,
		Summary:     "A chunk of a job",
		Description: "The bytes of one chunk the job's runner cut (the object jobs/{id}/chunks/{kind}/{file}), with its content type and byte ranges: what an engine fetches through a media_chunk's cacheURI.",
		Tags:        []string{"jobs"},
		Parameters: []*huma.Param{
			{Name: "id", In: "path", Required: true, Description: "Job id", Schema: &huma.Schema{Type: "string", Pattern: "^[A-Za-z0-9._-]{1,128}$"}},
			{Name: "kind", In: "path", Required: true, Description: "Chunk kind", Schema: &huma.Schema{Type: "string", Enum: []any{"video", "audio", "frame", "routed"}}},
			{Name: "file", In: "path", Required: true, Description: "Chunk file: its index (six digits or more) and extension, e.g. 000012.jpg", Schema: &huma.Schema{Type: "string", Pattern: jobChunkFile.String()}},
		},
		Responses: map[string]*huma.Response{
			"200": {Description: "The chunk", Content: map[string]*huma.MediaType{
				"video/mp2t": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
				"audio/wav":  {Schema: &huma.Schema{Type: "string", Format: "binary"}},
				"image/jpeg": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			}},
			"206": {Description: "The requested byte range"},
			"404": problem("No such job, kind or chunk"),
			"416": problem("Range not satisfiable"),
		},
	})
}

func (s *Server) serveJobChunk(w http.ResponseWriter, r *http.Request) {
	id, kind, file := r.PathValue("id"), r.PathValue("kind"), r.PathValue("file")
	if err := protocol.ValidateStreamID(id); err != nil {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("job %.80q not found: not a job id", id))
		return
	}
	if !jobChunkKinds[kind] {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("job chunk kind %.20q not found: kinds are video, audio, frame and routed", kind))
		return
	}
	if !jobChunkFile.MatchString(file) {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("job chunk %.40q not found: chunk files are named like 000012.jpg", file))
		return
	}
	if !s.jobExists(w, r, id) {
		return
	}
	// A job run again after a crash cuts its chunks again; keep caches
	// from holding an old cut long.
	s.serveJobObject(w, r, JobChunkKey(id, kind, file), fmt.Sprintf("chunk %s/%s of job %s", kind, file, id))
}

// jobExists reports whether job id exists, answering the request when it
// does not (404) or when the metadata store fails (503).
func (s *Server) jobExists(w http.ResponseWriter, r *http.Request, id string) bool {
	_, err := s.cfg.Meta.GetJob(r.Context(), id)
	switch {
	case err == nil:
		return true
	case errors.Is(err, metastore.ErrNotFound):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("job %s not found; GET /jobs lists them", id))
	default:
		s.log.Error("metadata store", "op", "read job "+id, "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "read job "+id+": the metadata store failed (see server log)")
	}
	return false
}

// serveJobObject streams the object key of a job (what names it in
// problems), with its content type (or one from the key's extension),
// byte ranges and a short cache life.
func (s *Server) serveJobObject(w http.ResponseWriter, r *http.Request, key, what string) {
	ctx := r.Context()
	info, err := s.cfg.Objects.Stat(ctx, key)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			writeProblem(w, http.StatusNotFound, what+" not found")
			return
		}
		s.objectError(w, key, err)
		return
	}
	ct := info.ContentType
	if ct == "" || ct == "application/octet-stream" {
		if byExt := mime.TypeByExtension(path.Ext(key)); byExt != "" {
			ct = byExt
		}
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", cacheShort)
	h.Set("ETag", etagOf(info))
	lazy := &objectReader{ctx: ctx, store: s.cfg.Objects, key: key, size: info.Size}
	defer lazy.Close()
	pw := &problemWriter{ResponseWriter: w}
	http.ServeContent(pw, r, "", info.ModTime, lazy)
	pw.finish(fmt.Sprintf("%s is %d bytes", what, info.Size))
}

// jobArtifactFile is an artifact's file name: what engine.ValidArtifactName
// accepts.
var jobArtifactFile = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// jobEngineName is an engine's name, as engine specs allow.
var jobEngineName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// JobArtifactKey is the object key of a file an engine of a job stored
// (a scene's thumbnail): jobs/<jobID>/artifacts/<engine>/<file>.
func JobArtifactKey(jobID, engineName, file string) string {
	return "jobs/" + jobID + "/artifacts/" + engineName + "/" + file
}

// registerJobArtifacts serves GET /jobs/{id}/artifacts/{engine}/{file}:
// a file an engine of the job stored beside its results, whose URL the
// results carry. A plain handler, like the chunks'.
func (s *Server) registerJobArtifacts() {
	const pattern = "/jobs/{id}/artifacts/{engine}/{file}"
	s.mux.HandleFunc("GET "+pattern, s.serveJobArtifact)
	problem := &huma.Response{Description: "No such job, engine or file", Content: map[string]*huma.MediaType{
		problemContentType: {Schema: &huma.Schema{Ref: "#/components/schemas/ErrorModel"}},
	}}
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "job-artifact",
		Method:      http.MethodGet,
		Path:        pattern,
		Summary:     "A file an engine of a job stored",
		Description: "The bytes of a file an engine stored beside its results (the object jobs/{id}/artifacts/{engine}/{file}; a scene's thumbnail, say), with its content type and byte ranges: what the URLs in its results point at when the object store cannot presign.",
		Tags:        []string{"jobs"},
		Parameters: []*huma.Param{
			{Name: "id", In: "path", Required: true, Description: "Job id", Schema: &huma.Schema{Type: "string", Pattern: "^[A-Za-z0-9._-]{1,128}$"}},
			{Name: "engine", In: "path", Required: true, Description: "The engine that stored the file", Schema: &huma.Schema{Type: "string", Pattern: jobEngineName.String()}},
			{Name: "file", In: "path", Required: true, Description: "The file's name, e.g. scene-000001.jpg", Schema: &huma.Schema{Type: "string", Pattern: jobArtifactFile.String()}},
		},
		Responses: map[string]*huma.Response{
			"200": {Description: "The file, with the content type the engine gave", Content: map[string]*huma.MediaType{
				"image/jpeg": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
				"*/*":        {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			}},
			"206": {Description: "The requested byte range"},
			"404": problem,
		},
	})
}

func (s *Server) serveJobArtifact(w http.ResponseWriter, r *http.Request) {
	id, eng, file := r.PathValue("id"), r.PathValue("engine"), r.PathValue("file")
	if err := protocol.ValidateStreamID(id); err != nil {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("job %.80q not found: not a job id", id))
		return
	}
	if !jobEngineName.MatchString(eng) {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("engine %.40q not found: not an engine name", eng))
		return
	}
	if !jobArtifactFile.MatchString(file) || file == "." || file == ".." {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("artifact %.40q not found: artifact names are letters, digits, '.', '_' and '-'", file))
		return
	}
	if !s.jobExists(w, r, id) {
		return
	}
	s.serveJobObject(w, r, JobArtifactKey(id, eng, file), fmt.Sprintf("artifact %s/%s of job %s", eng, file, id))
}
