package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/internal/metastore"
)

// This file serves alert rules (/rules), the alerts they raised
// (/alerts) and their deliveries (/alerts/deliveries); docs/alerts.md is
// the reference.

// RuleCondition is what a rule looks for; type says which members apply.
type RuleCondition struct {
	Type        string   `json:"type" enum:"keyword,ocr,fingerprint,detection,loudness,silence,black,no_segments" doc:"What the rule looks for"`
	Engine      string   `json:"engine,omitempty" doc:"Only this engine's results (conditions on results)"`
	Phrase      string   `json:"phrase,omitempty" maxLength:"200" doc:"keyword: words said (or spotted) in this order, case and punctuation aside"`
	Pattern     string   `json:"pattern,omitempty" maxLength:"512" doc:"ocr: an RE2 regular expression a line read on screen must match"`
	Reference   string   `json:"reference,omitempty" doc:"fingerprint: the library reference's name or id"`
	MinScore    float64  `json:"min_score,omitempty" minimum:"0" maximum:"1" doc:"fingerprint: the lowest match score that counts"`
	Label       string   `json:"label,omitempty" example:"person" doc:"detection: what is counted (face, person)"`
	MinCount    int      `json:"min_count,omitempty" minimum:"1" doc:"detection: how many in one result (one frame) raise the alert; default 1"`
	Measure     string   `json:"measure,omitempty" enum:"short_term,momentary" doc:"loudness: which level; default short_term"`
	MinLUFS     *float64 `json:"min_lufs,omitempty" doc:"loudness: below this the level is out of range"`
	MaxLUFS     *float64 `json:"max_lufs,omitempty" doc:"loudness: above this the level is out of range"`
	MinDuration string   `json:"min_duration,omitempty" example:"5s" doc:"loudness, silence, black: how long the condition must hold (default 5s); no_segments: how long without a segment (required)"`
}

// RuleScope says where a rule applies: give one member, or none for all.
type RuleScope struct {
	All    bool   `json:"all,omitempty" doc:"Every job (the default)"`
	Stream string `json:"stream,omitempty" doc:"The jobs on this live stream; a no_segments rule watches it"`
	Title  string `json:"title,omitempty" doc:"The jobs on this VOD title"`
	Job    string `json:"job,omitempty" doc:"This job"`
}

// RuleWebhook is where a rule's alerts are POSTed.
type RuleWebhook struct {
	URL string `json:"url" format:"uri" example:"https://hooks.example.com/weir" doc:"An http or https URL; loopback and private addresses are refused unless weir serve --webhook-allow allows them"`
}

// RuleRequest is the body of POST /rules.
type RuleRequest struct {
	Name      string        `json:"name" maxLength:"200" example:"dead air on studio A"`
	Condition RuleCondition `json:"condition"`
	Scope     *RuleScope    `json:"scope,omitempty"`
	Cooldown  string        `json:"cooldown,omitempty" example:"30s" doc:"The condition true again within this of its last time true is the same alert; the alert is resolved once it has been false this long (default 10s, 0s to 1h)"`
	Webhooks  []RuleWebhook `json:"webhooks,omitempty" maxItems:"5"`
	RetryFor  string        `json:"retry_for,omitempty" example:"24h" doc:"How long a delivery is retried before it is dead-lettered (1m to 168h; default the server's --alerts-retry-for)"`
	Secret    string        `json:"secret,omitempty" minLength:"16" maxLength:"128" doc:"Signs the webhook requests; weir makes one when absent. Shown only in the answer that creates the rule"`
}

// RuleInfo is a rule.
type RuleInfo struct {
	ID        string        `json:"id" example:"rule-5c1d0e7a9b42"`
	Name      string        `json:"name"`
	Condition RuleCondition `json:"condition"`
	Scope     RuleScope     `json:"scope"`
	Cooldown  string        `json:"cooldown"`
	Webhooks  []RuleWebhook `json:"webhooks"`
	RetryFor  string        `json:"retry_for"`
	Secret    string        `json:"secret,omitempty" doc:"The webhook secret, in the answer that created the rule only: keep it to verify signatures"`
	CreatedAt time.Time     `json:"created_at" doc:"The rule evaluates results written from then on"`
}

// RuleList is every rule, oldest first.
type RuleList struct {
	Items []RuleInfo `json:"items"`
}

