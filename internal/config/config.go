// Package config is weir's one configuration loader. Values come from
// command-line flags, then WEIR_* environment variables, then an optional
// YAML file, in that order of precedence; a flag's default applies only when
// no source sets the key.
//
// Keys are flag names: the flag --kafka-listen, the environment variable
// WEIR_KAFKA_LISTEN and the YAML key kafka-listen all set the same value.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix is the prefix of environment variables weir reads.
const EnvPrefix = "WEIR_"

// DefaultFile is read when --config is not given and the file exists.
const DefaultFile = "weir.yaml"

// Option adjusts Load.
type Option func(*options)

type options struct{ allowed map[string]bool }

// AllowKeys names keys that may appear in the YAML file without being flags
// of the command being loaded: the flags of weir's other commands, so one
// weir.yaml can serve `weir serve` and the client commands alike. Allowed
// keys are ignored; keys nobody knows are still an error.
func AllowKeys(keys ...string) Option {
	return func(o *options) {
		for _, k := range keys {
			o.allowed[k] = true
		}
	}
}

// Load fills dst (a pointer to a struct whose fields carry `koanf:"flag-name"`
// tags) from flags, environment and the YAML file at path. An empty path means
// DefaultFile if it exists; a path that was named explicitly must exist.
// Environment variables that name no flag are ignored, so unrelated WEIR_*
// variables cannot break a command.
func Load(flags *pflag.FlagSet, path string, dst any, opts ...Option) error {
	return load(flags, path, os.Environ, dst, opts...)
}

func load(flags *pflag.FlagSet, path string, environ func() []string, dst any, opts ...Option) error {
	o := options{allowed: map[string]bool{}}
	for _, opt := range opts {
		opt(&o)
	}
	k := koanf.New(".")
	explicit := path != ""
	if path == "" {
		path = DefaultFile
	}
	if _, err := os.Stat(path); err == nil {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		for _, key := range k.Keys() {
			if flags.Lookup(key) != nil {
				continue
			}
			if !o.allowed[key] {
				return fmt.Errorf("config file %s: unknown key %q (keys are flag names, e.g. %q)", path, key, "kafka-listen")
			}
			k.Delete(key)
		}
	} else if explicit || !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config file %s: %w", path, err)
	}

	envProvider := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: environ,
		TransformFunc: func(key, value string) (string, any) {
			name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(key, EnvPrefix)), "_", "-")
			if flags.Lookup(name) == nil {
				return "", nil
			}
			return name, value
		},
	})
	if err := k.Load(envProvider, nil); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	if err := k.Load(posflag.Provider(flags, ".", k), nil); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	if err := k.UnmarshalWithConf("", dst, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
