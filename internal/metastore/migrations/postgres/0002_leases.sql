-- Leases: named, expiring claims that hold across processes (one publisher
-- per stream, one packager per stream, one worker per VOD job). A row is
-- never deleted, so a lease's token only ever grows and fences stale holders.
-- Times come from the database server's clock, never a process's.

CREATE TABLE leases (
	name        TEXT        NOT NULL PRIMARY KEY,
	holder      TEXT        NOT NULL,
	token       BIGINT      NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL,
	acquired_at TIMESTAMPTZ NOT NULL
);
