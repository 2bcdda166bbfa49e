package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/metastore"
)

// Live streams with engines. POST /streams/start with engines, or a later
// POST /streams/{id}/engines, runs engines for the life of a live stream:
// each is one job whose source is the stream ({"live": id}), created like
// POST /jobs would, so its results arrive while the stream is live, are
// found by the stream's id (GET /jobs?stream=id, the console's timeline,
// the captions of the HLS presentation), and stay with the recording the
// stream becomes (the same id). The job completes when the stream ends.

// StreamEngines are engines to run on a live stream, with how to chunk
// its media and merge their results (the members of a job request of the
// same names).
type StreamEngines struct {
	Engines   []jobs.EngineRequest `json:"engines,omitempty" maxItems:"16" doc:"Engines to run on the stream for its life, as POST /jobs takes them: name, options, policy"`
	Chunking  *jobs.Chunking       `json:"chunking,omitempty" doc:"How the stream is cut into chunks for the chunk engines, as POST /jobs takes it"`
	Aggregate *jobs.Aggregate      `json:"aggregate,omitempty" doc:"How the engines' results are merged into windows, as POST /jobs takes it"`
}

// given reports whether any member is set.
func (e StreamEngines) given() bool {
	return len(e.Engines) > 0 || e.Chunking != nil || e.Aggregate != nil
}

// AttachEnginesRequest is the body of POST /streams/{id}/engines.
type AttachEnginesRequest struct {
	StreamEngines
	Title string `json:"title,omitempty" maxLength:"200" doc:"The job's title; the stream's when empty"`
}

type attachInput struct {
	requestBase
	ID   string `path:"id" maxLength:"64" example:"live-54390fa40812" doc:"Live stream id"`
	Body *AttachEnginesRequest
}

// placeholderStream stands for a stream not created yet while its engines
// are checked.
const placeholderStream = "live-000000000000"

func (s *Server) registerLiveEngines() {
	huma.Register(s.api, huma.Operation{
		OperationID:   "stream-engines",
		Method:        http.MethodPost,
		Path:          "/streams/{id}/engines",
		Summary:       "Run engines on a live stream",
		Description:   "Starts a job whose source is the live stream ({\"live\": id}) with these engines, chunking and aggregate, as POST /jobs would: its results arrive while the stream is live and stay with the recording it becomes (the same id); the job completes when the stream ends. Each call is one more job. 409 once the stream has ended. Answers the job as GET /jobs/{id} shows it.",
		Tags:          []string{"live", "jobs"},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  jobs.MaxRequestBytes,
		Security:      bearerSecurity,
		Errors: []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity,
			http.StatusServiceUnavailable},
	}, s.attachEngines)
}

func (s *Server) attachEngines(ctx context.Context, in *attachInput) (*jobCreatedOutput, error) {
	var body AttachEnginesRequest
	if in.Body != nil {
		body = *in.Body
	}
	st, err := s.getStream(ctx, metastore.KindLive, in.ID)
	if err != nil {
		return nil, err
	}
	if st.Status.Terminal() {
		return nil, huma.Error409Conflict(fmt.Sprintf("live stream %s already ended (status %s); run a job on what its topic kept with POST /jobs and source {\"live\": %q}", st.ID, st.Status, st.ID))
	}
	title := body.Title
	if title == "" {
		title = st.Title
	}
	if len(body.Engines) == 0 {
		return nil, requestProblem(&jobs.RequestError{Problems: []*jobs.FieldError{{Field: "engines", Problem: `is required: list at least one engine, as [{"name": "loudness"}]; GET /engines lists them`}}})
	}
	v, err := s.startStreamJob(ctx, st.ID, title, body.StreamEngines)
	if err != nil {
		return nil, err
	}
	return &jobCreatedOutput{Location: "/jobs/" + v.ID, Body: v}, nil
}

// streamJobRequest is the job request of engines on stream id, parsed
// and checked as POST /jobs would.
func streamJobRequest(id, title string, e StreamEngines) (*jobs.Request, error) {
	req := map[string]any{"source": map[string]string{"live": id}, "engines": e.Engines}
	if e.Chunking != nil {
		req["chunking"] = e.Chunking
	}
	if e.Aggregate != nil {
		req["aggregate"] = e.Aggregate
	}
	if title != "" {
		req["title"] = title
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return jobs.ParseRequest(bytes.NewReader(raw))
}

// checkStreamEngines checks engines before the stream they are for
// exists: the request's members and every engine and option.
func (s *Server) checkStreamEngines(ctx context.Context, title string, e StreamEngines) error {
	req, err := streamJobRequest(placeholderStream, title, e)
	if err == nil {
		err = s.cfg.Jobs.CheckEngines(ctx, req)
	}
	if err != nil {
		return s.jobError(ctx, "check the stream's engines", err)
	}
	return nil
}

// startStreamJob creates the job of engines on live stream id.
func (s *Server) startStreamJob(ctx context.Context, id, title string, e StreamEngines) (jobs.View, error) {
	req, err := streamJobRequest(id, title, e)
	if err != nil {
		return jobs.View{}, s.jobError(ctx, "start engines on "+id, err)
	}
	v, err := s.cfg.Jobs.Create(ctx, req)
	if err != nil {
		return jobs.View{}, s.jobError(ctx, "start engines on "+id, err)
	}
	s.log.Info("engines attached to a live stream", "stream", id, "job", v.ID, "engines", req.EngineNames())
	return v, nil
}
