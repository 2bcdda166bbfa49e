package api

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/livewatch"
	"github.com/weir-media/weir/internal/objstore"
)

const llID = "live-0123456789ab"

// llList is a low-latency playlist of segments first..last of 1 s (three
// parts each) and trailing parts of segment last+1.
func llList(first, last int64, trailing int, ended bool) []byte {
	p := hls.MediaPlaylist{TargetDuration: 1, MediaSequence: uint64(first), PartTarget: 333 * time.Millisecond,
		ServerControl: &hls.ServerControl{CanBlockReload: true, PartHoldBack: time.Second, CanSkipUntil: 6 * time.Second},
		Map:           &hls.Map{URI: "init_0.mp4"}, Ended: ended}
	part := func(n int64, i int) hls.Part {
		return hls.Part{URI: fmt.Sprintf("part_%d.m4s", n*3+int64(i)), Duration: 333 * time.Millisecond, Independent: i == 0}
	}
	for n := first; n <= last; n++ {
		sg := hls.Segment{URI: fmt.Sprintf("seg_%d.m4s", n), Duration: time.Second}
		if n > last-3 {
			for i := range 3 {
				sg.Parts = append(sg.Parts, part(n, i))
			}
		}
		p.Segments = append(p.Segments, sg)
	}
	for i := range trailing {
		p.TrailingParts = append(p.TrailingParts, part(last+1, i))
	}
	if !ended {
		p.PreloadHint = &hls.PreloadHint{Type: "PART", URI: fmt.Sprintf("part_%d.m4s", (last+1)*3+int64(trailing))}
	}
	b, err := p.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// getAsync starts a request and returns a channel with its answer.
func (e *env) getAsync(path string) <-chan *httptest.ResponseRecorder {
	ch := make(chan *httptest.ResponseRecorder, 1)
	go func() { ch <- e.do("GET", path, nil) }()
	return ch
}

func parseLL(t *testing.T, rec *httptest.ResponseRecorder) *hls.MediaPlaylist {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	p, err := hls.ParseMediaPlaylist(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Body)
	}
	return p
}

