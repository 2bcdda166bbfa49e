package bus

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weir-media/weir/protocol"
)

// kcatResult runs kcat and returns its output and exit error, without
// failing the test: the caller says what it expects.
func kcatResult(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kcat %s did not finish in 40 s", strings.Join(args, " "))
	}
	return out.String(), errb.String(), err
}

// kcatAs returns kcat's connection arguments for addr as creds (none
// when creds is zero). Produces and metadata lookups give up after 3 s,
// so a refused client fails quickly instead of retrying for minutes.
func kcatAs(addr string, creds Credentials) []string {
	args := []string{"-b", addr, "-m", "3", "-X", "message.timeout.ms=3000"}
	if creds.IsZero() {
		return args
	}
	return append(args, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms="+creds.Mechanism,
		"-X", "sasl.username="+creds.User, "-X", "sasl.password="+creds.Password)
}

// startAuthBroker starts an authenticating broker and returns it with a
// client logged in as its superuser.
func startAuthBroker(t *testing.T, opts ...BrokerOption) (*Broker, *Client) {
	t.Helper()
	b := startTestBroker(t, append([]BrokerOption{WithAuthentication()}, opts...)...)
	return b, newTestClient(t, b.Addr(), WithSASL(b.Superuser()))
}

// addEngine adds the user of engine ocr and returns its credentials.
func addEngine(t *testing.T, su *Client) Credentials {
	t.Helper()
	creds := Credentials{Mechanism: MechanismSCRAMSHA256, User: "ocr-engine", Password: RandomPassword()}
	if err := su.AddUser(testCtx(t), creds, EngineGrants("ocr")); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	return creds
}

func TestKcatWithoutCredentialsCannotListReadOrWrite(t *testing.T) {
	requireKcat(t)
	b, su := startAuthBroker(t)
	produceValues(t, su, "control_live", nil, "secret")
	anon := kcatAs(b.Addr(), Credentials{})

	if out, _, err := kcatResult(t, "", append(anon, "-L")...); err == nil {
		t.Errorf("kcat -L without credentials succeeded:\n%s", out)
	}
	if out, _, err := kcatResult(t, "", append(anon, "-C", "-t", "control_live", "-o", "beginning", "-e")...); err == nil || strings.Contains(out, "secret") {
		t.Errorf("kcat -C without credentials: err %v, read %q", err, out)
	}
	for _, topic := range []string{"control_live", "anonymous-new-topic"} {
		if _, _, err := kcatResult(t, "forged\n", append(anon, "-P", "-t", topic)...); err == nil {
			t.Errorf("kcat -P to %s without credentials succeeded", topic)
		}
	}
	got, err := su.ReadAll(testCtx(t), "control_live", 0)
	if err != nil || !slices.Equal(values(got), []string{"secret"}) {
		t.Errorf("control_live holds %v (%v), want only the superuser's record", values(got), err)
	}
	if b.Cluster().TopicInfo("anonymous-new-topic") != nil {
		t.Error("a client without credentials got a topic created")
	}
}

