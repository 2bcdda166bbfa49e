-- alert_rules: the rules that raise alerts on what the engines find
-- (docs/alerts.md). spec is the rule as the API took it (condition, scope,
-- cool-down, webhooks), TEXT holding a JSON object; secret signs its
-- webhook requests; created_at is INTEGER microseconds since the epoch (a
-- rule evaluates results written from then on).
CREATE TABLE alert_rules (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	spec       TEXT    NOT NULL,
	secret     TEXT    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

-- alerts: one row per alert, its id made from the rule, the scope it was
-- evaluated in and where its condition started, so evaluating the same
-- results again (a restart) finds it there. state is open, then resolved.
-- start_ms and end_ms are media times on the job's source timeline (NULL
-- for conditions on segments); started_at, ended_at, raised_at and
-- resolved_at are INTEGER microseconds since the epoch or NULL. rule_id
-- has no foreign key: an alert outlives its rule.
CREATE TABLE alerts (
	id          TEXT    NOT NULL PRIMARY KEY,
	rule_id     TEXT    NOT NULL,
	rule_name   TEXT    NOT NULL DEFAULT '',
	condition   TEXT    NOT NULL,
	scope       TEXT    NOT NULL,
	job_id      TEXT    NOT NULL DEFAULT '',
	stream_id   TEXT    NOT NULL DEFAULT '',
	state       TEXT    NOT NULL,
	start_ms    INTEGER,
	end_ms      INTEGER,
	started_at  INTEGER,
	ended_at    INTEGER,
	summary     TEXT    NOT NULL DEFAULT '',
	details     TEXT    NOT NULL DEFAULT '{}',
	raised_at   INTEGER NOT NULL,
	resolved_at INTEGER
) STRICT;
CREATE INDEX alerts_by_raised ON alerts (raised_at, id);
CREATE INDEX alerts_by_rule ON alerts (rule_id, state);

-- alert_deliveries: the queue of alert events to deliver, one row per
-- event (raised, resolved) and target (the weir.alerts topic, each webhook
-- of the rule), written in the transaction that raised or resolved the
-- alert. id is "<alert id>:<event>:<target>" (kafka, webhook-<n>). payload is the message
-- (TEXT holding JSON), sent unchanged on every attempt. state is pending,
-- delivered or dead (given up at retry_until). Times are INTEGER
-- microseconds since the epoch.
CREATE TABLE alert_deliveries (
	id              TEXT    NOT NULL PRIMARY KEY,
	alert_id        TEXT    NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	rule_id         TEXT    NOT NULL,
	event           TEXT    NOT NULL,
	target          TEXT    NOT NULL,
	url             TEXT    NOT NULL DEFAULT '',
	payload         TEXT    NOT NULL,
	state           TEXT    NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	retry_until     INTEGER NOT NULL,
	last_error      TEXT    NOT NULL DEFAULT '',
	last_status     INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	delivered_at    INTEGER
) STRICT;
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
CREATE INDEX alert_deliveries_by_created ON alert_deliveries (created_at, id);
