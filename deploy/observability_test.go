//go:build unix

// Package deploy_test proves the observability kit in deploy/: the alert
// rules pass promtool, and Debian's Prometheus, scraping a running weir
// through the shipped scrape configuration while a live stream is published
// and VOD titles are uploaded, evaluates every rule without error, fires the
// VOD failure alert, and has data for every query of the Grafana dashboard.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/server"
	"github.com/weir-media/weir/internal/testenv"
)

func TestPrometheusRulesPassPromtool(t *testing.T) {
	testenv.RequireTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The dashboard imports into any Grafana with a Prometheus data source: it
// asks for the data source and the job, and every panel uses both.
func TestDashboardAsksForItsDataSourceAndJob(t *testing.T) {
	b, err := os.ReadFile("grafana/weir-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if d.UID == "" || vars["datasource"] != "datasource" || vars["job"] != "query" {
		t.Errorf("uid %q, variables %v: want a uid, a datasource variable and a job query variable", d.UID, vars)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `job="$job"`) {
				t.Errorf("panel %q: query %s does not select job=\"$job\"", p.Title, tg.Expr)
			}
		}
	}
}

func TestDashboardAndAlertsWorkOnARealPrometheus(t *testing.T) {
	testenv.RequireTool(t, "prometheus", "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	begin := time.Now()

	weir := startWeir(t)
	prom := startPrometheus(t, weir)
	// Counters must be seen at zero before traffic moves them: a first
	// scrape that already holds the increment shows no increase.
	prom.waitFor(t, ctx, `count_over_time(up{job="weir"}[1m]) >= 2 and up{job="weir"} == 1`)

	// Traffic: a live stream published over RTMP while one title is
	// uploaded (it becomes ready) and a file that is no media is uploaded
	// (it fails).
	clip := makeClip(t, "clip.mp4", 3)
	live := startLive(t, ctx, weir)
	ready := uploadVOD(t, weir, clip)
	junk := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(junk, []byte("these are not the frames you are looking for"), 0o644)
	failed := uploadVOD(t, weir, junk)
	waitVOD(t, ctx, weir, ready, "ready")
	waitVOD(t, ctx, weir, failed, "failed")
	// A small job on the ready title: the probe engine on 2 s chunks,
	// for the engines and jobs panels.
	job := startJob(t, weir, `{"source":{"vod":"`+ready+`"},"engines":[{"name":"probe"}],"chunking":{"duration":"2s"}}`)
	waitJob(t, ctx, weir, job, "complete")
	// An alert rule on a stream nobody publishes to: its alert is raised
	// and delivered to weir.alerts, for the alerts' series.
	var quiet struct {
		ID string `json:"stream_id"`
	}
	postJSON(t, weir+"/streams/start", `{"title": "nobody"}`, &quiet)
	postJSON(t, weir+"/rules", `{"name": "quiet", "condition": {"type": "no_segments", "min_duration": "1s"}, "scope": {"stream": "`+quiet.ID+`"}}`, nil)
	prom.waitFor(t, ctx, `weir_alert_deliveries_total{state="delivered"} >= 1 and on() weir_alerts_raised_total >= 1 and on() weir_alert_deliveries_pending == 0`)
	// What weir exports while the stream is still live (its per-stream
	// series go when it ends) and afterwards.
	exported := exportedNames(t, weir)
	live.finish(t, ctx)

	// Prometheus has scraped what all that did.
	prom.waitFor(t, ctx, `weir_vod_jobs_total{outcome="failed"} >= 1 and on() weir_vod_stage_seconds_count{stage="transcoding"} >= 1 and on() weir_live_segments_written_total >= 2`)
	prom.waitFor(t, ctx, `weir_jobs_total{status="complete"} >= 1 and on() weir_job_chunks_total{engine="probe", state="done"} >= 1`)

	for name := range exportedNames(t, weir) {
		exported[name] = true
	}

	t.Run("every dashboard query has data", func(t *testing.T) {
		dash := loadDashboard(t)
		checked := 0
		for _, p := range dash.Panels {
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				expr := strings.NewReplacer("$job", "weir", "$__rate_interval", "1m").Replace(tg.Expr)
				if missing := unexported(expr, exported); len(missing) > 0 {
					t.Errorf("panel %q, query %s refers to %v, which weir does not export: %s", p.Title, tg.RefID, missing, tg.Expr)
					continue
				}
				series, values := prom.queryRange(t, ctx, expr, begin.Add(-10*time.Second), time.Now())
				if series == 0 || values == 0 {
					t.Errorf("panel %q, query %s returned %d series with %d numeric values over the test: %s", p.Title, tg.RefID, series, values, expr)
				}
				checked++
			}
		}
		t.Logf("%d dashboard queries returned data", checked)
	})

	t.Run("every rule evaluates and refers to exported metrics", func(t *testing.T) {
		rules := prom.rules(t, ctx)
		if len(rules) < 10 {
			t.Fatalf("Prometheus loaded %d rules", len(rules))
		}
		for _, r := range rules {
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q (%s)", r.Name, r.Health, r.LastError)
			}
			if missing := unexported(r.Query, exported); len(missing) > 0 {
				t.Errorf("rule %s refers to %v, which weir does not export: %s", r.Name, missing, r.Query)
			}
		}
	})

	t.Run("the failed title fires WeirVODFailures", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			alerts := prom.alerts(t, ctx)
			if alerts["WeirVODFailures"] == "firing" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("WeirVODFailures is not firing; alerts: %v", alerts)
			}
			time.Sleep(500 * time.Millisecond)
		}
		// Nothing else fires on a healthy weir. (Alerts with a "for" are
		// at most pending this soon; the latency one may well be, on a
		// busy test machine, and is only logged.)
		for name, state := range prom.alerts(t, ctx) {
			switch {
			case name == "WeirVODFailures":
			case state == "firing":
				t.Errorf("alert %s is firing on a healthy weir", name)
			default:
				t.Logf("alert %s is %s", name, state)
			}
		}
	})
}

