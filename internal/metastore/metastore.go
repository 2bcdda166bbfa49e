// Package metastore keeps weir's metadata: streams (VOD titles and live
// streams), their segments, jobs with their tasks, chunks and results, and
// the external engines registered with a manifest. Two implementations
// share one contract: SQLite in the data directory (the embedded default)
// and PostgreSQL for distributed deployments. Both run versioned schema
// migrations when opened.
package metastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned (wrapped) when an id does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when an optimistic update lost a race:
// the row's version changed since it was read, or a status transition would
// move a stream or job backwards.
var ErrConflict = errors.New("conflict")

// ErrExists is returned (wrapped) when creating a row whose id is taken.
var ErrExists = errors.New("already exists")

// ErrInvalid is returned (wrapped) when an argument is malformed: a missing
// id, an unknown status, a JSON column that is not valid JSON, or a paging
// cursor this store did not issue. The REST layer maps it to 400.
var ErrInvalid = errors.New("invalid argument")

// ErrUnavailable is returned (wrapped, together with the driver's error) when
// the store could not be reached: the PostgreSQL server refused or dropped
// the connection, or is shutting down. The operation may succeed if retried
// later; the REST layer maps it to 503.
var ErrUnavailable = errors.New("metadata store unavailable")

// Kind says whether a stream is an uploaded title or a live stream.
type Kind string

const (
	KindVOD  Kind = "vod"
	KindLive Kind = "live"
)

// Status is a stream's lifecycle state. VOD titles move
// uploaded → processing → transcoding → ready; live streams move
// created → live → vod. Any non-terminal state may move to failed.
// Ready, vod and failed are terminal.
type Status string

const (
	StatusUploaded    Status = "uploaded"
	StatusProcessing  Status = "processing"
	StatusTranscoding Status = "transcoding"
	StatusReady       Status = "ready"
	StatusCreated     Status = "created"
	StatusLive        Status = "live"
	StatusVOD         Status = "vod"
	StatusFailed      Status = "failed"
)

// Rank orders statuses within their lifecycle; a transition must not lower it.
func (s Status) Rank() int {
	switch s {
	case StatusUploaded, StatusCreated:
		return 1
	case StatusProcessing, StatusLive:
		return 2
	case StatusTranscoding:
		return 3
	case StatusReady, StatusVOD, StatusFailed:
		return 4
	}
	return 0
}

// Terminal reports whether no further transition is allowed.
func (s Status) Terminal() bool { return s.Rank() == 4 }

// Stream is a VOD title or a live stream.
type Stream struct {
	ID     string `json:"stream_id"`
	Kind   Kind   `json:"kind"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	// Progress is the percent (0–100) of the current stage done.
	Progress float64 `json:"progress"`
	// PublishKey authorises RTMP/SRT publishing of a live stream. It is
	// write-only: set it on CreateStream (or UpdateStream, to re-key), and
	// the store keeps only its SHA-256 (PublishKeyHash). Streams read back
	// have it empty; the stream CreateStream returns still carries it, so
	// the caller can show it once.
	PublishKey string `json:"-"`
	// PublishKeyHash is HashPublishKey(PublishKey), what the store holds;
	// "" for a stream nobody can publish to.
	PublishKeyHash string `json:"-"`
	// SRTPassphrase, when set, is the passphrase SRT publishers of this
	// live stream must encrypt with (see CheckSRTPassphrase): SRT
	// derives its keys from it, so the store keeps it as given, not
	// hashed. It is not serialised; the API shows it only in the answer
	// that creates the stream.
	SRTPassphrase string `json:"-"`
	// SourceURL is where pulled media comes from (VOD URL import or live pull).
	SourceURL string `json:"source_url,omitempty"`
	// SourceKey is the object key of the uploaded original.
	SourceKey           string   `json:"source_key,omitempty"`
	ManifestPath        string   `json:"manifest_path,omitempty"`
	VariantsGenerated   []string `json:"variants_generated"`
	ProcessingLatencyMS int64    `json:"processing_latency_ms,omitempty"`
	SegmentCount        int64    `json:"segment_count"`
	Gaps                int64    `json:"gaps"`
	ChecksumFailures    int64    `json:"checksum_failures"`
	// StageTimes records when the stream entered each status.
	StageTimes map[Status]time.Time `json:"stage_times"`
	// Details holds pipeline-specific metadata (probe results, window, latency).
	Details   json.RawMessage `json:"details,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Version increments on every write; UpdateStream compares it.
	Version int64 `json:"version"`
}

