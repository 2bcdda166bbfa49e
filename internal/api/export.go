package api

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/results"
)

// This file serves the caption exports of GET /jobs/{id}/results
// (format=vtt, format=srt): the texts of one kind of the whole job,
// results.Cues of them written by results.WriteWebVTT or WriteSRT.

// Content types of the caption exports.
const (
	contentTypeVTT = "text/vtt; charset=utf-8"
	contentTypeSRT = "application/x-subrip; charset=utf-8"
)

// exportPage is how many results exportCaptions reads at a time.
const exportPage = 1000

func (s *Server) exportCaptions(ctx context.Context, in *jobResultsInput) (*jobResultsOutput, error) {
	if in.Cursor != "" {
		return nil, huma.NewError(http.StatusUnprocessableEntity, "query parameter cursor: pages the json listing; a vtt or srt export holds the whole job",
			&huma.ErrorDetail{Location: "query.cursor", Message: "only with format json"})
	}
	kind := cmp.Or(in.Kind, results.KindSpeech)
	texts, engines, err := s.jobTexts(ctx, in, kind)
	if err != nil {
		return nil, err
	}
	if in.Engine == "" && len(engines) > 1 {
		names := slices.Sorted(maps.Keys(engines))
		msg := fmt.Sprintf("job %s has %s texts from engines %s; choose one with engine=", in.ID, kind, strings.Join(names, ", "))
		return nil, huma.NewError(http.StatusUnprocessableEntity, "query parameter engine: "+msg,
			&huma.ErrorDetail{Location: "query.engine", Message: msg})
	}
	cues := results.Cues(texts, kind)
	var buf bytes.Buffer
	ext, ct := "vtt", contentTypeVTT
	if in.Format == "srt" {
		ext, ct = "srt", contentTypeSRT
		err = results.WriteSRT(&buf, cues)
	} else {
		err = results.WriteWebVTT(&buf, cues, "", 0)
	}
	if err != nil { // a bytes.Buffer does not fail
		return nil, huma.Error500InternalServerError("write captions: " + err.Error())
	}
	name := in.ID + "-" + kind
	if in.Engine != "" {
		name += "-" + in.Engine
	}
	return &jobResultsOutput{
		ContentType:        ct,
		ContentDisposition: mime.FormatMediaType("attachment", map[string]string{"filename": name + "." + ext}),
		Body:               buf.Bytes(),
	}, nil
}

// jobTexts reads every result of the job that in selects (engine, from,
// to), page after page, and returns its texts of kind that overlap
// [from, to), in time order, and the engines that wrote them.
func (s *Server) jobTexts(ctx context.Context, in *jobResultsInput, kind string) ([]results.Text, map[string]bool, error) {
	var texts []results.Text
	engines := map[string]bool{}
	q := metastore.ResultQuery{Engine: in.Engine, FromMs: in.From, ToMs: in.To, Limit: exportPage}
	for {
		page, err := s.cfg.Jobs.Results(ctx, in.ID, q)
		if err != nil {
			return nil, nil, s.jobError(ctx, "read results of job "+in.ID, err)
		}
		for _, r := range page.Items {
			for _, t := range results.TextsOf(r.Content) {
				if t.Kind == kind && (t.EndMs > in.From || t.StartMs >= in.From) && (in.To == 0 || t.StartMs < in.To) {
					texts = append(texts, t)
					engines[r.Engine] = true
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	slices.SortStableFunc(texts, func(a, b results.Text) int {
		return cmp.Or(cmp.Compare(a.StartMs, b.StartMs), cmp.Compare(a.EndMs, b.EndMs))
	})
	return texts, engines, nil
}

// describeResultFormats documents the three answers of GET
// /jobs/{id}/results, whose body huma only knows as "any".
func (s *Server) describeResultFormats() {
	oapi := s.api.OpenAPI()
	op := oapi.Paths["/jobs/{id}/results"].Get
	ok := op.Responses["200"]
	if ok == nil {
		ok = &huma.Response{}
		op.Responses["200"] = ok
	}
	ok.Description = "format=json: a page of results; format=vtt or srt: a caption file, with Content-Disposition naming it <job>-<kind>[-<engine>].vtt or .srt"
	ok.Content = map[string]*huma.MediaType{
		"application/json":     {Schema: oapi.Components.Schemas.Schema(reflect.TypeFor[JobResults](), true, "")},
		"text/vtt":             {Schema: &huma.Schema{Type: "string", Description: "WebVTT: one cue per text, in time order"}},
		"application/x-subrip": {Schema: &huma.Schema{Type: "string", Description: "SubRip: one numbered cue per text, in time order"}},
	}
}