// startWeir runs a whole weir serve on loopback ports and returns its base
// URL.
func startWeir(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.Config{
		Data: t.TempDir(), HTTP: "127.0.0.1:0", KafkaListen: "127.0.0.1:0",
		RTMP: "127.0.0.1:0", SRT: "127.0.0.1:0", MaxUpload: 1 << 30,
		LiveSegmentDuration: time.Second, VODPreset: "ultrafast", VODSegmentDuration: time.Second,
	}
	srv, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("starting weir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("weir Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("weir did not stop within 60s")
		}
	})
	return "http://" + srv.HTTPAddr()
}

// prometheus is a running Prometheus server.
type prometheus struct {
	base string
	log  *lockedBuffer
}

// startPrometheus runs Debian's prometheus with the shipped scrape
// configuration and rules, pointed at weir and scraping every second.
func startPrometheus(t *testing.T, weir string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(weir, "http://")
	text := strings.NewReplacer("127.0.0.1:8080", target, "15s", "1s").Replace(string(cfg))
	if !strings.Contains(text, target) || strings.Contains(text, "15s") {
		t.Fatalf("prometheus.yml no longer has the target and intervals this test replaces:\n%s", cfg)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644)

	addr := testenv.FreeAddr(t)
	log := &lockedBuffer{}
	cmd := exec.Command("prometheus",
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	p := &prometheus{base: "http://" + addr, log: log}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s:\n%s", log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// api calls the Prometheus HTTP API and decodes its data into out.
func (p *prometheus) api(t *testing.T, ctx context.Context, path string, q url.Values, out any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if body.Status != "success" {
		t.Fatalf("GET %s %v: %s", path, q, body.Error)
	}
	if err := json.Unmarshal(body.Data, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body.Data)
	}
}

// queryRange evaluates expr over [start, end] every second and counts the
// series and the values that are numbers (not NaN).
func (p *prometheus) queryRange(t *testing.T, ctx context.Context, expr string, start, end time.Time) (series, values int) {
	t.Helper()
	var data struct {
		Result []struct {
			Values [][2]any `json:"values"`
		} `json:"result"`
	}
	p.api(t, ctx, "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix()+1, 10)},
		"step":  {"1"},
	}, &data)
	for _, s := range data.Result {
		for _, v := range s.Values {
			if f, err := strconv.ParseFloat(fmt.Sprint(v[1]), 64); err == nil && !math.IsNaN(f) {
				values++
			}
		}
	}
	return len(data.Result), values
}

