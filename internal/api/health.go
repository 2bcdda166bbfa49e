package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// HealthResponse is the liveness answer.
type HealthResponse struct {
	Status  string `json:"status" example:"ok" doc:"Always \"ok\" while the process serves HTTP"`
	Version string `json:"version" example:"0.1.0" doc:"weir version"`
}

// CheckResult is one dependency's readiness.
type CheckResult struct {
	OK    bool   `json:"ok" doc:"Whether the dependency answered"`
	Error string `json:"error,omitempty" doc:"Why it is not ready"`
}

// ReadyResponse lists every dependency check.
type ReadyResponse struct {
	Status string                 `json:"status" enum:"ready,not ready" doc:"\"ready\" only when every check passed"`
	Failed []string               `json:"failed,omitempty" doc:"Names of the checks that failed, sorted"`
	Checks map[string]CheckResult `json:"checks" doc:"Result of each check by dependency name (bus, metadata, objects)"`
}

// BusResponse tells clients where the server's Kafka-protocol bus listens.
type BusResponse struct {
	Brokers []string `json:"brokers" doc:"Kafka bootstrap brokers (host:port)"`
}

type healthOutput struct{ Body HealthResponse }

type readyOutput struct {
	Status int
	Body   ReadyResponse
}

type busOutput struct{ Body BusResponse }

func (s *Server) registerHealth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "health",
		Method:      http.MethodGet,
		Path:        "/health",
		Summary:     "Liveness",
		Description: "Answers 200 whenever the process serves HTTP; it checks no dependency (see /ready).",
		Tags:        []string{"operations"},
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		return &healthOutput{Body: HealthResponse{Status: "ok", Version: s.cfg.Version}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "ready",
		Method:      http.MethodGet,
		Path:        "/ready",
		Summary:     "Readiness",
		Description: "Runs every dependency check (bus, metadata, objects) concurrently. " +
			"200 when all pass; 503 with the same body listing which failed and why.",
		Tags:   []string{"operations"},
		Errors: []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*readyOutput, error) {
		body := s.checkReady(ctx)
		status := http.StatusOK
		if len(body.Failed) > 0 {
			status = http.StatusServiceUnavailable
		}
		return &readyOutput{Status: status, Body: body}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "bus",
		Method:      http.MethodGet,
		Path:        "/bus",
		Summary:     "Bus brokers",
		Description: "The Kafka bootstrap brokers this server uses, so command-line tools and engines can join its bus.",
		Tags:        []string{"operations"},
	}, func(context.Context, *struct{}) (*busOutput, error) {
		brokers := s.cfg.KafkaBrokers
		if brokers == nil {
			brokers = []string{}
		}
		return &busOutput{Body: BusResponse{Brokers: brokers}}, nil
	})

	s.mux.Handle("GET /metrics", s.metrics.handler)
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "metrics",
		Method:      http.MethodGet,
		Path:        "/metrics",
		Summary:     "Prometheus metrics",
		Description: "Prometheus text exposition (OpenMetrics when asked for): weir_http_requests_total{route,method,status}, " +
			"weir_http_request_duration_seconds{route,method}, Go runtime and process collectors, and everything " +
			"other components registered (bus metrics).",
		Tags: []string{"operations"},
		Responses: map[string]*huma.Response{
			"200": {Description: "Metrics", Content: map[string]*huma.MediaType{
				"text/plain; version=0.0.4": {Schema: &huma.Schema{Type: "string"}},
			}},
		},
	})
}

// checkReady runs every readiness check concurrently, each bounded by
// ReadyTimeout and by ctx.
func (s *Server) checkReady(ctx context.Context) ReadyResponse {
	body := ReadyResponse{Status: "ready", Checks: make(map[string]CheckResult, len(s.cfg.Ready))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range s.cfg.Ready {
		wg.Go(func() {
			cctx, cancel := context.WithTimeoutCause(ctx, s.cfg.ReadyTimeout,
				fmt.Errorf("no answer within %s", s.cfg.ReadyTimeout))
			defer cancel()
			err := runCheck(cctx, check)
			res := CheckResult{OK: err == nil}
			if err != nil {
				res.Error = err.Error()
			}
			mu.Lock()
			body.Checks[name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	for name, res := range body.Checks {
		if !res.OK {
			body.Failed = append(body.Failed, name)
		}
	}
	sort.Strings(body.Failed)
	if len(body.Failed) > 0 {
		body.Status = "not ready"
	}
	return body
}

// runCheck runs check but gives up when ctx ends, so one hung dependency
// cannot hold /ready past its timeout.
func runCheck(ctx context.Context, check func(context.Context) error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- errPanic{p}
			}
		}()
		done <- check(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

type errPanic struct{ v any }

func (e errPanic) Error() string { return fmt.Sprint("check panicked: ", e.v) }
