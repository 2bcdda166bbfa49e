package api

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-media/weir/internal/prom"
)

// httpMetrics are the control plane's own collectors. Labels use the route
// pattern ("/vod/{id}/metadata"), never the raw path, so the number of series
// stays bounded however many streams exist.
type httpMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	uploadBytes prometheus.Counter
	published   *prometheus.CounterVec
	handler     http.Handler
}

// newHTTPMetrics registers the HTTP collectors plus the Go runtime and
// process collectors on reg. Registering on a registry that already holds
// them (a second Server, or wiring that added the runtime collectors itself)
// reuses the existing ones instead of failing.
func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	m := &httpMetrics{}
	var err error
	if m.requests, err = prom.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_http_requests_total",
		Help: "HTTP requests served by the control plane, by route pattern, method and status code.",
	}, []string{"route", "method", "status"})); err != nil {
		return nil, err
	}
	if m.duration, err = prom.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "weir_http_request_duration_seconds",
		Help:    "Time to serve HTTP requests, by route pattern and method, until the handler returned.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method"})); err != nil {
		return nil, err
	}
	if m.inFlight, err = prom.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "weir_http_requests_in_flight",
		Help: "HTTP requests being served right now.",
	})); err != nil {
		return nil, err
	}
	if m.uploadBytes, err = prom.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_vod_upload_bytes_total",
		Help: "Bytes of VOD source files stored through POST /vod/upload.",
	})); err != nil {
		return nil, err
	}
	if m.published, err = prom.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_api_bus_publish_total",
		Help: "Bus messages the control plane published, by topic and result (ok or error).",
	}, []string{"topic", "result"})); err != nil {
		return nil, err
	}
	if _, err = prom.Register[prometheus.Collector](reg, collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if _, err = prom.Register[prometheus.Collector](reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
	return m, nil
}

// statusRecorder remembers the status code a handler sent.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (read deadlines
// for long uploads).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument counts and times every request, and turns a handler panic into
// a logged 500 problem. The route label is the mux
// pattern that served it; requests answered before routing (401, 400 for
// hostile HLS paths) are labelled with the pattern they would have reached,
// and anything matching no pattern with "unmatched".
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inFlight.Inc()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeProblem(rec, http.StatusInternalServerError, "internal error while serving "+r.Method+" "+r.URL.Path+" (see server log)")
				} else {
					// Too late for a clean answer: cut the connection so the
					// client sees a failure, not a truncated success.
					defer panic(http.ErrAbortHandler)
				}
			}
			s.metrics.inFlight.Dec()
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			route := s.routeOf(r)
			method := r.Method
			if !knownMethod(method) {
				method = "other"
			}
			s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
			if status >= 500 {
				s.log.Warn("http request failed", "method", r.Method, "path", r.URL.Path, "route", route, "status", status)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeOf returns the route pattern without its method ("/hls/{stream_id}/{path...}").
func (s *Server) routeOf(r *http.Request) string {
	pattern := r.Pattern
	if pattern == "" {
		_, pattern = s.mux.Handler(r)
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern == "" {
		return "unmatched"
	}
	return pattern
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}
