package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file holds what alert rules need (migration 0010): the rules
// (Store.CreateAlertRule and friends), the alerts they raised
// (RaiseAlert, ResolveAlert, ListAlerts) and the queue of deliveries of
// each alert event to the weir.alerts topic and the rule's webhooks
// (DueAlertDeliveries, UpdateAlertDelivery, RedeliverAlertDelivery). The
// queue is written in the transaction that raises or resolves an alert, so
// an alert is never stored without its deliveries, and it survives
// restarts.

// AlertStore is the part of Store that keeps alert rules, alerts and their
// deliveries.
type AlertStore interface {
	// CreateAlertRule stores a rule, setting CreatedAt; ErrExists if the
	// id is taken, ErrInvalid without an id, a name, a secret or a spec
	// that is a JSON object.
	CreateAlertRule(ctx context.Context, r AlertRule) (AlertRule, error)
	// GetAlertRule returns the rule with the id, or ErrNotFound.
	GetAlertRule(ctx context.Context, id string) (AlertRule, error)
	// ListAlertRules returns every rule, oldest first.
	ListAlertRules(ctx context.Context) ([]AlertRule, error)
	// DeleteAlertRule removes a rule, drops its pending deliveries and
	// resolves its open alerts (without delivering that); ErrNotFound when
	// there is none. Its alerts and finished deliveries stay.
	DeleteAlertRule(ctx context.Context, id string) error

	// RaiseAlert stores a (open) with its deliveries in one transaction,
	// once: it reports false, changing nothing, when an alert with its id
	// exists.
	RaiseAlert(ctx context.Context, a Alert, deliveries []AlertDelivery) (created bool, err error)
	// ResolveAlert moves the open alert r.ID to resolved with r's end and
	// queues deliveries, in one transaction; false, changing nothing,
	// when it is already resolved. ErrNotFound for an unknown alert.
	ResolveAlert(ctx context.Context, r AlertResolution, deliveries []AlertDelivery) (changed bool, err error)
	// GetAlert returns the alert with the id, or ErrNotFound.
	GetAlert(ctx context.Context, id string) (Alert, error)
	// ListAlerts pages alerts newest first; next is "" on the last page.
	ListAlerts(ctx context.Context, q AlertQuery) (alerts []Alert, next string, err error)

	// ListAlertDeliveries pages deliveries newest first; next is "" on the
	// last page.
	ListAlertDeliveries(ctx context.Context, q DeliveryQuery) (ds []AlertDelivery, next string, err error)
	// GetAlertDelivery returns the delivery with the id, or ErrNotFound.
	GetAlertDelivery(ctx context.Context, id string) (AlertDelivery, error)
	// DueAlertDeliveries returns up to limit pending deliveries whose next
	// attempt is at or before until, the most overdue first.
	DueAlertDeliveries(ctx context.Context, until time.Time, limit int) ([]AlertDelivery, error)
	// UpdateAlertDelivery records an attempt on a pending delivery: its
	// State, Attempts, NextAttemptAt, LastError, LastStatus and
	// DeliveredAt. It reports false, changing nothing, when the delivery
	// is no longer pending (its rule was deleted).
	UpdateAlertDelivery(ctx context.Context, d AlertDelivery) (bool, error)
	// RedeliverAlertDelivery makes a dead or delivered delivery pending
	// again, due now, with no attempts and retryUntil as its deadline.
	// ErrConflict when it is pending, ErrNotFound when unknown.
	RedeliverAlertDelivery(ctx context.Context, id string, retryUntil time.Time) (AlertDelivery, error)
	// CountAlertDeliveries counts the deliveries in a state by rule.
	CountAlertDeliveries(ctx context.Context, state DeliveryState) (map[string]int64, error)
}

// AlertRule is a stored alert rule. The store does not read Spec; the
// alerts package parses it.
type AlertRule struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Spec is the rule (condition, scope, cool-down, webhooks), a JSON
	// object.
	Spec json.RawMessage `json:"spec"`
	// Secret signs the rule's webhook requests.
	Secret    string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// AlertState is an alert's state.
type AlertState string

// Alert states.
const (
	AlertOpen     AlertState = "open"
	AlertResolved AlertState = "resolved"
)

