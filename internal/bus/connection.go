package bus

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Connection is how a client logs in to and encrypts its connections with
// a cluster: the --kafka-* flags of weir's commands. The zero value is a
// plain, anonymous connection.
type Connection struct {
	// User and one of Password or PasswordFile log in with Mechanism
	// (default SCRAM-SHA-256).
	User         string
	Password     string
	PasswordFile string // its first line is the password
	Mechanism    string
	// CredentialsFile names a properties file with the user, password and
	// mechanism (the embedded broker's DATA/kafka/credentials, or a file
	// `weir bus users add` wrote); used when User is empty.
	CredentialsFile string
	// TLS connects with TLS, trusting the PEM certificates in TLSCA or,
	// when it is empty, the system's roots. A TLSCA implies TLS.
	TLS   bool
	TLSCA string
}

// Credentials resolves the user c logs in as: the zero Credentials when it
// names none.
func (c Connection) Credentials() (Credentials, error) {
	switch {
	case c.User == "" && (c.Password != "" || c.PasswordFile != ""):
		return Credentials{}, errors.New("--kafka-password and --kafka-password-file need --kafka-user")
	case c.User == "" && c.CredentialsFile != "":
		return ReadCredentialsFile(c.CredentialsFile)
	case c.User == "":
		return Credentials{}, nil
	case c.Password != "" && c.PasswordFile != "":
		return Credentials{}, errors.New("give --kafka-password or --kafka-password-file, not both")
	}
	creds := Credentials{Mechanism: strings.ToUpper(c.Mechanism), User: c.User, Password: c.Password}
	if creds.Mechanism == "" {
		creds.Mechanism = MechanismSCRAMSHA256
	}
	if c.PasswordFile != "" {
		data, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return Credentials{}, fmt.Errorf("--kafka-password-file: %w", err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		creds.Password = strings.TrimSpace(first)
	}
	if creds.Password == "" {
		return Credentials{}, fmt.Errorf("--kafka-user %s needs --kafka-password or --kafka-password-file", c.User)
	}
	if err := creds.Validate(); err != nil {
		return Credentials{}, err
	}
	return creds, nil
}

// ClientOptions returns the client options that connect as c says.
func (c Connection) ClientOptions() ([]ClientOption, error) {
	var opts []ClientOption
	creds, err := c.Credentials()
	if err != nil {
		return nil, err
	}
	if !creds.IsZero() {
		opts = append(opts, WithSASL(creds))
	}
	if c.TLS || c.TLSCA != "" {
		cfg, err := TLSConfig(c.TLSCA)
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithTLS(cfg))
	}
	return opts, nil
}