func TestKcatWithEngineCredentialsReadsItsChunksWritesResultsAndNothingElse(t *testing.T) {
	requireKcat(t)
	b, su := startAuthBroker(t)
	produceValues(t, su, protocol.ChunkTopic("ocr"), nil, "chunk-1")
	produceValues(t, su, protocol.TopicVODJobs, nil, "job")
	stream := protocol.StreamTopic("s1")
	for _, topic := range []string{stream, protocol.TopicLiveControl} {
		if err := su.CreateTopic(testCtx(t), topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	eng := kcatAs(b.Addr(), addEngine(t, su))

	out, stderr, err := kcatResult(t, "", append(eng, "-G", protocol.EngineGroup("ocr"), "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", `%s\n`, protocol.ChunkTopic("ocr"))...)
	if err != nil || out != "chunk-1\n" {
		t.Errorf("engine reading its chunk topic in its group: %q, %v\n%s", out, err, stderr)
	}
	if _, stderr, err := kcatResult(t, "result-1\n", append(eng, "-P", "-t", protocol.ResultsTopic("job1"))...); err != nil {
		t.Errorf("engine writing a results topic: %v\n%s", err, stderr)
	}
	got, err := su.ReadAll(testCtx(t), protocol.ResultsTopic("job1"), 0)
	if err != nil || !slices.Equal(values(got), []string{"result-1"}) {
		t.Errorf("results topic holds %v (%v), want the engine's record", values(got), err)
	}

	for _, topic := range []string{protocol.TopicLiveControl, stream} {
		if _, stderr, err := kcatResult(t, "end\n", append(eng, "-P", "-t", topic)...); err == nil || !strings.Contains(stderr, "authorization failed") {
			t.Errorf("engine producing to %s: err %v, stderr:\n%s", topic, err, stderr)
		}
		if recs, err := su.ReadAll(testCtx(t), topic, 0); err != nil || len(recs) != 0 {
			t.Errorf("%s holds %v (%v) after the engine's refused produce", topic, values(recs), err)
		}
	}
	if out, stderr, err := kcatResult(t, "", append(eng, "-C", "-t", protocol.TopicVODJobs, "-o", "beginning", "-e")...); err == nil || strings.Contains(out, "job") {
		t.Errorf("engine reading %s: %q, %v\n%s", protocol.TopicVODJobs, out, err, stderr)
	}
	if out, _, err := kcatResult(t, "", append(eng, "-L")...); err != nil || strings.Contains(out, "control_") || strings.Contains(out, stream) {
		t.Errorf("engine's kcat -L shows topics it may not read (%v):\n%s", err, out)
	}
}

func TestEngineCredentialsInTheGoClientCannotEndAStreamOrPublishMedia(t *testing.T) {
	b, su := startAuthBroker(t)
	produceValues(t, su, protocol.ChunkTopic("ocr"), nil, "chunk-1")
	produceValues(t, su, protocol.TopicVODJobs, nil, "job")
	stream := protocol.StreamTopic("s1")
	if err := su.CreateTopic(testCtx(t), stream, 1); err != nil {
		t.Fatal(err)
	}
	eng := newTestClient(t, b.Addr(), WithSASL(addEngine(t, su)))
	ctx := testCtx(t)

	end := &Record{Topic: protocol.TopicLiveControl, Key: []byte("s1"), Value: []byte(`{"action":"end","stream_id":"s1"}`)}
	if err := eng.Produce(ctx, end); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("engine ending a stream on %s: %v, want TOPIC_AUTHORIZATION_FAILED", protocol.TopicLiveControl, err)
	}
	media := &Record{Topic: stream, Key: []byte("raw_stream"), Value: []byte("forged media")}
	if err := eng.Produce(ctx, media); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("engine publishing into %s: %v, want TOPIC_AUTHORIZATION_FAILED", stream, err)
	}
	if _, err := eng.ReadAll(ctx, protocol.TopicVODJobs, 0); err == nil {
		t.Errorf("engine read %s", protocol.TopicVODJobs)
	}
	if got := consumeUntilEOF(t, eng, protocol.ChunkTopic("ocr"), protocol.EngineGroup("ocr")); !slices.Equal(values(got), []string{"chunk-1"}) {
		t.Errorf("engine read %v from its chunk topic, want [chunk-1]", values(got))
	}
	if err := eng.Produce(ctx, &Record{Topic: protocol.ResultsTopic("job1"), Value: []byte("out")}); err != nil {
		t.Errorf("engine writing results: %v", err)
	}
}

func TestGoClientWithoutOrWithWrongCredentialsIsRefused(t *testing.T) {
	b, _ := startAuthBroker(t)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	anon := newTestClient(t, b.Addr())
	if err := anon.Ping(short()); err == nil {
		t.Error("Ping without credentials succeeded")
	}
	if err := anon.Produce(short(), &Record{Topic: "anon", Value: []byte("x")}); err == nil {
		t.Error("Produce without credentials succeeded")
	}
	wrong := b.Superuser()
	wrong.Password += "x"
	if err := newTestClient(t, b.Addr(), WithSASL(wrong)).Ping(testCtx(t)); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("Ping with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if b.Cluster().TopicInfo("anon") != nil {
		t.Error("a client without credentials got a topic created")
	}
}

func TestSuperuserCredentialsArePrivateAndReusedAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka")
	b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithAuthentication(), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	first := b.Superuser()
	if first.User != SuperuserName || first.Mechanism != MechanismSCRAMSHA256 || len(first.Password) < 40 {
		t.Errorf("superuser %+v: want weir, SCRAM-SHA-256 and a long random password", first)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, CredentialsFileName): 0o600, filepath.Join(dir, KcatConfigFileName): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if got, err := ReadCredentialsFile(filepath.Join(dir, CredentialsFileName)); err != nil || got != first {
		t.Errorf("credentials file holds %+v (%v), want %+v", got, err, first)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startTestBroker(t, WithDataDir(dir), WithAuthentication())
	if b.Superuser() != first {
		t.Errorf("after a restart the superuser is %+v, want the same %+v", b.Superuser(), first)
	}
	su := newTestClient(t, b.Addr(), WithSASL(b.Superuser()))
	if err := su.Ping(testCtx(t)); err != nil {
		t.Errorf("superuser after a restart: %v", err)
	}
	if testing.Short() {
		return
	}
	requireKcat(t)
	produceValues(t, su, "hello", nil, "world")
	out := kcat(t, "", "-F", filepath.Join(dir, KcatConfigFileName), "-C", "-t", "hello", "-o", "beginning", "-e", "-q")
	if out != "world\n" {
		t.Errorf("kcat -F kcat.conf read %q", out)
	}
}

