package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/jobs"
	"github.com/weir-media/weir/protocol"
)

func init() { register(newJobsCmd) }

// jobsConfig holds the flags every jobs subcommand shares.
type jobsConfig struct {
	Server   string `koanf:"server"`
	APIToken string `koanf:"api-token"`
	JSON     bool   `koanf:"json"`
	Wait     bool   `koanf:"wait"`
	Interval string `koanf:"interval"`
	Status   string `koanf:"status"`
	Stream   string `koanf:"stream"`
	Limit    int    `koanf:"limit"`
}

// jobsCreateConfig holds the flags of jobs create.
type jobsCreateConfig struct {
	jobsConfig     `koanf:",squash"`
	VOD            string   `koanf:"vod"`
	Live           string   `koanf:"live"`
	Topic          string   `koanf:"topic"`
	URL            string   `koanf:"url"`
	Engine         []string `koanf:"engine"`
	Title          string   `koanf:"title"`
	ChunkDuration  string   `koanf:"chunk-duration"`
	FrameRate      float64  `koanf:"frame-rate"`
	SceneThreshold float64  `koanf:"scene-threshold"`
	Audio          string   `koanf:"audio"`
}

// jobsResultsConfig holds the flags of jobs results.
type jobsResultsConfig struct {
	jobsConfig `koanf:",squash"`
	Engine     string `koanf:"engine"`
	From       string `koanf:"from"`
	To         string `koanf:"to"`
	Format     string `koanf:"format"`
	Kind       string `koanf:"kind"`
}

func newJobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Run engines over a VOD, a live stream, a topic or a URL, and read their results",
		Long: `jobs talks to a running weir serve (--server) over its REST API. A job cuts
one source into chunks (video, audio, still frames) and runs engines on
them; its results are vtn-standard documents on the source's timeline.
weir engines list shows the engines and their options; docs/api.md
describes jobs.`,
	}
	cmd.AddCommand(newJobsCreateCmd(), newJobsListCmd(), newJobsShowCmd(), newJobsCancelCmd(), newJobsResultsCmd())
	return cmd
}

// addJobsClientFlags adds the flags every jobs subcommand has.
func addJobsClientFlags(cmd *cobra.Command, configPath *string) {
	addStreamsClientFlags(cmd, configPath)
}

// addJobsWaitFlags adds --wait and --interval.
func addJobsWaitFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Bool("wait", false, "follow the job with a progress bar per engine until it ends; exit non-zero unless it completes")
	f.String("interval", "1s", "how often --wait asks the server")
}

func jobsClient(cfg jobsConfig) (*vodClient, time.Duration, error) {
	api, err := newAPIClient(cfg.Server, cfg.APIToken, time.Minute)
	if err != nil {
		return nil, 0, err
	}
	if !cfg.Wait {
		return api, 0, nil
	}
	interval, err := time.ParseDuration(cfg.Interval)
	if err != nil || interval <= 0 {
		return nil, 0, fmt.Errorf("--interval %q: want a positive duration such as 1s", cfg.Interval)
	}
	return api, interval, nil
}

func newJobsCreateCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "create (--vod ID | --live ID | --topic TOPIC | --url URL) --engine NAME[,key=value...]...",
		Short: "Create a job: run engines over a source",
		Long: `create sends POST /jobs with one source and one or more engines, and
prints the new job's id. Each --engine is an engine's name, optionally
followed by its options as key=value pairs after commas; the values are
typed by the engine's spec (weir engines show NAME), and a list option
takes several values: --engine probe,include=video,audio.

--chunk-duration, --frame-rate and --scene-threshold say how the source is
cut: video and audio chunks of about that duration, still frames at that
rate and on scene changes scoring above the threshold.

With --wait it then follows the job like weir jobs show --wait.`,
		Example: `  weir jobs create --vod vod-3e87dd00aab5 --engine probe --wait
  weir jobs create --live live-54390fa40812 --engine people,threshold=0.6 --frame-rate 2
  weir jobs create --topic stream_00000012 --engine probe,include=video,audio --chunk-duration 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg jobsCreateConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			api, interval, err := jobsClient(cfg.jobsConfig)
			if err != nil {
				return err
			}
			req, err := jobRequest(cmd.Context(), api, cfg)
			if err != nil {
				return err
			}
			return runJobsCreate(cmd, api, cfg, req, interval)
		},
	}
	addJobsClientFlags(cmd, &configPath)
	addJobsWaitFlags(cmd)
	f := cmd.Flags()
	f.String("vod", "", "source: the uploaded original of this VOD")
	f.String("live", "", "source: this live stream")
	f.String("topic", "", "source: this stream topic (stream_init, raw_stream..., stream_eof)")
	f.String("url", "", "source: this http(s) media URL")
	f.StringArray("engine", nil, "an engine to run, as NAME or NAME,key=value,... (repeatable)")
	f.String("title", "", "a title for the job")
	f.String("chunk-duration", "", "length of video and audio chunks, such as 10s (server default 10s)")
	f.Float64("frame-rate", 0, "still frames per second for image engines (server default 1)")
	f.Float64("scene-threshold", 0, "also take a frame on scene changes above this score, 0 to 1 (default off)")
	f.String("audio", "", "audio chunk format: wav (16 kHz mono, the default) or source")
	return cmd
}

func runJobsCreate(cmd *cobra.Command, api *vodClient, cfg jobsCreateConfig, req *jobs.Request, interval time.Duration) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var v jobs.View
	raw, err := api.postJSON(cmd.Context(), "/jobs", body, &v)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if cfg.JSON && !cfg.Wait {
		return printRawJSON(out, raw)
	}
	fmt.Fprintf(out, "Created %s (%s): %s on %s %s\n", v.ID, v.Status, strings.Join(engineNames(v), ", "), v.Source.Kind(), v.Source.Value())
	if !cfg.Wait {
		fmt.Fprintf(out, "Follow it with: weir jobs show %s --wait\n", v.ID)
		return nil
	}
	return waitForJob(cmd.Context(), api, v.ID, interval, out)
}

// jobRequest builds the POST /jobs body from the flags.
func jobRequest(ctx context.Context, api *vodClient, cfg jobsCreateConfig) (*jobs.Request, error) {
	req := &jobs.Request{
		Source: jobs.Source{VOD: cfg.VOD, Live: cfg.Live, Topic: cfg.Topic, URL: cfg.URL},
		Title:  cfg.Title,
		Chunking: jobs.Chunking{Duration: cfg.ChunkDuration, FrameRate: cfg.FrameRate,
			SceneThreshold: cfg.SceneThreshold, Audio: cfg.Audio},
	}
	set := 0
	for _, v := range []string{cfg.VOD, cfg.Live, cfg.Topic, cfg.URL} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("give exactly one source: --vod ID, --live ID, --topic TOPIC or --url URL")
	}
	if len(cfg.Engine) == 0 {
		return nil, errors.New("give at least one --engine NAME[,key=value...]; weir engines list shows them")
	}
	for _, arg := range cfg.Engine {
		e, err := parseEngineFlag(ctx, api, arg)
		if err != nil {
			return nil, err
		}
		req.Engines = append(req.Engines, e)
	}
	return req, nil
}

// parseEngineFlag reads one --engine value: NAME, then key=value pairs
// after commas; a part without '=' adds an item to the previous option,
// making it a list. Values are typed by the engine's spec when the server
// has it, else guessed (numbers, true/false, text).
func parseEngineFlag(ctx context.Context, api *vodClient, arg string) (jobs.EngineRequest, error) {
	parts := strings.Split(arg, ",")
	e := jobs.EngineRequest{Name: strings.TrimSpace(parts[0])}
	if e.Name == "" {
		return e, fmt.Errorf("--engine %q: starts with the engine's name", arg)
	}
	if len(parts) == 1 {
		return e, nil
	}
	var info engineInfo
	types := map[string]engine.OptionType{}
	if _, err := api.get(ctx, "/engines/"+url.PathEscape(e.Name), &info); err == nil {
		for _, o := range info.Spec.Options {
			types[o.Name] = o.Type
		}
	}
	raw := map[string][]string{}
	var order []string
	last := ""
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		switch {
		case ok && strings.TrimSpace(k) != "":
			last = strings.TrimSpace(k)
			if _, seen := raw[last]; !seen {
				order = append(order, last)
			}
			raw[last] = append(raw[last], v)
		case !ok && last != "":
			raw[last] = append(raw[last], p)
		default:
			return e, fmt.Errorf("--engine %q: %q is not key=value", arg, p)
		}
	}
	e.Options = map[string]any{}
	for _, k := range order {
		e.Options[k] = optionValue(types[k], raw[k])
	}
	return e, nil
}

// optionValue types the values given for one option.
func optionValue(t engine.OptionType, vals []string) any {
	if t == engine.TypeList || len(vals) > 1 {
		return vals
	}
	v := vals[0]
	switch t {
	case engine.TypeString, engine.TypeDuration:
		return v
	case engine.TypeInt, engine.TypeFloat:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		return v // the server names the problem
	case engine.TypeBool:
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
		return v
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}

// postJSON posts body as JSON and decodes the 2xx answer into v.
func (c *vodClient) postJSON(ctx context.Context, path string, body []byte, v any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, v)
}

func engineNames(v jobs.View) []string {
	names := make([]string, len(v.Engines))
	for i, e := range v.Engines {
		names[i] = e.Name
	}
	return names
}

func newJobsListCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first, with each engine's progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg jobsConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			api, _, err := jobsClient(cfg)
			if err != nil {
				return err
			}
			if cfg.Limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", cfg.Limit)
			}
			q := url.Values{}
			if cfg.Status != "" {
				q.Set("status", cfg.Status)
			}
			if cfg.Stream != "" {
				q.Set("stream", cfg.Stream)
			}
			page, err := listPagesQuery(cmd.Context(), api, "/jobs", q, cfg.Limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return vodWriteJSON(out, page)
			}
			items, err := decodeItems[jobs.View](page)
			if err != nil {
				return err
			}
			return printJobList(out, items)
		},
	}
	addJobsClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("status", "", "only jobs in this status (pending, running, complete, failed, cancelled)")
	f.String("stream", "", "only jobs on this VOD title or live stream (its id)")
	f.Int("limit", 50, "most jobs to list")
	return cmd
}

func printJobList(w io.Writer, items []jobs.View) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No jobs.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSOURCE\tENGINES (DONE/TOTAL)\tCREATED")
	for _, v := range items {
		progress := make([]string, len(v.Engines))
		for i, e := range v.Engines {
			progress[i] = fmt.Sprintf("%s %d/%d", e.Name, e.Done, e.Total)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\n", v.ID, v.Status, v.Source.Kind(), v.Source.Value(),
			strings.Join(progress, ", "), v.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func newJobsShowCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a job and each engine's progress; --wait follows it until it ends",
		Long: `show prints a job: its status (pending, running, complete, failed or
cancelled), its source and each engine's progress: chunks done of those cut
so far, dropped (an engine that fell behind a live source), failed, in
flight, the last heartbeat and the engine instances working on it.

