-- result_texts: the texts of each stored result (results.TextsOf: what was
-- said, what was read on screen, the keywords spotted), one row per text,
-- kept in step with its result by PutResult and removed with it. kind is
-- speech, screen or keyword; start_ms and end_ms are the text's own times
-- on the source's timeline; text is results.IndexText of it. tsv is its
-- text-search vector with the 'english' configuration (Snowball stemming,
-- English stop words dropped), indexed by GIN. '<', '>' and '&' become
-- spaces first: PostgreSQL's parser would take "<word>" for an XML tag
-- and "&word;" for an entity and leave them out.
CREATE TABLE result_texts (
	id              BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job_id          TEXT     NOT NULL,
	engine          TEXT     COLLATE "C" NOT NULL,
	chunk_uuid      TEXT     COLLATE "C" NOT NULL,
	result_start_ms BIGINT   NOT NULL,
	kind            TEXT     NOT NULL,
	start_ms        BIGINT   NOT NULL,
	end_ms          BIGINT   NOT NULL,
	text            TEXT     NOT NULL,
	tsv             TSVECTOR GENERATED ALWAYS AS (to_tsvector('english'::regconfig, translate(text, '<>&', '   '))) STORED,
	FOREIGN KEY (job_id, engine, chunk_uuid, result_start_ms)
		REFERENCES results (job_id, engine, chunk_uuid, start_ms) ON DELETE CASCADE
);

CREATE INDEX result_texts_result_idx ON result_texts (job_id, engine, chunk_uuid, result_start_ms);
CREATE INDEX result_texts_tsv_idx ON result_texts USING GIN (tsv);

-- The texts of results stored before this migration are added by the
-- migration runner right after this file (Go reads the documents).
