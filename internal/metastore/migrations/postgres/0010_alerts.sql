-- alert_rules: the rules that raise alerts on what the engines find
-- (docs/alerts.md). spec is the rule as the API took it (condition, scope,
-- cool-down, webhooks); secret signs its webhook requests; a rule
-- evaluates results written from created_at on.
CREATE TABLE alert_rules (
	id         TEXT        NOT NULL PRIMARY KEY,
	name       TEXT        NOT NULL,
	spec       JSONB       NOT NULL,
	secret     TEXT        NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);

-- alerts: one row per alert, its id made from the rule, the scope it was
-- evaluated in and where its condition started, so evaluating the same
-- results again (a restart) finds it there. state is open, then resolved.
-- start_ms and end_ms are media times on the job's source timeline (NULL
-- for conditions on segments). rule_id has no foreign key: an alert
-- outlives its rule. The text keys sort bytewise (COLLATE "C"), as on
-- SQLite.
CREATE TABLE alerts (
	id          TEXT        COLLATE "C" NOT NULL PRIMARY KEY,
	rule_id     TEXT        NOT NULL,
	rule_name   TEXT        NOT NULL DEFAULT '',
	condition   TEXT        NOT NULL,
	scope       TEXT        NOT NULL,
	job_id      TEXT        NOT NULL DEFAULT '',
	stream_id   TEXT        NOT NULL DEFAULT '',
	state       TEXT        NOT NULL,
	start_ms    BIGINT,
	end_ms      BIGINT,
	started_at  TIMESTAMPTZ,
	ended_at    TIMESTAMPTZ,
	summary     TEXT        NOT NULL DEFAULT '',
	details     JSONB       NOT NULL DEFAULT '{}',
	raised_at   TIMESTAMPTZ NOT NULL,
	resolved_at TIMESTAMPTZ
);
CREATE INDEX alerts_by_raised ON alerts (raised_at, id);
CREATE INDEX alerts_by_rule ON alerts (rule_id, state);

-- alert_deliveries: the queue of alert events to deliver, one row per
-- event (raised, resolved) and target (the weir.alerts topic, each webhook
-- of the rule), written in the transaction that raised or resolved the
-- alert. id is "<alert id>:<event>:<target>" (kafka, webhook-<n>). payload is the message, sent
-- unchanged on every attempt (TEXT, not JSONB, so its bytes stay as
-- signed). state is pending, delivered or dead (given up at retry_until).
CREATE TABLE alert_deliveries (
	id              TEXT        COLLATE "C" NOT NULL PRIMARY KEY,
	alert_id        TEXT        COLLATE "C" NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	rule_id         TEXT        NOT NULL,
	event           TEXT        NOT NULL,
	target          TEXT        NOT NULL,
	url             TEXT        NOT NULL DEFAULT '',
	payload         TEXT        NOT NULL,
	state           TEXT        NOT NULL,
	attempts        INTEGER     NOT NULL DEFAULT 0,
	next_attempt_at TIMESTAMPTZ NOT NULL,
	retry_until     TIMESTAMPTZ NOT NULL,
	last_error      TEXT        NOT NULL DEFAULT '',
	last_status     INTEGER     NOT NULL DEFAULT 0,
	created_at      TIMESTAMPTZ NOT NULL,
	updated_at      TIMESTAMPTZ NOT NULL,
	delivered_at    TIMESTAMPTZ
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
CREATE INDEX alert_deliveries_by_created ON alert_deliveries (created_at, id);
