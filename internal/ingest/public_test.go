package ingest

import (
	"net/netip"
	"testing"
)

func TestPublicAddrRefusesEveryNonPublicRange(t *testing.T) {
	for addr, public := range map[string]bool{
		"93.184.216.34": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "198.18.0.1": false,
		"224.0.0.1": false, "255.255.255.255": false, "::1": false, "fd00:ec2::254": false,
		"fe80::1": false, "::ffff:10.0.0.1": false, "::ffff:93.184.216.34": true,
		"64:ff9b::7f00:1": false, "2002:7f00:1::1": false, "2001:db8::1": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, public)
		}
	}
}
