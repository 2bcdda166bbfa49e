// Package cli holds weir's cobra commands. Each command lives in its own file
// and registers itself with register from an init function, so commands can
// be added without touching this file.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-media/weir/internal/config"
)

var commands []func() *cobra.Command

// register adds a subcommand constructor to the root command.
func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// NewRoot builds the weir root command with every registered subcommand.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir is a real-time media stream processing platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Setting Version gives the root command a --version flag.
		Version: Version,
	}
	root.SetVersionTemplate(versionLine() + "\n")
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

// exitError carries a specific process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs weir with args and returns the process exit code. SIGINT and
// SIGTERM cancel the command's context so servers can shut down cleanly.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "weir:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

// loadConfig fills dst from cmd's flags, WEIR_* environment variables and
// the YAML file at path (see package config). Keys that belong to other weir
// commands are accepted in the file, so one weir.yaml serves them all.
func loadConfig(cmd *cobra.Command, path string, dst any) error {
	var known []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { known = append(known, f.Name) })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd.Root())
	return config.Load(cmd.Flags(), path, dst, config.AllowKeys(known...))
}