func TestUsersAndTheirACLsSurviveABrokerRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithAuthentication(), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	su := newTestClient(t, b.Addr(), WithSASL(b.Superuser()))
	engCreds := addEngine(t, su)
	produceValues(t, su, protocol.ChunkTopic("ocr"), nil, "chunk-1")
	su.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = startTestBroker(t, WithDataDir(dir), WithAuthentication())
	eng := newTestClient(t, b.Addr(), WithSASL(engCreds))
	if got := consumeUntilEOF(t, eng, protocol.ChunkTopic("ocr"), protocol.EngineGroup("ocr")); !slices.Equal(values(got), []string{"chunk-1"}) {
		t.Errorf("engine after a restart read %v, want [chunk-1]", values(got))
	}
	if err := eng.Produce(testCtx(t), &Record{Topic: protocol.TopicLiveControl, Value: []byte("end")}); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("engine after a restart producing to %s: %v, want TOPIC_AUTHORIZATION_FAILED", protocol.TopicLiveControl, err)
	}
}

func TestUsersListsUsersWithTheirGrantsAndRemoveUserDeletesThem(t *testing.T) {
	b, su := startAuthBroker(t)
	ctx := testCtx(t)
	engCreds := addEngine(t, su)
	reader := Credentials{Mechanism: MechanismSCRAMSHA512, User: "dashboard", Password: "pw"}
	if err := su.AddUser(ctx, reader, Grants{Read: []string{"results_*"}, Groups: []string{"dash"}}); err != nil {
		t.Fatal(err)
	}
	users, err := su.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]User{}
	for _, u := range users {
		byName[u.Name] = u
	}
	want := map[string]User{
		"dashboard":  {Name: "dashboard", Mechanisms: []string{MechanismSCRAMSHA512}, Grants: Grants{Read: []string{"results_*"}, Groups: []string{"dash"}}},
		"ocr-engine": {Name: "ocr-engine", Mechanisms: []string{MechanismSCRAMSHA256}, Grants: EngineGrants("ocr")},
		"weir":       {Name: "weir", Mechanisms: []string{MechanismSCRAMSHA256}},
	}
	for name, w := range want {
		g := byName[name]
		if g.Name != w.Name || !slices.Equal(g.Mechanisms, w.Mechanisms) || !slices.Equal(g.Grants.Read, w.Grants.Read) ||
			!slices.Equal(g.Grants.Write, w.Grants.Write) || !slices.Equal(g.Grants.Groups, w.Grants.Groups) {
			t.Errorf("user %s: %+v, want %+v", name, g, w)
		}
	}
	if err := su.RemoveUser(ctx, "ocr-engine"); err != nil {
		t.Fatal(err)
	}
	if err := newTestClient(t, b.Addr(), WithSASL(engCreds)).Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("removed user logging in: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := su.RemoveUser(ctx, "ocr-engine"); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("removing a missing user: %v", err)
	}
}

