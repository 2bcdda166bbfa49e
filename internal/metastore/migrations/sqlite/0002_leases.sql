-- Leases: named, expiring claims that hold across processes (one publisher
-- per stream, one packager per stream, one worker per VOD job). A row is
-- never deleted, so a lease's token only ever grows and fences stale holders.
-- expires_at is INTEGER microseconds since the Unix epoch, read off the
-- database's own clock.

CREATE TABLE leases (
	name        TEXT    NOT NULL PRIMARY KEY,
	holder      TEXT    NOT NULL,
	token       INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	acquired_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