// Alert is one alert a rule raised: a condition that held from StartMs
// (media time; StartedAt on the wall clock for conditions on segments) to
// EndMs, resolved once it stopped holding.
type Alert struct {
	ID        string     `json:"id"`
	RuleID    string     `json:"rule_id"`
	RuleName  string     `json:"rule_name"`
	Condition string     `json:"condition"`
	Scope     string     `json:"scope"`
	JobID     string     `json:"job_id,omitempty"`
	StreamID  string     `json:"stream_id,omitempty"`
	State     AlertState `json:"state"`
	// StartMs and EndMs are on the job's source timeline; nil for
	// conditions without media times.
	StartMs *int64 `json:"start_ms,omitempty"`
	EndMs   *int64 `json:"end_ms,omitempty"`
	// StartedAt and EndedAt are wall-clock times; zero when unknown.
	StartedAt  time.Time       `json:"started_at,omitzero"`
	EndedAt    time.Time       `json:"ended_at,omitzero"`
	Summary    string          `json:"summary"`
	Details    json.RawMessage `json:"details,omitempty"`
	RaisedAt   time.Time       `json:"raised_at"`
	ResolvedAt time.Time       `json:"resolved_at,omitzero"`
}

// AlertResolution ends an open alert.
type AlertResolution struct {
	ID         string
	EndMs      *int64
	EndedAt    time.Time
	ResolvedAt time.Time
}

// AlertQuery selects alerts for ListAlerts; zero fields match all.
type AlertQuery struct {
	RuleID string
	State  AlertState
	JobID  string
	// Limit caps the page size (default 50, max 1000).
	Limit int
	// After is the cursor returned by the previous page ("" for the first).
	After string
}

// DeliveryState is where a delivery stands.
type DeliveryState string

// Delivery states.
const (
	// DeliveryPending: not delivered yet; tried again at NextAttemptAt.
	DeliveryPending DeliveryState = "pending"
	// DeliveryDelivered: the target took it.
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryDead: every attempt until RetryUntil failed; it waits for
	// someone to redeliver it.
	DeliveryDead DeliveryState = "dead"
)

// Delivery targets.
const (
	// TargetKafka is the weir.alerts topic.
	TargetKafka = "kafka"
	// TargetWebhook is one of the rule's webhooks (URL).
	TargetWebhook = "webhook"
)

// AlertDelivery is the delivery of one event of an alert to one target.
type AlertDelivery struct {
	// ID is "<alert id>:<event>:<target>": ":kafka" for the topic,
	// ":webhook-<n>" for the rule's n-th webhook (from 0).
	ID      string `json:"id"`
	AlertID string `json:"alert_id"`
	RuleID  string `json:"rule_id"`
	// Event is "raised" or "resolved".
	Event string `json:"event"`
	// Target is TargetKafka or TargetWebhook.
	Target string `json:"target"`
	URL    string `json:"url,omitempty"`
	// Payload is the message sent, a JSON object, the same on every
	// attempt.
	Payload       json.RawMessage `json:"payload"`
	State         DeliveryState   `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	RetryUntil    time.Time       `json:"retry_until"`
	LastError     string          `json:"last_error,omitempty"`
	LastStatus    int             `json:"last_status,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	DeliveredAt   time.Time       `json:"delivered_at,omitzero"`
}

// DeliveryQuery selects deliveries for ListAlertDeliveries; zero fields
// match all.
type DeliveryQuery struct {
	State   DeliveryState
	RuleID  string
	AlertID string
	// Limit caps the page size (default 50, max 1000).
	Limit int
	// After is the cursor returned by the previous page ("" for the first).
	After string
}

// ---- rules ----

const alertRuleSelect = `SELECT id, name, spec, secret, created_at FROM alert_rules`

func alertRuleDest(r *AlertRule) []any {
	return []any{&r.ID, &r.Name, jsonCol{&r.Spec}, &r.Secret, timeCol{&r.CreatedAt}}
}