func stillHeld(t *testing.T, ch <-chan *httptest.ResponseRecorder) {
	t.Helper()
	select {
	case rec := <-ch:
		t.Fatalf("answered before the playlist had it: %d\n%s", rec.Code, rec.Body)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestBlockingReloadWaitsForTheSegment(t *testing.T) {
	e := newEnv(t, "")
	key := llID + "/live.m3u8"
	e.put(key, llList(0, 4, 0, false))
	// Already there: at once.
	if p := parseLL(t, e.do("GET", "/hls/"+key+"?_HLS_msn=4", nil)); lastMSN(p) != 4 {
		t.Fatalf("last msn %d", lastMSN(p))
	}
	// The next segment: held until the packager lists it; woken by the
	// in-process notifier.
	ch := e.getAsync("/hls/" + key + "?_HLS_msn=5")
	stillHeld(t, ch)
	e.put(key, llList(0, 5, 0, false))
	livewatch.Notify(key)
	if p := parseLL(t, <-ch); lastMSN(p) != 5 {
		t.Fatalf("answered with last msn %d, want 5", lastMSN(p))
	}
	// A part of the segment in progress, found by polling the store
	// (a packager in another process notifies nobody here).
	ch = e.getAsync("/hls/" + key + "?_HLS_msn=6&_HLS_part=1")
	stillHeld(t, ch)
	e.put(key, llList(0, 5, 1, false))
	stillHeld(t, ch)
	e.put(key, llList(0, 5, 2, false))
	if p := parseLL(t, <-ch); len(p.TrailingParts) != 2 {
		t.Fatalf("answered with %d trailing parts, want 2", len(p.TrailingParts))
	}
}

func TestBlockingReloadTimesOutWith503(t *testing.T) {
	e := newEnv(t, "")
	key := llID + "/live.m3u8"
	e.put(key, llList(0, 4, 0, false))
	rec := e.do("GET", "/hls/"+key+"?_HLS_msn=5", nil)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d, Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

func TestBlockingReloadRefusesBadDirectives(t *testing.T) {
	e := newEnv(t, "")
	key := llID + "/live.m3u8"
	e.put(key, llList(0, 4, 0, false))
	for _, q := range []string{"_HLS_msn=7", "_HLS_part=1", "_HLS_msn=x", "_HLS_msn=-1", "_HLS_msn=5&_HLS_part=y", "_HLS_skip=NO", "_HLS_msn=5&_HLS_msn=6"} {
		if rec := e.do("GET", "/hls/"+key+"?"+q, nil); rec.Code != 400 {
			t.Errorf("%s: status %d, want 400: %s", q, rec.Code, rec.Body)
		}
	}
	// Ended: whatever is asked, the final playlist at once.
	e.put(key, llList(0, 4, 0, true))
	if p := parseLL(t, e.do("GET", "/hls/"+key+"?_HLS_msn=9", nil)); !p.Ended {
		t.Fatal("ended playlist not returned")
	}
	// A playlist that offers no blocking ignores the directives.
	e.put(llID+"/old/live.m3u8", []byte(livePlaylist))
	if rec := e.do("GET", "/hls/"+llID+"/old/live.m3u8?_HLS_msn=99", nil); rec.Code != 200 || rec.Body.String() != livePlaylist {
		t.Fatalf("standard playlist with _HLS_msn: %d %s", rec.Code, rec.Body)
	}
}

func TestDeltaUpdateSkipsOldSegments(t *testing.T) {
	e := newEnv(t, "")
	key := llID + "/live.m3u8"
	e.put(key, llList(10, 19, 1, false))
	full := parseLL(t, e.do("GET", "/hls/"+key+"?_HLS_msn=19", nil))
	rec := e.do("GET", "/hls/"+key+"?_HLS_msn=19&_HLS_skip=YES", nil)
	p := parseLL(t, rec)
	// CAN-SKIP-UNTIL is 6 s: the 6 newest 1 s segments stay.
	if p.SkippedSegments != 4 || len(p.Segments) != 6 || p.MediaSequence != 10 || p.Segments[0].URI != "seg_14.m4s" ||
		!strings.Contains(rec.Body.String(), "#EXT-X-VERSION:9\n") || p.Map == nil || len(p.TrailingParts) != 1 {
		t.Fatalf("delta update:\n%s", rec.Body)
	}
	if lastMSN(p) != lastMSN(full) {
		t.Fatalf("delta update ends at %d, the full playlist at %d", lastMSN(p), lastMSN(full))
	}
}

func TestPreloadHintedPartIsHeldUntilWritten(t *testing.T) {
	e := newEnv(t, "")
	e.put(llID+"/live.m3u8", llList(0, 4, 1, false)) // hint: part_16.m4s
	ch := e.getAsync("/hls/" + llID + "/part_16.m4s")
	stillHeld(t, ch)
	// The packager writes the part, then the playlist that lists it; a
	// packager in another process notifies nobody here, so the shared
	// poll of the playlist finds the change.
	e.put(llID+"/part_16.m4s", []byte("moof"))
	e.put(llID+"/live.m3u8", llList(0, 4, 2, false))
	select {
	case rec := <-ch:
		if rec.Code != 200 || rec.Body.String() != "moof" {
			t.Fatalf("hinted part: %d %s", rec.Code, rec.Body)
		}
	case <-time.After(2 * time.Second):
		// The hold would end at the playlist's timeout (3 s) anyway:
		// answering before it shows the playlist's change woke it.
		t.Fatal("the hinted part was not served within 2 s of the playlist listing it")
	}
	// A part past the hint is simply not there.
	if rec := e.do("GET", "/hls/"+llID+"/part_99.m4s", nil); rec.Code != 404 {
		t.Fatalf("part past the hint: %d", rec.Code)
	}
}

func TestRenditionReportsComeFromTheMaster(t *testing.T) {
	e := newEnv(t, "")
	e.put(llID+"/master.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlive.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\n480p/live.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\n../other/live.m3u8\n"))
	e.put(llID+"/live.m3u8", llList(0, 4, 0, false))
	e.put(llID+"/480p/live.m3u8", llList(0, 4, 2, false))
	p := parseLL(t, e.do("GET", "/hls/"+llID+"/live.m3u8?_HLS_msn=3", nil))
	if len(p.RenditionReports) != 1 {
		t.Fatalf("rendition reports %+v", p.RenditionReports)
	}
	if r := p.RenditionReports[0]; r.URI != "480p/live.m3u8" || r.LastMSN != 5 || r.LastPart != 1 {
		t.Fatalf("report %+v, want 480p/live.m3u8 at 5.1", r)
	}
	// From a rendition: the source, up one level.
	p = parseLL(t, e.do("GET", "/hls/"+llID+"/480p/live.m3u8?_HLS_msn=3", nil))
	if len(p.RenditionReports) != 1 || p.RenditionReports[0].URI != "../live.m3u8" || p.RenditionReports[0].LastMSN != 4 || p.RenditionReports[0].LastPart != 2 {
		t.Fatalf("rendition's reports %+v, want ../live.m3u8 at 4.2", p.RenditionReports)
	}
}

// FuzzParseLLQuery: any query string either parses into consistent
// directives or is refused; nothing panics.
func FuzzParseLLQuery(f *testing.F) {
	for _, s := range []string{"_HLS_msn=5&_HLS_part=2", "_HLS_skip=v2", "_HLS_part=1", "_HLS_msn=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/hls/x/live.m3u8", nil)
		r.URL.RawQuery = raw
		q, err := parseLLQuery(r)
		if err != nil {
			return
		}
		if q.msn < -1 || q.part < -1 || q.part >= 0 && q.msn < 0 || q.hasDirective != (q.msn >= 0 || q.skip) {
			t.Fatalf("inconsistent directives %+v from %q", q, raw)
		}
	})
}

