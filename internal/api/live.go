package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/internal/liveladder"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// liveSourceSchemes are the pull sources a live stream may name: the live
// pipeline pulls HTTP(S) MPEG-TS and Icecast-style audio streams; RTMP and
// SRT sources push to weir instead.
var liveSourceSchemes = []string{"http", "https"}

// StartStreamRequest creates a live stream.
type StartStreamRequest struct {
	Title     string `json:"title,omitempty" maxLength:"200" doc:"Title of the stream"`
	SourceURL string `json:"source_url,omitempty" maxLength:"2048" example:"https://example.com/live/index.m3u8" doc:"Pull the stream from this http(s) URL (MPEG-TS, or an Icecast-style AAC/MP3 stream) instead of waiting for an RTMP/SRT push"`
	// SRTPassphrase makes SRT publishers encrypt: weir keeps it as given
	// (SRT derives its keys from it) and never shows it again.
	SRTPassphrase string `json:"srt_passphrase,omitempty" maxLength:"79" example:"correct-horse-battery" doc:"SRT publishers must encrypt with this passphrase (10 to 79 printable characters, no spaces); without it they are refused. Shown only in this call's response"`
	// Ladder is the stream's live ABR ladder; nil takes the server's
	// default (--live-ladder) and an empty list turns it off.
	Ladder []string `json:"ladder,omitempty" maxItems:"6" example:"[\"480p=1400k\",\"360p=800k\"]" doc:"Live ABR ladder: rungs NAME=BITRATE (even height followed by p, bit rate with k or M), highest first, transcoded from the source while it is live and listed with it in master.m3u8; rungs taller than the source are skipped. Omitted: the server's default (weir serve --live-ladder); []: no ladder"`
	// LLHLS packages the stream as Low-Latency HLS; nil takes the
	// server's default (--live-ll-hls).
	LLHLS *bool `json:"ll_hls,omitempty" doc:"Package the stream as Low-Latency HLS (RFC 8216bis): fMP4 parts of the part target (weir serve --live-part-target), EXT-X-PRELOAD-HINT, blocking playlist reload with _HLS_msn/_HLS_part and delta updates with _HLS_skip. H.264 video and AAC audio only. Omitted: the server's default (weir serve --live-ll-hls)"`
	// StreamEngines, when engines are given, run for the life of the
	// stream as one job on it (liveengines.go).
	StreamEngines
}

// PublishURLs tell an encoder (OBS, ffmpeg) where to push.
type PublishURLs struct {
	RTMP  string `json:"rtmp" example:"rtmp://127.0.0.1:1935/live/0123456789abcdef0123456789abcdef"`
	RTMPS string `json:"rtmps,omitempty" example:"rtmps://127.0.0.1:1936/live/0123456789abcdef0123456789abcdef" doc:"RTMP over TLS; only when weir serve runs with --rtmps"`
	SRT   string `json:"srt" example:"srt://127.0.0.1:8890?streamid=publish:0123456789abcdef0123456789abcdef" doc:"With the stream's passphrase as passphrase= when it has one"`
	HTTP  string `json:"http" example:"http://127.0.0.1:8080/publish/0123456789abcdef0123456789abcdef" doc:"PUT or POST a body of MPEG-TS (ffmpeg -method PUT -f mpegts URL); served by processes with the ingest role"`
	// WebSocket takes binary messages of MPEG-TS, or of WebM/Matroska
	// with H.264 video (a browser's MediaRecorder).
	WebSocket string `json:"websocket" example:"ws://127.0.0.1:8080/publish/0123456789abcdef0123456789abcdef" doc:"Binary messages of MPEG-TS, or WebM/Matroska with H.264 or H.265 video (a browser's MediaRecorder)"`
}

