package push

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// selfSigned is a TLS configuration with a fresh self-signed certificate
// for 127.0.0.1.
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "weir push test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// waitDone waits for a stream's session to end on the bus.
func (e *pushEnv) waitDone(id string) {
	e.t.Helper()
	waitFor(e.t, 15*time.Second, "stream "+id+" to end on the bus", func() bool {
		recs := e.rec.stream(protocol.StreamTopic(id))
		if len(recs) == 0 {
			return false
		}
		hb, ok := recs[len(recs)-1].msg.(*protocol.EngineHeartbeat)
		return ok && hb.Status == protocol.HeartbeatDone
	})
}

func TestRTMPSPublishIsRemuxedAndPlainRTMPIsNot(t *testing.T) {
	t.Parallel()
	e := newPushEnvWith(t, func(c *Config) { c.TLS = selfSigned(t) })
	st := e.newStream()
	u := fmt.Sprintf("rtmps://%s/live/%s", e.rtmp.Addr(), st.PublishKey)
	// ffmpeg does not verify the certificate unless told to.
	if out, err := ffmpeg(t, time.Minute, append(testPattern(3), "-f", "flv", u)...); err != nil {
		t.Fatalf("ffmpeg to %s: %v\n%s", u, err, out)
	}
	e.waitDone(st.ID)
	ts := checkStream(t, e.rec.stream(protocol.StreamTopic(st.ID)), false)
	codecs, d := probeStreams(t, ts)
	if !strings.Contains(codecs, "h264,video") || !strings.Contains(codecs, "aac,audio") || d < 2.5 {
		t.Fatalf("stream published over RTMPS: %q, %.2f s", codecs, d)
	}
	if got := e.connections("rtmps", "accepted"); got != 1 {
		t.Errorf("accepted rtmps connections = %v, want 1", got)
	}

	// Plain RTMP to the RTMPS listener fails in the TLS handshake and
	// writes nothing.
	other := e.newStream()
	before := e.connections("rtmps", "failed")
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1",
		"-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", e.rtmpURL(other.PublishKey)}
	if out, err := ffmpeg(t, 30*time.Second, args...); err == nil {
		t.Fatalf("plain RTMP to the RTMPS listener worked:\n%s", out)
	}
	waitFor(t, 5*time.Second, "the failed handshake to be counted", func() bool {
		return e.connections("rtmps", "failed") > before
	})
	if recs := e.rec.stream(protocol.StreamTopic(other.ID)); len(recs) != 0 {
		t.Fatalf("plain RTMP to the RTMPS listener wrote %d records", len(recs))
	}
}

// newStreamWithPassphrase creates a live stream whose SRT publishers must
// encrypt with passphrase.
func (e *pushEnv) newStreamWithPassphrase(passphrase string) metastore.Stream {
	e.t.Helper()
	id, key := make([]byte, 6), make([]byte, 16)
	rand.Read(id)
	rand.Read(key)
	st, err := e.meta.CreateStream(context.Background(), metastore.Stream{
		ID: "live-" + hex.EncodeToString(id), Kind: metastore.KindLive,
		PublishKey: hex.EncodeToString(key), SRTPassphrase: passphrase,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func TestSRTPassphraseIsEnforced(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t)
	const pass = "weir-srt-secret-0123"
	enc := e.newStreamWithPassphrase(pass)
	plain := e.newStream()
	srtURL := func(key, passphrase string) string {
		u := fmt.Sprintf("srt://%s?streamid=publish:%s&pkt_size=1316", e.srtAddr(), key)
		if passphrase != "" {
			u += "&passphrase=" + passphrase
		}
		return u
	}

	refused := []struct{ name, url string }{
		{"no passphrase for an encrypted stream", srtURL(enc.PublishKey, "")},
		{"wrong passphrase", srtURL(enc.PublishKey, "not-the-right-one")},
		{"passphrase for a stream without one", srtURL(plain.PublishKey, pass)},
	}
	for _, tc := range refused {
		before := e.connections("srt", "refused")
		args := append(testPattern(1), "-f", "mpegts", tc.url)
		if out, err := ffmpeg(t, 30*time.Second, args...); err == nil {
			t.Fatalf("%s: ffmpeg published:\n%s", tc.name, out)
		}
		waitFor(t, 5*time.Second, tc.name+": the refusal to be counted", func() bool {
			return e.connections("srt", "refused") == before+1
		})
	}
	if n := e.rec.count(); n != 0 {
		t.Fatalf("refused publishers wrote %d records", n)
	}

	// The right passphrase gets through, and the bytes arrive decrypted.
	if out, err := ffmpeg(t, time.Minute, append(testPattern(2), "-f", "mpegts", srtURL(enc.PublishKey, pass))...); err != nil {
		t.Fatalf("ffmpeg with the passphrase: %v\n%s", err, out)
	}
	e.waitDone(enc.ID)
	ts := checkStream(t, e.rec.stream(protocol.StreamTopic(enc.ID)), false)
	codecs, d := probeStreams(t, ts)
	if ts[0] != 0x47 || !strings.Contains(codecs, "h264,video") || d < 1.5 {
		t.Fatalf("stream published with a passphrase: %q, %.2f s, first byte %#x", codecs, d, ts[0])
	}
}
