package jobs

import (
	"context"
	"errors"

	"github.com/weir-media/weir/internal/metastore"
)

// WindowPage is one page of a job's windows.
type WindowPage struct {
	Items []metastore.Window
	// Next is the cursor of the next page, "" on the last.
	Next string
}

// Windows pages the windows the job's aggregator emitted, by start, those
// overlapping [q.FromMs, q.ToMs) (its JobID is set from id), each with its
// late results. A bad time range or cursor is a *RequestError; an unknown
// job ErrNotFound.
func (s *Service) Windows(ctx context.Context, id string, q metastore.WindowQuery) (WindowPage, error) {
	if _, err := s.getJob(ctx, id); err != nil {
		return WindowPage{}, err
	}
	var problems RequestError
	if q.FromMs < 0 {
		problems.add("from", "must not be negative, got %d", q.FromMs)
	}
	if q.ToMs < 0 || (q.ToMs != 0 && q.ToMs <= q.FromMs) {
		problems.add("to", "must be after from (%d ms), got %d", q.FromMs, q.ToMs)
	}
	if err := problems.errOrNil(); err != nil {
		return WindowPage{}, err
	}
	q.JobID = id
	items, next, err := s.Meta.ListWindows(ctx, q)
	if errors.Is(err, metastore.ErrInvalid) && q.After != "" {
		return WindowPage{}, &RequestError{Problems: []*FieldError{{Field: "cursor", Problem: "is not a cursor this server issued; ask again without it"}}}
	}
	if err != nil {
		return WindowPage{}, err
	}
	return WindowPage{Items: items, Next: next}, nil
}
