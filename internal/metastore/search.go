package metastore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/results"
)

// This file holds the search index of the engines' results: the texts of
// every stored result (results.TextsOf), kept by PutResult in
// result_texts in the same transaction as the result, and SearchTexts.
// SQLite indexes them with FTS5, PostgreSQL with a tsvector column and a
// GIN index; both answer the same results.Query.

// SearchQuery is what Store.SearchTexts looks for.
type SearchQuery struct {
	// Query is the parsed query (results.ParseQuery); it must have terms.
	Query results.Query
	// The filters; "" (and 0) match all. Kind is results.KindSpeech,
	// KindScreen or KindKeyword.
	StreamID, JobID, Engine, Kind string
	// FromMs and ToMs select the texts that overlap [FromMs, ToMs) on the
	// source's timeline, as in ResultQuery; ToMs 0 means no end.
	FromMs, ToMs int64
	// Limit caps the page size (default 20, max MaxSearchPage).
	Limit int
	// After is the cursor returned by the previous page ("" for the first).
	After string
}

// MaxSearchPage is the largest page of hits SearchTexts returns.
const MaxSearchPage = 100

// SearchHit is one text that matched a search.
type SearchHit struct {
	JobID string
	// StreamID is the job's stream (a VOD title or a live stream); "" for
	// jobs on a topic or a URL.
	StreamID string
	// Source is the kind of the job's source: vod, live, topic or url.
	Source string
	// Title is the stream's title, when the job has a stream.
	Title  string
	Engine string
	// Kind is results.KindSpeech, KindScreen or KindKeyword.
	Kind           string
	StartMs, EndMs int64
	// Text is the whole text; Snippet is results.Snippet of it, the
	// matched words marked.
	Text, Snippet string
	// Score is the backend's relevance, higher is better; it orders the
	// hits of one search and means nothing across searches or backends.
	Score        float64
	JobCreatedAt time.Time
}

// ---- indexing ----

// indexedText is a text as result_texts keeps it.
type indexedText struct {
	kind           string
	startMs, endMs int64
	text           string
}

// textsToIndex reads the texts of a result's content.
func textsToIndex(content json.RawMessage) []indexedText {
	var out []indexedText
	for _, t := range results.TextsOf(content) {
		if s := results.IndexText(t.Text); s != "" {
			out = append(out, indexedText{t.Kind, t.StartMs, t.EndMs, s})
		}
	}
	return out
}

// textRowsPerInsert bounds the rows of one INSERT (8 arguments each).
const textRowsPerInsert = 100

// replaceTexts makes texts the indexed texts of result r's key.
func replaceTexts(ctx context.Context, q querier, r Result, texts []indexedText) error {
	if _, err := q.exec(ctx, `DELETE FROM result_texts
		WHERE job_id = $1 AND engine = $2 AND chunk_uuid = $3 AND result_start_ms = $4`,
		r.JobID, r.Engine, r.ChunkUUID, r.StartMs); err != nil {
		return fmt.Errorf("remove indexed texts: %w", err)
	}
	for len(texts) > 0 {
		n := min(len(texts), textRowsPerInsert)
		var b strings.Builder
		b.WriteString(`INSERT INTO result_texts
			(job_id, engine, chunk_uuid, result_start_ms, kind, start_ms, end_ms, text) VALUES `)
		args := make([]any, 0, 8*n)
		for i, t := range texts[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			p := len(args)
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8)
			args = append(args, r.JobID, r.Engine, r.ChunkUUID, r.StartMs, t.kind, t.startMs, t.endMs, t.text)
		}
		if _, err := q.exec(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("index texts: %w", err)
		}
		texts = texts[n:]
	}
	return nil
}

// indexBatch is how many results indexAllResults reads at a time.
const indexBatch = 200

