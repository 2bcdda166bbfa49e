package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newRulesCmd) }

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Manage alert rules",
		Long: `rules manages the alert rules weir evaluates over what the engines find
(POST /rules, docs/alerts.md): add creates one from flags or a JSON file,
list shows them, remove deletes one. A rule's alerts go to the weir.alerts
topic and to its webhooks, signed with the rule's secret, which add prints
once.`,
	}
	cmd.AddCommand(newRulesAddCmd(), newRulesListCmd(), newRulesRemoveCmd())
	return cmd
}

// ruleInfo is a rule as the API gives it.
type ruleInfo struct {
	ID        string                     `json:"id"`
	Name      string                     `json:"name"`
	Condition map[string]json.RawMessage `json:"condition"`
	Scope     map[string]json.RawMessage `json:"scope"`
	Cooldown  string                     `json:"cooldown"`
	Webhooks  []struct {
		URL string `json:"url"`
	} `json:"webhooks"`
	Secret    string    `json:"secret"`
	CreatedAt time.Time `json:"created_at"`
}

// ruleFlags are add's flags; only those given go in the request.
type ruleFlags struct {
	file                                          string
	name, typ, engine, phrase, pattern, reference string
	label, measure, minDuration, cooldown         string
	retryFor, secret, stream, title, job          string
	minCount                                      int
	minScore, minLUFS, maxLUFS                    float64
	webhooks                                      []string
}

