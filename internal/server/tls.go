package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certificate serves the key pair in two PEM files and re-reads them when
// either changes on disk, so a renewed certificate (certbot, cert-manager)
// is picked up by the next TLS handshake without restarting weir. A renewal
// that cannot be loaded (a half-written file) is logged and the previous
// pair kept.
type certificate struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	pair     *tls.Certificate
	modified [2]time.Time
	checked  time.Time
}

// loadCertificate reads the key pair once, failing on a missing or
// mismatched pair so that weir serve does not start half configured.
func loadCertificate(certFile, keyFile string, log *slog.Logger) (*certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together: give both (PEM certificate chain and its private key) or neither")
	}
	c := &certificate{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads the pair when either file changed since the last read.
func (c *certificate) reload() error {
	var mod [2]time.Time
	for i, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		mod[i] = fi.ModTime()
	}
	if c.pair != nil && mod == c.modified {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	c.pair, c.modified = &pair, mod
	return nil
}

// get is tls.Config.GetCertificate. The files are looked at no more than
// once every few seconds, whatever the handshake rate.
func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= certCheckInterval {
		c.checked = time.Now()
		if err := c.reload(); err != nil {
			c.log.Warn("tls: keeping the loaded certificate; the files on disk cannot be used", "err", err)
		}
	}
	return c.pair, nil
}

// certCheckInterval is how often handshakes look for a renewed
// certificate.
const certCheckInterval = 5 * time.Second

// config is the TLS configuration of weir's listeners.
func (c *certificate) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}