func TestAddUserRejectsBadGrantsAndPlain(t *testing.T) {
	_, su := startAuthBroker(t)
	for name, tc := range map[string]struct {
		creds  Credentials
		grants Grants
		want   string
	}{
		"star inside":  {Credentials{MechanismSCRAMSHA256, "u", "p"}, Grants{Read: []string{"a*b"}}, "* may only end a prefix"},
		"empty":        {Credentials{MechanismSCRAMSHA256, "u", "p"}, Grants{Write: []string{""}}, "empty"},
		"bad char":     {Credentials{MechanismSCRAMSHA256, "u", "p"}, Grants{Groups: []string{"a b"}}, "character"},
		"plain":        {Credentials{MechanismPlain, "u", "p"}, Grants{}, "SCRAM"},
		"no password":  {Credentials{MechanismSCRAMSHA256, "u", ""}, Grants{}, "empty password"},
		"no mechanism": {Credentials{"", "u", "p"}, Grants{}, "no SASL mechanism"},
	} {
		if err := su.AddUser(testCtx(t), tc.creds, tc.grants); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: AddUser = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestAuthenticationOnADataDirThatHadNoneKeepsItsRecords(t *testing.T) {
	dir := t.TempDir()
	b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "before", nil, "a", "b")
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, su := startAuthBroker(t, WithDataDir(dir))
	got, err := su.ReadAll(testCtx(t), "before", 0)
	if err != nil || !slices.Equal(values(got), []string{"a", "b"}) {
		t.Errorf("after turning authentication on: %v (%v), want [a b]", values(got), err)
	}
	if err := newTestClient(t, b.Addr()).Ping(shortCtx(t)); err == nil {
		t.Error("a client without credentials is still let in")
	}
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartFailsWhenTheCredentialsFileNoLongerMatchesTheUsers(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Broker, error) {
		return StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithAuthentication(), WithLogger(testLogger()))
	}
	b, err := start()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, CredentialsFileName)
	other := Credentials{Mechanism: MechanismSCRAMSHA256, User: SuperuserName, Password: "not-the-password"}
	if err := os.WriteFile(path, []byte(ClientProperties(other, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := start(); err == nil || !strings.Contains(err.Error(), "refused") {
		if b != nil {
			b.Close()
		}
		t.Errorf("start with a changed password: %v, want it refused", err)
	}
	renamed := Credentials{Mechanism: MechanismSCRAMSHA256, User: "someone", Password: "x"}
	if err := os.WriteFile(path, []byte(ClientProperties(renamed, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := start(); err == nil || !strings.Contains(err.Error(), "do not include someone") {
		if b != nil {
			b.Close()
		}
		t.Errorf("start with another superuser name: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if b, err := start(); err == nil || !strings.Contains(err.Error(), "credentials file was missing") {
		if b != nil {
			b.Close()
		}
		t.Errorf("start after losing the credentials file: %v", err)
	}
}

func TestParseCredentials(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want Credentials
		err  string
	}{
		"kcat.conf": {in: "# c\nbootstrap.servers=127.0.0.1:9092\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=weir\nsasl.password=a=b c\n",
			want: Credentials{MechanismSCRAMSHA512, "weir", "a=b c"}},
		"default mechanism":   {in: "sasl.username=u\nsasl.password=p", want: Credentials{MechanismSCRAMSHA256, "u", "p"}},
		"singular key, CRLF":  {in: "sasl.mechanism=plain\r\nsasl.username=u\r\nsasl.password=p\r\n", want: Credentials{MechanismPlain, "u", "p"}},
		"indented, blank":     {in: "\n  sasl.username = u\n\tsasl.password=p\n", want: Credentials{MechanismSCRAMSHA256, "u", "p"}},
		"later wins":          {in: "sasl.username=a\nsasl.username=b\nsasl.password=p\n", want: Credentials{MechanismSCRAMSHA256, "b", "p"}},
		"no user":             {in: "sasl.password=p\n", err: "no user name"},
		"no password":         {in: "sasl.username=u\n", err: "empty password"},
		"unknown mechanism":   {in: "sasl.mechanisms=GSSAPI\nsasl.username=u\nsasl.password=p\n", err: `mechanism "GSSAPI"`},
		"line without equals": {in: "sasl.username=u\nrubbish\n", err: "line 2: want key=value"},
		"empty key":           {in: "=x\n", err: "line 1"},
	} {
		got, err := ParseCredentials([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one containing %q", name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("sasl.username=weir\nsasl.password=x\n"))
	f.Add([]byte("# c\n\nsasl.mechanisms=SCRAM-SHA-512\r\nsasl.username=a=b\nsasl.password==\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := ParseCredentials(data)
		if err != nil {
			return
		}
		if err := creds.Validate(); err != nil {
			t.Fatalf("parsed credentials %+v do not validate: %v", creds, err)
		}
		// What parses renders back to the same credentials.
		again, err := ParseCredentials([]byte(ClientProperties(creds, "")))
		if err != nil || again != creds {
			t.Fatalf("round trip of %+v: %+v, %v", creds, again, err)
		}
	})
}

func TestClientConnectsOverTLSTrustingTheGivenCA(t *testing.T) {
	certPEM, serverCfg := selfSignedTLS(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(serverCfg), kfake.AllowAutoTopicCreation(),
		kfake.EnableSASL(), kfake.Superuser(MechanismSCRAMSHA512, "ext", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]

	tlsCfg, err := TLSConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, addr, WithTLS(tlsCfg), WithSASL(Credentials{MechanismSCRAMSHA512, "ext", "secret"}))
	produceValues(t, c, "over-tls", nil, "a")
	if got, err := c.ReadAll(testCtx(t), "over-tls", 0); err != nil || !slices.Equal(values(got), []string{"a"}) {
		t.Errorf("over TLS read %v, %v", values(got), err)
	}
	untrusted := newTestClient(t, addr, WithTLS(nil), WithSASL(Credentials{MechanismSCRAMSHA512, "ext", "secret"}))
	if err := untrusted.Ping(shortCtx(t)); err == nil {
		t.Error("a client not trusting the broker's certificate connected")
	}
	if _, err := TLSConfig(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("TLSConfig of a missing CA file succeeded")
	}
	if _, err := TLSConfig(filepath.Join("testdata", "not-a-cert.pem")); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("TLSConfig of a file without certificates: %v", err)
	}
}

// selfSignedTLS returns a self-signed certificate for 127.0.0.1 (PEM) and a
// server TLS configuration using it.
func selfSignedTLS(t *testing.T) ([]byte, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "weir test broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
