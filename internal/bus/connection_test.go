package bus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConnectionCredentials(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret \nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(dir, "creds")
	if err := os.WriteFile(credsFile, []byte(ClientProperties(Credentials{MechanismSCRAMSHA512, "eng", "pw"}, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		conn Connection
		want Credentials
		err  string
	}{
		"none":                  {conn: Connection{TLS: true}},
		"user and password":     {conn: Connection{User: "u", Password: "p"}, want: Credentials{MechanismSCRAMSHA256, "u", "p"}},
		"password file, 512":    {conn: Connection{User: "u", PasswordFile: pwFile, Mechanism: "scram-sha-512"}, want: Credentials{MechanismSCRAMSHA512, "u", "s3cret"}},
		"credentials file":      {conn: Connection{CredentialsFile: credsFile}, want: Credentials{MechanismSCRAMSHA512, "eng", "pw"}},
		"user beats file":       {conn: Connection{User: "u", Password: "p", Mechanism: "PLAIN", CredentialsFile: credsFile}, want: Credentials{MechanismPlain, "u", "p"}},
		"password without user": {conn: Connection{Password: "p"}, err: "need --kafka-user"},
		"user without password": {conn: Connection{User: "u"}, err: "needs --kafka-password"},
		"both passwords":        {conn: Connection{User: "u", Password: "p", PasswordFile: pwFile}, err: "not both"},
		"missing password file": {conn: Connection{User: "u", PasswordFile: filepath.Join(dir, "nope")}, err: "--kafka-password-file"},
		"unknown mechanism":     {conn: Connection{User: "u", Password: "p", Mechanism: "GSSAPI"}, err: "GSSAPI"},
		"missing credentials":   {conn: Connection{CredentialsFile: filepath.Join(dir, "nope")}, err: "credentials file"},
	} {
		got, err := tc.conn.Credentials()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error containing %q", name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
	if _, err := (Connection{TLSCA: filepath.Join(dir, "nope.pem")}).ClientOptions(); err == nil {
		t.Error("ClientOptions with a missing CA file succeeded")
	}
}
