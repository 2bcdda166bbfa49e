-- result_texts: the texts of each stored result (results.TextsOf: what was
-- said, what was read on screen, the keywords spotted), one row per text,
-- kept in step with its result by PutResult and removed with it. kind is
-- speech, screen or keyword; start_ms and end_ms are the text's own times
-- on the source's timeline; text is results.IndexText of it.
CREATE TABLE result_texts (
	id              INTEGER PRIMARY KEY,
	job_id          TEXT    NOT NULL,
	engine          TEXT    NOT NULL,
	chunk_uuid      TEXT    NOT NULL,
	result_start_ms INTEGER NOT NULL,
	kind            TEXT    NOT NULL,
	start_ms        INTEGER NOT NULL,
	end_ms          INTEGER NOT NULL,
	text            TEXT    NOT NULL,
	FOREIGN KEY (job_id, engine, chunk_uuid, result_start_ms)
		REFERENCES results (job_id, engine, chunk_uuid, start_ms) ON DELETE CASCADE
) STRICT;

CREATE INDEX result_texts_result_idx ON result_texts (job_id, engine, chunk_uuid, result_start_ms);

-- result_texts_fts: the FTS5 index of result_texts.text (external content:
-- the text is stored once, in result_texts). Porter stemming over the
-- unicode61 tokenizer, diacritics folded: "Zürich" finds "zurich",
-- "dogs" finds "dog".
CREATE VIRTUAL TABLE result_texts_fts USING fts5(
	text,
	content = 'result_texts',
	content_rowid = 'id',
	tokenize = 'porter unicode61 remove_diacritics 2'
);

-- The triggers keep the index in step with the table, including rows a
-- cascade removes.
CREATE TRIGGER result_texts_ai AFTER INSERT ON result_texts BEGIN
	INSERT INTO result_texts_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER result_texts_ad AFTER DELETE ON result_texts BEGIN
	INSERT INTO result_texts_fts (result_texts_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TRIGGER result_texts_au AFTER UPDATE ON result_texts BEGIN
	INSERT INTO result_texts_fts (result_texts_fts, rowid, text) VALUES ('delete', old.id, old.text);
	INSERT INTO result_texts_fts (rowid, text) VALUES (new.id, new.text);
END;

-- The texts of results stored before this migration are added by the
-- migration runner right after this file (Go reads the documents).
