package bus

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// compatConn wraps every connection to the embedded broker so that
// librdkafka clients (kcat, confluent-kafka-python, most non-Java clients)
// see a broker they recognise. librdkafka does not read kfake's
// ApiVersions answer the way it reads Kafka's, in two places:
//
//   - It decides whether a broker supports SASL by looking for
//     SaslHandshake version 0; it then speaks version 1 when the broker
//     also has SaslAuthenticate, as every Kafka since 1.0 does. kfake
//     implements only version 1 and says so, so librdkafka gives up with
//     "SASL Handshake not supported by broker".
//   - Up to at least 2.0.2 it compresses a gzip, snappy or lz4 batch only
//     if the broker's Produce versions reach down to 0 (it asks whether
//     Produce 0..0 is supported; confluentinc/librdkafka#4956, which
//     Kafka 4.0 brokers meet too since KIP-896 dropped Produce 0-2).
//     kfake implements Produce from version 3, the first with record
//     batches, so librdkafka logs "Broker does not support compression
//     type gzip: not compressing batch" and sends it uncompressed.
//
// This connection rewrites those two entries of ApiVersions answers to
// start at version 0, as a Kafka 3 broker's do, and changes nothing else.
// librdkafka then sends SaslHandshake version 1 and Produce version 3 or
// later (it uses record batches, which need Produce 3, whenever the
// broker offers Produce 3 and Fetch 4; the older message formats stay
// disabled because Fetch still starts at 4), which kfake handles. Every
// other client picks the highest version both sides support, which kfake
// implements too. A client that really sent SaslHandshake 0 or Produce
// 0-2 (none has since Kafka 0.11, 2017) is refused by kfake, which closes
// the connection, as Kafka does for a request version it does not
// implement.
//
// kfake also drops the connection of a client whose login fails, without
// answering; clients then see the connection close and retry, as for a
// network fault, until they give up with "EOF". Kafka answers
// SASL_AUTHENTICATION_FAILED first, which clients report at once. So when
// the connection is closed while a SaslAuthenticate request is unanswered,
// this connection writes that answer before closing.
//
// It follows the request frames it reads to learn the correlation ids of
// ApiVersions and SaslAuthenticate requests, and patches the response
// frames with those ids; kfake writes every response frame with a single
// Write. Anything it does not recognise passes through unchanged.
type compatConn struct {
	net.Conn

	// Read side, used only by kfake's reading goroutine.
	hdr  []byte // the current request frame's first bytes: size, key, version, correlation id
	skip int64  // bytes of the current request frame still to pass

	mu          sync.Mutex
	apiVersions map[int32]int16 // correlation id → request version
	login       *pendingRequest // an unanswered SaslAuthenticate
	closeOnce   sync.Once
	closeErr    error
}

type pendingRequest struct {
	corr    int32
	version int16
}

const (
	requestHeaderLen    = 12 // size (4), key (2), version (2), correlation id (4)
	produceKey          = 0
	saslHandshakeKey    = 17
	apiVersionsKey      = 18
	saslAuthenticateKey = 36
)

func newCompatConn(c net.Conn) *compatConn {
	return &compatConn{Conn: c, apiVersions: make(map[int32]int16)}
}

func (c *compatConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.track(p[:n])
	return n, err
}

// track follows request frames through the bytes read.
func (c *compatConn) track(b []byte) {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(int64(len(b)), c.skip)
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(len(b), requestHeaderLen-len(c.hdr))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) < requestHeaderLen {
			return
		}
		size := int64(binary.BigEndian.Uint32(c.hdr))
		key := int16(binary.BigEndian.Uint16(c.hdr[4:]))
		version := int16(binary.BigEndian.Uint16(c.hdr[6:]))
		corr := int32(binary.BigEndian.Uint32(c.hdr[8:]))
		c.hdr = c.hdr[:0]
		if size < requestHeaderLen-4 {
			// Malformed; kfake drops the connection. Stop following.
			c.skip = 1 << 62
			return
		}
		c.skip = size - (requestHeaderLen - 4)
		switch key {
		case apiVersionsKey:
			c.mu.Lock()
			c.apiVersions[corr] = version
			c.mu.Unlock()
		case saslAuthenticateKey:
			c.mu.Lock()
			c.login = &pendingRequest{corr: corr, version: version}
			c.mu.Unlock()
		}
	}
}

func (c *compatConn) Write(b []byte) (int, error) {
	if len(b) < 8 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return c.Conn.Write(b)
	}
	corr := int32(binary.BigEndian.Uint32(b[4:]))
	c.mu.Lock()
	version, ok := c.apiVersions[corr]
	delete(c.apiVersions, corr)
	if c.login != nil && c.login.corr == corr {
		c.login = nil
	}
	c.mu.Unlock()
	if !ok {
		return c.Conn.Write(b)
	}
	if patched := patchAPIVersions(b, version); patched != nil {
		if _, err := c.Conn.Write(patched); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// patchAPIVersions returns the ApiVersions response frame with its
// SaslHandshake and Produce entries starting at version 0, or nil to leave
// it alone. The response header of ApiVersions is never flexible: the body
// follows the correlation id directly.
func patchAPIVersions(frame []byte, version int16) []byte {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(frame[8:]); err != nil {
		return nil
	}
	if resp.Version != version {
		return nil
	}
	changed := false
	for i := range resp.ApiKeys {
		if k := &resp.ApiKeys[i]; (k.ApiKey == saslHandshakeKey || k.ApiKey == produceKey) && k.MinVersion > 0 {
			k.MinVersion = 0
			changed = true
		}
	}
	if !changed {
		return nil
	}
	out := resp.AppendTo(append(make([]byte, 0, len(frame)), frame[:8]...))
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// Close answers an unanswered SaslAuthenticate with
// SASL_AUTHENTICATION_FAILED, then closes the connection.
func (c *compatConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		login := c.login
		c.login = nil
		c.mu.Unlock()
		if login != nil {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write(loginFailedFrame(*login))
		}
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}

// loginFailedFrame is the SaslAuthenticate response frame Kafka sends for
// a failed login.
func loginFailedFrame(req pendingRequest) []byte {
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	resp.Version = req.version
	resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
	resp.ErrorMessage = kmsg.StringPtr("Authentication failed: invalid user name or password")
	frame := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(frame[4:], uint32(req.corr))
	if resp.IsFlexible() {
		frame = append(frame, 0) // empty tagged fields of the response header
	}
	frame = resp.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}