With --wait it polls the job and draws one progress bar per engine (plain
lines when stdout is not a terminal) until the job ends. It exits non-zero
when the job fails or is cancelled.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg jobsConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			api, interval, err := jobsClient(cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.Wait {
				return waitForJob(cmd.Context(), api, args[0], interval, out)
			}
			var v jobs.View
			raw, err := api.get(cmd.Context(), "/jobs/"+url.PathEscape(args[0]), &v)
			if err != nil {
				return err
			}
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			return printJob(out, v)
		},
	}
	addJobsClientFlags(cmd, &configPath)
	addJobsWaitFlags(cmd)
	return cmd
}

func printJob(w io.Writer, v jobs.View) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, val string) {
		if val != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, val)
		}
	}
	row("ID", v.ID)
	row("Title", v.Title)
	row("Status", v.Status)
	row("Error", v.Error)
	row("Source", v.Source.Kind()+" "+v.Source.Value())
	row("Chunking", fmt.Sprintf("%s chunks, %g frames/s, audio %s", v.Chunking.Duration, v.Chunking.FrameRate, v.Chunking.Audio))
	row("Created", v.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tSTATUS\tDONE/TOTAL\tIN FLIGHT\tQUEUED\tIGNORED\tDROPPED\tFAILED\tHEARTBEAT\tINSTANCES")
	for _, e := range v.Engines {
		beat := "-"
		if e.LastHeartbeat != nil {
			beat = e.LastHeartbeat.Local().Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", e.Name, e.Status, e.Done, e.Total, e.Sent, e.Queued,
			e.Ignored, e.Dropped, e.Failed, beat, strings.Join(e.Instances, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range v.Engines {
		if e.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", e.Name, e.Error)
		}
	}
	return nil
}

func newJobsCancelCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a pending or running job (its results so far stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg jobsConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			api, _, err := jobsClient(cfg)
			if err != nil {
				return err
			}
			var v jobs.View
			raw, err := api.post(cmd.Context(), "/jobs/"+url.PathEscape(args[0])+"/cancel", &v)
			if err != nil {
				return err
			}
			if cfg.JSON {
				return printRawJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Cancelled %s\n", v.ID)
			return err
		},
	}
	addJobsClientFlags(cmd, &configPath)
	return cmd
}

// jobResult is one item of GET /jobs/{id}/results.
type jobResult struct {
	Engine     string          `json:"engine"`
	ChunkIndex int64           `json:"chunk_index"`
	StartMs    int64           `json:"start_ms"`
	EndMs      int64           `json:"end_ms"`
	OutputType string          `json:"output_type"`
	Content    json.RawMessage `json:"content"`
}

func newJobsResultsCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "results ID",
		Short: "Print a job's results in time order",
		Long: `results pages through GET /jobs/{id}/results: each engine output with its
time span on the source's timeline, its output type and its vtn-standard
document (shortened; --json prints the server's JSON whole). --engine keeps
one engine's, --from and --to the ones overlapping that span (durations
such as 1m30s, or seconds).

--format vtt or srt prints the whole job's texts of one kind as captions
instead (WebVTT or SubRip): --kind speech (the transcript, the default),
screen (lines read on screen) or keyword; --engine picks the engine when
several wrote that kind.`,
		Example: `  weir jobs results job-3e87dd00aab5 --engine people --from 1m --to 2m
  weir jobs results job-3e87dd00aab5 --json > results.json
  weir jobs results job-3e87dd00aab5 --format vtt > transcript.vtt
  weir jobs results job-3e87dd00aab5 --format srt --kind screen > onscreen.srt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg jobsResultsConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			api, _, err := jobsClient(cfg.jobsConfig)
			if err != nil {
				return err
			}
			q, err := resultsQuery(cfg)
			if err != nil {
				return err
			}
			if cfg.Format != "json" {
				q.Set("format", cfg.Format)
				return getTo(cmd.Context(), api, "/jobs/"+url.PathEscape(args[0])+"/results?"+q.Encode(), cmd.OutOrStdout())
			}
			page, err := listPagesQuery(cmd.Context(), api, "/jobs/"+url.PathEscape(args[0])+"/results", q, cfg.Limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return vodWriteJSON(out, page)
			}
			items, err := decodeItems[jobResult](page)
			if err != nil {
				return err
			}
			return printJobResults(out, items)
		},
	}
	addJobsClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("engine", "", "only this engine's results")
	f.String("from", "", "only results ending after this time, such as 90s or 1m30s")
	f.String("to", "", "only results starting before this time")
	f.Int("limit", 1000, "most results to print")
	f.String("format", "json", "json (the results), or vtt or srt (the whole job's texts of one kind as captions)")
	f.String("kind", "", "with --format vtt or srt: speech (default), screen or keyword")
	return cmd
}

// resultsQuery turns the flags into the query of GET /jobs/{id}/results.
func resultsQuery(cfg jobsResultsConfig) (url.Values, error) {
	if cfg.Limit < 1 {
		return nil, fmt.Errorf("--limit %d: must be at least 1", cfg.Limit)
	}
	switch {
	case cfg.Format != "json" && cfg.Format != "vtt" && cfg.Format != "srt":
		return nil, fmt.Errorf("--format %q: want json, vtt or srt", cfg.Format)
	case cfg.Kind != "" && cfg.Format == "json":
		return nil, errors.New("--kind selects the texts of --format vtt or srt")
	case cfg.Format != "json" && cfg.JSON:
		return nil, fmt.Errorf("--json and --format %s: choose one", cfg.Format)
	}
	q := url.Values{}
	if cfg.Kind != "" {
		q.Set("kind", cfg.Kind)
	}
	if cfg.Engine != "" {
		q.Set("engine", cfg.Engine)
	}
	for name, val := range map[string]string{"from": cfg.From, "to": cfg.To} {
		if val == "" {
			continue
		}
		ms, err := flagMillis(val)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %w", name, val, err)
		}
		q.Set(name, strconv.FormatInt(ms, 10))
	}
	return q, nil
}

// flagMillis reads a time on the source's timeline: a duration or seconds.
func flagMillis(s string) (int64, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	d, err := protocol.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 90s or 1m30s, or seconds")
	}
	return d.Milliseconds(), nil
}

// listPagesQuery pages through a list endpoint with extra query
// parameters until limit items are collected or the pages end.
func listPagesQuery(ctx context.Context, c *vodClient, path string, q url.Values, limit int) (*listedPage, error) {
	all := &listedPage{Items: []json.RawMessage{}}
	for len(all.Items) < limit {
		q.Set("limit", strconv.Itoa(min(limit-len(all.Items), 1000)))
		if all.NextCursor != "" {
			q.Set("cursor", all.NextCursor)
		}
		var page listedPage
		if _, err := c.get(ctx, path+"?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all.Items = append(all.Items, page.Items...)
		all.NextCursor = page.NextCursor
		if page.NextCursor == "" || len(page.Items) == 0 {
			break
		}
	}
	return all, nil
}

func printJobResults(w io.Writer, items []jobResult) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No results.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tEND\tENGINE\tTYPE\tCONTENT")
	for _, r := range items {
		var compact bytes.Buffer
		if err := json.Compact(&compact, r.Content); err != nil {
			compact.Reset()
			compact.Write(r.Content)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clockMs(r.StartMs), clockMs(r.EndMs), r.Engine, r.OutputType,
			shorten(compact.String(), 100))
	}
	return tw.Flush()
}

// clockMs formats milliseconds as m:ss.mmm, or h:mm:ss.mmm from an hour on.
func clockMs(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	return vodClock(d.Truncate(time.Second)) + fmt.Sprintf(".%03d", ms%1000)
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