// StartStreamResponse describes a new live stream. The publish key is shown
// only here.
type StartStreamResponse struct {
	StreamID   string `json:"stream_id" example:"live-54390fa40812"`
	Status     string `json:"status" example:"created"`
	Title      string `json:"title"`
	SourceURL  string `json:"source_url,omitempty"`
	PublishKey string `json:"publish_key" doc:"Secret that authorises pushing media; shown only in this response"`
	// SRTPassphrase echoes the request's, once.
	SRTPassphrase string      `json:"srt_passphrase,omitempty" doc:"The SRT passphrase the stream was started with; shown only in this response"`
	Publish       PublishURLs `json:"publish"`
	Playback      string      `json:"playback" doc:"Live HLS playlist URL"`
	Master        string      `json:"master,omitempty" doc:"Master (multivariant) playlist URL listing the source and the ladder's renditions; only for a stream with a ladder"`
	Ladder        []string    `json:"ladder,omitempty" doc:"The stream's live ABR ladder, as stored"`
	LLHLS         bool        `json:"ll_hls" doc:"Whether the stream is packaged as Low-Latency HLS"`
	MetadataURL   string      `json:"metadata_url"`
	// Job is the job running the request's engines on the stream.
	Job *jobs.View `json:"job,omitempty" doc:"The job running the request's engines on the stream, as GET /jobs/{id} shows it"`
}

// StreamStatus answers lifecycle calls.
type StreamStatus struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status" enum:"created,live,vod,failed"`
	Playback string `json:"playback,omitempty"`
}

// LiveURLResponse points a player at the live playlist.
type LiveURLResponse struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	URL      string `json:"url" example:"http://127.0.0.1:8080/hls/live-54390fa40812/live.m3u8"`
}

// LiveMetadata is a live stream's state. SegmentCount, Gaps and
// ChecksumFailures are maintained by the live pipeline; Details carries its
// window and latency figures.
type LiveMetadata struct {
	StreamID         string               `json:"stream_id"`
	Title            string               `json:"title"`
	Status           string               `json:"status" enum:"created,live,vod,failed" doc:"created → live → vod, or failed"`
	Error            string               `json:"error,omitempty"`
	SourceURL        string               `json:"source_url,omitempty"`
	SRTEncrypted     bool                 `json:"srt_encrypted,omitempty" doc:"SRT publishers must encrypt with the passphrase given when the stream started"`
	CreatedAt        time.Time            `json:"created_at"`
	UpdatedAt        time.Time            `json:"updated_at"`
	StartedAt        *time.Time           `json:"started_at,omitempty" doc:"When media started arriving"`
	EndedAt          *time.Time           `json:"ended_at,omitempty" doc:"When it ended and became VOD"`
	FailedAt         *time.Time           `json:"failed_at,omitempty"`
	StageTimes       map[string]time.Time `json:"stage_times"`
	SegmentCount     int64                `json:"segment_count"`
	Gaps             int64                `json:"gaps" doc:"Sequence gaps detected"`
	ChecksumFailures int64                `json:"checksum_failures"`
	ManifestPath     string               `json:"manifest_path,omitempty"`
	Playback         string               `json:"playback"`
	Ladder           []string             `json:"ladder,omitempty" doc:"The live ABR ladder the stream was started with"`
	Details          map[string]any       `json:"details,omitempty" doc:"Pipeline details: DVR window, latency"`
}

type startInput struct {
	requestBase
	Body *StartStreamRequest
}

type startOutput struct{ Body StartStreamResponse }

type liveIDInput struct {
	requestBase
	ID string `path:"id" maxLength:"64" example:"live-54390fa40812" doc:"Live stream id"`
}

type streamStatusOutput struct{ Body StreamStatus }

type liveURLOutput struct{ Body LiveURLResponse }

type liveMetadataOutput struct{ Body LiveMetadata }

type liveListInput struct {
	Status string `query:"status" enum:"created,live,vod,failed" doc:"Only live streams in this status"`
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"1000" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page"`
}

var liveStatuses = []metastore.Status{
	metastore.StatusCreated, metastore.StatusLive, metastore.StatusVOD, metastore.StatusFailed,
}

