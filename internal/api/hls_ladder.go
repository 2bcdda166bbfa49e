package api

import (
	"context"
	"path"
	"strings"

	"github.com/weir-media/weir/internal/metastore"
)

// ladderSiblings returns, for a playlist of a live stream with an ABR
// ladder, the same playlist (live.m3u8, vod.m3u8) of the stream's other
// renditions: the source's ({id}/NAME) and each rung's ({id}/{rung}/NAME),
// less the playlist itself. Rungs that were not made (taller than the
// source) have no playlist and are left out by the caller. ok is false for
// any other stream: its master object says what its renditions are.
func (s *Server) ladderSiblings(ctx context.Context, playlistKey string) (_ []string, ok bool) {
	streamID, rest, _ := strings.Cut(playlistKey, "/")
	st, err := s.cfg.Meta.GetStream(ctx, streamID)
	if err != nil || st.Kind != metastore.KindLive || len(st.VariantsGenerated) == 0 {
		return nil, false
	}
	name := path.Base(rest)
	keys := []string{streamID + "/" + name}
	for _, r := range st.VariantsGenerated {
		rung, _, _ := strings.Cut(r, "=")
		keys = append(keys, streamID+"/"+rung+"/"+name)
	}
	var out []string
	for _, k := range keys {
		if k != playlistKey {
			out = append(out, k)
		}
	}
	return out, true
}

// relativeURI is the URI of object key target relative to the directory
// dir of a playlist: "480p/live.m3u8", or "../live.m3u8" from a rung's
// playlist to the source's.
func relativeURI(dir, target string) string {
	d := strings.Split(dir, "/")
	t := strings.Split(target, "/")
	i := 0
	for i < len(d) && i < len(t)-1 && d[i] == t[i] {
		i++
	}
	return strings.Repeat("../", len(d)-i) + strings.Join(t[i:], "/")
}
