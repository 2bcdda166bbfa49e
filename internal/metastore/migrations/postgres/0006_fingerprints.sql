-- The fingerprint library: reference clips (jingles, ads, music) the
-- fingerprint engine looks for, managed with POST /fingerprints. items is
-- the clip's raw Chromaprint fingerprint, 32-bit items little-endian, about
-- 8 a second; the clip itself is not kept.
CREATE TABLE fingerprints (
	id          TEXT        NOT NULL PRIMARY KEY,
	name        TEXT        NOT NULL,
	duration_ms BIGINT      NOT NULL,
	items       BYTEA       NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX fingerprints_created_idx ON fingerprints (created_at, id);
