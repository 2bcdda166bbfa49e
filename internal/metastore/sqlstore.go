package metastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// This file holds the behaviour SQLite and PostgreSQL share. Both speak the
// same DML (numbered $N placeholders, ON CONFLICT upserts, row-value
// comparisons); what differs (connections, transactions, row locks, how a
// time is stored, how constraint errors look) sits behind backend.

// querier runs statements on a connection pool or inside a transaction.
type querier interface {
	// exec runs a statement and returns the number of rows it changed.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	query(ctx context.Context, query string, args ...any) (rowIter, error)
}

// rowIter is the part of *sql.Rows and pgx.Rows the store uses.
type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// constraintKind classifies a constraint violation reported by a backend.
type constraintKind int

const (
	constraintNone constraintKind = iota
	constraintUnique
	constraintForeignKey
)

// backend is what a SQL dialect provides to sqlStore.
type backend interface {
	// reader runs statements outside a transaction that only read.
	reader() querier
	// writer runs single-statement writes outside a transaction.
	writer() querier
	// inTx runs fn in one write transaction, committing if fn returns nil
	// and rolling back otherwise. Transactions never run concurrently with
	// another write on SQLite; on PostgreSQL rows read with lockClause are
	// locked until the transaction ends.
	inTx(ctx context.Context, fn func(q querier) error) error
	// lockClause is appended to a SELECT of streams (aliased s) whose row the
	// transaction is about to update.
	lockClause() string
	// timeArg converts a normalised UTC time to the driver value stored.
	timeArg(t time.Time) any
	// constraint reports which constraint, if any, err violated.
	constraint(err error) constraintKind
	// clockNow is an SQL expression for the database's current time, in
	// the stored form; clockPlus is that time plus the microseconds bound
	// to placeholder $n. Leases expire on this clock, not a process's.
	clockNow() string
	clockPlus(n int) string
}

// sqlStore implements Store on a backend.
type sqlStore struct {
	b backend
}

// now is the store's clock: UTC, truncated to the microsecond that both
// backends keep, so a value read back equals the value written.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// normTime brings a caller's time to the stored precision and zone.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func (st *sqlStore) timeArg(t time.Time) any { return st.b.timeArg(normTime(t)) }

// nullTimeArg stores the zero time as NULL.
func (st *sqlStore) nullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return st.timeArg(t)
}

// timeCol scans a stored time: microseconds since the epoch (SQLite), a
// time.Time (PostgreSQL), or NULL (the zero time). The result is UTC.
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = time.Time{}
	case int64:
		*c.dst = time.UnixMicro(v).UTC()
	case time.Time:
		*c.dst = normTime(v)
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("stored time %q: %w", v, err)
		}
		*c.dst = normTime(t)
	default:
		return fmt.Errorf("stored time has unexpected type %T", src)
	}
	return nil
}

// jsonCol scans a JSON column into raw bytes; NULL becomes nil.
type jsonCol struct{ dst *json.RawMessage }

func (c jsonCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = nil
	case string:
		*c.dst = json.RawMessage(v)
	case []byte:
		*c.dst = append(json.RawMessage(nil), v...)
	default:
		return fmt.Errorf("stored JSON has unexpected type %T", src)
	}
	return nil
}

var (
	_ sql.Scanner = timeCol{}
	_ sql.Scanner = jsonCol{}
)

// jsonArg validates raw JSON for a nullable column; empty is NULL.
func jsonArg(what string, raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s is not valid JSON: %w", what, ErrInvalid)
	}
	return string(raw), nil
}

// queryOne scans the first row of a query into dest and reports whether
// there was one.
func queryOne(ctx context.Context, q querier, query string, args []any, dest ...any) (bool, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Err()
}

// placeholders numbers $from, $from+1, ... n times, comma separated.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

// ---- streams ----

// streamSelect reads a stream row; SegmentCount is computed from the
// segments table on every read, so it can never drift from the rows.
const streamSelect = `SELECT s.id, s.kind, s.title, s.status, s.error, s.progress, s.publish_key,
	s.source_url, s.source_key, s.manifest_path, s.variants_generated, s.processing_latency_ms,
	s.gaps, s.checksum_failures, s.stage_times, s.details, s.created_at, s.updated_at, s.version,
	s.srt_passphrase, (SELECT COUNT(*) FROM segments g WHERE g.stream_id = s.id)
FROM streams s`

