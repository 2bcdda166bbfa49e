-- result_windows: what a job's aggregator emitted, one row per window of
-- time (job, start): the merged results of every engine of the job for
-- [start_ms, end_ms). A window emitted again (a runner that took the job
-- over) changes nothing. status is complete or partial; missing is a JSON
-- array of the engines timed out for a partial window; results a JSON array
-- of the results (as the results table holds them); through_offset the
-- offset of the last record of the job's results topic the window saw,
-- which lets a runner taking the job over tell late results from included
-- ones; emitted_at is INTEGER microseconds since the epoch.
CREATE TABLE result_windows (
	job_id         TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	start_ms       INTEGER NOT NULL,
	end_ms         INTEGER NOT NULL,
	seq            INTEGER NOT NULL,
	status         TEXT    NOT NULL,
	missing        TEXT    NOT NULL DEFAULT '[]',
	results        TEXT    NOT NULL DEFAULT '[]',
	through_offset INTEGER NOT NULL DEFAULT -1,
	emitted_at     INTEGER NOT NULL,
	PRIMARY KEY (job_id, start_ms)
) STRICT, WITHOUT ROWID;

-- late_results: results that arrived after their engine's share of a
-- window was settled (the engine was timed out, or broke its bound), one
-- row per (job, window, engine, chunk, start, rev). content is the
-- vtn-standard document, TEXT holding JSON; arrived_at is INTEGER
-- microseconds since the epoch.
CREATE TABLE late_results (
	job_id          TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	window_start_ms INTEGER NOT NULL,
	engine          TEXT    NOT NULL,
	chunk_uuid      TEXT    NOT NULL,
	start_ms        INTEGER NOT NULL,
	rev             INTEGER NOT NULL DEFAULT 0,
	end_ms          INTEGER NOT NULL,
	task_id         TEXT    NOT NULL DEFAULT '',
	chunk_index     INTEGER NOT NULL DEFAULT 0,
	output_type     TEXT    NOT NULL DEFAULT '',
	content         TEXT    NOT NULL,
	arrived_at      INTEGER NOT NULL,
	PRIMARY KEY (job_id, window_start_ms, engine, chunk_uuid, start_ms, rev)
) STRICT, WITHOUT ROWID;
