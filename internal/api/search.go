package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/results"
)

// This file serves GET /search: the texts of every job's results (what
// was said, read on screen, spotted) that match a query, across all
// titles and streams.

// SearchHit is one text that matched a search.
type SearchHit struct {
	JobID    string  `json:"job_id" example:"job-3e87dd00aab5"`
	StreamID string  `json:"stream_id,omitempty" example:"vod-1f2e3d4c5b6a" doc:"The job's VOD title or live stream; absent for jobs on a topic or a URL"`
	Source   string  `json:"source" enum:"vod,live,topic,url" doc:"The kind of the job's source"`
	Title    string  `json:"title,omitempty" doc:"The stream's title"`
	Engine   string  `json:"engine" example:"stt"`
	Kind     string  `json:"kind" enum:"speech,screen,keyword" doc:"speech: an utterance of a transcript; screen: a line read on screen; keyword: a spotted keyword"`
	StartMs  int64   `json:"start_ms" doc:"Start of the text on the source's timeline, in milliseconds"`
	EndMs    int64   `json:"end_ms" doc:"End of the text on the source's timeline, in milliseconds"`
	Text     string  `json:"text" doc:"The whole text, one line"`
	Snippet  string  `json:"snippet" doc:"The text as HTML, HTML-escaped, each matched word in <mark></mark>, cut to 32 words around the first match (… where cut)"`
	Score    float64 `json:"score" doc:"Relevance, higher is better; it orders one search's hits and is not comparable across searches or metadata stores"`
	// JobCreatedAt orders hits of equal relevance, newest first.
	JobCreatedAt time.Time `json:"job_created_at"`
}

// SearchResults is a page of hits, best first.
type SearchResults struct {
	Query      string      `json:"query" example:"cup of coffee*" doc:"The query as understood: words in lower case, phrases quoted, a prefix word marked with *"`
	Items      []SearchHit `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

type searchInput struct {
	Q      string `query:"q" doc:"Words to find, all of them; \"a quoted phrase\"; the last word also matches as a prefix unless followed by a space. At most 1000 bytes and 32 words" example:"coffee"`
	Stream string `query:"stream" maxLength:"128" doc:"Only the results of jobs on this VOD title or live stream"`
	Job    string `query:"job" maxLength:"128" doc:"Only this job's results"`
	Engine string `query:"engine" maxLength:"63" doc:"Only this engine's results"`
	Kind   string `query:"kind" enum:"speech,screen,keyword" doc:"Only texts of this kind"`
	From   int64  `query:"from" minimum:"0" doc:"Only texts ending after this time, in milliseconds on the source's timeline"`
	To     int64  `query:"to" minimum:"0" doc:"Only texts starting before this time, in milliseconds (0: no end)"`
	Limit  int    `query:"limit" default:"20" minimum:"1" maximum:"100" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page (of the same search)"`
}

type searchOutput struct{ Body SearchResults }

func (s *Server) registerSearch() {
	huma.Register(s.api, huma.Operation{
		OperationID: "search",
		Method:      http.MethodGet,
		Path:        "/search",
		Summary:     "Search the engines' results",
		Description: "Finds the texts of every job's results (utterances of transcripts, lines read on screen, spotted keywords) that hold all the words of q, across all titles and streams, best first (relevance, then the newest job), each with its job, stream, engine, kind, time and a snippet. Filter by stream, job, engine, kind and time; page with limit and cursor. A query that is empty, too long, not UTF-8, holds a NUL or no word is 400; other bad parameters 422. docs/results.md describes the query language.",
		Tags:        []string{"results"},
		Errors:      []int{http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.search)
}

func (s *Server) search(ctx context.Context, in *searchInput) (*searchOutput, error) {
	q, err := results.ParseQuery(in.Q)
	if err != nil {
		return nil, huma.NewError(http.StatusBadRequest, "query parameter q: "+err.Error(),
			&huma.ErrorDetail{Location: "query.q", Message: err.Error()})
	}
	if in.To != 0 && in.To <= in.From {
		return nil, huma.NewError(http.StatusUnprocessableEntity, "query parameter to: must be after from",
			&huma.ErrorDetail{Location: "query.to", Message: "must be after from", Value: in.To})
	}
	hits, next, err := s.cfg.Meta.SearchTexts(ctx, metastore.SearchQuery{
		Query: q, StreamID: in.Stream, JobID: in.Job, Engine: in.Engine, Kind: in.Kind,
		FromMs: in.From, ToMs: in.To, Limit: in.Limit, After: in.Cursor,
	})
	if errors.Is(err, metastore.ErrInvalid) && in.Cursor != "" {
		return nil, huma.NewError(http.StatusUnprocessableEntity, "query parameter cursor: not a cursor of this search; ask again without it",
			&huma.ErrorDetail{Location: "query.cursor", Message: "not a cursor of this search"})
	}
	if err != nil {
		return nil, s.storeError(ctx, "search", err)
	}
	out := SearchResults{Query: q.String(), Items: make([]SearchHit, len(hits)), NextCursor: next}
	for i, h := range hits {
		out.Items[i] = SearchHit{
			JobID: h.JobID, StreamID: h.StreamID, Source: h.Source, Title: h.Title, Engine: h.Engine, Kind: h.Kind,
			StartMs: h.StartMs, EndMs: h.EndMs, Text: h.Text, Snippet: h.Snippet, Score: h.Score,
			JobCreatedAt: h.JobCreatedAt.UTC(),
		}
	}
	return &searchOutput{Body: out}, nil
}
