package api

import (
	"context"
	"io"
	"testing"
)

// TestRestartSeesEarlierState builds a server, uploads and starts streams,
// closes its stores, then builds a new server over the same data directory:
// everything the first one accepted must still be there.
func TestRestartSeesEarlierState(t *testing.T) {
	dir := t.TempDir()
	first := newEnv(t, dir)
	vod := uploadOne(t, first, "Before restart")
	live := startStream(t, first, map[string]string{"title": "Live before restart"})
	first.put(vod+"/master.m3u8", []byte(masterList))
	advance(t, first, vod, "ready", nil)
	if err := first.meta.Close(); err != nil {
		t.Fatal(err)
	}
	if c, ok := first.objects.(interface{ Close() error }); ok {
		c.Close()
	}

	second := newEnv(t, dir)
	md := decode[VODMetadata](t, second.do("GET", "/vod/"+vod+"/metadata", nil))
	if md.Title != "Before restart" || md.Status != "ready" {
		t.Fatalf("vod after restart %+v", md)
	}
	if rec := second.do("GET", "/hls/"+vod+"/master.m3u8", nil); rec.Code != 200 || rec.Body.String() != masterList {
		t.Fatalf("playlist after restart: %d %q", rec.Code, rec.Body)
	}
	rc, _, err := second.objects.Get(context.Background(), md.SourceKey)
	if err != nil {
		t.Fatalf("uploaded source after restart: %v", err)
	}
	src, _ := io.ReadAll(rc)
	rc.Close()
	if string(src) != "media" {
		t.Fatalf("uploaded source after restart: %q", src)
	}
	lm := decode[LiveMetadata](t, second.do("GET", "/streams/"+live.StreamID+"/metadata", nil))
	if lm.Title != "Live before restart" || lm.Status != "created" {
		t.Fatalf("live stream after restart %+v", lm)
	}
	if st, err := second.meta.GetStreamByPublishKey(context.Background(), live.PublishKey); err != nil || st.ID != live.StreamID {
		t.Fatalf("publish key after restart: %v %v", st.ID, err)
	}
	if list := decode[StreamList](t, second.do("GET", "/vod", nil)); len(list.Items) != 1 || list.Items[0].StreamID != vod {
		t.Fatalf("vod listing after restart %+v", list)
	}
	// The restarted server can end the stream the first one started.
	if rec := second.do("POST", "/streams/"+live.StreamID+"/end", nil); rec.Code != 202 {
		t.Fatalf("end after restart: %d %s", rec.Code, rec.Body)
	}
}
