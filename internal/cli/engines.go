package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/engine"
)

func init() { register(newEnginesCmd) }

// enginesConfig holds the flags of the engines subcommands.
type enginesConfig struct {
	Server   string `koanf:"server"`
	APIToken string `koanf:"api-token"`
	JSON     bool   `koanf:"json"`
}

func newEnginesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "engines",
		Short: "List the engines weir can run and show their specs",
		Long: `engines reads the engine registry of a running weir serve (--server) over
its REST API: the built-in engines and the external ones registered with a
manifest (POST /engines, or weir serve --engines-dir), each with its mode,
options and whether it can take work now. docs/engines.md describes
engines, specs and manifests.`,
	}
	cmd.AddCommand(newEnginesListCmd(), newEnginesShowCmd())
	return cmd
}

func loadEnginesConfig(cmd *cobra.Command, configPath string) (*enginesConfig, *vodClient, error) {
	return loadClientConfig[enginesConfig](cmd, configPath, time.Minute)
}

func (c *enginesConfig) login() (server, token string) { return c.Server, c.APIToken }

// engineInfo is one engine as GET /engines and GET /engines/{name} give it.
type engineInfo struct {
	Name         string                `json:"name"`
	Title        string                `json:"title"`
	Kind         string                `json:"kind"`
	EngineMode   string                `json:"engineMode"`
	Summary      string                `json:"summary"`
	Status       string                `json:"status"`
	Reason       string                `json:"reason"`
	Install      string                `json:"install"`
	Spec         engine.Spec           `json:"spec"`
	HTTP         *engine.HTTPEndpoint  `json:"http"`
	Kafka        *engine.KafkaEndpoint `json:"kafka"`
	Source       string                `json:"source"`
	RegisteredAt *time.Time            `json:"registered_at"`
}

func newEnginesListCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List engines: name, mode, kind, availability and what each finds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, api, err := loadEnginesConfig(cmd, configPath)
			if err != nil {
				return err
			}
			var list struct {
				Items []engineInfo `json:"items"`
			}
			raw, err := api.get(cmd.Context(), "/engines", &list)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			return printEngineList(out, list.Items)
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	return cmd
}

func printEngineList(w io.Writer, items []engineInfo) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No engines.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODE\tKIND\tSTATUS\tSUMMARY")
	for _, e := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.EngineMode, e.Kind, e.Status, e.Summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Why an engine cannot run is what a user acts on; say it under the
	// table rather than squeeze it into a column.
	first := true
	for _, e := range items {
		if e.Status != "unavailable" {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		fmt.Fprintf(w, "%s: %s\n", e.Name, e.Reason)
	}
	return nil
}

func newEnginesShowCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an engine's spec: options with defaults, examples, requirements, how it is reached",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadEnginesConfig(cmd, configPath)
			if err != nil {
				return err
			}
			var e engineInfo
			raw, err := api.get(cmd.Context(), "/engines/"+url.PathEscape(args[0]), &e)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				return printRawJSON(out, raw)
			}
			return printEngine(out, e)
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	return cmd
}

func printEngine(w io.Writer, e engineInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	name := e.Name
	if e.Title != "" && e.Title != e.Name {
		name += " (" + e.Title + ")"
	}
	fmt.Fprintf(tw, "Engine\t%s\n", name)
	fmt.Fprintf(tw, "Mode\t%s\n", e.EngineMode)
	fmt.Fprintf(tw, "Kind\t%s\n", e.Kind)
	status := e.Status
	if e.Reason != "" {
		status += ": " + e.Reason
	}
	fmt.Fprintf(tw, "Status\t%s\n", status)
	if e.Install != "" {
		fmt.Fprintf(tw, "Install\t%s\n", e.Install)
	}
	fmt.Fprintf(tw, "Summary\t%s\n", e.Summary)
	fmt.Fprintf(tw, "Inputs\t%s\n", strings.Join(e.Spec.Inputs, ", "))
	fmt.Fprintf(tw, "Outputs\t%s\n", strings.Join(e.Spec.Outputs, ", "))
	switch {
	case e.HTTP != nil:
		fmt.Fprintf(tw, "Reached by\tHTTP: %s and %s\n", e.HTTP.ReadyURL(), e.HTTP.ProcessURL())
	case e.Kafka != nil:
		fmt.Fprintf(tw, "Reached by\tKafka: work topic %s, consumer group %s\n", e.Kafka.Topic, e.Kafka.Group)
	}
	if e.Source != "" {
		fmt.Fprintf(tw, "Registered\tfrom %s\n", e.Source)
	}
	for i, r := range e.Spec.Requires {
		label := ""
		if i == 0 {
			label = "Requires"
		}
		line := r.Name()
		if r.DebianPackage != "" {
			line += " (Debian package " + r.DebianPackage + ")"
		}
		if r.Why != "" {
			line += ": " + r.Why
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d := strings.TrimSpace(e.Spec.Description); d != "" {
		fmt.Fprintf(w, "\n%s\n", d)
	}
	if len(e.Spec.Options) > 0 {
		fmt.Fprintln(w, "\nOptions:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tTYPE\tDEFAULT\tDOC")
		for _, o := range e.Spec.Options {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Name, o.Type, optionDefault(o), optionDoc(o))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(e.Spec.Examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, ex := range e.Spec.Examples {
			opts, _ := json.Marshal(ex.Options)
			fmt.Fprintf(w, "  %s: %s\n", ex.Title, opts)
		}
	}
	return nil
}

// optionDefault shows a default as the spec's JSON gives it: strings
// quoted, durations and numbers bare.
func optionDefault(o engine.Option) string {
	switch {
	case o.Required:
		return "(required)"
	case o.Default == nil:
		return "-"
	case o.Type == engine.TypeDuration:
		return fmt.Sprint(o.Default)
	}
	b, _ := json.Marshal(o.Default)
	return string(b)
}

// optionDoc is the doc with the option's enum and bounds.
func optionDoc(o engine.Option) string {
	doc := o.Doc
	if len(o.Enum) > 0 {
		doc += " (one of " + strings.Join(o.Enum, ", ") + ")"
	}
	switch {
	case o.Min != nil && o.Max != nil:
		doc += fmt.Sprintf(" (%v to %v)", o.Min, o.Max)
	case o.Min != nil:
		doc += fmt.Sprintf(" (at least %v)", o.Min)
	case o.Max != nil:
		doc += fmt.Sprintf(" (at most %v)", o.Max)
	}
	return doc
}
