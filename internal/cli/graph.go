package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/graph"
)

func init() { register(newGraphCmd) }

func newGraphCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Check, draw and list calculator graphs",
		Long: "Calculator graphs declare how a task processes its streams (see docs/graph.md).\n" +
			"These commands work on graph YAML files offline, against the calculators built into weir.",
	}
	cmd.AddCommand(newGraphValidateCmd(), newGraphDotCmd(), newGraphCalculatorsCmd())
	return cmd
}

// readGraphFile reads FILE, or standard input for "-".
func readGraphFile(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("graph file %s: %w", name, err)
	}
	return b, nil
}

// printDiagnostics writes one "FILE:LINE: message" line per problem.
func printDiagnostics(w io.Writer, name string, diags []graph.Diagnostic) {
	for _, d := range diags {
		if d.Line > 0 {
			fmt.Fprintf(w, "%s:%d: %s\n", name, d.Line, d.Message)
		} else {
			fmt.Fprintf(w, "%s: %s\n", name, d.Message)
		}
	}
}

func diagnosticsExit(name string, diags []graph.Diagnostic) error {
	noun := "problems"
	if len(diags) == 1 {
		noun = "problem"
	}
	return &exitError{code: 1, err: fmt.Errorf("graph file %s: %d %s", name, len(diags), noun)}
}

func newGraphValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a graph file: syntax, calculators, options, connections and types",
		Long: "validate reports every problem in a graph file as FILE:LINE: message and exits\n" +
			"with status 1 if there is any. FILE may be - for standard input.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := readGraphFile(cmd, args[0])
			if err != nil {
				return err
			}
			if diags := graph.Validate(src); len(diags) > 0 {
				printDiagnostics(cmd.OutOrStdout(), args[0], diags)
				return diagnosticsExit(args[0], diags)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
}

func newGraphDotCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dot FILE",
		Short: "Print a graph file as Graphviz DOT (pipe it to `dot -Tsvg`)",
		Long: "dot renders the graph even when it does not validate (unknown producers show in\n" +
			"red), but not when the YAML itself cannot be read. FILE may be - for standard input.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := readGraphFile(cmd, args[0])
			if err != nil {
				return err
			}
			cfg, diags := graph.ParseConfig(src)
			if len(diags) > 0 {
				printDiagnostics(cmd.ErrOrStderr(), args[0], diags)
				return diagnosticsExit(args[0], diags)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), graph.Dot(cfg))
			return err
		},
	}
}

func newGraphCalculatorsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "calculators",
		Short: "List the calculators graphs can use, with their ports and options",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			for _, s := range graph.Registered() {
				fmt.Fprintf(w, "%s\n  %s\n", s.Name, s.Doc)
				if s.GetContract == nil {
					writePorts(w, "inputs", s.Contract.Inputs)
					writePorts(w, "outputs", s.Contract.Outputs)
					writePorts(w, "input side packets", s.Contract.InputSidePackets)
					writePorts(w, "output side packets", s.Contract.OutputSidePackets)
				}
				opts := append([]graph.OptionSpec(nil), s.Options...)
				sort.Slice(opts, func(i, j int) bool { return opts[i].Name < opts[j].Name })
				for _, o := range opts {
					def := ""
					switch {
					case o.Required:
						def = ", required"
					case o.Default != nil:
						def = fmt.Sprintf(", default %v", o.Default)
					}
					fmt.Fprintf(w, "  option %s (%s%s): %s\n", o.Name, o.Type, def, o.Doc)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
}

func writePorts(w io.Writer, what string, ports []graph.PortSpec) {
	if len(ports) == 0 {
		return
	}
	var parts []string
	for _, p := range ports {
		s := p.Tag
		if s == "" {
			s = "(untagged)"
		}
		if p.Repeated {
			s += "[]"
		}
		if p.Type != nil {
			s += " " + p.Type.String()
		}
		if p.Optional {
			s += " optional"
		}
		parts = append(parts, s)
	}
	fmt.Fprintf(w, "  %s: %s\n", what, strings.Join(parts, ", "))
}