// AlertList is a page of alerts, newest first.
type AlertList struct {
	Items      []metastore.Alert `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

// DeliveryInfo is one delivery of an alert event to a target.
type DeliveryInfo struct {
	ID            string          `json:"id" example:"al-9f86d081884c7d65:raised:webhook-0"`
	AlertID       string          `json:"alert_id"`
	RuleID        string          `json:"rule_id"`
	Event         string          `json:"event" enum:"raised,resolved"`
	Target        string          `json:"target" enum:"kafka,webhook" doc:"kafka: the weir.alerts topic; webhook: url"`
	URL           string          `json:"url,omitempty"`
	State         string          `json:"state" enum:"pending,delivered,dead"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	RetryUntil    time.Time       `json:"retry_until"`
	LastError     string          `json:"last_error,omitempty"`
	LastStatus    int             `json:"last_status,omitempty" doc:"The webhook's last HTTP status"`
	CreatedAt     time.Time       `json:"created_at"`
	DeliveredAt   time.Time       `json:"delivered_at,omitzero"`
	Payload       json.RawMessage `json:"payload" doc:"The alert event sent, the same on every attempt"`
}

// DeliveryList is a page of deliveries, newest first.
type DeliveryList struct {
	Items      []DeliveryInfo `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

type ruleCreateInput struct {
	RawBody []byte `contentType:"application/json"`
}

type ruleCreatedOutput struct {
	Location string `header:"Location"`
	Body     RuleInfo
}

type ruleIDInput struct {
	ID string `path:"id" maxLength:"64" example:"rule-5c1d0e7a9b42" doc:"Rule id"`
}

type ruleOutput struct{ Body RuleInfo }

type ruleListOutput struct{ Body RuleList }

type alertListInput struct {
	Rule   string `query:"rule" maxLength:"64" doc:"Only this rule's alerts"`
	State  string `query:"state" enum:"open,resolved" doc:"Only alerts in this state"`
	Job    string `query:"job" maxLength:"128" doc:"Only alerts of this job"`
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"500" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page"`
}

type alertListOutput struct{ Body AlertList }

type alertIDInput struct {
	ID string `path:"id" maxLength:"64" example:"al-9f86d081884c7d65" doc:"Alert id"`
}

type alertOutput struct{ Body metastore.Alert }

type deliveryListInput struct {
	State  string `query:"state" enum:"pending,delivered,dead" doc:"Only deliveries in this state (dead: the dead letters)"`
	Rule   string `query:"rule" maxLength:"64" doc:"Only this rule's deliveries"`
	Alert  string `query:"alert" maxLength:"64" doc:"Only this alert's deliveries"`
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"500" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page"`
}

type deliveryListOutput struct{ Body DeliveryList }

type deliveryIDInput struct {
	ID string `path:"id" maxLength:"128" example:"al-9f86d081884c7d65:raised:webhook-0" doc:"Delivery id"`
}

type deliveryOutput struct{ Body DeliveryInfo }

