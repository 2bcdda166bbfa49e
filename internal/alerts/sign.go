package alerts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook request (docs/alerts.md).
const (
	// HeaderTimestamp is when the request was signed, in Unix seconds.
	HeaderTimestamp = "Weir-Timestamp"
	// HeaderSignature is "v1=" and the hex HMAC-SHA256, keyed by the
	// rule's secret, of the timestamp, a '.', and the body.
	HeaderSignature = "Weir-Signature"
	// HeaderEventID is the alert event's id ("<alert_id>:<event>"), what
	// a receiver dedupes by; the body's event_id says the same.
	HeaderEventID = "Weir-Event-Id"
	// HeaderDeliveryAttempt counts the attempts, from 1.
	HeaderDeliveryAttempt = "Weir-Delivery-Attempt"
)

// Sign returns the Weir-Signature value of body sent at ts with secret.
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrSignature is wrapped by Verify's refusals.
var ErrSignature = errors.New("webhook signature")

// Verify checks a webhook request as a receiver should: the timestamp
// header is within tolerance of now, and one of the signature header's
// v1 values is the body's HMAC with secret (compared in constant time).
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	secs, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrSignature, HeaderTimestamp, timestamp)
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s %s is more than %v from now", ErrSignature, HeaderTimestamp, ts.UTC().Format(time.RFC3339), tolerance)
	}
	want := []byte(Sign(secret, ts, body))
	for _, v := range strings.Split(signature, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(v)), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature in %s matches the body", ErrSignature, HeaderSignature)
}
