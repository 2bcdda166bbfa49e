package bus

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms a Client can authenticate with and the embedded
// broker accepts.
const (
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
	// MechanismPlain sends the password itself: use it only over TLS or
	// loopback, and only with clusters that offer nothing better.
	MechanismPlain = "PLAIN"
)

// SuperuserName is the user the embedded broker's credentials file names:
// weir's own principal, which bypasses every ACL.
const SuperuserName = "weir"

// Files the embedded broker keeps next to its data in its data dir.
const (
	// CredentialsFileName holds the superuser's credentials (0600),
	// written on the first start with authentication and reused after.
	CredentialsFileName = "credentials"
	// KcatConfigFileName is a librdkafka configuration (0600) with the
	// broker's address and the superuser's credentials, rewritten at every
	// start: `kcat -F DATA/kafka/kcat.conf -L`.
	KcatConfigFileName = "kcat.conf"
)

// Credentials name a Kafka user: how it authenticates (a SASL mechanism),
// its name and its password. The zero value means no SASL.
type Credentials struct {
	Mechanism string
	User      string
	Password  string
}

// IsZero reports whether c names no user.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// Validate checks that c names a known mechanism, a user and a password.
func (c Credentials) Validate() error {
	switch c.Mechanism {
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512, MechanismPlain:
	case "":
		return errors.New("kafka credentials: no SASL mechanism")
	default:
		return fmt.Errorf("kafka credentials: SASL mechanism %q: want %s, %s or %s", c.Mechanism, MechanismSCRAMSHA256, MechanismSCRAMSHA512, MechanismPlain)
	}
	if c.User == "" {
		return errors.New("kafka credentials: no user name")
	}
	if c.Password == "" {
		return fmt.Errorf("kafka credentials for user %s: empty password", c.User)
	}
	if strings.ContainsAny(c.User, "\x00\n\r") || strings.ContainsAny(c.Password, "\x00\n\r") {
		return fmt.Errorf("kafka credentials for user %q: NUL and line breaks are not allowed", c.User)
	}
	return nil
}

// saslMechanism returns the kgo mechanism that authenticates as c.
func (c Credentials) saslMechanism() sasl.Mechanism {
	switch c.Mechanism {
	case MechanismSCRAMSHA512:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism()
	case MechanismPlain:
		return plain.Auth{User: c.User, Pass: c.Password}.AsMechanism()
	default:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha256Mechanism()
	}
}

// WithSASL makes the client authenticate as creds on every connection. A
// broker that refuses them fails every request with an authentication
// error, which Ping reports.
func WithSASL(creds Credentials) ClientOption {
	return clientOpt(func(c *clientConfig) { c.sasl = creds })
}

// WithTLS makes the client connect with TLS configured by cfg (nil: the
// system's roots and the broker's host name).
func WithTLS(cfg *tls.Config) ClientOption {
	return clientOpt(func(c *clientConfig) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.tls = cfg
	})
}

// TLSConfig returns a client TLS configuration that trusts the PEM
// certificates in caFile, or the system's roots when caFile is empty.
func TLSConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kafka TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kafka TLS CA %s: no PEM certificate in it", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

func (c clientConfig) authOpts() []kgo.Opt {
	var opts []kgo.Opt
	if !c.sasl.IsZero() {
		opts = append(opts, kgo.SASL(c.sasl.saslMechanism()))
	}
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls.Clone()))
	}
	return opts
}

// LoadOrCreateCredentials returns the superuser credentials kept in dir's
// credentials file, creating the file on first use with user weir, a
// random 256-bit password and SCRAM-SHA-256. dir is created 0700 (an
// existing dir is narrowed to 0700), the file 0600. created reports
// whether the file was written now.
func LoadOrCreateCredentials(dir string) (creds Credentials, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Credentials{}, false, fmt.Errorf("kafka credentials dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return Credentials{}, false, fmt.Errorf("kafka credentials dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, CredentialsFileName)
	creds, err = ReadCredentialsFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return creds, false, err
	}
	creds = Credentials{Mechanism: MechanismSCRAMSHA256, User: SuperuserName, Password: RandomPassword()}
	body := "# weir's Kafka superuser for the embedded broker of this data dir.\n" +
		"# Generated on its first start; every weir process of this data dir uses it.\n" +
		"# It is a librdkafka configuration: kcat -F " + path + " -b HOST:PORT -L\n" +
		ClientProperties(creds, "")
	if err := writeFileAtomic(path, []byte(body), true); err != nil {
		return Credentials{}, false, fmt.Errorf("kafka credentials: %w", err)
	}
	return creds, true, nil
}

// RandomPassword returns 256 random bits in URL-safe base64: no character
// that needs quoting in a shell, a properties file or YAML.
func RandomPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ReadCredentialsFile reads credentials from a librdkafka-style properties
// file (the broker's credentials or kcat.conf file, or one written by
// `weir bus users add`): sasl.username, sasl.password and
// sasl.mechanisms (or sasl.mechanism; default SCRAM-SHA-256). Other keys
// are ignored.
func ReadCredentialsFile(path string) (Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("kafka credentials file: %w", err)
	}
	creds, err := ParseCredentials(data)
	if err != nil {
		return Credentials{}, fmt.Errorf("kafka credentials file %s: %w", path, err)
	}
	return creds, nil
}

// ParseCredentials parses the properties ReadCredentialsFile reads.
func ParseCredentials(data []byte) (Credentials, error) {
	props, err := ParseProperties(data)
	if err != nil {
		return Credentials{}, err
	}
	creds := Credentials{
		Mechanism: MechanismSCRAMSHA256,
		User:      props["sasl.username"],
		Password:  props["sasl.password"],
	}
	for _, key := range []string{"sasl.mechanisms", "sasl.mechanism"} {
		if m, ok := props[key]; ok {
			creds.Mechanism = strings.ToUpper(m)
		}
	}
	if err := creds.Validate(); err != nil {
		return Credentials{}, err
	}
	return creds, nil
}

// ParseProperties parses a librdkafka configuration file as kcat -F reads
// it: one key=value per line, blank lines and lines starting with # are
// skipped, white space around the key and before the value is dropped,
// the value runs from the first = to the end of the line. A later key overrides an earlier one.
func ParseProperties(data []byte) (map[string]string, error) {
	props := make(map[string]string)
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimLeft(line, " \t"), "=")
		key = strings.TrimSpace(key)
		value = strings.TrimLeft(value, " \t")
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: want key=value", i+1)
		}
		props[key] = value
	}
	return props, nil
}

// ClientProperties renders creds, and the bootstrap address when not
// empty, as a librdkafka configuration file for kcat -F or any librdkafka
// client (confluent-kafka-python takes the same keys).
func ClientProperties(creds Credentials, bootstrap string) string {
	var b strings.Builder
	if bootstrap != "" {
		fmt.Fprintf(&b, "bootstrap.servers=%s\n", bootstrap)
	}
	fmt.Fprintf(&b, "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=%s\nsasl.username=%s\nsasl.password=%s\n",
		creds.Mechanism, creds.User, creds.Password)
	return b.String()
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a crash leaves the old file or the new one, never half of one;
// private files are 0600.
func writeFileAtomic(path string, data []byte, private bool) error {
	mode := os.FileMode(0o644)
	if private {
		mode = 0o600
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncPath(filepath.Dir(path))
}
