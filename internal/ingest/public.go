package ingest

import (
	"net/netip"

	"github.com/weir-media/weir/internal/netguard"
)

// PublicAddr reports whether ip is a global unicast address outside every
// private, shared, reserved or IPv4-embedding range: an address weir may
// fetch a user-given source from without --allow-private-sources. weir
// serve's source client checks every address it dials with it; the job
// API checks a URL source's host with it before accepting the job. It is
// netguard's outbound policy (netguard.PublicAddr).
func PublicAddr(ip netip.Addr) bool { return netguard.PublicAddr(ip) }
