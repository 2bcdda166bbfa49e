package server

import (
	"fmt"
	"strings"

	"github.com/weir-media/weir/internal/alerts"
	"github.com/weir-media/weir/internal/netguard"
)

// startAlerts makes the alerts service: every process with the API role
// manages rules with it; one with the alerts role also evaluates them and
// delivers alerts.
func (s *Server) startAlerts() error {
	allow, err := netguard.ParsePrefixes(strings.FieldsFunc(s.cfg.WebhookAllow, func(r rune) bool { return r == ',' || r == ' ' }))
	if err != nil {
		return fmt.Errorf("--webhook-allow: %w", err)
	}
	s.alerts, err = alerts.New(alerts.Config{
		Store: s.meta, Bus: s.bus, Registry: s.reg, Holder: s.holder, Version: Version,
		Webhooks: netguard.Outbound{Allow: allow, Hint: "start weir serve with --webhook-allow and the address or range to allow it"},
		RetryFor: s.cfg.AlertsRetryFor,
		Log:      s.log,
	})
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	s.runAlert = s.roles.Has(RoleAlerts)
	return nil
}
