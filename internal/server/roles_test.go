package server

import (
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", "broker,ingest,packager,liveladder,vod,chunker,engines,alerts,api", ""},
		{"all", "broker,ingest,packager,liveladder,vod,chunker,engines,alerts,api", ""},
		{"packager,vod", "packager,vod", ""},
		{" api , ingest ", "api,ingest", ""},
		{"broker", "broker", ""},
		{"api,transcoder", "", `unknown role "transcoder"; known roles: broker,ingest,packager,liveladder,vod,chunker,engines,alerts,api`},
		{"api,,vod", "", "empty role"},
		{"vod,vod", "", `role "vod" given twice`},
		{"all,api", "", `"all" cannot be combined`},
	} {
		got, err := ParseRoles(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRoles(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseRoles(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
