package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// problemContentType is RFC 9457's media type for problem documents.
const problemContentType = "application/problem+json"

// writeProblem answers with an RFC 9457 problem document in the same shape
// huma uses for its own errors, for the plain handlers outside huma.
func writeProblem(w http.ResponseWriter, status int, detail string, errs ...*huma.ErrorDetail) {
	body, _ := json.Marshal(&huma.ErrorModel{
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: errs,
	})
	h := w.Header()
	h.Set("Content-Type", problemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// fieldError is a validation problem (422) naming the offending field, so a
// client can tell which input to fix.
func fieldError(location, message string, value any) error {
	return huma.Error422UnprocessableEntity(describeLocation(location)+": "+message, &huma.ErrorDetail{
		Location: location,
		Message:  message,
		Value:    value,
	})
}

// describeProblem is a huma transformer that makes validation problems
// actionable: huma reports "validation failed" with the particulars in
// errors[]; this folds them into detail as well ("validation failed: field
// title: expected length <= 200"), so clients that print only detail still
// tell the user what to fix.
func describeProblem(_ huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok || len(em.Errors) == 0 {
		return v, nil
	}
	parts := make([]string, 0, len(em.Errors))
	for _, e := range em.Errors {
		if e == nil || e.Message == "" {
			continue
		}
		part := plainMessage(e.Message)
		if e.Location != "" {
			part = describeLocation(e.Location) + ": " + part
		}
		if strings.Contains(em.Detail, part) {
			continue
		}
		parts = append(parts, part)
	}
	if len(parts) > 0 {
		if em.Detail == "" {
			em.Detail = strings.Join(parts, "; ")
		} else {
			em.Detail += ": " + strings.Join(parts, "; ")
		}
	}
	return em, nil
}

// humaMessages rewrites huma's terse validator wording into plain words.
var humaMessages = []struct {
	prefix, replacement, suffix string
}{
	{"expected length <= ", "must be at most ", " characters"},
	{"expected length >= ", "must be at least ", " characters"},
	{"expected number <= ", "must be at most ", ""},
	{"expected number >= ", "must be at least ", ""},
}

// plainMessage rewrites a validation message for people; unknown messages
// pass through unchanged.
func plainMessage(msg string) string {
	if msg == "unexpected property" {
		return "unknown field"
	}
	for _, m := range humaMessages {
		if rest, ok := strings.CutPrefix(msg, m.prefix); ok {
			return m.replacement + rest + m.suffix
		}
	}
	return msg
}

// describeLocation turns huma's "body.title" style locations into words.
func describeLocation(loc string) string {
	where, name, found := strings.Cut(loc, ".")
	if !found {
		if loc == "body" {
			return "request body"
		}
		return loc
	}
	switch where {
	case "body":
		return "field " + name
	case "query":
		return "query parameter " + name
	case "path":
		return "path parameter " + name
	case "header":
		return "header " + name
	}
	return loc
}

// problemWriter turns error responses written by code outside our control
// (http.ServeContent answering 412 or 416 with text/plain) into problem
// documents. It holds back the status and body of any response >= 400 until
// finish, and passes everything else through untouched.
type problemWriter struct {
	http.ResponseWriter
	status int
	text   bytes.Buffer
}

func (p *problemWriter) WriteHeader(code int) {
	if code >= 400 && p.status == 0 {
		p.status = code
		return
	}
	if p.status == 0 {
		p.status = -1 // pass-through mode
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *problemWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = -1
	}
	if p.status > 0 {
		if p.text.Len() < 1024 {
			p.text.Write(b)
		}
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

func (p *problemWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// finish writes the held-back problem, if any. Its detail is the text the
// inner handler wrote, followed by about (what the request was for).
func (p *problemWriter) finish(about string) {
	if p.status <= 0 {
		return
	}
	detail := strings.TrimSpace(p.text.String())
	switch {
	case detail == "":
		detail = about
	case about != "":
		detail += ": " + about
	}
	writeProblem(p.ResponseWriter, p.status, detail)
}
