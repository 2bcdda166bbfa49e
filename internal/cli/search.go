package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newSearchCmd) }

// searchConfig holds the flags of search.
type searchConfig struct {
	Server   string `koanf:"server"`
	APIToken string `koanf:"api-token"`
	JSON     bool   `koanf:"json"`
	Stream   string `koanf:"stream"`
	Job      string `koanf:"job"`
	Engine   string `koanf:"engine"`
	Kind     string `koanf:"kind"`
	Limit    int    `koanf:"limit"`
}

func (c *searchConfig) login() (server, token string) { return c.Server, c.APIToken }

// searchHit is one item of GET /search.
type searchHit struct {
	JobID    string `json:"job_id"`
	StreamID string `json:"stream_id"`
	Source   string `json:"source"`
	Title    string `json:"title"`
	Engine   string `json:"engine"`
	Kind     string `json:"kind"`
	StartMs  int64  `json:"start_ms"`
	EndMs    int64  `json:"end_ms"`
	Snippet  string `json:"snippet"`
}

// searchPage is GET /search's answer.
type searchPage struct {
	Query      string            `json:"query"`
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// maxSearchPage is the largest page GET /search gives.
const maxSearchPage = 100

func newSearchCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "search QUERY...",
		Short: "Find words in the transcripts, on-screen text and keywords of every job",
		Long: `search asks GET /search of a running weir serve (--server) for the texts of
the engines' results (what was said, what was read on screen, the keywords
spotted) that hold every word of QUERY, across all titles and streams, best
first. Each hit shows where it is: its time on the source's timeline, the
job, the stream and the engine; the matched words are shown in bold on a
terminal, in [brackets] otherwise. "A quoted phrase" (quoted for the
shell too) must match word after word; the last word also matches as a
prefix. docs/results.md describes the query language.`,
		Example: `  weir search coffee
  weir search '"cup of coffee"' --stream vod-1f2e3d4c5b6a
  weir search breaking news --kind screen --json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadClientConfig[searchConfig](cmd, configPath, time.Minute)
			if err != nil {
				return err
			}
			if cfg.Limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", cfg.Limit)
			}
			page, err := searchPages(cmd.Context(), api, strings.Join(args, " "), cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return vodWriteJSON(out, page)
			}
			items, err := decodeItems[searchHit](&listedPage{Items: page.Items})
			if err != nil {
				return err
			}
			return printSearchHits(out, page.Query, items, vodIsTerminal(out))
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("stream", "", "only the results of jobs on this VOD title or live stream")
	f.String("job", "", "only this job's results")
	f.String("engine", "", "only this engine's results")
	f.String("kind", "", "only texts of this kind: speech, screen or keyword")
	f.Int("limit", 20, "most hits to print")
	return cmd
}

// searchPages asks GET /search for up to cfg.Limit hits, page after page.
func searchPages(ctx context.Context, api *vodClient, query string, cfg *searchConfig) (*searchPage, error) {
	q := url.Values{"q": {query}}
	for name, val := range map[string]string{"stream": cfg.Stream, "job": cfg.Job, "engine": cfg.Engine, "kind": cfg.Kind} {
		if val != "" {
			q.Set(name, val)
		}
	}
	all := &searchPage{Items: []json.RawMessage{}}
	for len(all.Items) < cfg.Limit {
		q.Set("limit", strconv.Itoa(min(cfg.Limit-len(all.Items), maxSearchPage)))
		if all.NextCursor != "" {
			q.Set("cursor", all.NextCursor)
		}
		var page searchPage
		if _, err := api.get(ctx, "/search?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all.Query = page.Query
		all.Items = append(all.Items, page.Items...)
		all.NextCursor = page.NextCursor
		if page.NextCursor == "" || len(page.Items) == 0 {
			break
		}
	}
	return all, nil
}

func printSearchHits(w io.Writer, query string, hits []searchHit, tty bool) error {
	if len(hits) == 0 {
		_, err := fmt.Fprintf(w, "Nothing found for %s.\n", query)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTREAM\tJOB\tENGINE\tKIND\tTEXT")
	for _, h := range hits {
		stream := h.StreamID
		if stream == "" {
			stream = "(" + h.Source + ")"
		}
		fmt.Fprintf(tw, "%s-%s\t%s\t%s\t%s\t%s\t%s\n", clockMs(h.StartMs), clockMs(h.EndMs), stream, h.JobID,
			h.Engine, h.Kind, snippetText(h.Snippet, tty))
	}
	return tw.Flush()
}

// snippetText turns a hit's HTML snippet into text: the matched words in
// bold on a terminal, in [brackets] otherwise.
func snippetText(snippet string, tty bool) string {
	open, close := "[", "]"
	if tty {
		open, close = "\x1b[1m", "\x1b[0m"
	}
	s := strings.NewReplacer("<mark>", open, "</mark>", close).Replace(snippet)
	return html.UnescapeString(s)
}

// getTo copies the body of GET path to w (a caption export, which may be
// larger than the JSON answers vodClient.do reads whole); an error answer
// is read as a problem.
func getTo(ctx context.Context, c *vodClient, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach weir at %s (is `weir serve` running? set --server): %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var problem struct {
			Detail string `json:"detail"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &problem) == nil && problem.Detail != "" {
			msg = problem.Detail
		}
		return fmt.Errorf("GET %s: %s: %s", req.URL.Path, resp.Status, msg)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	return nil
}