// streamScan holds scan targets for one stream row.
type streamScan struct {
	s        Stream
	variants json.RawMessage
	stages   json.RawMessage
}

func (r *streamScan) dest() []any {
	s := &r.s
	return []any{&s.ID, &s.Kind, &s.Title, &s.Status, &s.Error, &s.Progress, &s.PublishKeyHash,
		&s.SourceURL, &s.SourceKey, &s.ManifestPath, jsonCol{&r.variants}, &s.ProcessingLatencyMS,
		&s.Gaps, &s.ChecksumFailures, jsonCol{&r.stages}, jsonCol{&s.Details},
		timeCol{&s.CreatedAt}, timeCol{&s.UpdatedAt}, &s.Version, &s.SRTPassphrase, &s.SegmentCount}
}

func (r *streamScan) finish() (Stream, error) {
	s := r.s
	s.VariantsGenerated = []string{}
	if len(r.variants) > 0 {
		if err := json.Unmarshal(r.variants, &s.VariantsGenerated); err != nil {
			return Stream{}, fmt.Errorf("stream %s: stored variants_generated: %w", s.ID, err)
		}
	}
	s.StageTimes = map[Status]time.Time{}
	if len(r.stages) > 0 {
		if err := json.Unmarshal(r.stages, &s.StageTimes); err != nil {
			return Stream{}, fmt.Errorf("stream %s: stored stage_times: %w", s.ID, err)
		}
	}
	for k, v := range s.StageTimes {
		s.StageTimes[k] = normTime(v)
	}
	return s, nil
}

// loadStream reads one stream by id; lock takes its row lock for the rest of
// the transaction.
func (st *sqlStore) loadStream(ctx context.Context, q querier, id string, lock bool) (Stream, bool, error) {
	query := streamSelect + ` WHERE s.id = $1`
	if lock {
		query += st.b.lockClause()
	}
	var r streamScan
	found, err := queryOne(ctx, q, query, []any{id}, r.dest()...)
	if err != nil || !found {
		return Stream{}, found, err
	}
	s, err := r.finish()
	return s, true, err
}

// streamMutableColumns are the stream columns a write may change.
const streamMutableColumns = `title, status, error, progress, publish_key, source_url, source_key,
	manifest_path, variants_generated, processing_latency_ms, gaps, checksum_failures, stage_times, details,
	srt_passphrase`

// streamArgs returns the values of streamMutableColumns for s, in order,
// and normalises s to what will be stored (non-nil variants, UTC stage times
// at microsecond precision). Invalid Details JSON fails with ErrInvalid.
func (st *sqlStore) streamArgs(s *Stream) ([]any, error) {
	variants := s.VariantsGenerated
	if variants == nil {
		variants = []string{}
	}
	vj, err := json.Marshal(variants)
	if err != nil {
		return nil, fmt.Errorf("stream %s: variants_generated: %w", s.ID, err)
	}
	stages := make(map[Status]time.Time, len(s.StageTimes))
	for k, v := range s.StageTimes {
		stages[k] = normTime(v)
	}
	sj, err := json.Marshal(stages)
	if err != nil {
		return nil, fmt.Errorf("stream %s: stage_times: %w", s.ID, err)
	}
	details, err := jsonArg("details", s.Details)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.ID, err)
	}
	if err := CheckSRTPassphrase(s.SRTPassphrase); err != nil {
		return nil, fmt.Errorf("stream %s: %w: %w", s.ID, err, ErrInvalid)
	}
	s.VariantsGenerated = variants
	s.StageTimes = stages
	if s.PublishKey != "" { // a new key; otherwise keep the stored hash
		s.PublishKeyHash = HashPublishKey(s.PublishKey)
	}
	return []any{s.Title, string(s.Status), s.Error, s.Progress, s.PublishKeyHash, s.SourceURL, s.SourceKey,
		s.ManifestPath, string(vj), s.ProcessingLatencyMS, s.Gaps, s.ChecksumFailures, string(sj), details,
		s.SRTPassphrase}, nil
}

func validKind(k Kind) bool { return k == KindVOD || k == KindLive }

