package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newVodCmd) }

// vodConfig holds the flags of the vod subcommands.
type vodConfig struct {
	Server   string `koanf:"server"`
	APIToken string `koanf:"api-token"`
	Title    string `koanf:"title"`
	Wait     bool   `koanf:"wait"`
	Interval string `koanf:"interval"`
	JSON     bool   `koanf:"json"`
	Status   string `koanf:"status"`
	Limit    int    `koanf:"limit"`
}

func newVodCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vod",
		Short: "Upload VOD titles and follow their transcode",
		Long: `vod talks to a running weir serve (--server) over its REST API: upload a
file for transcoding into a multi-bitrate HLS title, list titles, and show
one. docs/vod.md describes the pipeline.`,
	}
	cmd.AddCommand(newVodUploadCmd(), newVodListCmd(), newVodShowCmd(), newVodCancelCmd())
	return cmd
}

// addVodClientFlags adds the flags every vod subcommand has.
func addVodClientFlags(cmd *cobra.Command, configPath *string) {
	f := cmd.Flags()
	f.StringVar(configPath, "config", "", "YAML config file (default ./weir.yaml when present)")
	f.String("server", DefaultServerURL, "`URL` of a running weir serve")
	f.String("api-token", "", "bearer token, when the server requires one for uploads (WEIR_API_TOKEN)")
}

func loadVodConfig(cmd *cobra.Command, configPath string) (*vodConfig, *vodClient, error) {
	return loadClientConfig[vodConfig](cmd, configPath, 0)
}

func (c *vodConfig) login() (server, token string) { return c.Server, c.APIToken }

// clientConfig is a client command's settings that say which server to
// call and how to log in.
type clientConfig interface{ login() (server, token string) }

// loadClientConfig loads a client command's settings into a new T and
// makes the API client they name; timeout bounds each request (0: none).
func loadClientConfig[T any, P interface {
	*T
	clientConfig
}](cmd *cobra.Command, configPath string, timeout time.Duration) (*T, *vodClient, error) {
	cfg := new(T)
	if err := loadConfig(cmd, configPath, cfg); err != nil {
		return nil, nil, err
	}
	server, token := P(cfg).login()
	client, err := newAPIClient(server, token, timeout)
	if err != nil {
		return nil, nil, err
	}
	return cfg, client, nil
}

// newAPIClient checks a --server value and returns a client of that weir
// serve; timeout bounds each request (0: none, for uploads of any size).
func newAPIClient(server, token string, timeout time.Duration) (*vodClient, error) {
	base, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http(s) URL such as %s", server, DefaultServerURL)
	}
	return &vodClient{base: base.String(), token: token, http: &http.Client{Timeout: timeout}}, nil
}

func newVodUploadCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "upload FILE|URL",
		Short: "Upload a media file (or import an http(s) URL) for transcoding; --wait follows it to the playback URL",
		Long: `upload streams FILE to the server (POST /vod/upload, multipart) without
reading it into memory, showing a progress bar with speed and time left on
stderr (plain lines when stderr is not a terminal), and prints the new
title's id. An http:// or https:// URL instead of a file is imported by the
server, which downloads it itself (POST /vod/upload with {"url"}).

With --wait it then polls GET /vod/{id}/metadata, printing each status
(uploaded, processing, transcoding, ready or failed) with the time the
server recorded for it, a line when the title becomes playable (while the
rest of the ladder is still encoding), and finally the playback URL of the
master playlist. It exits non-zero when the title fails.`,
		Example: `  weir vod upload episode.mp4 --wait
  weir vod upload https://example.com/media/talk.mp4 --wait
  weir vod upload talk.m4a --title "Keynote" --server http://media.example.com:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadVodConfig(cmd, configPath)
			if err != nil {
				return err
			}
			interval, err := time.ParseDuration(cfg.Interval)
			if err != nil || interval <= 0 {
				return fmt.Errorf("--interval %q: want a positive duration such as 1s", cfg.Interval)
			}
			out := cmd.OutOrStdout()
			var up *vodUploadResult
			if isSourceURL(args[0]) {
				if up, err = vodImportURL(cmd.Context(), api, args[0], cfg.Title); err != nil {
					return err
				}
				fmt.Fprintf(out, "Importing %s as %s (status %s)\n", args[0], up.StreamID, up.Status)
			} else {
				if up, err = vodUploadFile(cmd.Context(), api, args[0], cfg.Title, cmd.ErrOrStderr()); err != nil {
					return err
				}
				fmt.Fprintf(out, "Uploaded %s as %s (status %s)\n", filepath.Base(args[0]), up.StreamID, up.Status)
			}
			if !cfg.Wait {
				fmt.Fprintf(out, "Follow it with: weir vod show %s\n", up.StreamID)
				return nil
			}
			return waitForVOD(cmd.Context(), api, up.StreamID, interval, out, cmd.ErrOrStderr())
		},
	}
	addVodClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("title", "", "title of the VOD (default: the file name)")
	f.Bool("wait", false, "follow the transcode, print each status change, then the playback URL")
	f.String("interval", "1s", "how often --wait polls the server")
	return cmd
}

func newVodListCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List VOD titles, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, api, err := loadVodConfig(cmd, configPath)
			if err != nil {
				return err
			}
			if cfg.Limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", cfg.Limit)
			}
			page, err := listPages(cmd.Context(), api, "/vod", cfg.Status, cfg.Limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return vodWriteJSON(out, page)
			}
			items, err := decodeItems[vodSummary](page)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				fmt.Fprintln(out, "No VOD titles.")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tPROGRESS\tCREATED\tTITLE")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.StreamID, it.Status, vodPercent(it.Progress),
					it.CreatedAt.Local().Format("2006-01-02 15:04:05"), it.Title)
			}
			return tw.Flush()
		},
	}
	addVodClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.Bool("json", false, "print the server's JSON (items and next_cursor) instead of a table")
	f.String("status", "", "only titles in this status (uploaded, processing, transcoding, ready, failed)")
	f.Int("limit", 50, "most titles to list")
	return cmd
}

func newVodShowCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a VOD title's status, stage times, renditions and playback URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadVodConfig(cmd, configPath)
			if err != nil {
				return err
			}
			raw, md, err := getVODMetadata(cmd.Context(), api, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			return printVOD(out, md)
		},
	}
	addVodClientFlags(cmd, &configPath)
	cmd.Flags().Bool("json", false, "print the metadata as JSON")
	return cmd
}

func newVodCancelCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a VOD title that is not ready yet (it ends failed, with error \"cancelled\")",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, api, err := loadVodConfig(cmd, configPath)
			if err != nil {
				return err
			}
			var st vodUploadResult
			if _, err := api.post(cmd.Context(), "/vod/"+url.PathEscape(args[0])+"/cancel", &st); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VOD %s cancelled (status %s)\n", st.StreamID, st.Status)
			return nil
		},
	}
	addVodClientFlags(cmd, &configPath)
	return cmd
}

// vodMetadata is the part of GET /vod/{id}/metadata the CLI shows.
type vodMetadata struct {
	StreamID            string               `json:"stream_id"`
	Title               string               `json:"title"`
	Status              string               `json:"status"`
	Error               string               `json:"error"`
	Progress            float64              `json:"progress"`
	CreatedAt           time.Time            `json:"created_at"`
	StageTimes          map[string]time.Time `json:"stage_times"`
	ProcessingLatencyMS int64                `json:"processing_latency_ms"`
	VariantsGenerated   []string             `json:"variants_generated"`
	ManifestPath        string               `json:"manifest_path"`
	ManifestURL         string               `json:"manifest_url"`
}

type vodSummary struct {
	StreamID  string    `json:"stream_id"`
	Title     string    `json:"title"`
	Status    string    `json:"status"`
	Progress  float64   `json:"progress"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type vodUploadResult struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
}

// vodStages is the order statuses are printed in.
var vodStages = []string{"uploaded", "processing", "transcoding", "ready", "failed"}

// vodClient calls weir's REST API.
type vodClient struct {
	base  string
	token string
	http  *http.Client
}