func newRulesAddCmd() *cobra.Command {
	var configPath string
	var f ruleFlags
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Create an alert rule",
		Example: `  weir rules add --name "dead air" --type silence --min-duration 5s --stream live-54390fa40812 \
      --webhook https://hooks.example.com/weir
  weir rules add --name coffee --type keyword --phrase "cup of coffee" --cooldown 30s
  weir rules add --file rule.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, api, err := loadEnginesConfig(cmd, configPath)
			if err != nil {
				return err
			}
			body, err := f.request(cmd)
			if err != nil {
				return err
			}
			var info ruleInfo
			raw, err := api.postJSON(cmd.Context(), "/rules", body, &info)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				_, err = out.Write(append(raw, '\n'))
				return err
			}
			fmt.Fprintf(out, "Created %s %q: %s, %s\n", info.ID, info.Name, describeCondition(info.Condition), describeScope(info.Scope))
			fmt.Fprintf(out, "Webhook secret (shown once; keep it to verify signatures): %s\n", info.Secret)
			return nil
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "read the rule from this JSON file (- for stdin) instead of the flags below")
	fl.StringVar(&f.name, "name", "", "the rule's name")
	fl.StringVar(&f.typ, "type", "", "condition: keyword, ocr, fingerprint, detection, loudness, silence, black or no_segments")
	fl.StringVar(&f.engine, "engine", "", "only this engine's results")
	fl.StringVar(&f.phrase, "phrase", "", "keyword: the words said")
	fl.StringVar(&f.pattern, "pattern", "", "ocr: an RE2 regular expression a line on screen must match")
	fl.StringVar(&f.reference, "reference", "", "fingerprint: the library reference's name or id")
	fl.Float64Var(&f.minScore, "min-score", 0, "fingerprint: the lowest score that counts")
	fl.StringVar(&f.label, "label", "", "detection: what is counted (face, person)")
	fl.IntVar(&f.minCount, "min-count", 0, "detection: how many in one result raise the alert")
	fl.StringVar(&f.measure, "measure", "", "loudness: short_term or momentary")
	fl.Float64Var(&f.minLUFS, "min-lufs", 0, "loudness: below this the level is out of range")
	fl.Float64Var(&f.maxLUFS, "max-lufs", 0, "loudness: above this the level is out of range")
	fl.StringVar(&f.minDuration, "min-duration", "", "loudness, silence, black, no_segments: how long the condition must hold")
	fl.StringVar(&f.stream, "stream", "", "scope: the jobs on this live stream (no_segments: the stream watched)")
	fl.StringVar(&f.title, "title", "", "scope: the jobs on this VOD title")
	fl.StringVar(&f.job, "job", "", "scope: this job")
	fl.StringVar(&f.cooldown, "cooldown", "", "the condition true again within this is the same alert (default 10s)")
	fl.StringArrayVar(&f.webhooks, "webhook", nil, "POST the alerts to this URL (repeatable)")
	fl.StringVar(&f.retryFor, "retry-for", "", "retry deliveries this long before dead-lettering them")
	fl.StringVar(&f.secret, "secret", "", "the webhook secret (default: weir makes one)")
	return cmd
}

// request is the POST /rules body: the file, or the flags given.
func (f *ruleFlags) request(cmd *cobra.Command) ([]byte, error) {
	if f.file != "" {
		var r io.Reader = cmd.InOrStdin()
		if f.file != "-" {
			file, err := os.Open(f.file)
			if err != nil {
				return nil, err
			}
			defer file.Close()
			r = file
		}
		return io.ReadAll(io.LimitReader(r, 1<<20))
	}
	if f.name == "" || f.typ == "" {
		return nil, errors.New("give --name and --type (or --file with the rule as JSON)")
	}
	changed := cmd.Flags().Changed
	cond := map[string]any{"type": f.typ}
	for flag, member := range map[string]string{"engine": "engine", "phrase": "phrase", "pattern": "pattern", "reference": "reference",
		"label": "label", "measure": "measure", "min-duration": "min_duration"} {
		if changed(flag) {
			v, _ := cmd.Flags().GetString(flag)
			cond[member] = v
		}
	}
	for flag, member := range map[string]string{"min-score": "min_score", "min-lufs": "min_lufs", "max-lufs": "max_lufs"} {
		if changed(flag) {
			v, _ := cmd.Flags().GetFloat64(flag)
			cond[member] = v
		}
	}
	if changed("min-count") {
		cond["min_count"] = f.minCount
	}
	rule := map[string]any{"name": f.name, "condition": cond}
	switch {
	case f.stream != "":
		rule["scope"] = map[string]string{"stream": f.stream}
	case f.title != "":
		rule["scope"] = map[string]string{"title": f.title}
	case f.job != "":
		rule["scope"] = map[string]string{"job": f.job}
	}
	if f.cooldown != "" {
		rule["cooldown"] = f.cooldown
	}
	if f.retryFor != "" {
		rule["retry_for"] = f.retryFor
	}
	if f.secret != "" {
		rule["secret"] = f.secret
	}
	if len(f.webhooks) > 0 {
		var hooks []map[string]string
		for _, u := range f.webhooks {
			hooks = append(hooks, map[string]string{"url": u})
		}
		rule["webhooks"] = hooks
	}
	return json.Marshal(rule)
}

func newRulesListCmd() *cobra.Command {
	return newTableListCmd("List the alert rules", "/rules",
		"No rules; add one with: weir rules add --name NAME --type TYPE ...",
		"ID\tNAME\tCONDITION\tSCOPE\tCOOL-DOWN\tWEBHOOKS\tCREATED",
		func(tw io.Writer, r ruleInfo) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Name, describeCondition(r.Condition), describeScope(r.Scope),
				r.Cooldown, len(r.Webhooks), r.CreatedAt.Local().Format("2006-01-02 15:04"))
		})
}

func newRulesRemoveCmd() *cobra.Command {
	return newRemoveCmd("Delete an alert rule",
		"remove deletes a rule: it raises nothing more, its open alerts are resolved and its pending deliveries dropped.", "/rules/")
}

// describeCondition says a condition in a few words: its type and what it
// looks for.
func describeCondition(c map[string]json.RawMessage) string {
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(c[k], &s)
		return s
	}
	num := func(k string) string { return string(c[k]) }
	typ := str("type")
	var parts []string
	for _, k := range []string{"phrase", "pattern", "reference", "label"} {
		if s := str(k); s != "" {
			parts = append(parts, fmt.Sprintf("%q", s))
		}
	}
	if n := num("min_count"); n != "" {
		parts = append(parts, "≥ "+n)
	}
	if lo, hi := num("min_lufs"), num("max_lufs"); lo != "" || hi != "" {
		parts = append(parts, fmt.Sprintf("outside [%s, %s] LUFS", dashIfEmpty(lo), dashIfEmpty(hi)))
	}
	if d := str("min_duration"); d != "" {
		parts = append(parts, "for "+d)
	}
	if len(parts) == 0 {
		return typ
	}
	return typ + " " + strings.Join(parts, " ")
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describeScope is "all" or "<kind> <id>".
func describeScope(s map[string]json.RawMessage) string {
	for _, k := range []string{"stream", "title", "job"} {
		if raw, ok := s[k]; ok {
			var id string
			_ = json.Unmarshal(raw, &id)
			return k + " " + id
		}
	}
	return "all"
}
