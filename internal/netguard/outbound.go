package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// This file holds weir's policy for connections it makes on a user's
// behalf to addresses a user gave (a source URL, an alert rule's webhook):
// only the public internet, unless the operator allows more. A URL handed
// to the API must not become a way to reach services behind the server
// (SSRF).

// ErrPrivateAddress is wrapped by a refusal of Outbound: the address is
// loopback, private, link-local or otherwise not the public internet, and
// the operator did not allow it.
var ErrPrivateAddress = errors.New("private address")

// nonPublic are the ranges that are not the public internet beyond what
// netip's Is* methods cover, or that embed an IPv4 address a gateway would
// connect to on the server's behalf (NAT64, 6to4, Teredo, the deprecated
// IPv4-compatible form), which could be an internal one.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (SIIT)
}

// PublicAddr reports whether ip is a global unicast address outside every
// private, shared, reserved or IPv4-embedding range: an address weir may
// connect to for a user without the operator's leave.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false // loopback, link-local, multicast, unspecified, RFC 1918, fc00::/7
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Outbound is the policy for connections to user-given addresses: public
// addresses only, plus what the operator allows.
type Outbound struct {
	// AllowPrivate allows every address.
	AllowPrivate bool
	// Allow lists ranges allowed even though they are not public
	// (127.0.0.1/32 for a receiver on the same machine, 10.1.2.0/24 for
	// one on the internal network).
	Allow []netip.Prefix
	// Hint ends a refusal's message: how the operator allows the address
	// ("start weir serve with --webhook-allow CIDR").
	Hint string
}

// Check says why ip may not be connected to, wrapping ErrPrivateAddress;
// nil when it may.
func (o Outbound) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	if o.AllowPrivate || PublicAddr(ip) {
		return nil
	}
	for _, p := range o.Allow {
		if p.Contains(ip) {
			return nil
		}
	}
	hint := ""
	if o.Hint != "" {
		hint = " (" + o.Hint + ")"
	}
	return fmt.Errorf("refusing to connect to %s, a loopback, private or reserved address%s: %w", ip, hint, ErrPrivateAddress)
}

// Control is a net.Dialer Control function applying the policy. It runs on
// the address actually being connected to, after DNS and for every
// connection (each redirect hop, each address of a DNS answer), so a
// public name that resolves inside the network is refused too, and a DNS
// answer that changes between a check and the dial (rebinding) cannot slip
// past it.
func (o Outbound) Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("address %q: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("address %q: %w", address, err)
	}
	return o.Check(ip)
}

// HTTPClient is a client that connects only where the policy allows,
// directly (a proxy would be dialled instead and defeat the check), never
// following redirects (a redirect is the answer), and giving up on a
// request after timeout.
func (o Outbound) HTTPClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second, Control: o.Control}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// ParsePrefixes reads a list of CIDR ranges or single addresses
// ("127.0.0.1", "10.0.0.0/8", "::1").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR range", s)
		}
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}