// indexAllResults indexes the texts of every stored result: migration 8
// runs it once, for the results stored before there was an index.
func indexAllResults(ctx context.Context, q querier) error {
	var last *Result
	for {
		batch, err := readResultBatch(ctx, q, last)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if err := replaceTexts(ctx, q, r, textsToIndex(r.Content)); err != nil {
				return fmt.Errorf("result of job %s engine %s chunk %s: %w", r.JobID, r.Engine, r.ChunkUUID, err)
			}
		}
		if len(batch) < indexBatch {
			return nil
		}
		last = &batch[len(batch)-1]
	}
}

// readResultBatch reads the indexBatch results after last in key order
// (the first ones when last is nil), closing the rows before it returns:
// PostgreSQL runs one statement at a time on a transaction.
func readResultBatch(ctx context.Context, q querier, last *Result) ([]Result, error) {
	query := `SELECT job_id, engine, chunk_uuid, start_ms, content FROM results`
	args := []any{}
	if last != nil {
		query += ` WHERE (job_id, engine, chunk_uuid, start_ms) > ($1, $2, $3, $4)`
		args = append(args, last.JobID, last.Engine, last.ChunkUUID, last.StartMs)
	}
	query += ` ORDER BY job_id, engine, chunk_uuid, start_ms LIMIT ` + strconv.Itoa(indexBatch)
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read results to index: %w", err)
	}
	defer rows.Close()
	var out []Result
	for rows.Next() {
		var r Result
		if err := rows.Scan(&r.JobID, &r.Engine, &r.ChunkUUID, &r.StartMs, jsonCol{&r.Content}); err != nil {
			return nil, fmt.Errorf("read results to index: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read results to index: %w", err)
	}
	return out, nil
}

// ---- searching ----

// searchCursor marks the last hit of a page: the hits are ordered by
// score (descending), the job's creation (newest first), job id, start
// and row id. Hash ties the cursor to the search that made it.
type searchCursor struct {
	Score   float64 `json:"s"`
	Created int64   `json:"c"` // microseconds since the epoch
	JobID   string  `json:"j"`
	StartMs int64   `json:"t"`
	ID      int64   `json:"i"`
	Hash    uint64  `json:"h"`
}

func (c searchCursor) encode() string {
	raw, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeSearchCursor(token string, hash uint64) (searchCursor, error) {
	var c searchCursor
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.JobID == "" {
		return searchCursor{}, fmt.Errorf("search cursor %.80q: not a cursor of this store: %w", token, ErrInvalid)
	}
	if c.Hash != hash {
		return searchCursor{}, fmt.Errorf("search cursor %.80q belongs to another search (another query or filters): %w", token, ErrInvalid)
	}
	return c, nil
}

// hash identifies a search: its query and filters, not its page.
func (sq SearchQuery) hash() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%d", sq.Query.String(), sq.StreamID, sq.JobID, sq.Engine, sq.Kind, sq.FromMs, sq.ToMs)
	return h.Sum64()
}

// searchArgs collects a statement's arguments, naming each $N.
type searchArgs struct{ list []any }

func (a *searchArgs) add(v any) string {
	a.list = append(a.list, v)
	return "$" + strconv.Itoa(len(a.list))
}

// searchDialect is how a backend matches a query.
type searchDialect interface {
	// searchSQL returns the statement that finds the hits: every row has
	// the columns hitDest scans, where is the filters' condition on t
	// (result_texts) and j (jobs), after the keyset condition on the
	// columns score, job_created, job_id, start_ms and id, and limit the
	// rows to return.
	searchSQL(q results.Query, a *searchArgs, where, after string, limit int) string
}

// hitColumns are the columns of a hit before its score and marked text.
const hitColumns = `t.id, t.job_id, j.stream_id, j.kind AS kind_of_source, COALESCE(s.title, '') AS title, t.engine, t.kind,
	t.start_ms, t.end_ms, t.text, j.created_at AS job_created`