// countingStore counts the Gets of one key.
type countingStore struct {
	objstore.Store
	key  string
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	if key == c.key {
		c.gets.Add(1)
	}
	return c.Store.Get(ctx, key)
}

// TestHeldRequestsShareOnePollOfThePlaylist: however many viewers hold a
// blocking reload or a hinted part on one playlist, the store is read once
// per poll interval for all of them (plus each request's first read), and
// a change answers them all.
func TestHeldRequestsShareOnePollOfThePlaylist(t *testing.T) {
	key := llID + "/live.m3u8"
	var counter *countingStore
	e := newEnv(t, "", func(c *Config) {
		counter = &countingStore{Store: c.Objects, key: key}
		c.Objects = counter
	})
	e.put(key, llList(0, 4, 1, false)) // hint: part_16.m4s
	const viewers = 20
	var held []<-chan *httptest.ResponseRecorder
	for i := range viewers {
		if i%2 == 0 {
			held = append(held, e.getAsync("/hls/"+key+"?_HLS_msn=5"))
		} else {
			held = append(held, e.getAsync("/hls/"+llID+"/part_16.m4s"))
		}
	}
	start := time.Now()
	time.Sleep(time.Second)
	e.put(llID+"/part_16.m4s", []byte("moof"))
	e.put(key, llList(0, 5, 0, false))
	for i, ch := range held {
		select {
		case rec := <-ch:
			if rec.Code != 200 {
				t.Fatalf("viewer %d: status %d: %s", i, rec.Code, rec.Body)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("viewer %d was not answered within 2 s of the change", i)
		}
	}
	// Each request reads the playlist once when it comes; the shared poll
	// reads it at most once per interval since the first came, and once
	// more for the change. Held requests polling on their own would have
	// read it about viewers x 10 times in that second.
	polls := int64(time.Since(start)/llPollInterval) + 2
	if n := counter.gets.Load(); n > viewers+polls {
		t.Fatalf("the playlist was read %d times for %d viewers held %v; want at most %d", n, viewers, time.Since(start).Round(time.Millisecond), viewers+polls)
	}
}