func (s *Server) registerAlerts() {
	huma.Register(s.api, huma.Operation{
		OperationID:      "rule-create",
		Method:           http.MethodPost,
		Path:             "/rules",
		Summary:          "Create an alert rule",
		Description:      "A condition on what the engines find (a keyword said, a pattern read on screen, a fingerprint match, a detection count, loudness out of range, silence or black for a while) or on a live stream (no segments for a while), where it applies, a cool-down and webhooks. Alerts go to the weir.alerts topic and each webhook, signed with the rule's secret, which this answer shows once. A malformed body is 400; a member at fault 422 naming it (`condition.min_duration`); a scope naming no stream, title or job 422. docs/alerts.md describes rules and deliveries.",
		Tags:             []string{"alerts"},
		DefaultStatus:    http.StatusCreated,
		MaxBodyBytes:     alerts.MaxRuleBytes,
		SkipValidateBody: true,
		Security:         bearerSecurity,
		Errors:           []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.createRule)
	s.api.OpenAPI().Paths["/rules"].Post.RequestBody = &huma.RequestBody{
		Required:    true,
		Description: "The rule.",
		Content: map[string]*huma.MediaType{"application/json": {
			Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[RuleRequest](), true, "")}},
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "rules-list", Method: http.MethodGet, Path: "/rules",
		Summary: "List alert rules", Description: "Every rule, oldest first, without secrets.",
		Tags: []string{"alerts"}, Errors: []int{http.StatusServiceUnavailable},
	}, s.listRules)
	huma.Register(s.api, huma.Operation{
		OperationID: "rule-get", Method: http.MethodGet, Path: "/rules/{id}",
		Summary: "Show an alert rule", Description: "One rule, without its secret.",
		Tags: []string{"alerts"}, Errors: []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.getRule)
	huma.Register(s.api, huma.Operation{
		OperationID: "rule-delete", Method: http.MethodDelete, Path: "/rules/{id}",
		Summary:     "Delete an alert rule",
		Description: "The rule raises nothing more; its open alerts are resolved (without a delivery) and its pending deliveries dropped. Its alerts and finished deliveries stay.",
		Tags:        []string{"alerts"}, DefaultStatus: http.StatusNoContent, Security: bearerSecurity,
		Errors: []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.deleteRule)
	huma.Register(s.api, huma.Operation{
		OperationID: "alerts-list", Method: http.MethodGet, Path: "/alerts",
		Summary:     "List alerts",
		Description: "Alerts newest first, each with its rule, scope, media times (start_ms, end_ms) or wall-clock times (started_at, ended_at), summary and details; filter by rule, state and job, page with limit and cursor.",
		Tags:        []string{"alerts"}, Errors: []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listAlerts)
	huma.Register(s.api, huma.Operation{
		OperationID: "deliveries-list", Method: http.MethodGet, Path: "/alerts/deliveries",
		Summary:     "List alert deliveries",
		Description: "Deliveries of alert events to the weir.alerts topic and to webhooks, newest first: pending (with the next attempt), delivered, or dead (every attempt until retry_until failed: the dead letters, state=dead). Filter by state, rule and alert.",
		Tags:        []string{"alerts"}, Errors: []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listDeliveries)
	huma.Register(s.api, huma.Operation{
		OperationID: "alert-get", Method: http.MethodGet, Path: "/alerts/{id}",
		Summary: "Show an alert", Tags: []string{"alerts"}, Errors: []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.getAlert)
	huma.Register(s.api, huma.Operation{
		OperationID: "delivery-redeliver", Method: http.MethodPost, Path: "/alerts/deliveries/{id}/redeliver",
		Summary:     "Deliver an alert event again",
		Description: "Makes a dead (or delivered) delivery pending again: it is sent at once, with the same payload, and retried for the rule's retry time. 409 when it is pending already.",
		Tags:        []string{"alerts"}, Security: bearerSecurity,
		Errors: []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
	}, s.redeliver)
}

func (s *Server) createRule(ctx context.Context, in *ruleCreateInput) (*ruleCreatedOutput, error) {
	v, err := s.cfg.Alerts.CreateRule(ctx, in.RawBody)
	if err != nil {
		return nil, s.alertsError(ctx, "create rule", err)
	}
	info := ruleInfo(v)
	return &ruleCreatedOutput{Location: "/rules/" + info.ID, Body: info}, nil
}

func (s *Server) listRules(ctx context.Context, _ *struct{}) (*ruleListOutput, error) {
	list, err := s.cfg.Alerts.ListRules(ctx)
	if err != nil {
		return nil, s.alertsError(ctx, "list rules", err)
	}
	out := &ruleListOutput{Body: RuleList{Items: make([]RuleInfo, 0, len(list))}}
	for _, v := range list {
		out.Body.Items = append(out.Body.Items, ruleInfo(v))
	}
	return out, nil
}

func (s *Server) getRule(ctx context.Context, in *ruleIDInput) (*ruleOutput, error) {
	v, err := s.cfg.Alerts.GetRule(ctx, in.ID)
	if err != nil {
		return nil, s.alertsError(ctx, "read rule "+in.ID, err)
	}
	return &ruleOutput{Body: ruleInfo(v)}, nil
}

func (s *Server) deleteRule(ctx context.Context, in *ruleIDInput) (*struct{}, error) {
	if err := s.cfg.Alerts.DeleteRule(ctx, in.ID); err != nil {
		return nil, s.alertsError(ctx, "delete rule "+in.ID, err)
	}
	return nil, nil
}

func (s *Server) listAlerts(ctx context.Context, in *alertListInput) (*alertListOutput, error) {
	items, next, err := s.cfg.Alerts.ListAlerts(ctx, metastore.AlertQuery{RuleID: in.Rule, State: metastore.AlertState(in.State),
		JobID: in.Job, Limit: in.Limit, After: in.Cursor})
	if err != nil {
		return nil, s.alertsError(ctx, "list alerts", err)
	}
	return &alertListOutput{Body: AlertList{Items: items, NextCursor: next}}, nil
}

func (s *Server) getAlert(ctx context.Context, in *alertIDInput) (*alertOutput, error) {
	a, err := s.cfg.Alerts.GetAlert(ctx, in.ID)
	if err != nil {
		return nil, s.alertsError(ctx, "read alert "+in.ID, err)
	}
	return &alertOutput{Body: a}, nil
}

func (s *Server) listDeliveries(ctx context.Context, in *deliveryListInput) (*deliveryListOutput, error) {
	items, next, err := s.cfg.Alerts.ListDeliveries(ctx, metastore.DeliveryQuery{State: metastore.DeliveryState(in.State),
		RuleID: in.Rule, AlertID: in.Alert, Limit: in.Limit, After: in.Cursor})
	if err != nil {
		return nil, s.alertsError(ctx, "list deliveries", err)
	}
	out := &deliveryListOutput{Body: DeliveryList{Items: make([]DeliveryInfo, 0, len(items)), NextCursor: next}}
	for _, d := range items {
		out.Body.Items = append(out.Body.Items, deliveryInfo(d))
	}
	return out, nil
}

func (s *Server) redeliver(ctx context.Context, in *deliveryIDInput) (*deliveryOutput, error) {
	d, err := s.cfg.Alerts.Redeliver(ctx, in.ID)
	if err != nil {
		return nil, s.alertsError(ctx, "redeliver "+in.ID, err)
	}
	return &deliveryOutput{Body: deliveryInfo(d)}, nil
}

// alertsError maps the alerts service's errors: a refused rule is 400
// (the body as a whole) or 422 (members at fault, each located as
// "body.condition.min_duration"); unknown ids 404; a pending redelivery
// 409; a bad cursor 422; else a store problem.
func (s *Server) alertsError(ctx context.Context, what string, err error) error {
	var re *alerts.RuleError
	switch {
	case errors.As(err, &re):
		status := http.StatusUnprocessableEntity
		details := make([]error, 0, len(re.Problems))
		parts := make([]string, 0, len(re.Problems))
		for _, p := range re.Problems {
			if p.Field == "" {
				status = http.StatusBadRequest
				parts = append(parts, p.Problem)
				continue
			}
			loc := "body." + p.Field
			parts = append(parts, describeLocation(loc)+": "+p.Problem)
			details = append(details, &huma.ErrorDetail{Location: loc, Message: p.Problem})
		}
		return huma.NewError(status, "invalid rule: "+strings.Join(parts, "; "), details...)
	case errors.Is(err, alerts.ErrNotFound):
		return huma.Error404NotFound(err.Error())
	case errors.Is(err, alerts.ErrConflict):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, metastore.ErrInvalid):
		return huma.NewError(http.StatusUnprocessableEntity, "query parameter cursor: is not a cursor this server issued; ask again without it",
			&huma.ErrorDetail{Location: "query.cursor", Message: "is not a cursor this server issued"})
	}
	return s.storeError(ctx, what, err)
}

// ruleInfo shows a rule as the API does (the alerts package's JSON is
// the same shape).
func ruleInfo(v alerts.RuleView) RuleInfo {
	var info RuleInfo
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &info)
	if info.Webhooks == nil {
		info.Webhooks = []RuleWebhook{}
	}
	return info
}

func deliveryInfo(d metastore.AlertDelivery) DeliveryInfo {
	return DeliveryInfo{ID: d.ID, AlertID: d.AlertID, RuleID: d.RuleID, Event: d.Event, Target: d.Target, URL: d.URL,
		State: string(d.State), Attempts: d.Attempts, NextAttemptAt: d.NextAttemptAt, RetryUntil: d.RetryUntil,
		LastError: d.LastError, LastStatus: d.LastStatus, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt, Payload: d.Payload}
}