// hitJoins join a hit's job and stream.
const hitJoins = ` JOIN jobs j ON j.id = t.job_id LEFT JOIN streams s ON s.id = j.stream_id`

// hitOrder orders hits: by relevance, then recency.
const hitOrder = ` ORDER BY score DESC, job_created DESC, job_id, start_ms, id`

// hitNames are the outer query's names of hitColumns, then score and marked.
const hitNames = `id, job_id, stream_id, kind_of_source, title, engine, kind, start_ms, end_ms, text, job_created, score, marked`

type hitRow struct {
	SearchHit
	id     int64
	marked string
}

func (h *hitRow) dest() []any {
	return []any{&h.id, &h.JobID, &h.StreamID, &h.Source, &h.Title, &h.Engine, &h.Kind, &h.StartMs, &h.EndMs,
		&h.Text, timeCol{&h.JobCreatedAt}, &h.Score, &h.marked}
}

// SearchTexts implements Store.SearchTexts: the indexed texts that match
// sq.Query, best first, filtered and paged as sq says; next is "" on the
// last page. A query without terms, an unknown kind, a bad time range or
// a cursor of another search fail with ErrInvalid.
func (st *sqlStore) SearchTexts(ctx context.Context, sq SearchQuery) ([]SearchHit, string, error) {
	what := fmt.Sprintf("search %.80q", sq.Query.String())
	switch {
	case len(sq.Query.Terms) == 0:
		return nil, "", fmt.Errorf("search: the query has no words: %w", ErrInvalid)
	case sq.Kind != "" && sq.Kind != results.KindSpeech && sq.Kind != results.KindScreen && sq.Kind != results.KindKeyword:
		return nil, "", fmt.Errorf("%s: kind %q: want speech, screen or keyword: %w", what, sq.Kind, ErrInvalid)
	case sq.FromMs < 0 || sq.ToMs < 0 || (sq.ToMs != 0 && sq.ToMs <= sq.FromMs):
		return nil, "", fmt.Errorf("%s: time range %d..%d ms: %w", what, sq.FromMs, sq.ToMs, ErrInvalid)
	}
	hash := sq.hash()
	a := &searchArgs{}
	var where []string
	for _, f := range []struct{ col, val string }{{"j.stream_id", sq.StreamID}, {"t.job_id", sq.JobID}, {"t.engine", sq.Engine}, {"t.kind", sq.Kind}} {
		if f.val != "" {
			where = append(where, f.col+" = "+a.add(f.val))
		}
	}
	if sq.FromMs > 0 {
		from := a.add(sq.FromMs)
		where = append(where, "(t.end_ms > "+from+" OR t.start_ms >= "+from+")")
	}
	if sq.ToMs > 0 {
		where = append(where, "t.start_ms < "+a.add(sq.ToMs))
	}
	after := "TRUE"
	if sq.After != "" {
		c, err := decodeSearchCursor(sq.After, hash)
		if err != nil {
			return nil, "", err
		}
		s, cr, j, t, i := a.add(c.Score), a.add(st.timeArg(time.UnixMicro(c.Created))), a.add(c.JobID), a.add(c.StartMs), a.add(c.ID)
		after = fmt.Sprintf(`(score < %[1]s OR (score = %[1]s AND (job_created < %[2]s OR (job_created = %[2]s AND
			(job_id > %[3]s OR (job_id = %[3]s AND (start_ms > %[4]s OR (start_ms = %[4]s AND id > %[5]s))))))))`, s, cr, j, t, i)
	}
	limit := sq.Limit
	switch {
	case limit <= 0:
		limit = 20
	case limit > MaxSearchPage:
		limit = MaxSearchPage
	}
	dialect, ok := st.b.(searchDialect)
	if !ok {
		return nil, "", fmt.Errorf("%s: this store cannot search", what)
	}
	query := dialect.searchSQL(sq.Query, a, strings.Join(append(where, "TRUE"), " AND "), after, limit+1)
	rows, err := st.b.reader().query(ctx, query, a.list...)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var found []hitRow
	for rows.Next() {
		var h hitRow
		if err := rows.Scan(h.dest()...); err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		found = append(found, h)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	next := ""
	if len(found) > limit {
		found = found[:limit]
		l := found[limit-1]
		next = searchCursor{l.Score, l.JobCreatedAt.UnixMicro(), l.JobID, l.StartMs, l.id, hash}.encode()
	}
	hits := make([]SearchHit, len(found))
	for i, h := range found {
		h.Snippet = results.Snippet(h.marked)
		hits[i] = h.SearchHit
	}
	return hits, next, nil
}

// ---- SQLite: FTS5 ----

// ftsMatch writes q as an FTS5 query: each word a string (so FTS5
// operators in it are only text), a phrase one string of its words, the
// prefix word followed by '*'; terms side by side, which FTS5 ANDs.
// Words hold only letters, digits and marks (results.ParseQuery), never
// a '"'.
func ftsMatch(q results.Query) string {
	var b strings.Builder
	for i, t := range q.Terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + strings.Join(t.Words, " ") + `"`)
		if t.Prefix {
			b.WriteByte('*')
		}
	}
	return b.String()
}

