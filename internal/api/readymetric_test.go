package api

import (
	"context"
	"errors"
	"regexp"
	"testing"
)

func TestMetricsReportEachDependencysReadiness(t *testing.T) {
	busUp := true
	e := newEnv(t, "", func(c *Config) {
		c.Ready = map[string]func(context.Context) error{"bus": func(context.Context) error {
			if busUp {
				return nil
			}
			return errors.New("broker unreachable")
		}}
	})
	scrape := func() string {
		rec := e.do("GET", "/metrics", nil)
		if rec.Code != 200 {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		return rec.Body.String()
	}
	line := func(dep string, v int) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^weir_dependency_up\{dependency="` + dep + `"\} ` + string(rune('0'+v)) + `$`)
	}
	body := scrape()
	for _, dep := range []string{"bus", "metadata", "objects"} {
		if !line(dep, 1).MatchString(body) {
			t.Errorf("no weir_dependency_up{dependency=%q} 1 in:\n%s", dep, body)
		}
	}
	busUp = false
	if body = scrape(); !line("bus", 0).MatchString(body) || !line("metadata", 1).MatchString(body) {
		t.Errorf("a failing bus check is not 0 (and metadata still 1):\n%s", body)
	}
}
