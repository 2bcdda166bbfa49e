package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/internal/live"
)

func init() { register(newStreamsCmd) }

// streamsConfig holds the flags of the streams subcommands.
type streamsConfig struct {
	Server      string `koanf:"server"`
	APIToken    string `koanf:"api-token"`
	Title       string `koanf:"title"`
	SourceURL   string `koanf:"source-url"`
	SourceCheck string `koanf:"source-check"`
	// SRTPassphrase is start's --srt-passphrase (or WEIR_SRT_PASSPHRASE).
	SRTPassphrase string `koanf:"srt-passphrase"`
	JSON          bool   `koanf:"json"`
	Status        string `koanf:"status"`
	Limit         int    `koanf:"limit"`
}

func newStreamsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Start, end, list and inspect live streams",
		Long: `streams talks to a running weir serve (--server) over its REST API. A live
stream is created with a secret publish key; push to it from OBS or ffmpeg
over RTMP or SRT (or give --source-url to have weir pull it), watch the
live HLS playlist while it runs, and end it to turn it into VOD.
docs/live.md describes the live pipeline.`,
	}
	cmd.AddCommand(newStreamsStartCmd(), newStreamsEndCmd(), newStreamsListCmd(), newStreamsShowCmd())
	return cmd
}

func addStreamsClientFlags(cmd *cobra.Command, configPath *string) {
	f := cmd.Flags()
	f.StringVar(configPath, "config", "", "YAML config file (default ./weir.yaml when present)")
	f.String("server", DefaultServerURL, "`URL` of a running weir serve")
	f.String("api-token", "", "bearer token, when the server requires one for changes (WEIR_API_TOKEN)")
	f.Bool("json", false, "print the server's JSON answer instead of text")
}

func loadStreamsConfig(cmd *cobra.Command, configPath string) (*streamsConfig, *vodClient, error) {
	return loadClientConfig[streamsConfig](cmd, configPath, time.Minute)
}

func (c *streamsConfig) login() (server, token string) { return c.Server, c.APIToken }

// streamStarted is the answer of POST /streams/start.
type streamStarted struct {
	StreamID   string `json:"stream_id"`
	Status     string `json:"status"`
	Title      string `json:"title"`
	SourceURL  string `json:"source_url"`
	PublishKey string `json:"publish_key"`
	// SRTPassphrase is the passphrase the stream was started with.
	SRTPassphrase string `json:"srt_passphrase"`
	Publish       struct {
		RTMP      string `json:"rtmp"`
		RTMPS     string `json:"rtmps"`
		SRT       string `json:"srt"`
		HTTP      string `json:"http"`
		WebSocket string `json:"websocket"`
	} `json:"publish"`
	Playback string `json:"playback"`
	// Master and Ladder are set for a stream with a live ABR ladder.
	Master string   `json:"master"`
	Ladder []string `json:"ladder"`
}

func newStreamsStartCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Create a live stream and print where to publish and where to watch it",
		Long: `start creates a live stream (POST /streams/start) and prints its publish
URLs (RTMP and SRT, carrying the stream's secret publish key) and its
playback URL (the live HLS playlist). With --source-url weir pulls the
stream itself (an HTTP MPEG-TS feed or an Icecast AAC/MP3 station) instead
of waiting for a publisher. A pulled source is watched for --source-check
(5 s by default): one that fails in that time (refused, not found, not
media) makes start exit non-zero with the server's error instead of
reporting the stream created. With --srt-passphrase (10 to 79 characters)
SRT publishers must encrypt with that passphrase; the SRT URL printed
carries it, and it is not shown again. When weir serve runs with --rtmps,
an RTMPS URL is printed too.`,
		Example: `  weir streams start --title "Match day"
  ffmpeg -re -i input.mp4 -c:v libx264 -g 50 -c:a aac -f flv rtmp://127.0.0.1:1935/live/KEY
  weir streams start --title Radio --source-url http://radio.example.com/live.aac
  WEIR_SRT_PASSPHRASE=$(openssl rand -hex 16) weir streams start --title Secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, api, err := loadStreamsConfig(cmd, configPath)
			if err != nil {
				return err
			}
			check, err := time.ParseDuration(cfg.SourceCheck)
			if err != nil || check < 0 {
				return fmt.Errorf("--source-check %q: want a duration such as 5s (0 skips the check)", cfg.SourceCheck)
			}
			fields := map[string]any{"title": cfg.Title, "source_url": cfg.SourceURL}
			if cfg.SRTPassphrase != "" {
				fields["srt_passphrase"] = cfg.SRTPassphrase
			}
			if f := cmd.Flags().Lookup("ll-hls"); f != nil && f.Changed {
				// Given, even false: false turns the server's default off.
				fields["ll_hls"] = f.Value.String() == "true"
			}
			if f := cmd.Flags().Lookup("ladder"); f != nil && f.Changed {
				// Given, even empty: "" turns the server's default off.
				fields["ladder"] = ladderItems(f.Value.String())
			}
			body, _ := json.Marshal(fields)
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, api.base+"/streams/start", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			var st streamStarted
			raw, err := api.do(req, &st)
			if err != nil {
				return err
			}
			status := st.Status
			if cfg.SourceURL != "" && check > 0 {
				if status, err = watchPulledSource(cmd.Context(), api, st.StreamID, check); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			return printStarted(out, st, status)
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("title", "", "title of the stream")
	f.String("source-url", "", "pull the stream from this URL instead of waiting for a publisher")
	f.String("srt-passphrase", "", "SRT publishers must encrypt with this passphrase, 10 to 79 characters (prefer WEIR_SRT_PASSPHRASE: a flag shows in ps)")
	f.String("source-check", "5s", "with --source-url: how long to watch for the source failing before reporting the stream created (0 skips)")
	f.Bool("ll-hls", false, "package the stream as Low-Latency HLS: fMP4 parts, blocking playlist reload (default: the server's --live-ll-hls; --ll-hls=false turns it off)")
	f.String("ladder", "", "live ABR ladder, rungs NAME=BITRATE highest first, such as 480p=1400k,360p=800k (default: the server's --live-ladder; --ladder '' turns it off)")
	return cmd
}

// ladderItems splits --ladder into the API's ladder items; "" is none.
func ladderItems(spec string) []string {
	items := []string{}
	for _, it := range strings.Split(spec, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	return items
}

// watchPulledSource polls a pulled stream for up to d and returns its
// status: as soon as media arrived (live), or what it is when d is over. A
// stream that failed meanwhile (the server could not pull the source) is an
// error carrying the server's reason.
func watchPulledSource(ctx context.Context, api *vodClient, id string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		var md streamMetadata
		if _, err := api.get(ctx, "/streams/"+url.PathEscape(id)+"/metadata", &md); err != nil {
			return "", err
		}
		switch {
		case md.Status == "failed":
			return "", &exitError{code: 1, err: fmt.Errorf("live stream %s failed: %s", id, md.Error)}
		case md.Status != "created" || !time.Now().Before(deadline):
			return md.Status, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func printStarted(w io.Writer, st streamStarted, status string) error {
	title := ""
	if st.Title != "" {
		title = fmt.Sprintf(" %q", st.Title)
	}
	fmt.Fprintf(w, "Live stream %s%s created (status %s).\n\n", st.StreamID, title, status)
	if st.SourceURL != "" {
		fmt.Fprintf(w, "Pulling from  %s\n", st.SourceURL)
		if status == "created" {
			fmt.Fprintln(w, "  no media from the source yet; weir keeps trying (weir streams show "+st.StreamID+" tells how it goes)")
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "Publish with RTMP  %s\n", st.Publish.RTMP)
		if server, key, ok := splitRTMP(st.Publish.RTMP); ok {
			fmt.Fprintf(w, "  (OBS: server %s, stream key %s)\n", server, key)
		}
		if st.Publish.RTMPS != "" {
			fmt.Fprintf(w, "Publish with RTMPS %s\n", st.Publish.RTMPS)
		}
		fmt.Fprintf(w, "Publish with SRT   %s\n", st.Publish.SRT)
		if st.SRTPassphrase != "" {
			fmt.Fprintf(w, "  (SRT encrypted with passphrase %s; publishers without it are refused)\n", st.SRTPassphrase)
		}
		if st.Publish.HTTP != "" {
			fmt.Fprintf(w, "Publish over HTTP  %s\n", st.Publish.HTTP)
			fmt.Fprintf(w, "  (PUT or POST MPEG-TS: ffmpeg ... -f mpegts -method PUT URL; WebSocket: %s)\n", st.Publish.WebSocket)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "The publish key is shown only now; anyone who has it can publish to this stream.")
	}
	fmt.Fprintf(w, "Watch              %s\n", st.Playback)
	if st.Master != "" {
		fmt.Fprintf(w, "Watch the ladder   %s (%s)\n", st.Master, strings.Join(st.Ladder, ", "))
	}
	fmt.Fprintf(w, "End it with        weir streams end %s\n", st.StreamID)
	return nil
}

// splitRTMP splits rtmp://host/live/KEY into OBS's server and stream key.
func splitRTMP(u string) (server, key string, ok bool) {
	i := strings.LastIndex(u, "/")
	if i < 0 || !strings.HasPrefix(u, "rtmp") {
		return "", "", false
	}
	return u[:i], u[i+1:], true
}

func newStreamsEndCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "end ID",
		Short: "End a live stream; its playlist gets EXT-X-ENDLIST and it becomes VOD",
		Long: `end asks the live pipeline to finish the stream (POST /streams/{id}/end):
