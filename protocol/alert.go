package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Alert events: an alert is raised once, when its condition becomes true,
// and resolved once, when the condition has been false for the rule's
// cool-down (or its job or stream ended). Both carry the same AlertID.
const (
	AlertRaised   = "raised"
	AlertResolved = "resolved"
)

// Alert is one event of an alert raised by a rule (docs/alerts.md): on
// TopicAlerts keyed by RuleID, and the body of every webhook request. It
// follows the control messages' conventions (snake_case members, no
// "type", unknown members kept in Extra).
//
// AlertID is the same for both events of an alert, for every retry and
// across restarts: it is made from the rule, the scope the rule was
// evaluated in and where the condition started. EventID ("<alert_id>:
// <event>") is what a receiver dedupes deliveries by.
type Alert struct {
	EventID   string `json:"event_id"`
	AlertID   string `json:"alert_id"`
	Event     string `json:"event"` // AlertRaised or AlertResolved
	RuleID    string `json:"rule_id"`
	RuleName  string `json:"rule_name,omitempty"`
	Condition string `json:"condition"`
	// Scope is where the rule was evaluated: "job:<id>" for conditions
	// on a job's results, "stream:<id>" for a live stream's segments.
	Scope    string `json:"scope"`
	JobID    string `json:"job_id,omitempty"`
	StreamID string `json:"stream_id,omitempty"`
	// StartMs is where the condition started on the source's timeline;
	// EndMs where it ended (resolved) or the latest time it was seen true
	// (raised). Conditions on segments have no media times.
	StartMs *int64 `json:"start_ms,omitempty"`
	EndMs   *int64 `json:"end_ms,omitempty"`
	// StartedAt and EndedAt are the same on the wall clock, for
	// conditions on segments.
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Summary says what happened in one line.
	Summary string `json:"summary"`
	// Details depend on the condition (docs/alerts.md): the text
	// matched, the reference, the count, the level measured.
	Details    json.RawMessage `json:"details,omitempty"`
	RaisedAt   time.Time       `json:"raised_at"`
	ResolvedAt time.Time       `json:"resolved_at,omitzero"`

	Extra map[string]json.RawMessage `json:"-"`
}

const alertContext = "alert"

// MaxAlertSummary is the longest summary, in characters.
const MaxAlertSummary = 500

// AlertEventID is the id of one event of an alert: "<alertID>:<event>".
func AlertEventID(alertID, event string) string { return alertID + ":" + event }

// Topic implements ControlMessage.
func (m *Alert) Topic() string { return TopicAlerts }

// Key implements ControlMessage: the rule id.
func (m *Alert) Key() string { return m.RuleID }

// Validate checks the ids (event_id matching alert_id and event), the
// event, the condition, the scope, the times and the details.
func (m *Alert) Validate() error {
	fe := func(field, format string, args ...any) error {
		return &FieldError{Context: alertContext, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct{ name, v string }{{"alert_id", m.AlertID}, {"rule_id", m.RuleID}, {"condition", m.Condition}} {
		if err := ValidateStreamID(f.v); err != nil {
			return fe(f.name, "%s", strings.Replace(err.Error(), "stream ids", "ids", 1))
		}
	}
	switch m.Event {
	case AlertRaised, AlertResolved:
	case "":
		return fe("event", "is required: %q or %q", AlertRaised, AlertResolved)
	default:
		return fe("event", "must be %q or %q, got %q", AlertRaised, AlertResolved, m.Event)
	}
	if want := AlertEventID(m.AlertID, m.Event); m.EventID != want {
		return fe("event_id", "must be %q (alert_id:event), got %q", want, m.EventID)
	}
	kind, id, ok := strings.Cut(m.Scope, ":")
	if !ok || (kind != "job" && kind != "stream") || ValidateStreamID(id) != nil {
		return fe("scope", `must be "job:<id>" or "stream:<id>", got %q`, m.Scope)
	}
	if m.StartMs != nil && *m.StartMs < 0 {
		return fe("start_ms", "must not be negative, got %d", *m.StartMs)
	}
	if m.StartMs != nil && m.EndMs != nil && *m.EndMs < *m.StartMs {
		return fe("end_ms", "must not be before start_ms (%d), got %d", *m.StartMs, *m.EndMs)
	}
	if (m.StartMs == nil) != (m.EndMs == nil) {
		return fe("end_ms", "start_ms and end_ms come together")
	}
	if n := utf8.RuneCountInString(m.Summary); n > MaxAlertSummary {
		return fe("summary", "is %d characters long, more than %d", n, MaxAlertSummary)
	}
	if len(m.Details) > 0 && m.Details[0] != '{' {
		return fe("details", "must be a JSON object, got %s", describeJSON(m.Details))
	}
	if m.RaisedAt.IsZero() {
		return fe("raised_at", "is required")
	}
	if m.Event == AlertResolved && m.ResolvedAt.IsZero() {
		return fe("resolved_at", "is required for a resolved alert")
	}
	return nil
}

// DecodeAlert decodes and validates a record of TopicAlerts (or a
// webhook body). Unknown members are kept in Extra.
func DecodeAlert(key, value []byte) (*Alert, error) {
	m := &Alert{}
	if err := decodeControl(alertContext, value, m); err != nil {
		return nil, err
	}
	if m.RuleID == "" {
		m.RuleID = keyID(key)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m Alert) MarshalJSON() ([]byte, error) {
	type plain Alert
	return marshalObject(plain(m), m.Extra)
}

// UnmarshalJSON decodes an alert, compacting its details so that a
// decoded alert encodes as it was sent.
func (m *Alert) UnmarshalJSON(b []byte) error {
	type plain Alert
	if err := unmarshalObject(b, (*plain)(m), &m.Extra); err != nil {
		return err
	}
	m.Details = compactRaw(m.Details)
	return nil
}
