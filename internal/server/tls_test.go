package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number, and its key, as PEM files in dir.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "weir test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Beside and renamed, as a renewal tool would.
	for file, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// curl runs curl with args and returns its stdout, or fails the test.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--fail-with-body", "--max-time", "60"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestHTTPSServesTheAPIAndHLSToCurlAndFFmpeg(t *testing.T) {
	testenv.RequireTool(t, "curl", "ffmpeg", "ffprobe")
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	cfg := testConfig(dir)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.VODPreset = "ultrafast"
	srv := start(t, cfg)
	defer srv.stop(t)
	base := srv.HTTPURL()
	if !strings.HasPrefix(base, "https://") || !strings.Contains(srv.Banner(), base+"/") {
		t.Fatalf("HTTPURL %s, banner:\n%s", base, srv.Banner())
	}

	// curl trusts the server only with its certificate.
	if got := curl(t, "--cacert", certFile, base+"/health"); !strings.Contains(got, `"status":"ok"`) {
		t.Errorf("/health over HTTPS: %s", got)
	}
	if out, err := exec.Command("curl", "-sS", base+"/health").CombinedOutput(); err == nil {
		t.Errorf("curl accepted the self-signed certificate without --cacert:\n%s", out)
	}
	// Plain HTTP on the TLS port is refused.
	if out, _ := exec.Command("curl", "-sS", "http://"+srv.HTTPAddr()+"/health").CombinedOutput(); !strings.Contains(string(out), "HTTPS") {
		t.Errorf("plain HTTP to the HTTPS listener answered:\n%s", out)
	}

	// A title uploaded over HTTPS plays over HTTPS.
	var up struct {
		StreamID string `json:"stream_id"`
	}
	if err := json.Unmarshal([]byte(curl(t, "--cacert", certFile, "-F", "file=@"+makeClip(t), base+"/vod/upload")), &up); err != nil || up.StreamID == "" {
		t.Fatalf("upload over HTTPS: %v %+v", err, up)
	}
	var md struct {
		Status, Error string
		ManifestURL   string `json:"manifest_url"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for md.Status != "ready" {
		if md.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("vod %s: %+v", up.StreamID, md)
		}
		time.Sleep(200 * time.Millisecond)
		json.Unmarshal([]byte(curl(t, "--cacert", certFile, base+"/vod/"+up.StreamID+"/metadata")), &md)
	}
	if want := base + "/hls/" + up.StreamID + "/master.m3u8"; md.ManifestURL != want {
		t.Errorf("manifest_url %q, want %q", md.ManifestURL, want)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", md.ManifestURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "video") {
		t.Errorf("ffprobe over HTTPS: %v\n%s", err, out)
	}
	out, err = exec.Command("ffmpeg", "-v", "error", "-i", md.ManifestURL, "-map", "0:v:0", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Errorf("ffmpeg reading every segment over HTTPS: %v\n%s", err, out)
	}
}

func TestHTTPSPicksUpARenewedCertificate(t *testing.T) {
	certDir := t.TempDir()
	certFile, keyFile := writeCert(t, certDir, 1)
	cfg := testConfig(t.TempDir())
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	srv := start(t, cfg)
	defer srv.stop(t)
	serial := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", srv.HTTPAddr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}
	writeCert(t, certDir, 2)
	// Make the renewal newer than the original whatever the file
	// system's time resolution, and skip the wait between checks.
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later)
	srv.tls.mu.Lock()
	srv.tls.checked = time.Time{}
	srv.tls.mu.Unlock()
	if got := serial(); got != 2 {
		t.Errorf("serial %d after the renewal, want 2", got)
	}

	// A broken renewal keeps the certificate that works.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	os.Chtimes(keyFile, later.Add(time.Minute), later.Add(time.Minute))
	srv.tls.mu.Lock()
	srv.tls.checked = time.Time{}
	srv.tls.mu.Unlock()
	if got := serial(); got != 2 {
		t.Errorf("serial %d after a broken renewal, want 2 still", got)
	}
}

func TestTLSNeedsCertAndKeyThatMatch(t *testing.T) {
	certFile, _ := writeCert(t, t.TempDir(), 1)
	_, otherKey := writeCert(t, t.TempDir(), 2)
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"cert without key", certFile, "", "--tls-cert and --tls-key go together"},
		{"key without cert", "", otherKey, "--tls-cert and --tls-key go together"},
		{"key of another certificate", certFile, otherKey, "private key does not match public key"},
		{"missing file", certFile, filepath.Join(t.TempDir(), "nope.pem"), "no such file"},
		{"rtmps without a certificate", "", "", "--rtmps needs --tls-cert and --tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.TLSCert, cfg.TLSKey = tc.cert, tc.key
			cfg.RTMPS = "127.0.0.1:0"
			s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				s.close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestRTMPSAndSRTPassphrasePublishGoLive publishes with real ffmpeg over
// RTMPS and over encrypted SRT to a server started with a certificate, and
// sees segments of each stream appear; SRT without the passphrase is
// refused and writes nothing.
func TestRTMPSAndSRTPassphrasePublishGoLive(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg")
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	cfg := testConfig(t.TempDir())
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.RTMPS = "127.0.0.1:0"
	cfg.LiveSegmentDuration = time.Second
	srv := start(t, cfg)
	defer srv.stop(t)
	if !strings.Contains(srv.Banner(), "RTMPS publish    rtmps://127.0.0.1:") {
		t.Errorf("banner without the RTMPS URL:\n%s", srv.Banner())
	}
	base := srv.HTTPURL()
	type started struct {
		StreamID string `json:"stream_id"`
		Publish  struct{ RTMPS, SRT string }
	}
	startStream := func(body string) started {
		t.Helper()
		var st started
		if err := json.Unmarshal([]byte(curl(t, "--cacert", certFile, "-H", "Content-Type: application/json",
			"-d", body, base+"/streams/start")), &st); err != nil || st.StreamID == "" {
			t.Fatalf("start %s: %v %+v", body, err, st)
		}
		return st
	}
	segments := func(id string) int {
		var md struct {
			SegmentCount int `json:"segment_count"`
		}
		json.Unmarshal([]byte(curl(t, "--cacert", certFile, base+"/streams/"+id+"/metadata")), &md)
		return md.SegmentCount
	}
	publish := func(url, format string, seconds string) (string, error) {
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration="+seconds,
			"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
			"-f", format, url).CombinedOutput()
		return string(out), err
	}

	rtmps := startStream(`{"title":"over rtmps"}`)
	if !strings.HasPrefix(rtmps.Publish.RTMPS, "rtmps://127.0.0.1:") {
		t.Fatalf("publish URLs %+v", rtmps.Publish)
	}
	if out, err := publish(rtmps.Publish.RTMPS, "flv", "4"); err != nil {
		t.Fatalf("ffmpeg to %s: %v\n%s", rtmps.Publish.RTMPS, err, out)
	}

	const pass = "weir-test-passphrase"
	enc := startStream(`{"title":"encrypted srt","srt_passphrase":"` + pass + `"}`)
	if !strings.HasSuffix(enc.Publish.SRT, "&passphrase="+pass) {
		t.Fatalf("SRT URL %q does not carry the passphrase", enc.Publish.SRT)
	}
	plainURL := strings.TrimSuffix(enc.Publish.SRT, "&passphrase="+pass)
	if out, err := publish(plainURL, "mpegts", "1"); err == nil {
		t.Fatalf("SRT without the passphrase was taken:\n%s", out)
	}
	if n := segments(enc.StreamID); n != 0 {
		t.Fatalf("a refused publisher made %d segments", n)
	}
	if out, err := publish(enc.Publish.SRT+"&pkt_size=1316", "mpegts", "4"); err != nil {
		t.Fatalf("ffmpeg to %s: %v\n%s", enc.Publish.SRT, err, out)
	}

	for _, id := range []string{rtmps.StreamID, enc.StreamID} {
		deadline := time.Now().Add(time.Minute)
		for segments(id) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("stream %s: %d segments a minute after its publish", id, segments(id))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