// LiveSettings are a live stream's packaging choices, kept in its Details:
// POST /streams/start writes them, the RTMP, SRT and HTTP push servers and
// the packager read them. The packager's own details (live.Details) embed
// them and add its progress.
type LiveSettings struct {
	// LowLatency packages the stream as Low-Latency HLS (fMP4 parts).
	LowLatency bool `json:"ll_hls,omitempty"`
}

// Live returns the stream's LiveSettings, read from its Details; Details
// that are empty or do not parse give the zero settings.
func (s Stream) Live() LiveSettings {
	var l LiveSettings
	if len(s.Details) > 0 {
		_ = json.Unmarshal(s.Details, &l) // not a JSON object: no settings
	}
	return l
}

// Segment is one media segment of a stream, keyed by
// (StreamID, Rendition, ChunkIndex). Rendition is "" for single-rendition
// live streams and a ladder rung name ("720p") for VOD.
type Segment struct {
	StreamID   string `json:"stream_id"`
	Rendition  string `json:"rendition"`
	ChunkIndex int64  `json:"chunk_index"`
	// Sequence is the HLS media sequence number.
	Sequence int64  `json:"sequence"`
	Key      string `json:"key"`
	// StartUS and DurationUS are media time in microseconds.
	StartUS       int64  `json:"start_us"`
	DurationUS    int64  `json:"duration_us"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	Discontinuity bool   `json:"discontinuity"`
	// ProgramDateTime is the wall-clock time of the segment's first sample.
	ProgramDateTime time.Time `json:"program_date_time"`
	CreatedAt       time.Time `json:"created_at"`
}

// JobStatus is a job's or task's state: pending (accepted, not yet taken
// by a runner), running, then one of the terminal states complete, failed
// or cancelled.
type JobStatus string

const (
	JobPending   JobStatus = "pending"
	JobRunning   JobStatus = "running"
	JobComplete  JobStatus = "complete"
	JobFailed    JobStatus = "failed"
	JobCancelled JobStatus = "cancelled"
)

// JobStatuses lists every job status in lifecycle order.
var JobStatuses = []JobStatus{JobPending, JobRunning, JobComplete, JobFailed, JobCancelled}

// Valid reports whether s is one of JobStatuses.
func (s JobStatus) Valid() bool {
	switch s {
	case JobPending, JobRunning, JobComplete, JobFailed, JobCancelled:
		return true
	}
	return false
}

// Terminal reports whether a job or task in status s is over: complete,
// failed or cancelled.
func (s JobStatus) Terminal() bool {
	return s == JobComplete || s == JobFailed || s == JobCancelled
}

// Job is a DAG of tasks (Veritone's model).
type Job struct {
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	StreamID  string          `json:"stream_id,omitempty"`
	Status    JobStatus       `json:"status"`
	Spec      json.RawMessage `json:"spec,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Version   int64           `json:"version"`
}

// JobFilter selects jobs for ListJobsWhere; a zero field matches every job.
type JobFilter struct {
	// Status keeps the jobs in this status.
	Status JobStatus
	// StreamID keeps the jobs whose source is this VOD title or live
	// stream (Job.StreamID).
	StreamID string
}

