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
-- vtn-standard document; times are milliseconds on the source's timeline.
-- The text keys sort bytewise (COLLATE "C"), as on SQLite, so both
-- backends page results in the same order.
CREATE TABLE results (
	job_id      TEXT        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	engine      TEXT        COLLATE "C" NOT NULL,
	chunk_uuid  TEXT        COLLATE "C" NOT NULL,
	start_ms    BIGINT      NOT NULL,
	end_ms      BIGINT      NOT NULL,
	task_id     TEXT        NOT NULL DEFAULT '',
	chunk_index BIGINT      NOT NULL DEFAULT 0,
	output_type TEXT        NOT NULL DEFAULT '',
	rev         BIGINT      NOT NULL DEFAULT 0,
	content     JSONB       NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (job_id, engine, chunk_uuid, start_ms)
);

CREATE INDEX results_time_idx ON results (job_id, start_ms, end_ms, engine, chunk_uuid);

-- job_chunks: where each chunk of a job stands with each engine (queued,
-- sent, done, ignored, dropped, failed); a job's progress is counted from
-- it.
CREATE TABLE job_chunks (
	job_id      TEXT        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	engine      TEXT        COLLATE "C" NOT NULL,
	chunk_uuid  TEXT        COLLATE "C" NOT NULL,
	chunk_index BIGINT      NOT NULL,
	start_ms    BIGINT      NOT NULL,
	end_ms      BIGINT      NOT NULL,
	kind        TEXT        NOT NULL DEFAULT '',
	state       TEXT        NOT NULL,
	attempts    INTEGER     NOT NULL DEFAULT 0,
	info        TEXT        NOT NULL DEFAULT '',
	updated_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (job_id, engine, chunk_uuid)
);

CREATE INDEX job_chunks_index_idx ON job_chunks (job_id, chunk_index, engine);