// waitFor waits until the instant query expr returns a series.
func (p *prometheus) waitFor(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var data struct {
			Result []json.RawMessage `json:"result"`
		}
		p.api(t, ctx, "/api/v1/query", url.Values{"query": {expr}}, &data)
		if len(data.Result) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has no result for %s within 60s", expr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type rule struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// rules returns the loaded rules once every one has been evaluated.
func (p *prometheus) rules(t *testing.T, ctx context.Context) []rule {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		p.api(t, ctx, "/api/v1/rules", nil, &data)
		var all []rule
		evaluated := true
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				all = append(all, r)
				evaluated = evaluated && r.Health != "unknown"
			}
		}
		if evaluated || time.Now().After(deadline) {
			return all
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// alerts returns the state of each active alert by name.
func (p *prometheus) alerts(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	p.api(t, ctx, "/api/v1/alerts", nil, &data)
	out := map[string]string{}
	for _, a := range data.Alerts {
		out[a.Labels["alertname"]] = a.State
	}
	return out
}

type dashboard struct {
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/weir-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/weir-dashboard.json: %v", err)
	}
	return d
}

// exportedNames are the sample names in weir's /metrics.
func exportedNames(t *testing.T, weir string) map[string]bool {
	t.Helper()
	resp, err := http.Get(weir + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return names
}

// metricName finds the metric names a query refers to: weir's own and the
// Go runtime and process collectors'.
var metricName = regexp.MustCompile(`\b(?:weir|go|process)_[a-zA-Z0-9_]+\b`)

// quoted is a PromQL string (a label value), which names no metric.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// unexported lists the metrics expr refers to that weir does not export.
func unexported(expr string, exported map[string]bool) []string {
	var missing []string
	for _, name := range metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1) {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	return missing
}

// liveRun is a live stream being published with ffmpeg over RTMP.
type liveRun struct {
	weir, id string
	done     chan error
	out      *lockedBuffer
}

func startLive(t *testing.T, ctx context.Context, weir string) *liveRun {
	t.Helper()
	var started struct {
		StreamID string `json:"stream_id"`
		Publish  struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	postJSON(t, weir+"/streams/start", `{"title":"metrics"}`, &started)
	r := &liveRun{weir: weir, id: started.StreamID, done: make(chan error, 1), out: &lockedBuffer{}}
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-f", "flv", started.Publish.RTMP)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	go func() { r.done <- cmd.Wait() }()
	return r
}

// finish waits for the publisher to finish, then ends the stream.
func (r *liveRun) finish(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("ffmpeg publishing over RTMP: %v\n%s", err, r.out.String())
		}
	case <-ctx.Done():
		t.Fatal("ffmpeg did not finish publishing")
	}
	postJSON(t, r.weir+"/streams/"+r.id+"/end", "", nil)
}

func postJSON(t *testing.T, u, body string, out any) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s %s", u, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %v in %s", u, err, b)
		}
	}
}

// startJob posts a job request and returns the job's id.
func startJob(t *testing.T, weir, body string) string {
	t.Helper()
	var job struct {
		ID string `json:"id"`
	}
	postJSON(t, weir+"/jobs", body, &job)
	if job.ID == "" {
		t.Fatalf("POST /jobs %s answered no job id", body)
	}
	return job.ID
}

// waitJob waits for a job to end with status want.
func waitJob(t *testing.T, ctx context.Context, weir, id, want string) {
	t.Helper()
	for {
		resp, err := http.Get(weir + "/jobs/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var job struct {
			Status, Error string
		}
		json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if job.Status == want {
			return
		}
		switch job.Status {
		case "complete", "failed", "cancelled":
			t.Fatalf("job %s ended %s (%s), want %s", id, job.Status, job.Error, want)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s still %s", id, job.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// uploadVOD uploads file and returns the title's id.
func uploadVOD(t *testing.T, weir, file string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", filepath.Base(file))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	resp, err := http.Post(weir+"/vod/upload", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var up struct {
		StreamID string `json:"stream_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &up) != nil {
		t.Fatalf("upload %s: %s %s", file, resp.Status, b)
	}
	return up.StreamID
}

func waitVOD(t *testing.T, ctx context.Context, weir, id, want string) {
	t.Helper()
	for {
		resp, err := http.Get(weir + "/vod/" + id + "/metadata")
		if err != nil {
			t.Fatal(err)
		}
		var md struct {
			Status, Error string
		}
		json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if md.Status == want {
			return
		}
		if md.Status == "ready" || md.Status == "failed" {
			t.Fatalf("vod %s is %s (%s), want %s", id, md.Status, md.Error, want)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vod %s still %s", id, md.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// makeClip encodes seconds of a test pattern with a tone.
func makeClip(t *testing.T, name string, seconds int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