// Task is one node of a job.
type Task struct {
	ID        string          `json:"id"`
	JobID     string          `json:"job_id"`
	Name      string          `json:"name"`
	Engine    string          `json:"engine"`
	Status    JobStatus       `json:"status"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     string          `json:"error,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Engine is an external engine: one running outside weir, registered with
// a manifest. The store keeps the manifest as JSON and does not read it;
// the engine package parses and checks it. Built-in engines register in
// code and are not stored.
type Engine struct {
	// Name is the engine's name, the key.
	Name string `json:"name"`
	// Manifest is the engine's manifest, a JSON object.
	Manifest json.RawMessage `json:"manifest"`
	// Source says where the registration came from: "api" (POST /engines)
	// or "file:<path>" (--engines-dir).
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// StreamFilter selects streams for ListStreams. Zero fields match all.
type StreamFilter struct {
	Kind   Kind
	Status Status
	// Limit caps the page size (default 50, max 1000).
	Limit int
	// After is the cursor returned by the previous page ("" for the first).
	After string
}

// HashPublishKey is how publish keys are stored: the hex SHA-256 of the
// key. A key is 128 random bits, so a plain hash (no salt, no stretching)
// is as strong as the key, and it keeps the lookup an indexed equality: a
// copy of the database, a backup or a SQL injection does not hand out keys
// that let someone publish.
func HashPublishKey(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Bounds of an SRT passphrase, as libsrt (and so ffmpeg and OBS) takes it.
const (
	MinSRTPassphrase = 10
	MaxSRTPassphrase = 79
)

// CheckSRTPassphrase reports what is wrong with an SRT passphrase: it must
// be MinSRTPassphrase to MaxSRTPassphrase bytes of printable ASCII other
// than a space (it travels in URLs and command lines). "" (no encryption)
// is fine.
func CheckSRTPassphrase(p string) error {
	if p == "" {
		return nil
	}
	if len(p) < MinSRTPassphrase || len(p) > MaxSRTPassphrase {
		return fmt.Errorf("srt passphrase: has %d characters, want %d to %d", len(p), MinSRTPassphrase, MaxSRTPassphrase)
	}
	for _, c := range []byte(p) {
		if c <= ' ' || c >= 0x7f {
			return errors.New("srt passphrase: use printable ASCII characters without spaces")
		}
	}
	return nil
}

// Store is the metadata store seam. Implementations are safe for concurrent use.
type Store interface {
	// CreateStream inserts a new stream (Version 1, StageTimes[Status] set);
	// ErrExists if the id is taken.
	CreateStream(ctx context.Context, s Stream) (Stream, error)
	GetStream(ctx context.Context, id string) (Stream, error)
	// GetStreamByPublishKey finds the stream whose key is key (the plain
	// key a publisher presents), by comparing hashes; ErrNotFound when none.
	GetStreamByPublishKey(ctx context.Context, key string) (Stream, error)
	// ListStreams pages streams newest first; next is "" on the last page.
	ListStreams(ctx context.Context, f StreamFilter) (streams []Stream, next string, err error)
	// UpdateStream writes s if s.Version equals the stored version, then
	// increments it; otherwise ErrConflict. It may not lower the status rank.
	UpdateStream(ctx context.Context, s Stream) (Stream, error)
	// TransitionStatus moves a stream to status to, recording the stage time
	// and applying mutate (which may be nil) to the row read in the same
	// transaction. It fails with ErrConflict when the current status is
	// terminal or ranks above to (a stale writer cannot move a stream back);
	// moving to the current status again is allowed and only applies mutate.
	TransitionStatus(ctx context.Context, id string, to Status, mutate func(*Stream)) (Stream, error)
	// UpsertSegment inserts or replaces the segment keyed by
	// (StreamID, Rendition, ChunkIndex); repeating it is harmless.
	UpsertSegment(ctx context.Context, seg Segment) error
	// ListSegments returns a rendition's segments ordered by ChunkIndex,
	// starting at fromIndex; limit <= 0 means all.
	ListSegments(ctx context.Context, streamID, rendition string, fromIndex int64, limit int) ([]Segment, error)
	// DeleteSegments removes a rendition's segments with ChunkIndex >= fromIndex.
	DeleteSegments(ctx context.Context, streamID, rendition string, fromIndex int64) error

	CreateJob(ctx context.Context, j Job) (Job, error)
	GetJob(ctx context.Context, id string) (Job, error)
	// ListJobs pages jobs newest first, optionally filtered by status.
	ListJobs(ctx context.Context, status JobStatus, limit int, after string) (jobs []Job, next string, err error)
	// ListJobsWhere pages the jobs f selects newest first, like ListJobs.
	ListJobsWhere(ctx context.Context, f JobFilter, limit int, after string) (jobs []Job, next string, err error)
	// UpdateJob writes j if j.Version equals the stored version; else ErrConflict.
	UpdateJob(ctx context.Context, j Job) (Job, error)
	// UpsertTask inserts t or replaces every field of the task with its
	// id but CreatedAt: a runner writes a task's Status and Output with it.
	UpsertTask(ctx context.Context, t Task) error
	ListTasks(ctx context.Context, jobID string) ([]Task, error)

	// PutResult records an engine's result for a chunk of a job,
	// idempotently: the same (JobID, Engine, ChunkUUID, StartMs) written
	// again replaces the row, and a lower Rev never replaces a higher one.
	PutResult(ctx context.Context, r Result) error
	// ListResults pages a job's results in time order (StartMs, EndMs,
	// Engine, ChunkUUID); next is "" on the last page.
	ListResults(ctx context.Context, q ResultQuery) (results []Result, next string, err error)
	// SearchTexts finds the texts of the stored results (what was said,
	// read on screen, spotted) that match a query, best first (relevance,
	// then the newest job); next is "" on the last page. PutResult keeps
	// the index; a result's texts go with it.
	SearchTexts(ctx context.Context, q SearchQuery) (hits []SearchHit, next string, err error)
	// PutJobChunk records where a chunk of a job stands with an engine,
	// keyed by (JobID, Engine, ChunkUUID); a terminal state (done,
	// ignored, dropped, failed) is never replaced by a non-terminal one.
	PutJobChunk(ctx context.Context, c JobChunk) error
	// ListJobChunks returns a job's chunks of one engine ("" for all) by
	// ChunkIndex.
	ListJobChunks(ctx context.Context, jobID, engine string) ([]JobChunk, error)
	// CountJobChunks counts a job's chunks by engine and state.
	CountJobChunks(ctx context.Context, jobID string) (map[string]map[ChunkState]int64, error)

	// PutWindow records a window a job's aggregator emitted, once: it
	// reports false, changing nothing, when the job has a window with the
	// same start.
	PutWindow(ctx context.Context, w Window) (created bool, err error)
	// ListWindows pages a job's windows by start, each with its late
	// results; next is "" on the last page.
	ListWindows(ctx context.Context, q WindowQuery) (windows []Window, next string, err error)
	// WindowMarks returns every window of a job by start, without results.
	WindowMarks(ctx context.Context, jobID string) ([]Window, error)
	// PutLateResult records a result that came after its window was
	// settled, once per (job, window, engine, chunk, start, rev); it
	// reports whether it was new.
	PutLateResult(ctx context.Context, l LateResult) (created bool, err error)

	// PutEngine registers an external engine, or replaces the manifest and
	// source of the one with the same name (keeping its CreatedAt), and
	// reports whether it was new. An empty name or a manifest that is not a
	// JSON object fails with ErrInvalid.
	PutEngine(ctx context.Context, e Engine) (stored Engine, created bool, err error)
	// GetEngine returns the external engine called name, or ErrNotFound.
	GetEngine(ctx context.Context, name string) (Engine, error)
	// ListEngines returns every external engine, sorted by name.
	ListEngines(ctx context.Context) ([]Engine, error)
	// DeleteEngine removes the external engine called name; ErrNotFound
	// when there is none.
	DeleteEngine(ctx context.Context, name string) error

	// CreateFingerprint adds a reference to the fingerprint library,
	// setting CreatedAt; ErrExists if the id is taken, ErrInvalid without
	// an id, a name, a duration or items (or with more than
	// MaxFingerprintItems).
	CreateFingerprint(ctx context.Context, f Fingerprint) (Fingerprint, error)
	// GetFingerprint returns the reference with the id, or ErrNotFound.
	GetFingerprint(ctx context.Context, id string) (Fingerprint, error)
	// ListFingerprints returns the whole library, oldest first.
	ListFingerprints(ctx context.Context) ([]Fingerprint, error)
	// DeleteFingerprint removes the reference with the id; ErrNotFound
	// when there is none.
	DeleteFingerprint(ctx context.Context, id string) error

	// Leaser grants the leases that keep cross-process work single.
	Leaser

	// AlertStore keeps alert rules, alerts and their deliveries
	// (alerts.go).
	AlertStore

	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}
