package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/internal/bus"
)

func init() { register(newBusCmd) }

// busUsersConfig holds the flags of the bus users subcommands.
type busUsersConfig struct {
	Data       string `koanf:"data"`
	Kafka      string `koanf:"kafka"`
	kafkaLogin `koanf:",squash"`
	Engine     string   `koanf:"engine"`
	Read       []string `koanf:"read"`
	Write      []string `koanf:"write"`
	Group      []string `koanf:"group"`
	Mechanism  string   `koanf:"mechanism"`
	PassFile   string   `koanf:"password-file"`
	Output     string   `koanf:"output"`
}

func newBusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bus",
		Short: "Administer the Kafka bus: its users and what they may do",
	}
	users := &cobra.Command{
		Use:   "users",
		Short: "Add, list and remove the Kafka users of the embedded broker (or of --kafka)",
		Long: `users manages the SASL/SCRAM users of weir's embedded broker and their ACLs.
weir's own user (weir, in DATA/kafka/credentials) may do everything; any
other user only what its grants say. By default the commands work on the
broker of the data dir (--data): the running one, found through
DATA/kafka/kcat.conf, or, when none runs, the broker started on a private
port for the change. With --kafka they administer that cluster, logged in
with the --kafka-* flags. docs/bus.md has the details.`,
	}
	users.AddCommand(newBusUsersAddCmd(), newBusUsersListCmd(), newBusUsersRemoveCmd())
	cmd.AddCommand(users)
	return cmd
}

func addBusAdminFlags(cmd *cobra.Command, configPath *string) {
	f := cmd.Flags()
	f.StringVar(configPath, "config", "", "YAML config file (default ./weir.yaml when present)")
	f.String("data", "./weir-data", "data directory of the embedded broker to administer")
	f.String("kafka", "", "administer these Kafka brokers host:port,... instead, logged in with the --kafka-* flags")
	addKafkaLoginFlags(f, "DATA/kafka/credentials")
}

func newBusUsersAddCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a SCRAM user (or set its password) and grant it topics and groups",
		Long: `add creates the user NAME with a new random password (or the one in
--password-file) and grants it what the flags say; whatever is not granted is
refused. Patterns are a literal name, a prefix ending in * ("results_*"), or
* for all. --engine ID grants an engine's needs: read chunk_ID in group
weir_engine_ID, write results_*. An existing user gets the new password and
the new grants on top of its old ones.

The user's login is written as a librdkafka configuration (kcat -F, the
Python client) to --output (mode 0600) or printed on stdout.`,
		Example: `  weir bus users add ocr-engine --engine ocr --output ocr-engine.conf
  kcat -F ocr-engine.conf -G weir_engine_ocr chunk_ocr
  weir bus users add dashboard --read 'results_*' --group dashboard --password-file pw.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg busUsersConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			return runBusUsersAdd(cmd, cfg, args[0])
		},
	}
	addBusAdminFlags(cmd, &configPath)
	f := cmd.Flags()
	f.String("engine", "", "grant what engine ID needs: read chunk_ID in group weir_engine_ID, write results_*")
	f.StringArray("read", nil, "topic pattern the user may consume (repeatable)")
	f.StringArray("write", nil, "topic pattern the user may produce to (repeatable)")
	f.StringArray("group", nil, "consumer group pattern the user may join (repeatable)")
	f.String("mechanism", bus.MechanismSCRAMSHA256, "SCRAM-SHA-256 or SCRAM-SHA-512")
	f.String("password-file", "", "take the password from this file (first line) instead of generating one")
	f.String("output", "", "write the user's librdkafka configuration to this file (0600) instead of stdout")
	return cmd
}

func runBusUsersAdd(cmd *cobra.Command, cfg busUsersConfig, name string) error {
	creds := bus.Credentials{Mechanism: strings.ToUpper(cfg.Mechanism), User: name, Password: bus.RandomPassword()}
	if cfg.PassFile != "" {
		data, err := os.ReadFile(cfg.PassFile)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		creds.Password = strings.TrimSpace(first)
	}
	grants := bus.Grants{Read: cfg.Read, Write: cfg.Write, Groups: cfg.Group}
	if cfg.Engine != "" {
		e := bus.EngineGrants(cfg.Engine)
		grants.Read = append(grants.Read, e.Read...)
		grants.Write = append(grants.Write, e.Write...)
		grants.Groups = append(grants.Groups, e.Groups...)
	}
	if grants.IsZero() {
		return errors.New("add grants nothing: give --engine, --read, --write or --group")
	}
	return withBusAdmin(cmd, cfg, func(ctx context.Context, admin *bus.Client, bootstrap string) error {
		if err := admin.AddUser(ctx, creds, grants); err != nil {
			return err
		}
		conf := "# Kafka login of " + name + ", written by weir bus users add\n" + bus.ClientProperties(creds, bootstrap)
		if cfg.Output != "" {
			if err := os.WriteFile(cfg.Output, []byte(conf), 0o600); err != nil {
				return fmt.Errorf("--output: %w", err)
			}
			if err := os.Chmod(cfg.Output, 0o600); err != nil { // an existing file keeps its mode otherwise
				return fmt.Errorf("--output: %w", err)
			}
		} else if _, err := io.WriteString(cmd.OutOrStdout(), conf); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "user %s (%s): %s\n", name, creds.Mechanism, describeGrants(grants))
		return nil
	})
}

func newBusUsersListCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the SCRAM users with what they may read, write and join",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg busUsersConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			return withBusAdmin(cmd, cfg, func(ctx context.Context, admin *bus.Client, _ string) error {
				users, err := admin.Users(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "USER\tMECHANISMS\tREAD\tWRITE\tGROUPS")
				for _, u := range users {
					read, write, groups := orDash(u.Grants.Read), orDash(u.Grants.Write), orDash(u.Grants.Groups)
					if u.Name == bus.SuperuserName {
						read, write, groups = "(superuser)", "(superuser)", "(superuser)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Mechanisms, ","), read, write, groups)
				}
				return w.Flush()
			})
		},
	}
	addBusAdminFlags(cmd, &configPath)
	return cmd
}

func newBusUsersRemoveCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Delete a user's credentials and every ACL naming it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg busUsersConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			if args[0] == bus.SuperuserName {
				return fmt.Errorf("%s is weir's own user: removing it would lock every weir process out", args[0])
			}
			return withBusAdmin(cmd, cfg, func(ctx context.Context, admin *bus.Client, _ string) error {
				if err := admin.RemoveUser(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "user %s removed\n", args[0])
				return nil
			})
		},
	}
	addBusAdminFlags(cmd, &configPath)
	return cmd
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func orDash(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

func describeGrants(g bus.Grants) string {
	return fmt.Sprintf("read %s; write %s; groups %s", orDash(g.Read), orDash(g.Write), orDash(g.Groups))
}

// withBusAdmin runs fn with a client that may administer the cluster:
// --kafka with the --kafka-* login, else the data dir's running broker as
// its superuser, else the data dir's broker started for the call.
// bootstrap is the address users should connect to, when known.
func withBusAdmin(cmd *cobra.Command, cfg busUsersConfig, fn func(ctx context.Context, admin *bus.Client, bootstrap string) error) error {
	ctx := cmd.Context()
	log := cliLogger(cmd.ErrOrStderr())
	if cfg.Kafka != "" {
		login := cfg.kafkaLogin
		if login.KafkaUser == "" && login.KafkaCredentials == "" {
			if own := filepath.Join(cfg.Data, "kafka", bus.CredentialsFileName); fileExists(own) {
				login.KafkaCredentials = own
			}
		}
		client, err := dialBus(ctx, busFlags{Kafka: cfg.Kafka, kafkaLogin: login}, log)
		if err != nil {
			return err
		}
		defer client.Close()
		return fn(ctx, client, cfg.Kafka)
	}
	kafkaDir := filepath.Join(cfg.Data, "kafka")
	credsPath := filepath.Join(kafkaDir, bus.CredentialsFileName)
	if _, err := os.Stat(credsPath); err != nil {
		return fmt.Errorf("no embedded broker credentials in %s (%v): run weir serve --data %s once, or name a cluster with --kafka", cfg.Data, err, cfg.Data)
	}
	broker, restore, err := startDataDirBroker(kafkaDir, log)
	if errors.Is(err, bus.ErrDataDirLocked) {
		// weir serve runs on the data dir: talk to it.
		return withRunningBroker(ctx, kafkaDir, log, fn)
	}
	if err != nil {
		return err
	}
	defer restore()
	client, err := bus.NewClient([]string{broker.Addr()}, bus.WithSASL(broker.Superuser()), bus.WithLogger(log))
	if err != nil {
		broker.Close()
		return err
	}
	ferr := fn(ctx, client, "")
	client.Close()
	return errors.Join(ferr, broker.Close())
}

// startDataDirBroker starts the data dir's broker on a private port.
// restore puts back the kcat.conf the start rewrote with that port.
func startDataDirBroker(kafkaDir string, log *slog.Logger) (*bus.Broker, func(), error) {
	kcatPath := filepath.Join(kafkaDir, bus.KcatConfigFileName)
	old, readErr := os.ReadFile(kcatPath)
	broker, err := bus.StartBroker(bus.WithListenAddr("127.0.0.1:0"), bus.WithDataDir(kafkaDir),
		bus.WithAuthentication(), bus.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	restore := func() {
		switch {
		case readErr == nil:
			_ = os.WriteFile(kcatPath, old, 0o600)
		case errors.Is(readErr, fs.ErrNotExist):
			_ = os.Remove(kcatPath)
		}
	}
	return broker, restore, nil
}

// withRunningBroker runs fn against the broker weir serve runs on the
// data dir, at the address its kcat.conf names.
func withRunningBroker(ctx context.Context, kafkaDir string, log *slog.Logger, fn func(context.Context, *bus.Client, string) error) error {
	kcatPath := filepath.Join(kafkaDir, bus.KcatConfigFileName)
	data, err := os.ReadFile(kcatPath)
	if err != nil {
		return fmt.Errorf("the broker of %s is running, but its address is unknown: %w", kafkaDir, err)
	}
	props, err := bus.ParseProperties(data)
	if err != nil {
		return fmt.Errorf("%s: %w", kcatPath, err)
	}
	bootstrap := props["bootstrap.servers"]
	if bootstrap == "" {
		return fmt.Errorf("%s names no bootstrap.servers", kcatPath)
	}
	client, err := dialBus(ctx, busFlags{Kafka: bootstrap, kafkaLogin: kafkaLogin{KafkaCredentials: kcatPath}}, log)
	if err != nil {
		return err
	}
	defer client.Close()
	return fn(ctx, client, bootstrap)
}