// CreateAlertRule implements AlertStore.CreateAlertRule.
func (st *sqlStore) CreateAlertRule(ctx context.Context, r AlertRule) (AlertRule, error) {
	if r.ID == "" || r.Name == "" || r.Secret == "" {
		return AlertRule{}, fmt.Errorf("alert rule %q: id, name and secret are required: %w", r.ID, ErrInvalid)
	}
	if b := strings.TrimSpace(string(r.Spec)); !json.Valid(r.Spec) || !strings.HasPrefix(b, "{") {
		return AlertRule{}, fmt.Errorf("alert rule %s: spec is not a JSON object: %w", r.ID, ErrInvalid)
	}
	r.CreatedAt = now()
	n, err := st.b.writer().exec(ctx, `INSERT INTO alert_rules (id, name, spec, secret, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		r.ID, r.Name, string(r.Spec), r.Secret, st.timeArg(r.CreatedAt))
	if err != nil {
		return AlertRule{}, fmt.Errorf("alert rule %s: %w", r.ID, err)
	}
	if n == 0 {
		return AlertRule{}, fmt.Errorf("alert rule %s: %w", r.ID, ErrExists)
	}
	return r, nil
}

// GetAlertRule implements AlertStore.GetAlertRule.
func (st *sqlStore) GetAlertRule(ctx context.Context, id string) (AlertRule, error) {
	var r AlertRule
	found, err := queryOne(ctx, st.b.reader(), alertRuleSelect+` WHERE id = $1`, []any{id}, alertRuleDest(&r)...)
	if err != nil {
		return AlertRule{}, fmt.Errorf("alert rule %s: %w", id, err)
	}
	if !found {
		return AlertRule{}, fmt.Errorf("alert rule %s: %w", id, ErrNotFound)
	}
	return r, nil
}

// ListAlertRules implements AlertStore.ListAlertRules.
func (st *sqlStore) ListAlertRules(ctx context.Context) ([]AlertRule, error) {
	rows, err := st.b.reader().query(ctx, alertRuleSelect+` ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list alert rules: %w", err)
	}
	defer rows.Close()
	out := []AlertRule{}
	for rows.Next() {
		var r AlertRule
		if err := rows.Scan(alertRuleDest(&r)...); err != nil {
			return nil, fmt.Errorf("list alert rules: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alert rules: %w", err)
	}
	return out, nil
}

// DeleteAlertRule implements AlertStore.DeleteAlertRule.
func (st *sqlStore) DeleteAlertRule(ctx context.Context, id string) error {
	at := st.timeArg(now())
	var gone bool
	err := st.b.inTx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `DELETE FROM alert_rules WHERE id = $1`, id)
		if err != nil || n == 0 {
			return err
		}
		gone = true
		if _, err := q.exec(ctx, `DELETE FROM alert_deliveries WHERE rule_id = $1 AND state = 'pending'`, id); err != nil {
			return err
		}
		_, err = q.exec(ctx, `UPDATE alerts SET state = 'resolved', resolved_at = $2 WHERE rule_id = $1 AND state = 'open'`, id, at)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete alert rule %s: %w", id, err)
	}
	if !gone {
		return fmt.Errorf("alert rule %s: %w", id, ErrNotFound)
	}
	return nil
}

// ---- alerts ----

const alertColumns = `id, rule_id, rule_name, condition, scope, job_id, stream_id, state, start_ms, end_ms,
	started_at, ended_at, summary, details, raised_at, resolved_at`

// nullInt scans a nullable integer into a *int64 (nil for NULL).
type nullInt struct{ dst **int64 }

func (c nullInt) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = nil
	case int64:
		*c.dst = &v
	case int32:
		n := int64(v)
		*c.dst = &n
	default:
		return fmt.Errorf("stored integer has unexpected type %T", src)
	}
	return nil
}