the last segment is flushed, the playlists are closed with EXT-X-ENDLIST and
the stream moves to status vod, keeping every segment as a VOD title. The
publisher, if still connected, is disconnected. A stream that never received
media becomes vod at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadStreamsConfig(cmd, configPath)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, api.base+"/streams/"+url.PathEscape(args[0])+"/end", nil)
			if err != nil {
				return err
			}
			var st struct {
				StreamID string `json:"stream_id"`
				Status   string `json:"status"`
				Playback string `json:"playback"`
			}
			raw, err := api.do(req, &st)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			if st.Status == "vod" {
				fmt.Fprintf(out, "Live stream %s ended; it is now VOD: %s\n", st.StreamID, st.Playback)
			} else {
				fmt.Fprintf(out, "Live stream %s is ending (status %s); it becomes VOD once its playlist is closed: %s\n",
					st.StreamID, st.Status, st.Playback)
			}
			return nil
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	return cmd
}

// streamSummary is one item of GET /streams.
type streamSummary struct {
	StreamID  string    `json:"stream_id"`
	Title     string    `json:"title"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

func newStreamsListCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List live streams, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, api, err := loadStreamsConfig(cmd, configPath)
			if err != nil {
				return err
			}
			if cfg.Limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", cfg.Limit)
			}
			page, err := listPages(cmd.Context(), api, "/streams", cfg.Status, cfg.Limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return vodWriteJSON(out, page)
			}
			items, err := decodeItems[streamSummary](page)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				fmt.Fprintln(out, "No live streams.")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tCREATED\tTITLE")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.StreamID, it.Status, it.CreatedAt.Local().Format("2006-01-02 15:04:05"), it.Title)
			}
			return tw.Flush()
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("status", "", "only streams in this status (created, live, vod, failed)")
	f.Int("limit", 50, "most streams to list")
	return cmd
}

// streamMetadata is GET /streams/{id}/metadata.
type streamMetadata struct {
	StreamID         string               `json:"stream_id"`
	Title            string               `json:"title"`
	Status           string               `json:"status"`
	Error            string               `json:"error"`
	SourceURL        string               `json:"source_url"`
	CreatedAt        time.Time            `json:"created_at"`
	StageTimes       map[string]time.Time `json:"stage_times"`
	SegmentCount     int64                `json:"segment_count"`
	Gaps             int64                `json:"gaps"`
	ChecksumFailures int64                `json:"checksum_failures"`
	Playback         string               `json:"playback"`
	Ladder           []string             `json:"ladder"`
	Details          *live.Details        `json:"details"`
}

func newStreamsShowCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a live stream's status, segments, DVR window, latency and playback URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadStreamsConfig(cmd, configPath)
			if err != nil {
				return err
			}
			var md streamMetadata
			raw, err := api.get(cmd.Context(), "/streams/"+url.PathEscape(args[0])+"/metadata", &md)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			return printStream(out, md)
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	return cmd
}

func printStream(w io.Writer, md streamMetadata) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Stream\t%s\n", md.StreamID)
	if md.Title != "" {
		fmt.Fprintf(tw, "Title\t%s\n", md.Title)
	}
	fmt.Fprintf(tw, "Status\t%s\n", md.Status)
	if md.Error != "" {
		fmt.Fprintf(tw, "Error\t%s\n", md.Error)
	}
	if md.SourceURL != "" {
		fmt.Fprintf(tw, "Source\t%s\n", md.SourceURL)
	}
	fmt.Fprintf(tw, "Created\t%s\n", md.CreatedAt.Local().Format(time.RFC3339))
	stages := make([]string, 0, len(md.StageTimes))
	for s := range md.StageTimes {
		stages = append(stages, s)
	}
	sort.Slice(stages, func(i, j int) bool { return md.StageTimes[stages[i]].Before(md.StageTimes[stages[j]]) })
	for _, s := range stages {
		fmt.Fprintf(tw, "  %s at\t%s\n", s, md.StageTimes[s].Local().Format("15:04:05.000"))
	}
	fmt.Fprintf(tw, "Segments\t%d (gaps %d, checksum failures %d)\n", md.SegmentCount, md.Gaps, md.ChecksumFailures)
	if d := md.Details; d != nil {
		if d.Window.Segments > 0 {
			fmt.Fprintf(tw, "DVR window\tsegments %d–%d (%d, %.1f s), target duration %d s\n",
				d.Window.FirstSequence, d.Window.LastSequence, d.Window.Segments, d.Window.DurationSeconds, d.TargetDurationSeconds)
		}
		if d.Latency.Samples > 0 {
			fmt.Fprintf(tw, "Publish latency\tp50 %.1f ms, p99 %.1f ms (last %d segments)\n", d.Latency.P50, d.Latency.P99, d.Latency.Samples)
		}
		if !d.LastSegmentAt.IsZero() {
			fmt.Fprintf(tw, "Last segment\t%s\n", d.LastSegmentAt.Local().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(tw, "Playback\t%s\n", md.Playback)
	if len(md.Ladder) > 0 {
		fmt.Fprintf(tw, "Ladder\t%s (master.m3u8 lists them with the source)\n", strings.Join(md.Ladder, ", "))
	}
	return tw.Flush()
}

func printRawJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