func (sqliteBackend) searchSQL(q results.Query, a *searchArgs, where, after string, limit int) string {
	match := a.add(ftsMatch(q))
	return `SELECT ` + hitNames + ` FROM (
		SELECT ` + hitColumns + `,
			-bm25(result_texts_fts) AS score,
			highlight(result_texts_fts, 0, char(2), char(3)) AS marked
		FROM result_texts_fts JOIN result_texts t ON t.id = result_texts_fts.rowid` + hitJoins + `
		WHERE result_texts_fts MATCH ` + match + ` AND ` + where + `
	) WHERE ` + after + hitOrder + ` LIMIT ` + strconv.Itoa(limit)
}

// ---- PostgreSQL: tsvector ----

// tsQuery writes q as a tsquery expression over arguments: a word is
// plainto_tsquery, a phrase phraseto_tsquery, the prefix word a quoted
// lexeme with :* (quote_literal, so nothing in it is tsquery syntax); the
// terms joined with &&. A word the 'english' configuration drops (a stop
// word) adds nothing.
func tsQuery(q results.Query, a *searchArgs) string {
	parts := make([]string, len(q.Terms))
	for i, t := range q.Terms {
		arg := a.add(strings.Join(t.Words, " "))
		switch {
		case t.Phrase:
			parts[i] = "phraseto_tsquery('english', " + arg + ")"
		case t.Prefix:
			parts[i] = "to_tsquery('english', quote_literal(" + arg + "::text) || ':*')"
		default:
			parts[i] = "plainto_tsquery('english', " + arg + ")"
		}
	}
	return strings.Join(parts, " && ")
}

// pgHeadline marks the matched words of a hit with results.MarkOpen and
// MarkClose, the whole text kept.
const pgHeadline = `ts_headline('english', text, q, 'StartSel=` + results.MarkOpen + `, StopSel=` + results.MarkClose + `, HighlightAll=true')`

func (postgresBackend) searchSQL(q results.Query, a *searchArgs, where, after string, limit int) string {
	tsq := tsQuery(q, a)
	return `SELECT ` + strings.ReplaceAll(hitNames, "marked", pgHeadline) + ` FROM (
		SELECT * FROM (
			SELECT ` + hitColumns + `,
				ts_rank(t.tsv, m.q, 1)::float8 AS score, m.q AS q
			FROM result_texts t CROSS JOIN (SELECT ` + tsq + ` AS q) m` + hitJoins + `
			WHERE t.tsv @@ m.q AND ` + where + `
		) hits WHERE ` + after + hitOrder + ` LIMIT ` + strconv.Itoa(limit) + `
	) page` + hitOrder
}
