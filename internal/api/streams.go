package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// This file holds what the VOD and live endpoints share: request context,
// stream lookups, listing, publishing and error mapping.

// requestBase captures how the client reached us, so responses can carry
// absolute URLs when Config.BaseURL is not set. huma calls Resolve on
// every input struct that embeds it.
type requestBase struct {
	host  string
	https bool
}

// Resolve implements huma.Resolver.
func (b *requestBase) Resolve(ctx huma.Context) []error {
	b.host = ctx.Host()
	b.https = ctx.TLS() != nil || strings.EqualFold(ctx.Header("X-Forwarded-Proto"), "https")
	return nil
}

// httpBase returns the public base URL ("http://host:port", no slash).
func (s *Server) httpBase(b requestBase) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	host := b.host
	if host == "" {
		host = "127.0.0.1:8080"
	}
	if b.https {
		return "https://" + host
	}
	return "http://" + host
}

// hostname is the request's host without its port, bracketed for IPv6.
func (b requestBase) hostname() string {
	host := b.host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		host = "127.0.0.1"
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// hlsURL is the playback URL of an object served under /hls/.
func (s *Server) hlsURL(b requestBase, key string) string {
	return s.httpBase(b) + hlsPrefix + key
}

// StreamSummary is one row of a listing.
type StreamSummary struct {
	StreamID string  `json:"stream_id" example:"vod-3e87dd00aab5"`
	Kind     string  `json:"kind" enum:"vod,live"`
	Title    string  `json:"title"`
	Status   string  `json:"status" example:"ready"`
	Progress float64 `json:"progress" doc:"Percent (0-100) of the current stage done"`
	// Error is why a failed stream failed.
	Error string `json:"error,omitempty" doc:"Why the stream failed; only on failed streams"`
	// DurationS is the source's duration as probed (VOD titles).
	DurationS float64 `json:"duration_s,omitempty" doc:"The source's duration in seconds as probed; absent until the VOD is probed, and for live streams"`
	// Variants are the renditions made so far (VOD ladder rungs).
	Variants []string `json:"variants_generated,omitempty" doc:"The renditions generated (VOD ladder rungs, tallest first)"`
	// SegmentCount is the media segments stored.
	SegmentCount int64     `json:"segment_count,omitempty" doc:"Media segments stored (for a live stream that ended, its recording)"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// probedDuration is the details.probe.duration_s a VOD worker records, or 0.
func probedDuration(details []byte) float64 {
	raw := metastore.DetailRaw(details, "probe")
	if raw == nil {
		return 0
	}
	var p struct {
		DurationS float64 `json:"duration_s"`
	}
	if json.Unmarshal(raw, &p) != nil || p.DurationS < 0 {
		return 0
	}
	return p.DurationS
}

// StreamList is a page of streams, newest first.
type StreamList struct {
	Items      []StreamSummary `json:"items"`
	NextCursor string          `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

type listOutput struct{ Body StreamList }

// listQuery is what GET /vod and GET /streams ask for.
type listQuery struct {
	Status, Cursor string
	Limit          int
}

// list pages the streams of one kind.
func (s *Server) list(ctx context.Context, kind metastore.Kind, q listQuery, statuses []metastore.Status) (*listOutput, error) {
	if q.Status != "" {
		ok := false
		names := make([]string, len(statuses))
		for i, st := range statuses {
			names[i] = string(st)
			if string(st) == q.Status {
				ok = true
			}
		}
		if !ok {
			return nil, fieldError("query.status", fmt.Sprintf("must be one of %s (got %q)", strings.Join(names, ", "), q.Status), q.Status)
		}
	}
	rows, next, err := s.cfg.Meta.ListStreams(ctx, metastore.StreamFilter{
		Kind:   kind,
		Status: metastore.Status(q.Status),
		Limit:  q.Limit,
		After:  q.Cursor,
	})
	if errors.Is(err, metastore.ErrInvalid) && q.Cursor != "" {
		return nil, fieldError("query.cursor", "is not a cursor this server issued; list again without it", q.Cursor)
	}
	if err != nil {
		return nil, s.storeError(ctx, fmt.Sprintf("list %s streams", kind), err)
	}
	out := &listOutput{Body: StreamList{Items: make([]StreamSummary, 0, len(rows)), NextCursor: next}}
	for _, st := range rows {
		out.Body.Items = append(out.Body.Items, StreamSummary{
			StreamID:     st.ID,
			Kind:         string(st.Kind),
			Title:        st.Title,
			Status:       string(st.Status),
			Progress:     st.Progress,
			Error:        st.Error,
			DurationS:    probedDuration(st.Details),
			Variants:     st.VariantsGenerated,
			SegmentCount: st.SegmentCount,
			CreatedAt:    st.CreatedAt,
			UpdatedAt:    st.UpdatedAt,
		})
	}
	return out, nil
}

// kindNoun names a kind in messages: "vod" or "live stream".
func kindNoun(kind metastore.Kind) string {
	if kind == metastore.KindLive {
		return "live stream"
	}
	return "vod"
}

// getStream loads a stream of the given kind; a missing id and an id of the
// other kind are both 404 ("vod vod-xyz not found").
func (s *Server) getStream(ctx context.Context, kind metastore.Kind, id string) (metastore.Stream, error) {
	st, err := s.cfg.Meta.GetStream(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) || (err == nil && st.Kind != kind) {
		return metastore.Stream{}, huma.Error404NotFound(fmt.Sprintf("%s %s not found", kindNoun(kind), id))
	}
	if err != nil {
		return metastore.Stream{}, s.storeError(ctx, fmt.Sprintf("read %s %s", kindNoun(kind), id), err)
	}
	return st, nil
}

// storeError logs a metadata store failure and returns the problem for it:
// 503 when the store could not be reached or did not answer in time, 500
// otherwise. Details stay in the log; the client learns what failed, not the
// internals.
func (s *Server) storeError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return huma.Error503ServiceUnavailable(what + ": request cancelled or timed out")
	}
	s.log.Error("metadata store", "op", what, "err", err)
	if errors.Is(err, context.DeadlineExceeded) {
		return huma.Error503ServiceUnavailable(what + ": the metadata store did not answer in time")
	}
	if errors.Is(err, metastore.ErrUnavailable) {
		return huma.Error503ServiceUnavailable(what + ": the metadata store cannot be reached; retry later")
	}
	if objstore.NoSpace(err) || metastore.Full(err) {
		return huma.NewError(http.StatusInsufficientStorage, what+": the metadata store's disk is full (no space left on device); retry once space is freed")
	}
	return huma.Error500InternalServerError(what + ": the metadata store failed (see server log)")
}

