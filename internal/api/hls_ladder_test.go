package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// TestRenditionReportsListALiveLadder: the LL playlists of a live stream
// with an ABR ladder report each other: the source reports its rungs, a
// rung the source ("../live.m3u8") and the other rungs; a rung that was
// not made (no playlist) is left out.
func TestRenditionReportsListALiveLadder(t *testing.T) {
	e := newEnv(t, "")
	st, err := e.meta.CreateStream(context.Background(), metastore.Stream{ID: llID, Kind: metastore.KindLive, Status: metastore.StatusLive,
		VariantsGenerated: []string{"1080p=5M", "480p=1400k", "360p=800k"}})
	if err != nil {
		t.Fatal(err)
	}
	e.put(st.ID+"/live.m3u8", llList(0, 4, 0, false))
	e.put(st.ID+"/480p/live.m3u8", llList(0, 4, 2, false))
	e.put(st.ID+"/360p/live.m3u8", llList(0, 3, 1, false))
	reports := func(playlist string) map[string]string {
		p := parseLL(t, e.do("GET", "/hls/"+st.ID+"/"+playlist+"?_HLS_msn=3", nil))
		out := map[string]string{}
		for _, r := range p.RenditionReports {
			out[r.URI] = fmt.Sprintf("%d.%d", r.LastMSN, r.LastPart)
		}
		return out
	}
	if got := reports("live.m3u8"); len(got) != 2 || got["480p/live.m3u8"] != "5.1" || got["360p/live.m3u8"] != "4.0" {
		t.Errorf("source's reports %v, want 480p at 5.1 and 360p at 4.0", got)
	}
	if got := reports("480p/live.m3u8"); len(got) != 2 || got["../live.m3u8"] != "4.2" || got["../360p/live.m3u8"] != "4.0" {
		t.Errorf("480p's reports %v, want ../live.m3u8 at 4.2 and ../360p/live.m3u8 at 4.0", got)
	}
}

func TestRelativeURI(t *testing.T) {
	for _, tc := range []struct{ dir, target, want string }{
		{"live-1", "live-1/480p/live.m3u8", "480p/live.m3u8"},
		{"live-1/480p", "live-1/live.m3u8", "../live.m3u8"},
		{"live-1/480p", "live-1/360p/live.m3u8", "../360p/live.m3u8"},
		{"live-1", "live-1/live.m3u8", "live.m3u8"},
	} {
		if got := relativeURI(tc.dir, tc.target); got != tc.want {
			t.Errorf("relativeURI(%q, %q) = %q, want %q", tc.dir, tc.target, got, tc.want)
		}
	}
}
