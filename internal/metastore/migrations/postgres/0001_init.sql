-- weir metadata schema, PostgreSQL dialect.

CREATE TABLE streams (
	id                    TEXT             NOT NULL PRIMARY KEY,
	kind                  TEXT             NOT NULL,
	title                 TEXT             NOT NULL DEFAULT '',
	status                TEXT             NOT NULL,
	error                 TEXT             NOT NULL DEFAULT '',
	progress              DOUBLE PRECISION NOT NULL DEFAULT 0,
	publish_key           TEXT             NOT NULL DEFAULT '',
	source_url            TEXT             NOT NULL DEFAULT '',
	source_key            TEXT             NOT NULL DEFAULT '',
	manifest_path         TEXT             NOT NULL DEFAULT '',
	variants_generated    JSONB            NOT NULL DEFAULT '[]',
	processing_latency_ms BIGINT           NOT NULL DEFAULT 0,
	gaps                  BIGINT           NOT NULL DEFAULT 0,
	checksum_failures     BIGINT           NOT NULL DEFAULT 0,
	stage_times           JSONB            NOT NULL DEFAULT '{}',
	details               JSONB,
	created_at            TIMESTAMPTZ      NOT NULL,
	updated_at            TIMESTAMPTZ      NOT NULL,
	version               BIGINT           NOT NULL
);

CREATE INDEX streams_created_idx ON streams (created_at, id);
CREATE INDEX streams_status_created_idx ON streams (status, created_at, id);
CREATE UNIQUE INDEX streams_publish_key_idx ON streams (publish_key) WHERE publish_key <> '';

CREATE TABLE segments (
	stream_id         TEXT        NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
	rendition         TEXT        NOT NULL,
	chunk_index       BIGINT      NOT NULL,
	media_sequence    BIGINT      NOT NULL,
	object_key        TEXT        NOT NULL,
	start_us          BIGINT      NOT NULL,
	duration_us       BIGINT      NOT NULL,
	size              BIGINT      NOT NULL,
	sha256            TEXT        NOT NULL,
	discontinuity     BOOLEAN     NOT NULL,
	program_date_time TIMESTAMPTZ,
	created_at        TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (stream_id, rendition, chunk_index)
);

CREATE TABLE jobs (
	id         TEXT        NOT NULL PRIMARY KEY,
	kind       TEXT        NOT NULL DEFAULT '',
	stream_id  TEXT        NOT NULL DEFAULT '',
	status     TEXT        NOT NULL,
	spec       JSONB,
	result     JSONB,
	error      TEXT        NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	version    BIGINT      NOT NULL
);

CREATE INDEX jobs_created_idx ON jobs (created_at, id);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at, id);

CREATE TABLE tasks (
	id         TEXT        NOT NULL PRIMARY KEY,
	job_id     TEXT        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	name       TEXT        NOT NULL DEFAULT '',
	engine     TEXT        NOT NULL DEFAULT '',
	status     TEXT        NOT NULL,
	payload    JSONB,
	output     JSONB,
	error      TEXT        NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX tasks_job_idx ON tasks (job_id, created_at, id);
