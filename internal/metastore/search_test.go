package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/results"
	"github.com/weir-media/weir/internal/testenv"
)

// Result documents as the built-in engines write them (docs/engines.md).
func utteranceDoc(texts ...any) json.RawMessage {
	var series []string
	for i := 0; i+2 < len(texts); i += 3 {
		series = append(series, fmt.Sprintf(`{"startTimeMs": %d, "stopTimeMs": %d, "tags": [{"key": "utterance", "value": "u%d"}],
			"words": [{"word": %q, "confidence": 0.9, "bestPath": true}]}`, texts[i], texts[i+1], i, texts[i+2]))
	}
	return json.RawMessage(`{"series": [` + strings.Join(series, ",") + `]}`)
}

func screenDoc(start, stop int64, text string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"series": [{"startTimeMs": %d, "stopTimeMs": %d,
		"object": {"type": "text", "text": %q, "confidence": 0.9}}]}`, start, stop, text))
}

func keywordDoc(start, stop int64, text string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"series": [{"startTimeMs": %d, "stopTimeMs": %d,
		"object": {"type": "keyword", "label": %q, "text": %q}}]}`, start, stop, text, text))
}

// search parses q and runs it with the filters of sq, failing the test on
// an error.
func search(t *testing.T, s Store, q string, sq SearchQuery) []SearchHit {
	t.Helper()
	parsed, err := results.ParseQuery(q)
	if err != nil {
		t.Fatalf("parse %q: %v", q, err)
	}
	sq.Query = parsed
	hits, _, err := s.SearchTexts(context.Background(), sq)
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return hits
}

// where lists the hits as "job/engine/kind@start".
func where(hits []SearchHit) string {
	var out []string
	for _, h := range hits {
		out = append(out, fmt.Sprintf("%s/%s/%s@%d", h.JobID, h.Engine, h.Kind, h.StartMs))
	}
	return strings.Join(out, " ")
}

// searchFixture stores two titles' jobs: an older one on a VOD title with
// speech, on-screen text and a keyword, and a newer one on a live stream.
var searchBase = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func searchFixture(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, s, Stream{ID: "vod-talk", Kind: KindVOD, Title: "Morning talk"})
	mustCreate(t, s, Stream{ID: "live-news", Kind: KindLive, Title: "News desk"})
	for _, j := range []Job{
		{ID: "job-old", Kind: "vod", StreamID: "vod-talk", CreatedAt: searchBase},
		{ID: "job-new", Kind: "live", StreamID: "live-news", CreatedAt: searchBase.Add(time.Hour)},
		{ID: "job-url", Kind: "url", CreatedAt: searchBase.Add(2 * time.Hour)},
	} {
		if _, err := s.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	put := func(job, engine, chunk string, start, end int64, content json.RawMessage) {
		t.Helper()
		if err := s.PutResult(ctx, Result{JobID: job, Engine: engine, ChunkUUID: chunk, StartMs: start, EndMs: end, Content: content}); err != nil {
			t.Fatal(err)
		}
	}
	put("job-old", "stt", "c0", 0, 10000, utteranceDoc(
		1200, 3400, "i would like a cup of coffee",
		5000, 7000, "the dogs are running in the park"))
	put("job-old", "stt", "c1", 10000, 20000, utteranceDoc(
		12000, 13500, "coffee"))
	put("job-old", "ocr", "f3", 3000, 3000, screenDoc(3000, 8000, "Breaking news: Zürich > Bern & co"))
	put("job-old", "ocr", "f4", 4000, 4000, screenDoc(4000, 5000, "<Tags> look &like; markup"))
	put("job-old", "keywords", "c0", 0, 10000, keywordDoc(1900, 3400, "cup of coffee"))
	put("job-old", "loudness", "c0", 0, 10000, json.RawMessage(`{"series": [{"startTimeMs": 0, "stopTimeMs": 1000, "tags": [{"key": "momentary_lufs", "value": "-23"}]}]}`))
	put("job-new", "stt", "c0", 0, 10000, utteranceDoc(
		2000, 4000, "coffee in a cup with milk",
		8000, 9500, "the weather tomorrow"))
	put("job-url", "stt", "c0", 0, 10000, utteranceDoc(500, 1500, "the weather tomorrow"))
}

