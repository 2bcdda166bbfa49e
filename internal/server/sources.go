package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// sourceHTTPClient is the client the pipelines fetch user-given URLs with
// (VOD imports, live pulls). Unless allowPrivate is set it refuses to
// connect to loopback, private, link-local, multicast and unspecified
// addresses, checked on the resolved address at connect time (so a DNS name
// pointing inside the network is refused too): a URL handed to the API must
// not become a way to reach services behind the server.
func sourceHTTPClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if !allowPrivate {
		dialer.Control = refusePrivate
		// A proxy would be dialled instead of the source and would defeat
		// the check, so sources are fetched directly.
		tr.Proxy = nil
	}
	tr.DialContext = dialer.DialContext
	return &http.Client{Transport: tr}
}

// refusePrivate is a net.Dialer Control function.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("source address %q: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("source address %q: %w", address, err)
	}
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return fmt.Errorf("refusing to fetch a source from %s, a loopback or private address (start weir serve with --allow-private-sources to allow it)", ip)
	}
	return nil
}
