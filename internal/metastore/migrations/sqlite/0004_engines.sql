-- External engines: engines running outside weir, registered with a
-- manifest (POST /engines, or --engines-dir at start). The manifest is the
-- engine's spec plus how to reach it, as JSON; weir's engine package reads
-- and checks it, the store only keeps it. Built-in engines are not stored:
-- they register in code.

CREATE TABLE engines (
	name       TEXT    NOT NULL PRIMARY KEY,
	manifest   TEXT    NOT NULL,
	source     TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