// runSearchContract checks the search index on one backend; it runs
// inside runContract, so for SQLite and PostgreSQL alike. Where the two
// differ (stemmers, stop words, scores) it asserts what both meet; see
// docs/results.md.
func runSearchContract(t *testing.T, h harness) {
	ctx := context.Background()

	t.Run("SearchFindsSpeechScreenAndKeywordsWithTheirPlace", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		searchFixture(t, s)

		hits := search(t, s, "zürich ", SearchQuery{})
		if len(hits) != 1 {
			t.Fatalf("zürich: %s", where(hits))
		}
		h0 := hits[0]
		if h0.JobID != "job-old" || h0.StreamID != "vod-talk" || h0.Source != "vod" || h0.Title != "Morning talk" ||
			h0.Engine != "ocr" || h0.Kind != results.KindScreen || h0.StartMs != 3000 || h0.EndMs != 8000 ||
			h0.Text != "Breaking news: Zürich > Bern & co" || !h0.JobCreatedAt.Equal(searchBase) || h0.Score <= 0 {
			t.Fatalf("zurich hit %+v", h0)
		}
		if h0.Snippet != "Breaking news: <mark>Zürich</mark> &gt; Bern &amp; co" {
			t.Fatalf("snippet %q", h0.Snippet)
		}

		// Every text with coffee, of every kind and job; the keyword too.
		hits = search(t, s, "coffee ", SearchQuery{})
		got := map[string]bool{}
		for _, h := range hits {
			got[fmt.Sprintf("%s/%s/%s@%d", h.JobID, h.Engine, h.Kind, h.StartMs)] = true
			if !strings.Contains(h.Snippet, "<mark>coffee</mark>") {
				t.Errorf("snippet of %s: %q", h.JobID, h.Snippet)
			}
		}
		for _, want := range []string{"job-old/stt/speech@1200", "job-old/stt/speech@12000", "job-old/keywords/keyword@1900", "job-new/stt/speech@2000"} {
			if !got[want] {
				t.Errorf("coffee: missing %s in %s", want, where(hits))
			}
		}
		if len(hits) != 4 {
			t.Errorf("coffee: %d hits, want 4: %s", len(hits), where(hits))
		}
		// A job without a stream has none.
		hits = search(t, s, "weather tomorrow", SearchQuery{JobID: "job-url"})
		if len(hits) != 1 || hits[0].StreamID != "" || hits[0].Source != "url" || hits[0].Title != "" {
			t.Fatalf("url job: %+v", hits)
		}
		// Results without texts (loudness) are not indexed: nothing is.
		if hits := search(t, s, "momentary lufs", SearchQuery{}); len(hits) != 0 {
			t.Fatalf("loudness indexed: %s", where(hits))
		}
	})

	t.Run("SearchMatchesAllWordsPhrasesPrefixesAndStems", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		searchFixture(t, s)
		cases := []struct {
			q    string
			want string
		}{
			// Every word must match, in any order.
			{"coffee cup ", "job-old/stt/speech@1200 job-old/keywords/keyword@1900 job-new/stt/speech@2000"},
			{"coffee milk ", "job-new/stt/speech@2000"},
			{"coffee zebra ", ""},
			// A phrase keeps its order.
			{`"cup of coffee"`, "job-old/stt/speech@1200 job-old/keywords/keyword@1900"},
			{`"coffee cup"`, ""},
			// The last word typed is a prefix too.
			{"coff", "coffee×4"},
			{"brea", "job-old/ocr/screen@3000"},
			{"brea ", ""},
			// Stemming: both backends' English stemmers make dog of dogs
			// and run of running and runs.
			{"dog ", "job-old/stt/speech@5000"},
			{"runs park", "job-old/stt/speech@5000"},
			// Letters beyond ASCII. (SQLite also folds diacritics, so
			// "zurich" finds it there; PostgreSQL's 'english' does not.)
			{"zürich ", "job-old/ocr/screen@3000"},
			// Text in angle brackets is text (PostgreSQL's parser would
			// take it for a tag).
			{"tags like ", "job-old/ocr/screen@4000"},
			// Case does not matter.
			{"BREAKING NEWS", "job-old/ocr/screen@3000"},
		}
		for _, c := range cases {
			hits := search(t, s, c.q, SearchQuery{})
			if c.want == "coffee×4" {
				if len(hits) != 4 {
					t.Errorf("%q: %s, want the four coffee texts", c.q, where(hits))
				}
				continue
			}
			got := strings.Fields(where(hits))
			want := strings.Fields(c.want)
			if !sameSet(got, want) {
				t.Errorf("%q: got %v, want %v", c.q, got, want)
			}
		}
	})

	t.Run("SearchRanksByRelevanceThenRecency", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		searchFixture(t, s)
		// The same text in two jobs scores the same: the newer job first.
		hits := search(t, s, "weather tomorrow", SearchQuery{})
		if len(hits) != 2 || hits[0].JobID != "job-url" || hits[1].JobID != "job-new" || hits[0].Score != hits[1].Score {
			t.Fatalf("weather: %s (scores %v)", where(hits), scores(hits))
		}
		// A text that is only the word ranks above a sentence holding it
		// (both backends weigh a match by the text's length), even in an
		// older job.
		hits = search(t, s, "coffee ", SearchQuery{})
		if len(hits) != 4 || hits[0].Text != "coffee" {
			t.Fatalf("coffee: %s (scores %v)", where(hits), scores(hits))
		}
		for i := 1; i < len(hits); i++ {
			if hits[i].Score > hits[i-1].Score {
				t.Fatalf("coffee: scores not descending: %v", scores(hits))
			}
		}
	})

	t.Run("SearchFilters", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		searchFixture(t, s)
		cases := []struct {
			name string
			sq   SearchQuery
			want string
		}{
			{"stream", SearchQuery{StreamID: "live-news"}, "job-new/stt/speech@2000"},
			{"job", SearchQuery{JobID: "job-old"}, "job-old/stt/speech@1200 job-old/stt/speech@12000 job-old/keywords/keyword@1900"},
			{"kind", SearchQuery{Kind: results.KindKeyword}, "job-old/keywords/keyword@1900"},
			{"engine", SearchQuery{Engine: "keywords"}, "job-old/keywords/keyword@1900"},
			{"from", SearchQuery{FromMs: 3400}, "job-old/stt/speech@12000 job-new/stt/speech@2000"},
			{"to", SearchQuery{ToMs: 1900}, "job-old/stt/speech@1200"},
			{"from and to", SearchQuery{FromMs: 1000, ToMs: 2000}, "job-old/stt/speech@1200 job-old/keywords/keyword@1900"},
			{"unknown stream", SearchQuery{StreamID: "vod-none"}, ""},
		}
		for _, c := range cases {
			got := strings.Fields(where(search(t, s, "coffee ", c.sq)))
			if !sameSet(got, strings.Fields(c.want)) {
				t.Errorf("%s: got %v, want %s", c.name, got, c.want)
			}
		}
		q, _ := results.ParseQuery("coffee")
		for _, bad := range []SearchQuery{
			{Query: q, Kind: "video"},
			{Query: q, FromMs: -1},
			{Query: q, FromMs: 5, ToMs: 5},
			{Query: q, After: "bm90IGEgY3Vyc29y"},
			{},
		} {
			if _, _, err := s.SearchTexts(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("%+v: %v, want ErrInvalid", bad, err)
			}
		}
	})

	t.Run("SearchPagesWithACursorBoundToItsSearch", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		if _, err := s.CreateJob(ctx, Job{ID: "job-many"}); err != nil {
			t.Fatal(err)
		}
		// 45 hits, in pairs of equal text (and so equal score).
		for i := range 45 {
			text := fmt.Sprintf("marker word %s", strings.Repeat("filler ", i/2))
			if err := s.PutResult(ctx, Result{JobID: "job-many", Engine: "stt", ChunkUUID: fmt.Sprintf("c%02d", i),
				StartMs: int64(i) * 1000, EndMs: int64(i)*1000 + 900, Content: utteranceDoc(int64(i)*1000, int64(i)*1000+900, text)}); err != nil {
				t.Fatal(err)
			}
		}
		q, _ := results.ParseQuery("marker")
		all, next, err := s.SearchTexts(ctx, SearchQuery{Query: q, Limit: 100})
		if err != nil || next != "" || len(all) != 45 {
			t.Fatalf("one page: %d hits, next %q, %v", len(all), next, err)
		}
		var paged []SearchHit
		after := ""
		for range 10 {
			page, next, err := s.SearchTexts(ctx, SearchQuery{Query: q, Limit: 10, After: after})
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
			if next == "" {
				break
			}
			if _, _, err := s.SearchTexts(ctx, SearchQuery{Query: q, Kind: results.KindSpeech, Limit: 10, After: next}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("a cursor used with other filters: %v, want ErrInvalid", err)
			}
			after = next
		}
		if where(paged) != where(all) {
			t.Fatalf("paged:\n%s\nwant:\n%s", where(paged), where(all))
		}
		// Without a limit a page has 20; the largest has MaxSearchPage.
		if page, _, _ := s.SearchTexts(ctx, SearchQuery{Query: q}); len(page) != 20 {
			t.Fatalf("default page: %d hits", len(page))
		}
	})

	t.Run("SearchFollowsRewritesAndDeletions", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		if _, err := s.CreateJob(ctx, Job{ID: "job-rw"}); err != nil {
			t.Fatal(err)
		}
		r := Result{JobID: "job-rw", Engine: "stt", ChunkUUID: "c0", StartMs: 0, EndMs: 5000, Rev: 1,
			Content: utteranceDoc(0, 1000, "alpha first", 2000, 3000, "alpha second")}
		for range 2 { // written twice: indexed once
			if err := s.PutResult(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if hits := search(t, s, "alpha ", SearchQuery{}); len(hits) != 2 {
			t.Fatalf("alpha: %s", where(hits))
		}
		r.Rev, r.Content = 2, utteranceDoc(0, 1000, "bravo")
		if err := s.PutResult(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.Rev, r.Content = 1, utteranceDoc(0, 1000, "charlie stale")
		if err := s.PutResult(ctx, r); err != nil {
			t.Fatal(err)
		}
		for q, n := range map[string]int{"alpha ": 0, "bravo ": 1, "charlie ": 0} {
			if hits := search(t, s, q, SearchQuery{}); len(hits) != n {
				t.Errorf("after rev 2 and a stale rev 1, %q: %s, want %d", q, where(hits), n)
			}
		}
		// A rewrite with no text leaves none.
		r.Rev, r.Content = 3, json.RawMessage(`{"series": []}`)
		if err := s.PutResult(ctx, r); err != nil {
			t.Fatal(err)
		}
		if hits := search(t, s, "bravo ", SearchQuery{}); len(hits) != 0 {
			t.Fatalf("after a rewrite without texts: %s", where(hits))
		}
		// A job removed takes its results' texts with it.
		r.Rev, r.Content = 4, utteranceDoc(0, 1000, "delta")
		if err := s.PutResult(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := backendOf(t, s).b.writer().exec(ctx, `DELETE FROM jobs WHERE id = 'job-rw'`); err != nil {
			t.Fatal(err)
		}
		if hits := search(t, s, "delta ", SearchQuery{}); len(hits) != 0 {
			t.Fatalf("after the job was deleted: %s", where(hits))
		}
		var n int
		if _, err := queryOne(ctx, backendOf(t, s).b.reader(), `SELECT COUNT(*) FROM result_texts`, nil, &n); err != nil || n != 0 {
			t.Fatalf("result_texts rows left: %d, %v", n, err)
		}
	})

	t.Run("SearchTakesHostileQueries", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		searchFixture(t, s)
		for _, q := range []string{
			`coffee AND NOT milk`, `coffee OR milk`, `NEAR(coffee cup)`, `coffee*`, `"coffee`, `coffee"`, `"""`, `-coffee`,
			`^coffee`, `text:coffee`, `{text}: coffee`, `coffee & milk | !cup`, `coffee <-> cup`, `coffee:*`, `'coffee'`,
			`\'; DROP TABLE results; --`, `the`, `the of and`, "\u0301", "ab\u0301", "x\u200by", `a`, `😀 coffee`,
			strings.Repeat("coffee ", results.MaxQueryWords), strings.Repeat("é", 400),
		} {
			parsed, err := results.ParseQuery(q)
			if err != nil {
				continue // refused before any store sees it
			}
			if _, _, err := s.SearchTexts(ctx, SearchQuery{Query: parsed}); err != nil {
				t.Errorf("%.40q: %v", q, err)
			}
		}
		// Operators are words, never operators: "coffee OR milk" is no
		// union of the coffee and milk texts. (SQLite needs the word "or"
		// too and finds nothing; PostgreSQL drops it as a stop word and
		// finds the one text with both coffee and milk.)
		if hits := search(t, s, "coffee OR milk", SearchQuery{}); len(hits) > 1 {
			t.Fatalf("OR acted as an operator: %s", where(hits))
		}
	})
}

func scores(hits []SearchHit) []float64 {
	out := make([]float64, len(hits))
	for i, h := range hits {
		out[i] = h.Score
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// Migration 8 indexes the results stored before it: a database whose
// index is dropped (as the previous schema left it) finds them again.
func TestMigrationIndexesEarlierResults(t *testing.T) {
	for name, h := range map[string]harness{"sqlite": sqliteHarness(), "postgres": {fresh: func(t *testing.T) string { return testenv.Postgres(t) }}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			loc := h.fresh(t)
			s := h.open(t, loc)
			if _, err := s.CreateJob(ctx, Job{ID: "job-1"}); err != nil {
				t.Fatal(err)
			}
			// More results than one batch of the migration's reader.
			for i := range indexBatch + 5 {
				if err := s.PutResult(ctx, Result{JobID: "job-1", Engine: "stt", ChunkUUID: fmt.Sprintf("c%04d", i),
					StartMs: int64(i) * 1000, EndMs: int64(i)*1000 + 500, Content: utteranceDoc(int64(i)*1000, int64(i)*1000+500, "earlier words")}); err != nil {
					t.Fatal(err)
				}
			}
			st := rawSQL(t, s)
			drop := []string{`DROP TABLE result_texts`}
			if name == "sqlite" {
				drop = []string{`DROP TABLE result_texts_fts`, `DROP TABLE result_texts`}
			}
			for _, stmt := range append(drop, `DELETE FROM schema_migrations WHERE version = 8`) {
				if _, err := st.b.writer().exec(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			s.Close()

			s = h.open(t, loc)
			q, _ := results.ParseQuery("earlier words")
			hits, _, err := s.SearchTexts(ctx, SearchQuery{Query: q, Limit: MaxSearchPage})
			if err != nil || len(hits) != MaxSearchPage {
				t.Fatalf("after the migration: %d hits, %v", len(hits), err)
			}
			var n int
			if _, err := queryOne(ctx, rawSQL(t, s).b.reader(), `SELECT COUNT(*) FROM result_texts`, nil, &n); err != nil || n != indexBatch+5 {
				t.Fatalf("indexed %d texts, %v; want %d", n, err, indexBatch+5)
			}
		})
	}
}
