-- Jobs run engines over chunks of a source (POST /jobs). Job and task
-- statuses take the names of the REST API: queued becomes pending and
-- succeeded becomes complete (no release wrote them, but a database made by
-- a development build may hold them).
UPDATE jobs SET status = 'pending' WHERE status = 'queued';
UPDATE jobs SET status = 'complete' WHERE status = 'succeeded';
UPDATE tasks SET status = 'pending' WHERE status = 'queued';
UPDATE tasks SET status = 'complete' WHERE status = 'succeeded';

-- results: what engines made of a job's chunks (engine_output), one row per
-- (job, engine, chunk, start): writing the same output again replaces the
-- row, so a job re-run after a crash adds no duplicates. content is the
-- vtn-standard document, TEXT holding JSON; times are milliseconds on the
-- source's timeline; created_at is INTEGER microseconds since the epoch.
CREATE TABLE results (
	job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	engine      TEXT    NOT NULL,
	chunk_uuid  TEXT    NOT NULL,
	start_ms    INTEGER NOT NULL,
	end_ms      INTEGER NOT NULL,
	task_id     TEXT    NOT NULL DEFAULT '',
	chunk_index INTEGER NOT NULL DEFAULT 0,
	output_type TEXT    NOT NULL DEFAULT '',
	rev         INTEGER NOT NULL DEFAULT 0,
	content     TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (job_id, engine, chunk_uuid, start_ms)
) STRICT, WITHOUT ROWID;

CREATE INDEX results_time_idx ON results (job_id, start_ms, end_ms, engine, chunk_uuid);

-- job_chunks: where each chunk of a job stands with each engine (queued,
-- sent, done, ignored, dropped, failed); a job's progress is counted from
-- it. updated_at is INTEGER microseconds since the epoch.
CREATE TABLE job_chunks (
	job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	engine      TEXT    NOT NULL,
	chunk_uuid  TEXT    NOT NULL,
	chunk_index INTEGER NOT NULL,
	start_ms    INTEGER NOT NULL,
	end_ms      INTEGER NOT NULL,
	kind        TEXT    NOT NULL DEFAULT '',
	state       TEXT    NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	info        TEXT    NOT NULL DEFAULT '',
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (job_id, engine, chunk_uuid)
) STRICT, WITHOUT ROWID;

CREATE INDEX job_chunks_index_idx ON job_chunks (job_id, chunk_index, engine);