// CreateStream inserts s with Version 1. A zero CreatedAt becomes now;
// UpdatedAt equals CreatedAt. An empty Status becomes the first status of
// the kind's lifecycle (uploaded for VOD, created for live), and
// StageTimes[Status] is set to CreatedAt unless the caller set it. A taken
// id, or a non-empty PublishKey already used by another stream, fails with
// ErrExists; an empty id, an unknown kind or status, or invalid Details JSON
// fails with ErrInvalid. SegmentCount is always 0 for a new stream.
func (st *sqlStore) CreateStream(ctx context.Context, s Stream) (Stream, error) {
	if s.ID == "" {
		return Stream{}, fmt.Errorf("stream without id: %w", ErrInvalid)
	}
	if !validKind(s.Kind) {
		return Stream{}, fmt.Errorf("stream %s: unknown kind %q: %w", s.ID, s.Kind, ErrInvalid)
	}
	if s.Status == "" {
		s.Status = StatusUploaded
		if s.Kind == KindLive {
			s.Status = StatusCreated
		}
	}
	if s.Status.Rank() == 0 {
		return Stream{}, fmt.Errorf("stream %s: unknown status %q: %w", s.ID, s.Status, ErrInvalid)
	}
	s.CreatedAt = normTime(s.CreatedAt)
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now()
	}
	s.UpdatedAt = s.CreatedAt
	s.StageTimes = maps.Clone(s.StageTimes)
	if s.StageTimes == nil {
		s.StageTimes = map[Status]time.Time{}
	}
	if s.StageTimes[s.Status].IsZero() {
		s.StageTimes[s.Status] = s.CreatedAt
	}
	s.Version = 1
	s.SegmentCount = 0
	args, err := st.streamArgs(&s)
	if err != nil {
		return Stream{}, err
	}
	args = append([]any{s.ID, string(s.Kind)}, args...)
	args = append(args, st.timeArg(s.CreatedAt), st.timeArg(s.UpdatedAt), s.Version)
	n, err := st.b.writer().exec(ctx, `INSERT INTO streams (id, kind, `+streamMutableColumns+`,
		created_at, updated_at, version) VALUES (`+placeholders(1, len(args))+`)
		ON CONFLICT (id) DO NOTHING`, args...)
	if err != nil {
		return Stream{}, st.streamWriteError(s.ID, err)
	}
	if n == 0 {
		return Stream{}, fmt.Errorf("stream %s: %w", s.ID, ErrExists)
	}
	return s, nil
}

// streamWriteError names a publish key collision; other errors pass through.
func (st *sqlStore) streamWriteError(id string, err error) error {
	if st.b.constraint(err) == constraintUnique {
		return fmt.Errorf("stream %s: publish key is used by another stream: %w", id, ErrExists)
	}
	return fmt.Errorf("stream %s: %w", id, err)
}

// GetStream returns the stream with the given id, or ErrNotFound.
func (st *sqlStore) GetStream(ctx context.Context, id string) (Stream, error) {
	s, found, err := st.loadStream(ctx, st.b.reader(), id, false)
	if err != nil {
		return Stream{}, fmt.Errorf("stream %s: %w", id, err)
	}
	if !found {
		return Stream{}, fmt.Errorf("stream %s: %w", id, ErrNotFound)
	}
	return s, nil
}

// GetStreamByPublishKey returns the stream whose PublishKey is key, found
// by its hash (the column publish_key holds HashPublishKey). The empty key
// never matches (streams without a key are not publishable), and
// the error does not echo the key, which is a secret.
func (st *sqlStore) GetStreamByPublishKey(ctx context.Context, key string) (Stream, error) {
	if key == "" {
		return Stream{}, fmt.Errorf("stream with empty publish key: %w", ErrNotFound)
	}
	// The repeated "publish_key <> ''" lets both planners use the partial
	// unique index, whose predicate a bare parameter cannot imply.
	var r streamScan
	found, err := queryOne(ctx, st.b.reader(), streamSelect+` WHERE s.publish_key = $1 AND s.publish_key <> ''`,
		[]any{HashPublishKey(key)}, r.dest()...)
	if err != nil {
		return Stream{}, fmt.Errorf("stream by publish key: %w", err)
	}
	if !found {
		return Stream{}, fmt.Errorf("stream with that publish key: %w", ErrNotFound)
	}
	return r.finish()
}

