-- weir metadata schema, SQLite dialect.
-- Times are INTEGER microseconds since the Unix epoch, UTC.
-- JSON columns are TEXT holding a JSON document.

CREATE TABLE streams (
	id                    TEXT    NOT NULL PRIMARY KEY,
	kind                  TEXT    NOT NULL,
	title                 TEXT    NOT NULL DEFAULT '',
	status                TEXT    NOT NULL,
	error                 TEXT    NOT NULL DEFAULT '',
	progress              REAL    NOT NULL DEFAULT 0,
	publish_key           TEXT    NOT NULL DEFAULT '',
	source_url            TEXT    NOT NULL DEFAULT '',
	source_key            TEXT    NOT NULL DEFAULT '',
	manifest_path         TEXT    NOT NULL DEFAULT '',
	variants_generated    TEXT    NOT NULL DEFAULT '[]',
	processing_latency_ms INTEGER NOT NULL DEFAULT 0,
	gaps                  INTEGER NOT NULL DEFAULT 0,
	checksum_failures     INTEGER NOT NULL DEFAULT 0,
	stage_times           TEXT    NOT NULL DEFAULT '{}',
	details               TEXT,
	created_at            INTEGER NOT NULL,
	updated_at            INTEGER NOT NULL,
	version               INTEGER NOT NULL
) STRICT;

CREATE INDEX streams_created_idx ON streams (created_at, id);
CREATE INDEX streams_status_created_idx ON streams (status, created_at, id);
CREATE UNIQUE INDEX streams_publish_key_idx ON streams (publish_key) WHERE publish_key <> '';

CREATE TABLE segments (
	stream_id         TEXT    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
	rendition         TEXT    NOT NULL,
	chunk_index       INTEGER NOT NULL,
	media_sequence    INTEGER NOT NULL,
	object_key        TEXT    NOT NULL,
	start_us          INTEGER NOT NULL,
	duration_us       INTEGER NOT NULL,
	size              INTEGER NOT NULL,
	sha256            TEXT    NOT NULL,
	discontinuity     INTEGER NOT NULL,
	program_date_time INTEGER,
	created_at        INTEGER NOT NULL,
	PRIMARY KEY (stream_id, rendition, chunk_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE jobs (
	id         TEXT    NOT NULL PRIMARY KEY,
	kind       TEXT    NOT NULL DEFAULT '',
	stream_id  TEXT    NOT NULL DEFAULT '',
	status     TEXT    NOT NULL,
	spec       TEXT,
	result     TEXT,
	error      TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version    INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_created_idx ON jobs (created_at, id);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at, id);

CREATE TABLE tasks (
	id         TEXT    NOT NULL PRIMARY KEY,
	job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	name       TEXT    NOT NULL DEFAULT '',
	engine     TEXT    NOT NULL DEFAULT '',
	status     TEXT    NOT NULL,
	payload    TEXT,
	output     TEXT,
	error      TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX tasks_job_idx ON tasks (job_id, created_at, id);
