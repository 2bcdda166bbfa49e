package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// This file is the Service's side of the REST API: rules, alerts and
// deliveries.

// ErrNotFound is wrapped by the errors for an unknown rule, alert or
// delivery.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped by the error for redelivering a delivery that is
// still pending.
var ErrConflict = errors.New("conflict")

// RuleView is a rule as the API shows it. Secret is set only in the
// answer that created the rule.
type RuleView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Condition Condition `json:"condition"`
	Scope     Scope     `json:"scope"`
	Cooldown  Duration  `json:"cooldown"`
	Webhooks  []Webhook `json:"webhooks"`
	RetryFor  Duration  `json:"retry_for"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Service) view(r *Rule) RuleView {
	v := RuleView{ID: r.ID, Name: r.Name, Condition: r.Condition, Scope: r.Scope, Cooldown: r.Cooldown,
		Webhooks: r.Webhooks, RetryFor: r.RetryFor, CreatedAt: r.CreatedAt}
	if v.Webhooks == nil {
		v.Webhooks = []Webhook{}
	}
	if v.RetryFor == 0 {
		v.RetryFor = Duration(s.cfg.RetryFor)
	}
	return v
}

// CreateRule parses a rule request (ParseRule), checks that its scope
// exists (a live stream for stream, a VOD title for title, a job), stores
// it and returns it with its secret, the only time the secret is shown.
// A refused request is a *RuleError.
func (s *Service) CreateRule(ctx context.Context, body []byte) (RuleView, error) {
	nr, err := ParseRule(body, ParseOptions{Webhooks: s.cfg.Webhooks.Check})
	if err != nil {
		return RuleView{}, err
	}
	if err := s.checkScope(ctx, nr.Scope); err != nil {
		return RuleView{}, err
	}
	r := nr.Rule
	r.ID = NewRuleID()
	stored, err := s.cfg.Store.CreateAlertRule(ctx, metastore.AlertRule{ID: r.ID, Name: r.Name, Spec: r.Spec(), Secret: r.Secret})
	if err != nil {
		return RuleView{}, fmt.Errorf("store rule: %w", err)
	}
	r.CreatedAt = stored.CreatedAt
	s.forgetRules()
	s.log.Info("alert rule created", "rule", r.ID, "name", r.Name, "condition", r.Condition.Type, "scope", r.Scope.String())
	v := s.view(&r)
	v.Secret = r.Secret
	return v, nil
}

// checkScope says, as a *RuleError, when a rule's scope names something
// that does not exist or is of the wrong kind.
func (s *Service) checkScope(ctx context.Context, sc Scope) error {
	field := "scope." + sc.Kind
	switch sc.Kind {
	case ScopeStream, ScopeTitle:
		st, err := s.cfg.Store.GetStream(ctx, sc.ID)
		if errors.Is(err, metastore.ErrNotFound) {
			return &RuleError{Problems: []*FieldProblem{{Field: field, Problem: fmt.Sprintf("there is no stream %s", sc.ID)}}}
		}
		if err != nil {
			return err
		}
		if sc.Kind == ScopeStream && st.Kind != metastore.KindLive {
			return &RuleError{Problems: []*FieldProblem{{Field: field, Problem: fmt.Sprintf("%s is a VOD title: use scope.title", sc.ID)}}}
		}
		if sc.Kind == ScopeTitle && st.Kind != metastore.KindVOD {
			return &RuleError{Problems: []*FieldProblem{{Field: field, Problem: fmt.Sprintf("%s is a live stream: use scope.stream", sc.ID)}}}
		}
	case ScopeJob:
		_, err := s.cfg.Store.GetJob(ctx, sc.ID)
		if errors.Is(err, metastore.ErrNotFound) {
			return &RuleError{Problems: []*FieldProblem{{Field: field, Problem: fmt.Sprintf("there is no job %s", sc.ID)}}}
		}
		return err
	}
	return nil
}

// ListRules returns every rule, oldest first, without secrets.
func (s *Service) ListRules(ctx context.Context) ([]RuleView, error) {
	stored, err := s.cfg.Store.ListAlertRules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RuleView, 0, len(stored))
	for _, st := range stored {
		r, err := ParseSpec(st.ID, st.Name, st.Spec, "", st.CreatedAt)
		if err != nil {
			s.log.Warn("a stored rule does not parse", "rule", st.ID, "err", err)
			continue
		}
		out = append(out, s.view(r))
	}
	return out, nil
}

// GetRule returns one rule without its secret.
func (s *Service) GetRule(ctx context.Context, id string) (RuleView, error) {
	r, err := s.rule(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return RuleView{}, fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return RuleView{}, err
	}
	return s.view(r), nil
}

// DeleteRule removes a rule: it raises nothing more, its open alerts are
// resolved (without delivering that) and its pending deliveries dropped.
func (s *Service) DeleteRule(ctx context.Context, id string) error {
	err := s.cfg.Store.DeleteAlertRule(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	s.forgetRules()
	s.m.forget(id)
	s.log.Info("alert rule deleted", "rule", id)
	return nil
}

// ListAlerts pages alerts newest first.
func (s *Service) ListAlerts(ctx context.Context, q metastore.AlertQuery) ([]metastore.Alert, string, error) {
	return s.cfg.Store.ListAlerts(ctx, q)
}

// GetAlert returns one alert.
func (s *Service) GetAlert(ctx context.Context, id string) (metastore.Alert, error) {
	a, err := s.cfg.Store.GetAlert(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return a, fmt.Errorf("alert %s: %w", id, ErrNotFound)
	}
	return a, err
}

// ListDeliveries pages deliveries newest first.
func (s *Service) ListDeliveries(ctx context.Context, q metastore.DeliveryQuery) ([]metastore.AlertDelivery, string, error) {
	return s.cfg.Store.ListAlertDeliveries(ctx, q)
}

// Redeliver makes a dead (or delivered) delivery pending again, due now,
// with the rule's retry time from now. ErrConflict when it is pending.
func (s *Service) Redeliver(ctx context.Context, id string) (metastore.AlertDelivery, error) {
	d, err := s.cfg.Store.GetAlertDelivery(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return d, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, err
	}
	retry := s.cfg.RetryFor
	if r, err := s.rule(ctx, d.RuleID); err == nil && r.RetryFor > 0 {
		retry = r.RetryFor.D()
	}
	d, err = s.cfg.Store.RedeliverAlertDelivery(ctx, id, time.Now().Add(retry))
	if errors.Is(err, metastore.ErrConflict) {
		return d, fmt.Errorf("delivery %s is pending already: %w", id, ErrConflict)
	}
	if err == nil {
		s.notify()
		s.log.Info("alert delivery queued again", "delivery", id)
	}
	return d, err
}