// ListStreams pages streams newest first (by CreatedAt, then id), filtered
// by kind and status when set. f.Limit <= 0 means 50 and is capped at 1000.
// next is an opaque cursor for f.After, "" on the last page; a cursor stays
// valid however many streams are created meanwhile (new ones sort before
// it). An unknown kind or status, or a cursor not made by ListStreams,
// fails with ErrInvalid.
func (st *sqlStore) ListStreams(ctx context.Context, f StreamFilter) ([]Stream, string, error) {
	var where []string
	var args []any
	if f.Kind != "" {
		if !validKind(f.Kind) {
			return nil, "", fmt.Errorf("list streams: unknown kind %q: %w", f.Kind, ErrInvalid)
		}
		args = append(args, string(f.Kind))
		where = append(where, "s.kind = $"+strconv.Itoa(len(args)))
	}
	if f.Status != "" {
		if f.Status.Rank() == 0 {
			return nil, "", fmt.Errorf("list streams: unknown status %q: %w", f.Status, ErrInvalid)
		}
		args = append(args, string(f.Status))
		where = append(where, "s.status = $"+strconv.Itoa(len(args)))
	}
	if f.After != "" {
		c, err := decodeCursor(f.After)
		if err != nil {
			return nil, "", fmt.Errorf("list streams: %w", err)
		}
		args = append(args, st.timeArg(c.createdAt), c.id)
		where = append(where, fmt.Sprintf("(s.created_at, s.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	limit := pageSize(f.Limit)
	query := streamSelect
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	query += " ORDER BY s.created_at DESC, s.id DESC LIMIT $" + strconv.Itoa(len(args))

	rows, err := st.b.reader().query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list streams: %w", err)
	}
	defer rows.Close()
	streams := []Stream{}
	for rows.Next() {
		var r streamScan
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, "", fmt.Errorf("list streams: %w", err)
		}
		s, err := r.finish()
		if err != nil {
			return nil, "", fmt.Errorf("list streams: %w", err)
		}
		streams = append(streams, s)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list streams: %w", err)
	}
	next := ""
	if len(streams) > limit {
		streams = streams[:limit]
		last := streams[limit-1]
		next = encodeCursor(pageCursor{createdAt: last.CreatedAt, id: last.ID})
	}
	return streams, next, nil
}

// checkTransition enforces the lifecycle: a terminal status never changes and
// the rank never drops. Staying in the same status is always allowed.
func checkTransition(id string, from, to Status) error {
	if to.Rank() == 0 {
		return fmt.Errorf("stream %s: unknown status %q: %w", id, to, ErrInvalid)
	}
	if from == to {
		return nil
	}
	if from.Terminal() || to.Rank() < from.Rank() {
		return fmt.Errorf("stream %s: cannot move from %s to %s: %w", id, from, to, ErrConflict)
	}
	return nil
}

// writeStream stores s's mutable columns over the row at version expect and
// bumps the version. Callers hold the row (inside inTx).
func (st *sqlStore) writeStream(ctx context.Context, q querier, s Stream, expect int64) error {
	args, err := st.streamArgs(&s)
	if err != nil {
		return err
	}
	cols := strings.Split(streamMutableColumns, ",")
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = fmt.Sprintf("%s = $%d", strings.TrimSpace(c), i+1)
	}
	args = append(args, st.timeArg(now()), s.ID, expect)
	n := len(args)
	query := fmt.Sprintf(`UPDATE streams SET %s, updated_at = $%d, version = version + 1
		WHERE id = $%d AND version = $%d`, strings.Join(sets, ", "), n-2, n-1, n)
	changed, err := q.exec(ctx, query, args...)
	if err != nil {
		return st.streamWriteError(s.ID, err)
	}
	if changed == 0 {
		return fmt.Errorf("stream %s: version %d is stale: %w", s.ID, expect, ErrConflict)
	}
	return nil
}

