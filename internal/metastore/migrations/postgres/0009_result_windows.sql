-- result_windows: what a job's aggregator emitted, one row per window of
-- time (job, start): the merged results of every engine of the job for
-- [start_ms, end_ms). A window emitted again (a runner that took the job
-- over) changes nothing. status is complete or partial; missing is a JSON
-- array of the engines timed out for a partial window; results a JSON array
-- of the results (as the results table holds them); through_offset the
-- offset of the last record of the job's results topic the window saw,
-- which lets a runner taking the job over tell late results from included
-- ones.
CREATE TABLE result_windows (
	job_id         TEXT        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	start_ms       BIGINT      NOT NULL,
	end_ms         BIGINT      NOT NULL,
	seq            BIGINT      NOT NULL,
	status         TEXT        NOT NULL,
	missing        JSONB       NOT NULL DEFAULT '[]',
	results        JSONB       NOT NULL DEFAULT '[]',
	through_offset BIGINT      NOT NULL DEFAULT -1,
	emitted_at     TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (job_id, start_ms)
);

-- late_results: results that arrived after their engine's share of a
-- window was settled (the engine was timed out, or broke its bound), one
-- row per (job, window, engine, chunk, start, rev). The text keys sort
-- bytewise (COLLATE "C"), as on SQLite.
CREATE TABLE late_results (
	job_id          TEXT        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	window_start_ms BIGINT      NOT NULL,
	engine          TEXT        COLLATE "C" NOT NULL,
	chunk_uuid      TEXT        COLLATE "C" NOT NULL,
	start_ms        BIGINT      NOT NULL,
	rev             BIGINT      NOT NULL DEFAULT 0,
	end_ms          BIGINT      NOT NULL,
	task_id         TEXT        NOT NULL DEFAULT '',
	chunk_index     BIGINT      NOT NULL DEFAULT 0,
	output_type     TEXT        NOT NULL DEFAULT '',
	content         JSONB       NOT NULL,
	arrived_at      TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (job_id, window_start_ms, engine, chunk_uuid, start_ms, rev)
);
