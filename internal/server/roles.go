package server

import (
	"fmt"
	"slices"
	"strings"
)

// Role is one part of weir a process can run. A process runs every role
// unless --roles names some; processes with the same role share its work
// through Kafka consumer groups and metadata-store leases.
type Role string

const (
	// RoleAPI serves the REST API, the console and HLS.
	RoleAPI Role = "api"
	// RoleIngest runs the RTMP and SRT servers and pulls live sources.
	RoleIngest Role = "ingest"
	// RolePackager packages live stream topics into HLS.
	RolePackager Role = "packager"
	// RoleLiveLadder transcodes live streams that have an ABR ladder into
	// their renditions' topics (internal/liveladder).
	RoleLiveLadder Role = "liveladder"
	// RoleVOD transcodes uploaded titles.
	RoleVOD Role = "vod"
	// RoleChunker runs jobs: it cuts their sources into chunks, hands
	// the chunks to the engines and records the results.
	RoleChunker Role = "chunker"
	// RoleEngines hosts the engines weir runs itself: the built-in ones
	// and the external engines reached over HTTP.
	RoleEngines Role = "engines"
	// RoleAlerts evaluates alert rules over jobs' results and live
	// streams, and delivers the alerts (weir.alerts, webhooks).
	RoleAlerts Role = "alerts"
	// RoleBroker runs the embedded Kafka-protocol broker (not with --kafka).
	RoleBroker Role = "broker"
)

// AllRoles lists every role, in the order a process starts them.
var AllRoles = []Role{RoleBroker, RoleIngest, RolePackager, RoleLiveLadder, RoleVOD, RoleChunker, RoleEngines, RoleAlerts, RoleAPI}

// Roles is the set of roles a process runs.
type Roles []Role

// ParseRoles reads a --roles value: a comma-separated list of roles, or
// "all" (also the meaning of an empty value). Unknown and repeated roles are
// errors that name them.
func ParseRoles(s string) (Roles, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllRoles), nil
	}
	var rs Roles
	for _, part := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(part))
		switch {
		case r == "":
			return nil, fmt.Errorf("--roles %q: empty role", s)
		case r == "all":
			return nil, fmt.Errorf("--roles %q: \"all\" cannot be combined with other roles", s)
		case !slices.Contains(AllRoles, r):
			return nil, fmt.Errorf("--roles %q: unknown role %q; known roles: %s", s, r, Roles(AllRoles))
		case slices.Contains(rs, r):
			return nil, fmt.Errorf("--roles %q: role %q given twice", s, r)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// Has reports whether r is in the set.
func (rs Roles) Has(r Role) bool { return slices.Contains(rs, r) }

// All reports whether every role is in the set.
func (rs Roles) All() bool { return len(rs) == len(AllRoles) }

func (rs Roles) String() string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = string(r)
	}
	return strings.Join(names, ",")
}