// UpdateStream writes every field of s except ID, Kind, CreatedAt and
// SegmentCount (fixed at creation, and derived from the segments) when
// s.Version equals the stored version, and returns the stored row with the
// version incremented. A stale version fails with ErrConflict (so of two
// writers that read the same version exactly one wins), as does a status
// change that checkTransition refuses. When the status changes and
// StageTimes has no entry for the new one, it is set to now.
func (st *sqlStore) UpdateStream(ctx context.Context, s Stream) (Stream, error) {
	if s.ID == "" {
		return Stream{}, fmt.Errorf("stream without id: %w", ErrInvalid)
	}
	var out Stream
	err := st.b.inTx(ctx, func(q querier) error {
		cur, found, err := st.loadStream(ctx, q, s.ID, true)
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.ID, err)
		}
		if !found {
			return fmt.Errorf("stream %s: %w", s.ID, ErrNotFound)
		}
		if cur.Version != s.Version {
			return fmt.Errorf("stream %s: version %d is stale, stored version is %d: %w",
				s.ID, s.Version, cur.Version, ErrConflict)
		}
		if err := checkTransition(s.ID, cur.Status, s.Status); err != nil {
			return err
		}
		if s.Status != cur.Status && s.StageTimes[s.Status].IsZero() {
			s.StageTimes = maps.Clone(s.StageTimes)
			if s.StageTimes == nil {
				s.StageTimes = map[Status]time.Time{}
			}
			s.StageTimes[s.Status] = now()
		}
		if err := st.writeStream(ctx, q, s, cur.Version); err != nil {
			return err
		}
		out, _, err = st.loadStream(ctx, q, s.ID, false)
		return err
	})
	if err != nil {
		return Stream{}, err
	}
	return out, nil
}

// TransitionStatus implements Store.TransitionStatus. It reads the row under
// a write lock, checks the move, records StageTimes[to] = now when the status
// changes, runs mutate on the row, and writes it back with the version
// incremented, all in one transaction. mutate cannot change ID, Kind,
// CreatedAt, Version, SegmentCount or Status: those are restored after it
// runs. Moving to the current status with a nil mutate writes nothing and
// returns the row as stored.
func (st *sqlStore) TransitionStatus(ctx context.Context, id string, to Status, mutate func(*Stream)) (Stream, error) {
	var out Stream
	err := st.b.inTx(ctx, func(q querier) error {
		cur, found, err := st.loadStream(ctx, q, id, true)
		if err != nil {
			return fmt.Errorf("stream %s: %w", id, err)
		}
		if !found {
			return fmt.Errorf("stream %s: %w", id, ErrNotFound)
		}
		if err := checkTransition(id, cur.Status, to); err != nil {
			return err
		}
		if cur.Status == to && mutate == nil {
			out = cur
			return nil
		}
		s := cur
		s.StageTimes = maps.Clone(cur.StageTimes)
		s.VariantsGenerated = append([]string(nil), cur.VariantsGenerated...)
		changed := cur.Status != to
		if changed {
			s.Status = to
			s.StageTimes[to] = now()
		}
		if mutate != nil {
			mutate(&s)
		}
		s.ID, s.Kind, s.CreatedAt, s.Version, s.SegmentCount, s.Status =
			cur.ID, cur.Kind, cur.CreatedAt, cur.Version, cur.SegmentCount, to
		if s.StageTimes == nil {
			s.StageTimes = map[Status]time.Time{}
		}
		if changed && s.StageTimes[to].IsZero() {
			s.StageTimes[to] = now()
		}
		if err := st.writeStream(ctx, q, s, cur.Version); err != nil {
			return err
		}
		out, _, err = st.loadStream(ctx, q, id, false)
		return err
	})
	if err != nil {
		return Stream{}, err
	}
	return out, nil
}

// ---- segments ----

const segmentColumns = `stream_id, rendition, chunk_index, media_sequence, object_key, start_us,
	duration_us, size, sha256, discontinuity, program_date_time, created_at`