// publish sends a control message to its topic, keyed by its stream id,
// and waits for the broker's acknowledgement.
func (s *Server) publish(ctx context.Context, msg protocol.ControlMessage) error {
	topic := msg.Topic()
	key, value, err := protocol.EncodeControl(msg)
	if err != nil {
		return fmt.Errorf("encode %s message for stream %s: %w", topic, msg.Key(), err)
	}
	ctx, cancel := s.busContext(ctx)
	defer cancel()
	err = s.cfg.Bus.Produce(ctx, &bus.Record{Topic: topic, Key: key, Value: value})
	if err != nil && context.Cause(ctx) != nil {
		err = context.Cause(ctx)
	}
	result := "ok"
	if err != nil {
		result = "error"
		err = fmt.Errorf("publish to %s for stream %s: %w", topic, msg.Key(), err)
	}
	s.metrics.published.WithLabelValues(topic, result).Inc()
	return err
}

// busContext bounds a request's wait for the bus by Config.BusTimeout: the
// bus client retries for as long as it is let while the cluster is
// unreachable, and a request must answer 503 rather than hang.
func (s *Server) busContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.cfg.BusTimeout,
		fmt.Errorf("the bus did not acknowledge within %s: %w", s.cfg.BusTimeout, context.DeadlineExceeded))
}

// failStream records why a stream cannot proceed. It runs detached from the
// request so a client hanging up does not leave the row half-done.
func (s *Server) failStream(ctx context.Context, id, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Meta.TransitionStatus(ctx, id, metastore.StatusFailed, func(st *metastore.Stream) {
		st.Error = reason
	}); err != nil {
		s.log.Error("mark stream failed", "stream", id, "reason", reason, "err", err)
	}
}

// stageTimes converts the store's map to JSON-friendly string keys.
func stageTimes(st metastore.Stream) map[string]time.Time {
	out := make(map[string]time.Time, len(st.StageTimes))
	for k, v := range st.StageTimes {
		out[string(k)] = v.UTC()
	}
	return out
}

// stageTime returns the time the stream entered status, or nil.
func stageTime(st metastore.Stream, status metastore.Status) *time.Time {
	t, ok := st.StageTimes[status]
	if !ok || t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// details decodes the stream's pipeline details for embedding in a
// response; malformed details are dropped rather than failing the request.
func details(st metastore.Stream) map[string]any {
	if len(st.Details) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(st.Details, &m); err != nil {
		return nil
	}
	return m
}

// newStream creates a stream row. When st.ID is empty it gets a fresh id of
// its kind, and the (astronomically unlikely) id collision is retried; a
// caller-chosen id is used as is.
func (s *Server) newStream(ctx context.Context, st metastore.Stream) (metastore.Stream, error) {
	generated := st.ID == ""
	for attempt := 0; ; attempt++ {
		if generated {
			st.ID = newStreamID(st.Kind)
		}
		created, err := s.cfg.Meta.CreateStream(ctx, st)
		if errors.Is(err, metastore.ErrExists) && generated && attempt < 3 {
			continue
		}
		if err != nil {
			return metastore.Stream{}, s.storeError(ctx, fmt.Sprintf("create %s %s", kindNoun(st.Kind), st.ID), err)
		}
		return created, nil
	}
}