func (s *Server) registerLive() {
	huma.Register(s.api, huma.Operation{
		OperationID:   "stream-start",
		Method:        http.MethodPost,
		Path:          "/streams/start",
		Summary:       "Start a live stream",
		Description:   "Creates a live stream with a fresh publish key and returns where to push it (RTMP, SRT) and where to watch it (HLS). With engines (and optionally chunking and aggregate, as POST /jobs takes them), they run for the life of the stream as one job on it, answered as job.",
		Tags:          []string{"live"},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  s.cfg.MaxJSONBytes,
		Security:      bearerSecurity,
		Errors:        []int{http.StatusUnauthorized, http.StatusServiceUnavailable},
	}, s.startStream)

	huma.Register(s.api, huma.Operation{
		OperationID:   "stream-end",
		Method:        http.MethodPost,
		Path:          "/streams/{id}/end",
		Summary:       "End a live stream",
		Description:   "Asks the live pipeline to close the playlist (EXT-X-ENDLIST) and turn the stream into VOD. A stream that never received media ends at once. 409 when it already ended.",
		Tags:          []string{"live"},
		DefaultStatus: http.StatusAccepted,
		Security:      bearerSecurity,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
	}, s.endStream)

	s.registerLiveEngines()

	huma.Register(s.api, huma.Operation{
		OperationID: "stream-live",
		Method:      http.MethodGet,
		Path:        "/streams/{id}/live",
		Summary:     "Live playback URL",
		Description: "URL of the live HLS playlist (it keeps working as a VOD playlist after the stream ends).",
		Tags:        []string{"live"},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, s.liveURL)

	huma.Register(s.api, huma.Operation{
		OperationID: "stream-metadata",
		Method:      http.MethodGet,
		Path:        "/streams/{id}/metadata",
		Summary:     "Live stream status and metadata",
		Description: "Status, stage timestamps, segment count, gaps, checksum failures and pipeline details (window, latency).",
		Tags:        []string{"live"},
		Errors:      []int{http.StatusNotFound},
	}, s.liveMetadata)

	huma.Register(s.api, huma.Operation{
		OperationID: "stream-list",
		Method:      http.MethodGet,
		Path:        "/streams",
		Summary:     "List live streams",
		Description: "Live streams newest first, optionally filtered by status (created, live, vod, failed); page with limit and cursor.",
		Tags:        []string{"live"},
	}, func(ctx context.Context, in *liveListInput) (*listOutput, error) {
		return s.list(ctx, metastore.KindLive, listQuery{Status: in.Status, Limit: in.Limit, Cursor: in.Cursor}, liveStatuses)
	})
}

// liveKey is the object key of a live stream's media playlist.
func liveKey(id string) string { return id + "/live.m3u8" }

func (s *Server) startStream(ctx context.Context, in *startInput) (*startOutput, error) {
	var req StartStreamRequest
	if in.Body != nil {
		req = *in.Body
	}
	req.Title = strings.TrimSpace(req.Title)
	req.SourceURL = strings.TrimSpace(req.SourceURL)
	if err := checkTitle("body.title", req.Title); err != nil {
		return nil, err
	}
	if req.SourceURL != "" {
		if err := checkSourceURL("body.source_url", req.SourceURL, liveSourceSchemes...); err != nil {
			return nil, err
		}
	}
	if err := checkSRTPassphrase(req); err != nil {
		return nil, err
	}
	if req.StreamEngines.given() {
		if err := s.checkStreamEngines(ctx, req.Title, req.StreamEngines); err != nil {
			return nil, err
		}
	}
	ladder, err := s.streamLadder(req.Ladder)
	if err != nil {
		return nil, err
	}
	ll := s.cfg.LiveLLHLS
	if req.LLHLS != nil {
		ll = *req.LLHLS
	}
	var details json.RawMessage
	if ll {
		// The push servers and the packager read it (Stream.Live), and
		// the packager keeps it.
		details, _ = json.Marshal(metastore.LiveSettings{LowLatency: true}) // cannot fail
	}
	key := newPublishKey()
	st, err := s.newStream(ctx, metastore.Stream{
		Details:       details,
		Kind:          metastore.KindLive,
		Title:         req.Title,
		Status:        metastore.StatusCreated,
		PublishKey:    key,
		SRTPassphrase: req.SRTPassphrase,
		SourceURL:     req.SourceURL,
		// A live stream's variants are its ladder's rungs
		// (internal/liveladder).
		VariantsGenerated: ladder,
	})
	if err != nil {
		return nil, err
	}
	// The stream's topic exists from the start (one partition keeps the
	// stream in order), so the packager that will own it takes it at once
	// and its publisher timeout runs even if no publisher ever comes.
	bctx, cancel := s.busContext(ctx)
	err = s.cfg.Bus.CreateTopic(bctx, protocol.StreamTopic(st.ID), 1)
	if err != nil && context.Cause(bctx) != nil {
		err = context.Cause(bctx)
	}
	cancel()
	if err == nil {
		err = s.publish(ctx, &protocol.LiveControl{
			Action:      protocol.LiveStart,
			StreamID:    st.ID,
			Title:       st.Title,
			SourceURL:   st.SourceURL,
			RequestedAt: time.Now().UTC(),
		})
	}
	if err != nil {
		s.log.Error("announce live stream", "stream", st.ID, "err", err)
		s.failStream(ctx, st.ID, "could not announce the stream on the bus")
		return nil, huma.Error503ServiceUnavailable(fmt.Sprintf("live stream %s could not be announced on the bus; retry later", st.ID))
	}
	rtmp, srt := s.ingestBases(in.requestBase)
	publish := PublishURLs{
		RTMP: rtmp + "/live/" + key,
		SRT:  srt + "?streamid=publish:" + key,
	}
	if req.SRTPassphrase != "" {
		// Printable and without spaces, but '&', '#' or '%' need escaping.
		publish.SRT += "&passphrase=" + url.QueryEscape(req.SRTPassphrase)
	}
	if s.cfg.RTMPSBase != "" {
		publish.RTMPS = s.cfg.RTMPSBase + "/live/" + key
	}
	publish.HTTP = s.httpBase(in.requestBase) + "/publish/" + key
	publish.WebSocket = "ws" + strings.TrimPrefix(publish.HTTP, "http")
	var job *jobs.View
	if req.StreamEngines.given() {
		v, err := s.startStreamJob(ctx, st.ID, st.Title, req.StreamEngines)
		if err != nil {
			s.failStream(ctx, st.ID, "could not start its engines")
			return nil, err
		}
		job = &v
	}
	master := ""
	if len(ladder) > 0 {
		master = s.hlsURL(in.requestBase, st.ID+"/master.m3u8")
	}
	return &startOutput{Body: StartStreamResponse{
		Ladder:        ladder,
		LLHLS:         ll,
		Master:        master,
		Job:           job,
		StreamID:      st.ID,
		Status:        string(st.Status),
		Title:         st.Title,
		SourceURL:     redactURL(st.SourceURL),
		PublishKey:    key,
		SRTPassphrase: req.SRTPassphrase,
		Publish:       publish,
		Playback:      s.hlsURL(in.requestBase, liveKey(st.ID)),
		MetadataURL:   s.httpBase(in.requestBase) + "/streams/" + st.ID + "/metadata",
	}}, nil
}

// streamLadder checks a request's ladder and returns the one to store:
// the server's default when the request names none, nothing for [].
func (s *Server) streamLadder(items []string) ([]string, error) {
	if items == nil {
		return s.cfg.LiveLadder, nil
	}
	rungs, err := liveladder.Parse(items)
	if err != nil {
		return nil, fieldError("body.ladder", err.Error(), items)
	}
	return liveladder.Specs(rungs), nil
}

// checkSRTPassphrase refuses a malformed passphrase, and one for a stream
// pulled from a source (it has no SRT publisher to hold to it).
func checkSRTPassphrase(req StartStreamRequest) error {
	if req.SRTPassphrase == "" {
		return nil
	}
	if req.SourceURL != "" {
		return fieldError("body.srt_passphrase", "is for streams pushed over SRT; a stream pulled from source_url has no SRT publisher", nil)
	}
	if err := metastore.CheckSRTPassphrase(req.SRTPassphrase); err != nil {
		// Never echo the secret.
		return fieldError("body.srt_passphrase", strings.TrimPrefix(err.Error(), "srt passphrase: "), nil)
	}
	return nil
}

// ingestBases returns the RTMP and SRT bases, defaulting to the host name
// of BaseURL (or of the request, when BaseURL is unset) with the standard
// ports 1935 and 8890.
func (s *Server) ingestBases(b requestBase) (rtmp, srt string) {
	rtmp, srt = s.cfg.RTMPBase, s.cfg.SRTBase
	if s.cfg.BaseURL != "" {
		if u, err := parseURL(s.cfg.BaseURL); err == nil {
			b = requestBase{host: u.Host}
		}
	}
	if rtmp == "" {
		rtmp = "rtmp://" + b.hostname() + ":1935"
	}
	if srt == "" {
		srt = "srt://" + b.hostname() + ":8890"
	}
	return rtmp, srt
}

// endStream asks the live pipeline to finish the stream. A stream still in
// "created" has no pipeline state to finish, so it moves to vod here; a
// live one moves when the pipeline has written EXT-X-ENDLIST. Repeating the
// call while the stream is still live is harmless.
func (s *Server) endStream(ctx context.Context, in *liveIDInput) (*streamStatusOutput, error) {
	st, err := s.getStream(ctx, metastore.KindLive, in.ID)
	if err != nil {
		return nil, err
	}
	if st.Status.Terminal() {
		return nil, huma.Error409Conflict(fmt.Sprintf("live stream %s already ended (status %s)", st.ID, st.Status))
	}
	if err := s.publish(ctx, &protocol.LiveControl{
		Action:      protocol.LiveEnd,
		StreamID:    st.ID,
		RequestedAt: time.Now().UTC(),
	}); err != nil {
		s.log.Error("announce live stream end", "stream", st.ID, "err", err)
		return nil, huma.Error503ServiceUnavailable(fmt.Sprintf("the end of live stream %s could not be announced on the bus; retry later", st.ID))
	}
	if st.Status == metastore.StatusCreated {
		ended, err := s.cfg.Meta.TransitionStatus(ctx, st.ID, metastore.StatusVOD, nil)
		switch {
		case err == nil:
			st = ended
		default:
			// The pipeline moved it first (it went live, or ended it);
			// report whatever it is now.
			if cur, gerr := s.cfg.Meta.GetStream(ctx, st.ID); gerr == nil {
				st = cur
			} else {
				return nil, s.storeError(ctx, "end live stream "+st.ID, err)
			}
		}
	}
	return &streamStatusOutput{Body: StreamStatus{
		StreamID: st.ID,
		Status:   string(st.Status),
		Playback: s.hlsURL(in.requestBase, liveKey(st.ID)),
	}}, nil
}

func (s *Server) liveURL(ctx context.Context, in *liveIDInput) (*liveURLOutput, error) {
	st, err := s.getStream(ctx, metastore.KindLive, in.ID)
	if err != nil {
		return nil, err
	}
	if st.Status == metastore.StatusFailed {
		return nil, huma.Error409Conflict(fmt.Sprintf("live stream %s failed and has no playlist: %s", st.ID, st.Error))
	}
	return &liveURLOutput{Body: LiveURLResponse{
		StreamID: st.ID,
		Status:   string(st.Status),
		URL:      s.hlsURL(in.requestBase, liveKey(st.ID)),
	}}, nil
}

func (s *Server) liveMetadata(ctx context.Context, in *liveIDInput) (*liveMetadataOutput, error) {
	st, err := s.getStream(ctx, metastore.KindLive, in.ID)
	if err != nil {
		return nil, err
	}
	return &liveMetadataOutput{Body: LiveMetadata{
		StreamID:         st.ID,
		Title:            st.Title,
		Status:           string(st.Status),
		Error:            st.Error,
		SourceURL:        redactURL(st.SourceURL),
		SRTEncrypted:     st.SRTPassphrase != "",
		CreatedAt:        st.CreatedAt.UTC(),
		UpdatedAt:        st.UpdatedAt.UTC(),
		StartedAt:        stageTime(st, metastore.StatusLive),
		EndedAt:          stageTime(st, metastore.StatusVOD),
		FailedAt:         stageTime(st, metastore.StatusFailed),
		StageTimes:       stageTimes(st),
		SegmentCount:     st.SegmentCount,
		Gaps:             st.Gaps,
		ChecksumFailures: st.ChecksumFailures,
		ManifestPath:     st.ManifestPath,
		Playback:         s.hlsURL(in.requestBase, liveKey(st.ID)),
		Ladder:           st.VariantsGenerated,
		Details:          details(st),
	}}, nil
}