// UpsertSegment inserts seg or, when (StreamID, Rendition, ChunkIndex)
// exists, replaces every field but CreatedAt, which keeps the first write's
// value (a zero CreatedAt becomes now). The stream must exist: otherwise
// ErrNotFound. An empty StreamID or a negative ChunkIndex fails with
// ErrInvalid. A zero ProgramDateTime is stored as NULL and read back zero.
func (st *sqlStore) UpsertSegment(ctx context.Context, seg Segment) error {
	if seg.StreamID == "" {
		return fmt.Errorf("segment %d without stream id: %w", seg.ChunkIndex, ErrInvalid)
	}
	if seg.ChunkIndex < 0 {
		return fmt.Errorf("segment %d of stream %s: negative chunk index: %w", seg.ChunkIndex, seg.StreamID, ErrInvalid)
	}
	created := normTime(seg.CreatedAt)
	if created.IsZero() {
		created = now()
	}
	_, err := st.b.writer().exec(ctx, `INSERT INTO segments (`+segmentColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (stream_id, rendition, chunk_index) DO UPDATE SET
			media_sequence = excluded.media_sequence, object_key = excluded.object_key,
			start_us = excluded.start_us, duration_us = excluded.duration_us, size = excluded.size,
			sha256 = excluded.sha256, discontinuity = excluded.discontinuity,
			program_date_time = excluded.program_date_time`,
		seg.StreamID, seg.Rendition, seg.ChunkIndex, seg.Sequence, seg.Key, seg.StartUS,
		seg.DurationUS, seg.Size, seg.SHA256, seg.Discontinuity, st.nullTimeArg(seg.ProgramDateTime),
		st.timeArg(created))
	if err != nil {
		if st.b.constraint(err) == constraintForeignKey {
			return fmt.Errorf("segment %d of stream %s: stream %s: %w", seg.ChunkIndex, seg.StreamID, seg.StreamID, ErrNotFound)
		}
		return fmt.Errorf("segment %d of stream %s: %w", seg.ChunkIndex, seg.StreamID, err)
	}
	return nil
}

// ListSegments implements Store.ListSegments. An unknown stream or
// rendition yields an empty, non-nil slice.
func (st *sqlStore) ListSegments(ctx context.Context, streamID, rendition string, fromIndex int64, limit int) ([]Segment, error) {
	query := `SELECT ` + segmentColumns + ` FROM segments
		WHERE stream_id = $1 AND rendition = $2 AND chunk_index >= $3 ORDER BY chunk_index`
	args := []any{streamID, rendition, fromIndex}
	if limit > 0 {
		query += " LIMIT $4"
		args = append(args, limit)
	}
	rows, err := st.b.reader().query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("segments of stream %s rendition %q: %w", streamID, rendition, err)
	}
	defer rows.Close()
	segs := []Segment{}
	for rows.Next() {
		var g Segment
		if err := rows.Scan(&g.StreamID, &g.Rendition, &g.ChunkIndex, &g.Sequence, &g.Key, &g.StartUS,
			&g.DurationUS, &g.Size, &g.SHA256, &g.Discontinuity, timeCol{&g.ProgramDateTime},
			timeCol{&g.CreatedAt}); err != nil {
			return nil, fmt.Errorf("segments of stream %s rendition %q: %w", streamID, rendition, err)
		}
		segs = append(segs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segments of stream %s rendition %q: %w", streamID, rendition, err)
	}
	return segs, nil
}

// DeleteSegments implements Store.DeleteSegments; deleting nothing is not an
// error.
func (st *sqlStore) DeleteSegments(ctx context.Context, streamID, rendition string, fromIndex int64) error {
	_, err := st.b.writer().exec(ctx, `DELETE FROM segments
		WHERE stream_id = $1 AND rendition = $2 AND chunk_index >= $3`, streamID, rendition, fromIndex)
	if err != nil {
		return fmt.Errorf("delete segments %d.. of stream %s rendition %q: %w", fromIndex, streamID, rendition, err)
	}
	return nil
}

// ---- jobs and tasks ----

func validJobStatus(s JobStatus) bool { return s.Valid() }

const jobSelect = `SELECT id, kind, stream_id, status, spec, result, error, created_at, updated_at, version FROM jobs`

func jobDest(j *Job) []any {
	return []any{&j.ID, &j.Kind, &j.StreamID, &j.Status, jsonCol{&j.Spec}, jsonCol{&j.Result}, &j.Error,
		timeCol{&j.CreatedAt}, timeCol{&j.UpdatedAt}, &j.Version}
}

// CreateJob inserts j with Version 1 and CreatedAt = UpdatedAt = now (or
// the caller's CreatedAt when set). An empty Status becomes pending. A taken
// id fails with ErrExists; an empty id, unknown status, or Spec/Result that
// is not valid JSON fails with ErrInvalid. StreamID is not checked against
// the streams: jobs may concern media the store does not track.
func (st *sqlStore) CreateJob(ctx context.Context, j Job) (Job, error) {
	if j.ID == "" {
		return Job{}, fmt.Errorf("job without id: %w", ErrInvalid)
	}
	if j.Status == "" {
		j.Status = JobPending
	}
	if !validJobStatus(j.Status) {
		return Job{}, fmt.Errorf("job %s: unknown status %q: %w", j.ID, j.Status, ErrInvalid)
	}
	spec, err := jsonArg("spec", j.Spec)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, err)
	}
	result, err := jsonArg("result", j.Result)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, err)
	}
	j.CreatedAt = normTime(j.CreatedAt)
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now()
	}
	j.UpdatedAt, j.Version = j.CreatedAt, 1
	n, err := st.b.writer().exec(ctx, `INSERT INTO jobs (id, kind, stream_id, status, spec, result, error,
		created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO NOTHING`,
		j.ID, j.Kind, j.StreamID, string(j.Status), spec, result, j.Error,
		st.timeArg(j.CreatedAt), st.timeArg(j.UpdatedAt), j.Version)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, err)
	}
	if n == 0 {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, ErrExists)
	}
	return j, nil
}

// GetJob returns the job with the given id, or ErrNotFound.
func (st *sqlStore) GetJob(ctx context.Context, id string) (Job, error) {
	return st.loadJob(ctx, st.b.reader(), id)
}

func (st *sqlStore) loadJob(ctx context.Context, q querier, id string) (Job, error) {
	var j Job
	found, err := queryOne(ctx, q, jobSelect+` WHERE id = $1`, []any{id}, jobDest(&j)...)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	if !found {
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return j, nil
}

// ListJobs pages jobs newest first like ListStreams: status "" matches all,
// limit <= 0 means 50 (at most 1000), after is the previous page's cursor.
func (st *sqlStore) ListJobs(ctx context.Context, status JobStatus, limit int, after string) ([]Job, string, error) {
	return st.ListJobsWhere(ctx, JobFilter{Status: status}, limit, after)
}

// ListJobsWhere pages the jobs f selects newest first, like ListJobs.
func (st *sqlStore) ListJobsWhere(ctx context.Context, f JobFilter, limit int, after string) ([]Job, string, error) {
	limit = pageSize(limit)
	query, args, err := st.jobsQuery(f, limit, after)
	if err != nil {
		return nil, "", err
	}
	rows, err := st.b.reader().query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	jobs := []Job{}
	for rows.Next() {
		var j Job
		if err := rows.Scan(jobDest(&j)...); err != nil {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		last := jobs[limit-1]
		next = encodeCursor(pageCursor{createdAt: last.CreatedAt, id: last.ID})
	}
	return jobs, next, nil
}

// jobsQuery is ListJobsWhere's query for one page of limit jobs (one more
// is asked for, to know whether a next page exists). With a stream, it
// reads jobs_stream_created_idx (stream_id, created_at, id).
func (st *sqlStore) jobsQuery(f JobFilter, limit int, after string) (string, []any, error) {
	var where []string
	var args []any
	if f.Status != "" {
		if !validJobStatus(f.Status) {
			return "", nil, fmt.Errorf("list jobs: unknown status %q: %w", f.Status, ErrInvalid)
		}
		args = append(args, string(f.Status))
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	if f.StreamID != "" {
		args = append(args, f.StreamID)
		where = append(where, fmt.Sprintf("stream_id = $%d", len(args)))
	}
	if after != "" {
		c, err := decodeCursor(after)
		if err != nil {
			return "", nil, fmt.Errorf("list jobs: %w", err)
		}
		args = append(args, st.timeArg(c.createdAt), c.id)
		where = append(where, fmt.Sprintf("(created_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	query := jobSelect
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	query += " ORDER BY created_at DESC, id DESC LIMIT $" + strconv.Itoa(len(args))
	return query, args, nil
}

// UpdateJob writes Status, Spec, Result and Error when j.Version equals the
// stored version and returns the stored job with the version incremented;
// a stale version fails with ErrConflict. Kind, StreamID and CreatedAt are
// fixed at creation.
func (st *sqlStore) UpdateJob(ctx context.Context, j Job) (Job, error) {
	if j.ID == "" {
		return Job{}, fmt.Errorf("job without id: %w", ErrInvalid)
	}
	if !validJobStatus(j.Status) {
		return Job{}, fmt.Errorf("job %s: unknown status %q: %w", j.ID, j.Status, ErrInvalid)
	}
	spec, err := jsonArg("spec", j.Spec)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, err)
	}
	result, err := jsonArg("result", j.Result)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", j.ID, err)
	}
	var out Job
	err = st.b.inTx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `UPDATE jobs SET status = $1, spec = $2, result = $3, error = $4,
			updated_at = $5, version = version + 1 WHERE id = $6 AND version = $7`,
			string(j.Status), spec, result, j.Error, st.timeArg(now()), j.ID, j.Version)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.ID, err)
		}
		cur, err := st.loadJob(ctx, q, j.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("job %s: version %d is stale, stored version is %d: %w",
				j.ID, j.Version, cur.Version, ErrConflict)
		}
		out = cur
		return nil
	})
	if err != nil {
		return Job{}, err
	}
	return out, nil
}

// UpsertTask inserts t or replaces the task with the same id, keeping its
// CreatedAt; UpdatedAt becomes now. The job must exist (ErrNotFound
// otherwise), and a task id cannot move to another job (ErrConflict). An
// empty id or job id, an unknown status, or invalid Payload/Output JSON
// fails with ErrInvalid; an empty Status becomes pending.
func (st *sqlStore) UpsertTask(ctx context.Context, t Task) error {
	if t.ID == "" || t.JobID == "" {
		return fmt.Errorf("task %q of job %q: id and job id are required: %w", t.ID, t.JobID, ErrInvalid)
	}
	if t.Status == "" {
		t.Status = JobPending
	}
	if !validJobStatus(t.Status) {
		return fmt.Errorf("task %s: unknown status %q: %w", t.ID, t.Status, ErrInvalid)
	}
	payload, err := jsonArg("payload", t.Payload)
	if err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	output, err := jsonArg("output", t.Output)
	if err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	ts := now()
	created := normTime(t.CreatedAt)
	if created.IsZero() {
		created = ts
	}
	n, err := st.b.writer().exec(ctx, `INSERT INTO tasks (id, job_id, name, engine, status, payload,
		output, error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, engine = excluded.engine,
			status = excluded.status, payload = excluded.payload, output = excluded.output,
			error = excluded.error, updated_at = excluded.updated_at
		WHERE tasks.job_id = excluded.job_id`,
		t.ID, t.JobID, t.Name, t.Engine, string(t.Status), payload, output, t.Error,
		st.timeArg(created), st.timeArg(ts))
	if err != nil {
		if st.b.constraint(err) == constraintForeignKey {
			return fmt.Errorf("task %s: job %s: %w", t.ID, t.JobID, ErrNotFound)
		}
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("task %s: belongs to another job than %s: %w", t.ID, t.JobID, ErrConflict)
	}
	return nil
}

// ListTasks returns a job's tasks in creation order (ties by id). An unknown
// job yields an empty, non-nil slice.
func (st *sqlStore) ListTasks(ctx context.Context, jobID string) ([]Task, error) {
	rows, err := st.b.reader().query(ctx, `SELECT id, job_id, name, engine, status, payload, output, error,
		created_at, updated_at FROM tasks WHERE job_id = $1 ORDER BY created_at, id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("tasks of job %s: %w", jobID, err)
	}
	defer rows.Close()
	tasks := []Task{}
	for rows.Next() {
		var t Task
		if err := rows.Scan(&t.ID, &t.JobID, &t.Name, &t.Engine, &t.Status, jsonCol{&t.Payload},
			jsonCol{&t.Output}, &t.Error, timeCol{&t.CreatedAt}, timeCol{&t.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("tasks of job %s: %w", jobID, err)
		}
		tasks = append(tasks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tasks of job %s: %w", jobID, err)
	}
	return tasks, nil
}