func intArg(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func alertDest(a *Alert) []any {
	return []any{&a.ID, &a.RuleID, &a.RuleName, &a.Condition, &a.Scope, &a.JobID, &a.StreamID, &a.State,
		nullInt{&a.StartMs}, nullInt{&a.EndMs}, timeCol{&a.StartedAt}, timeCol{&a.EndedAt}, &a.Summary,
		jsonCol{&a.Details}, timeCol{&a.RaisedAt}, timeCol{&a.ResolvedAt}}
}

func checkAlert(a Alert) error {
	switch {
	case a.ID == "" || a.RuleID == "" || a.Condition == "" || a.Scope == "":
		return fmt.Errorf("alert %q: id, rule id, condition and scope are required: %w", a.ID, ErrInvalid)
	case (a.StartMs == nil) != (a.EndMs == nil) || (a.StartMs != nil && *a.EndMs < *a.StartMs):
		return fmt.Errorf("alert %s: media times must come together, end not before start: %w", a.ID, ErrInvalid)
	case a.RaisedAt.IsZero():
		return fmt.Errorf("alert %s: no raised_at: %w", a.ID, ErrInvalid)
	}
	return nil
}

// RaiseAlert implements AlertStore.RaiseAlert.
func (st *sqlStore) RaiseAlert(ctx context.Context, a Alert, ds []AlertDelivery) (bool, error) {
	if err := checkAlert(a); err != nil {
		return false, err
	}
	details := a.Details
	if len(details) == 0 {
		details = json.RawMessage(`{}`)
	}
	detailsArg, err := jsonArg("details", details)
	if err != nil {
		return false, fmt.Errorf("alert %s: %w", a.ID, err)
	}
	if err := checkDeliveries(a.ID, ds); err != nil {
		return false, err
	}
	var created bool
	err = st.b.inTx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `INSERT INTO alerts (`+alertColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $11, $12, $13, $14, NULL)
			ON CONFLICT (id) DO NOTHING`,
			a.ID, a.RuleID, a.RuleName, a.Condition, a.Scope, a.JobID, a.StreamID, intArg(a.StartMs), intArg(a.EndMs),
			st.nullTimeArg(a.StartedAt), st.nullTimeArg(a.EndedAt), a.Summary, detailsArg, st.timeArg(a.RaisedAt))
		if err != nil || n == 0 {
			return err
		}
		created = true
		return st.insertDeliveries(ctx, q, ds)
	})
	if err != nil {
		return false, fmt.Errorf("raise alert %s: %w", a.ID, err)
	}
	return created, nil
}

// ResolveAlert implements AlertStore.ResolveAlert.
func (st *sqlStore) ResolveAlert(ctx context.Context, r AlertResolution, ds []AlertDelivery) (bool, error) {
	if r.ID == "" || r.ResolvedAt.IsZero() {
		return false, fmt.Errorf("resolve alert %q: id and resolved_at are required: %w", r.ID, ErrInvalid)
	}
	if err := checkDeliveries(r.ID, ds); err != nil {
		return false, err
	}
	var changed, found bool
	err := st.b.inTx(ctx, func(q querier) error {
		var state string
		var start *int64
		ok, err := queryOne(ctx, q, `SELECT state, start_ms FROM alerts WHERE id = $1`, []any{r.ID}, &state, nullInt{&start})
		if err != nil || !ok || state != string(AlertOpen) {
			found = ok
			return err
		}
		found = true
		end := r.EndMs
		if end != nil && start != nil && *end < *start {
			return fmt.Errorf("end %d before start %d: %w", *end, *start, ErrInvalid)
		}
		if end == nil {
			end = start
		}
		if _, err := q.exec(ctx, `UPDATE alerts SET state = 'resolved', end_ms = $2, ended_at = $3, resolved_at = $4
			WHERE id = $1 AND state = 'open'`, r.ID, intArg(end), st.nullTimeArg(r.EndedAt), st.timeArg(r.ResolvedAt)); err != nil {
			return err
		}
		changed = true
		return st.insertDeliveries(ctx, q, ds)
	})
	if err != nil {
		return false, fmt.Errorf("resolve alert %s: %w", r.ID, err)
	}
	if !found {
		return false, fmt.Errorf("alert %s: %w", r.ID, ErrNotFound)
	}
	return changed, nil
}

// GetAlert implements AlertStore.GetAlert.
func (st *sqlStore) GetAlert(ctx context.Context, id string) (Alert, error) {
	var a Alert
	found, err := queryOne(ctx, st.b.reader(), `SELECT `+alertColumns+` FROM alerts WHERE id = $1`, []any{id}, alertDest(&a)...)
	if err != nil {
		return Alert{}, fmt.Errorf("alert %s: %w", id, err)
	}
	if !found {
		return Alert{}, fmt.Errorf("alert %s: %w", id, ErrNotFound)
	}
	return a, nil
}

// ListAlerts implements AlertStore.ListAlerts: newest raised first.
func (st *sqlStore) ListAlerts(ctx context.Context, q AlertQuery) ([]Alert, string, error) {
	if q.State != "" && q.State != AlertOpen && q.State != AlertResolved {
		return nil, "", fmt.Errorf("list alerts: unknown state %q: %w", q.State, ErrInvalid)
	}
	w := newConds()
	w.eq("rule_id", q.RuleID)
	w.eq("state", string(q.State))
	w.eq("job_id", q.JobID)
	if err := w.before(st, "raised_at", q.After); err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", err)
	}
	limit := pageSize(q.Limit)
	rows, err := st.b.reader().query(ctx, `SELECT `+alertColumns+` FROM alerts`+w.sql()+
		` ORDER BY raised_at DESC, id DESC LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		var a Alert
		if err := rows.Scan(alertDest(&a)...); err != nil {
			return nil, "", fmt.Errorf("list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(pageCursor{createdAt: out[limit-1].RaisedAt, id: out[limit-1].ID})
	}
	return out, next, nil
}

// conds builds a WHERE clause of $N-numbered conditions.
type conds struct {
	conds []string
	args  []any
}

func newConds() *conds { return &conds{} }

func (w *conds) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// eq adds "col = v" unless v is empty.
func (w *conds) eq(col, v string) {
	if v != "" {
		w.conds = append(w.conds, col+" = "+w.arg(v))
	}
}

// before adds the keyset condition of a newest-first page after cursor.
func (w *conds) before(st *sqlStore, col, cursor string) error {
	if cursor == "" {
		return nil
	}
	c, err := decodeCursor(cursor)
	if err != nil {
		return err
	}
	w.conds = append(w.conds, "("+col+", id) < ("+w.arg(st.timeArg(c.createdAt))+", "+w.arg(c.id)+")")
	return nil
}

func (w *conds) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// ---- deliveries ----

const deliveryColumns = `id, alert_id, rule_id, event, target, url, payload, state, attempts, next_attempt_at,
	retry_until, last_error, last_status, created_at, updated_at, delivered_at`

func deliveryDest(d *AlertDelivery) []any {
	return []any{&d.ID, &d.AlertID, &d.RuleID, &d.Event, &d.Target, &d.URL, jsonCol{&d.Payload}, &d.State,
		&d.Attempts, timeCol{&d.NextAttemptAt}, timeCol{&d.RetryUntil}, &d.LastError, &d.LastStatus,
		timeCol{&d.CreatedAt}, timeCol{&d.UpdatedAt}, timeCol{&d.DeliveredAt}}
}

// checkDeliveries checks the deliveries of one alert's event.
func checkDeliveries(alertID string, ds []AlertDelivery) error {
	for _, d := range ds {
		switch {
		case d.ID == "" || d.AlertID != alertID || d.RuleID == "" || d.Event == "":
			return fmt.Errorf("delivery %q of alert %s: id, alert id (the alert's), rule id and event are required: %w", d.ID, alertID, ErrInvalid)
		case d.Target != TargetKafka && d.Target != TargetWebhook:
			return fmt.Errorf("delivery %s: unknown target %q: %w", d.ID, d.Target, ErrInvalid)
		case !json.Valid(d.Payload):
			return fmt.Errorf("delivery %s: payload is not JSON: %w", d.ID, ErrInvalid)
		}
	}
	return nil
}

// insertDeliveries queues ds, pending; one already queued stays as it is.
func (st *sqlStore) insertDeliveries(ctx context.Context, q querier, ds []AlertDelivery) error {
	for _, d := range ds {
		at := normTime(d.CreatedAt)
		if at.IsZero() {
			at = now()
		}
		next := normTime(d.NextAttemptAt)
		if next.IsZero() {
			next = at
		}
		until := normTime(d.RetryUntil)
		if until.IsZero() {
			until = at
		}
		if _, err := q.exec(ctx, `INSERT INTO alert_deliveries (`+deliveryColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, '', 0, $10, $10, NULL)
			ON CONFLICT (id) DO NOTHING`,
			d.ID, d.AlertID, d.RuleID, d.Event, d.Target, d.URL, string(d.Payload),
			st.timeArg(next), st.timeArg(until), st.timeArg(at)); err != nil {
			return fmt.Errorf("queue delivery %s: %w", d.ID, err)
		}
	}
	return nil
}

// ListAlertDeliveries implements AlertStore.ListAlertDeliveries.
func (st *sqlStore) ListAlertDeliveries(ctx context.Context, q DeliveryQuery) ([]AlertDelivery, string, error) {
	if q.State != "" && !validDeliveryState(q.State) {
		return nil, "", fmt.Errorf("list deliveries: unknown state %q: %w", q.State, ErrInvalid)
	}
	w := newConds()
	w.eq("state", string(q.State))
	w.eq("rule_id", q.RuleID)
	w.eq("alert_id", q.AlertID)
	if err := w.before(st, "created_at", q.After); err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	limit := pageSize(q.Limit)
	out, err := st.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries`+w.sql()+
		` ORDER BY created_at DESC, id DESC LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(pageCursor{createdAt: out[limit-1].CreatedAt, id: out[limit-1].ID})
	}
	return out, next, nil
}

func validDeliveryState(s DeliveryState) bool {
	return s == DeliveryPending || s == DeliveryDelivered || s == DeliveryDead
}

func (st *sqlStore) queryDeliveries(ctx context.Context, query string, args ...any) ([]AlertDelivery, error) {
	rows, err := st.b.reader().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AlertDelivery{}
	for rows.Next() {
		var d AlertDelivery
		if err := rows.Scan(deliveryDest(&d)...); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// GetAlertDelivery implements AlertStore.GetAlertDelivery.
func (st *sqlStore) GetAlertDelivery(ctx context.Context, id string) (AlertDelivery, error) {
	var d AlertDelivery
	found, err := queryOne(ctx, st.b.reader(), `SELECT `+deliveryColumns+` FROM alert_deliveries WHERE id = $1`, []any{id}, deliveryDest(&d)...)
	if err != nil {
		return AlertDelivery{}, fmt.Errorf("delivery %s: %w", id, err)
	}
	if !found {
		return AlertDelivery{}, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	return d, nil
}

// DueAlertDeliveries implements AlertStore.DueAlertDeliveries.
func (st *sqlStore) DueAlertDeliveries(ctx context.Context, until time.Time, limit int) ([]AlertDelivery, error) {
	out, err := st.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries
		WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2`,
		st.timeArg(until), pageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return out, nil
}

// UpdateAlertDelivery implements AlertStore.UpdateAlertDelivery.
func (st *sqlStore) UpdateAlertDelivery(ctx context.Context, d AlertDelivery) (bool, error) {
	if !validDeliveryState(d.State) || d.Attempts < 0 {
		return false, fmt.Errorf("delivery %s: state %q, attempts %d: %w", d.ID, d.State, d.Attempts, ErrInvalid)
	}
	n, err := st.b.writer().exec(ctx, `UPDATE alert_deliveries SET state = $2, attempts = $3, next_attempt_at = $4,
		last_error = $5, last_status = $6, delivered_at = $7, updated_at = $8
		WHERE id = $1 AND state = 'pending'`,
		d.ID, string(d.State), d.Attempts, st.timeArg(d.NextAttemptAt), d.LastError, d.LastStatus,
		st.nullTimeArg(d.DeliveredAt), st.timeArg(now()))
	if err != nil {
		return false, fmt.Errorf("update delivery %s: %w", d.ID, err)
	}
	return n == 1, nil
}

// RedeliverAlertDelivery implements AlertStore.RedeliverAlertDelivery.
func (st *sqlStore) RedeliverAlertDelivery(ctx context.Context, id string, retryUntil time.Time) (AlertDelivery, error) {
	at := now()
	n, err := st.b.writer().exec(ctx, `UPDATE alert_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2,
		retry_until = $3, last_error = '', last_status = 0, delivered_at = NULL, updated_at = $2
		WHERE id = $1 AND state <> 'pending'`, id, st.timeArg(at), st.timeArg(retryUntil))
	if err != nil {
		return AlertDelivery{}, fmt.Errorf("redeliver %s: %w", id, err)
	}
	d, err := st.GetAlertDelivery(ctx, id)
	if err != nil {
		return AlertDelivery{}, err
	}
	if n == 0 {
		return d, fmt.Errorf("delivery %s is already pending: %w", id, ErrConflict)
	}
	return d, nil
}

// CountAlertDeliveries implements AlertStore.CountAlertDeliveries.
func (st *sqlStore) CountAlertDeliveries(ctx context.Context, state DeliveryState) (map[string]int64, error) {
	rows, err := st.b.reader().query(ctx, `SELECT rule_id, COUNT(*) FROM alert_deliveries WHERE state = $1 GROUP BY rule_id`, string(state))
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var rule string
		var n int64
		if err := rows.Scan(&rule, &n); err != nil {
			return nil, fmt.Errorf("count deliveries: %w", err)
		}
		out[rule] = n
	}
	return out, rows.Err()
}