// do sends req and decodes a 2xx JSON answer into v (when not nil),
// returning the raw body. Other answers become errors carrying the
// problem document's detail.
func (c *vodClient) do(req *http.Request, v any) ([]byte, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("cannot reach weir at %s (is `weir serve` running? set --server): %w", c.base, ue.Err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		var problem struct {
			Detail string `json:"detail"`
			Title  string `json:"title"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &problem) == nil && (problem.Detail != "" || problem.Title != "") {
			msg = problem.Detail
			if msg == "" {
				msg = problem.Title
			}
		}
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, msg)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer: %w", req.Method, req.URL.Path, err)
		}
	}
	return body, nil
}

func (c *vodClient) get(ctx context.Context, path string, v any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	return c.do(req, v)
}

func (c *vodClient) post(ctx context.Context, path string, v any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	return c.do(req, v)
}

// vodUploadFile streams file as a multipart upload. The multipart framing is
// built around the file, so the request has an exact Content-Length (the
// server can refuse an oversized upload before it is sent) and the file is
// read once, in small pieces.
func vodUploadFile(ctx context.Context, c *vodClient, file, title string, progress io.Writer) (*vodUploadResult, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", file)
	}

	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if title != "" {
		if err := mw.WriteField("title", title); err != nil {
			return nil, err
		}
	}
	name := filepath.Base(file)
	ctype := mime.TypeByExtension(filepath.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, vodQuoteEscaper.Replace(name)))
	h.Set("Content-Type", ctype)
	if _, err := mw.CreatePart(h); err != nil {
		return nil, err
	}
	tail := "\r\n--" + mw.Boundary() + "--\r\n"

	bar := newVodProgressBar(progress, name, fi.Size())
	body := io.MultiReader(&head, &vodCountingReader{r: f, onRead: bar.add}, strings.NewReader(tail))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/vod/upload", body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(head.Len()) + fi.Size() + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var res vodUploadResult
	_, err = c.do(req, &res)
	bar.finish(err == nil)
	if err != nil {
		return nil, fmt.Errorf("uploading %s: %w", file, err)
	}
	return &res, nil
}

// isSourceURL reports whether arg names an http(s) URL rather than a file.
func isSourceURL(arg string) bool {
	lower := strings.ToLower(arg)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")
}

// vodImportURL asks the server to import the title from src (it downloads
// the source itself).
func vodImportURL(ctx context.Context, c *vodClient, src, title string) (*vodUploadResult, error) {
	body, err := json.Marshal(map[string]string{"url": src, "title": title})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/vod/upload", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var res vodUploadResult
	if _, err := c.do(req, &res); err != nil {
		return nil, fmt.Errorf("importing %s: %w", src, err)
	}
	return &res, nil
}

var vodQuoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

type vodCountingReader struct {
	r      io.Reader
	onRead func(int64)
}

func (c *vodCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.onRead(int64(n))
	}
	return n, err
}

// vodProgressBar draws upload progress with the speed so far and the time
// left at that speed: a redrawn bar on a terminal, a plain line every 10 %
// otherwise (logs, CI), and a summary line once the upload is done.
type vodProgressBar struct {
	w         io.Writer
	name      string
	total     int64
	done      int64
	tty       bool
	now       func() time.Time
	started   time.Time
	lastDraw  time.Time
	lastDecil int64
}

func newVodProgressBar(w io.Writer, name string, total int64) *vodProgressBar {
	b := &vodProgressBar{w: w, name: name, total: total, tty: vodIsTerminal(w), now: time.Now}
	b.started = b.now()
	if !b.tty {
		fmt.Fprintf(w, "Uploading %s (%s)\n", name, vodHumanSize(total))
	}
	return b
}

func (b *vodProgressBar) add(n int64) {
	b.done += n
	if b.tty {
		if b.now().Sub(b.lastDraw) >= 100*time.Millisecond || b.done == b.total {
			b.draw()
		}
		return
	}
	if decil := b.pct() / 10; decil > b.lastDecil && b.total > 0 {
		b.lastDecil = decil
		line := fmt.Sprintf("  %3d %%  %s / %s", b.pct(), vodHumanSize(b.done), vodHumanSize(b.total))
		if b.done < b.total {
			line += "  " + b.rate()
		}
		fmt.Fprintln(b.w, line)
	}
}

func (b *vodProgressBar) pct() int64 {
	if b.total <= 0 {
		return 100
	}
	return b.done * 100 / b.total
}

// speed is the average upload speed so far in bytes per second, or 0 when
// too little time has passed to tell.
func (b *vodProgressBar) speed() float64 {
	elapsed := b.now().Sub(b.started).Seconds()
	if elapsed < 0.05 || b.done == 0 {
		return 0
	}
	return float64(b.done) / elapsed
}

// rate says how fast the upload goes and how long the rest takes at that
// speed: "12.5 MiB/s, 0:42 left".
func (b *vodProgressBar) rate() string {
	sp := b.speed()
	if sp == 0 {
		return "measuring speed"
	}
	left := time.Duration(float64(b.total-b.done) / sp * float64(time.Second))
	return fmt.Sprintf("%s/s, %s left", vodHumanSize(int64(sp)), vodClock(left))
}

// vodClock formats d as m:ss, or h:mm:ss from an hour on.
func vodClock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func (b *vodProgressBar) draw() {
	b.lastDraw = b.now()
	const width = 30
	filled := int(b.pct() * width / 100)
	fmt.Fprintf(b.w, "\r\033[KUploading %s [%s%s] %3d %%  %s / %s  %s", b.name,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), b.pct(), vodHumanSize(b.done), vodHumanSize(b.total), b.rate())
}

func (b *vodProgressBar) finish(ok bool) {
	if b.tty {
		b.draw()
		fmt.Fprintln(b.w)
	}
	if !ok {
		if !b.tty {
			fmt.Fprintf(b.w, "  upload stopped at %d %%\n", b.pct())
		}
		return
	}
	elapsed := b.now().Sub(b.started)
	avg := ""
	if sp := b.speed(); sp > 0 {
		avg = ", " + vodHumanSize(int64(sp)) + "/s"
	}
	fmt.Fprintf(b.w, "  sent %s in %.1f s%s\n", vodHumanSize(b.done), elapsed.Seconds(), avg)
}

// vodIsTerminal reports whether w is a character device (a terminal).
func vodIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func vodHumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// waitForVOD polls the title's metadata until it is ready or failed,
// printing each status once, with the stage time the server recorded, then
// the playback URL. A failed title is an error.
func waitForVOD(ctx context.Context, c *vodClient, id string, interval time.Duration, out, errw io.Writer) error {
	fmt.Fprintf(out, "Watching %s:\n", id)
	printed := map[string]bool{}
	tty := vodIsTerminal(errw)
	lastProgress := ""
	playable := false
	for {
		_, md, err := getVODMetadata(ctx, c, id)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped watching %s; the transcode goes on on the server", id)
			}
			return err
		}
		for _, stage := range vodStages {
			at, ok := md.StageTimes[stage]
			if stage == md.Status && !ok {
				at, ok = time.Now(), true
			}
			if !ok || printed[stage] {
				continue
			}
			printed[stage] = true
			if tty && lastProgress != "" {
				fmt.Fprint(errw, "\r\033[K")
				lastProgress = ""
			}
			fmt.Fprintf(out, "  [%s] ● %-12s %s\n", at.Local().Format("15:04:05"), stage, vodStageNote(stage, md))
		}
		if md.Status == "transcoding" && !playable {
			// The ladder is published progressively: the master playlist
			// appears once every rendition has its first segment, and
			// players can start while the rest encodes.
			if playable = vodMasterExists(ctx, c, id); playable {
				if tty && lastProgress != "" {
					fmt.Fprint(errw, "\r\033[K")
					lastProgress = ""
				}
				fmt.Fprintf(out, "  [%s] ● %-12s — %s (the rest of the ladder is still encoding)\n",
					time.Now().Local().Format("15:04:05"), "playable", vodMasterURL(c, id))
			}
		}
		if tty && md.Status == "transcoding" {
			if p := vodPercent(md.Progress); p != lastProgress {
				fmt.Fprintf(errw, "\r  transcoding %s ", p)
				lastProgress = p
			}
		}
		switch md.Status {
		case "ready":
			var man struct {
				URL string `json:"url"`
			}
			if _, err := c.get(ctx, "/vod/"+url.PathEscape(id)+"/manifest", &man); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nPlayback URL (HLS master playlist):\n  %s\n", man.URL)
			return nil
		case "failed":
			return &exitError{code: 1, err: fmt.Errorf("vod %s failed: %s", id, md.Error)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped watching %s; the transcode goes on on the server", id)
		case <-time.After(interval):
		}
	}
}

// vodMasterURL is where the server serves the title's master playlist.
func vodMasterURL(c *vodClient, id string) string {
	return c.base + "/hls/" + url.PathEscape(id) + "/master.m3u8"
}

// vodMasterExists reports whether the title's master playlist is served
// yet, which is when a player can start.
func vodMasterExists(ctx context.Context, c *vodClient, id string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, vodMasterURL(c, id), nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode == http.StatusOK
}

// vodStageNote is what a status line says besides the status.
func vodStageNote(stage string, md *vodMetadata) string {
	switch stage {
	case "uploaded":
		return "— stored, waiting for a transcoder"
	case "processing":
		return "— fetching and probing the source"
	case "transcoding":
		return "— encoding the ladder (playable once every rendition has its first segment)"
	case "ready":
		note := "— " + strings.Join(md.VariantsGenerated, ", ")
		if md.ProcessingLatencyMS > 0 {
			note += fmt.Sprintf(" in %.1f s", float64(md.ProcessingLatencyMS)/1000)
		}
		return note
	case "failed":
		return "— " + md.Error
	}
	return ""
}

func getVODMetadata(ctx context.Context, c *vodClient, id string) ([]byte, *vodMetadata, error) {
	var md vodMetadata
	raw, err := c.get(ctx, "/vod/"+url.PathEscape(id)+"/metadata", &md)
	if err != nil {
		return nil, nil, err
	}
	return raw, &md, nil
}

// listedPage is what a list command fetched: the items exactly as the
// server sent them, and the cursor of the page after them (empty when the
// last page was reached).
type listedPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// listPages pages through the list endpoint path (GET /vod, GET /streams,
// GET /jobs), filtered by status when given, until limit items are
// collected or the pages end.
func listPages(ctx context.Context, c *vodClient, path, status string, limit int) (*listedPage, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return listPagesQuery(ctx, c, path, q, limit)
}

// decodeItems decodes a page's items into the fields a table shows.
func decodeItems[T any](page *listedPage) ([]T, error) {
	items := make([]T, 0, len(page.Items))
	for _, raw := range page.Items {
		var it T
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, fmt.Errorf("unexpected list item %s: %w", raw, err)
		}
		items = append(items, it)
	}
	return items, nil
}

func printVOD(w io.Writer, md *vodMetadata) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("ID", md.StreamID)
	row("Title", md.Title)
	row("Status", md.Status)
	if md.Status == "transcoding" {
		row("Progress", vodPercent(md.Progress))
	}
	row("Error", md.Error)
	row("Variants", strings.Join(md.VariantsGenerated, ", "))
	if md.ProcessingLatencyMS > 0 {
		row("Latency", fmt.Sprintf("%.1f s (upload to ready)", float64(md.ProcessingLatencyMS)/1000))
	}
	row("Manifest", md.ManifestURL)
	stages := make([]string, 0, len(md.StageTimes))
	for s := range md.StageTimes {
		stages = append(stages, s)
	}
	order := func(s string) int {
		for i, v := range vodStages {
			if v == s {
				return i
			}
		}
		return len(vodStages)
	}
	sort.Slice(stages, func(i, j int) bool { return order(stages[i]) < order(stages[j]) })
	for _, s := range stages {
		row(strings.ToUpper(s[:1])+s[1:], md.StageTimes[s].Local().Format("2006-01-02 15:04:05.000"))
	}
	return tw.Flush()
}

func vodPercent(p float64) string { return strconv.FormatFloat(p, 'f', 1, 64) + " %" }

func vodWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
