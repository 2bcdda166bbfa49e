package server

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
)

// playlistEntry is one segment as a media playlist lists it.
type playlistEntry struct {
	seq int64
	uri string
}

// readPlaylist fetches a media playlist and returns its media sequence, its
// segments and whether it has EXT-X-ENDLIST.
func readPlaylist(url string) (mediaSeq int64, segs []playlistEntry, ended bool, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return 0, nil, false, nil
	}
	sc := bufio.NewScanner(resp.Body)
	next := int64(-1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			mediaSeq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
			next = mediaSeq
		case line == "#EXT-X-ENDLIST":
			ended = true
		case line != "" && !strings.HasPrefix(line, "#"):
			segs = append(segs, playlistEntry{seq: next, uri: line})
			next++
		}
	}
	return mediaSeq, segs, ended, sc.Err()
}

// playlistWatcher polls a live playlist and checks, at every reload, what
// RFC 8216 promises a client: the media sequence never goes back and a
// segment keeps its sequence number.
type playlistWatcher struct {
	mu       sync.Mutex
	lastSeq  int64
	bySeq    map[int64]string
	byURI    map[string]int64
	newestAt time.Time
	problems []string
}

func (w *playlistWatcher) poll(ctx context.Context, url string) {
	for ctx.Err() == nil {
		seq, segs, _, err := readPlaylist(url)
		if err == nil && len(segs) > 0 {
			w.observe(seq, segs)
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (w *playlistWatcher) observe(seq int64, segs []playlistEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq < w.lastSeq {
		w.problems = append(w.problems, "EXT-X-MEDIA-SEQUENCE went back from "+strconv.FormatInt(w.lastSeq, 10)+" to "+strconv.FormatInt(seq, 10))
	}
	w.lastSeq = seq
	for _, s := range segs {
		if uri, ok := w.bySeq[s.seq]; ok && uri != s.uri {
			w.problems = append(w.problems, "sequence "+strconv.FormatInt(s.seq, 10)+" listed as "+uri+" and as "+s.uri)
		}
		if q, ok := w.byURI[s.uri]; ok && q != s.seq {
			w.problems = append(w.problems, s.uri+" listed twice, as sequence "+strconv.FormatInt(q, 10)+" and "+strconv.FormatInt(s.seq, 10))
		}
		if _, ok := w.bySeq[s.seq]; !ok {
			w.newestAt = time.Now()
		}
		w.bySeq[s.seq], w.byURI[s.uri] = s.uri, s.seq
	}
}

func (w *playlistWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bySeq)
}

// RTMP is published for 40 s into a cluster with two packagers; the one
// packaging the stream is killed with SIGKILL. The other takes the stream
// over, the live playlist keeps advancing without listing a segment twice or
// moving its media sequence back, and after the end the VOD playlist lists
// every segment that was ever published.
func TestClusterPackagerKilledMidStream(t *testing.T) {
	c := newCluster(t)
	var packagers []*weirProc
	for _, name := range []string{"packager-1", "packager-2"} {
		p := c.start(name, "--roles", "packager,vod")
		c.waitReady(p)
		packagers = append(packagers, p)
	}
	api := c.start("api", "--roles", "api,ingest")
	c.waitReady(api)

	var started struct {
		ID      string `json:"stream_id"`
		Publish struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	if code := api.api(t, http.MethodPost, "/streams/start", map[string]string{"title": "failover"}, &started); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("POST /streams/start: %d", code)
	}
	ffmpeg := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "40", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "flv", started.Publish.RTMP)
	if err := ffmpeg.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- ffmpeg.Wait() }()
	t.Cleanup(func() { _ = ffmpeg.Process.Kill() })

	live := "http://" + api.http + "/hls/" + started.ID + "/live.m3u8"
	w := &playlistWatcher{bySeq: map[int64]string{}, byURI: map[string]int64{}}
	ctx, stopWatching := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); w.poll(ctx, live) }()
	defer func() { stopWatching(); <-watched }()

	waitUntil(t, time.Minute, "eight live segments", func() bool { return w.count() >= 8 })
	var owner *weirProc
	waitUntil(t, 10*time.Second, "the packager of the stream to be known", func() bool {
		for _, p := range packagers {
			if metric(t, p, "weir_live_streams") == 1 {
				owner = p
				return true
			}
		}
		return false
	})
	before := w.count()
	killedAt := time.Now()
	owner.kill9()
	t.Logf("killed %s (pid %d), the packager of %s, after %d segments", owner.name, owner.pid(), started.ID, before)
	waitUntil(t, 30*time.Second, "a new segment from the other packager", func() bool { return w.count() > before })
	takeover := time.Since(killedAt)
	t.Logf("takeover: the next segment was listed %v after the kill", takeover.Round(10*time.Millisecond))

	if err := <-published; err != nil {
		t.Fatalf("ffmpeg publishing: %v", err)
	}
	var ended map[string]any
	if code := api.api(t, http.MethodPost, "/streams/"+started.ID+"/end", nil, &ended); code >= 300 {
		t.Fatalf("POST /streams/%s/end: %d %v", started.ID, code, ended)
	}
	meta, err := metastore.Open(context.Background(), c.metadata)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	waitUntil(t, time.Minute, "the stream to become VOD", func() bool {
		st, err := meta.GetStream(context.Background(), started.ID)
		return err == nil && st.Status == metastore.StatusVOD
	})
	stopWatching()
	<-watched

	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
	_, vodSegs, vodEnded, err := readPlaylist("http://" + api.http + "/hls/" + started.ID + "/vod.m3u8")
	if err != nil || !vodEnded {
		t.Fatalf("vod playlist: ended %v, %v", vodEnded, err)
	}
	inVOD := map[string]bool{}
	for _, s := range vodSegs {
		inVOD[s.uri] = true
	}
	for uri := range w.byURI {
		if !inVOD[uri] {
			t.Errorf("segment %s was listed live but is missing from the VOD playlist", uri)
		}
	}
	t.Logf("%d segments listed live, %d in the VOD playlist", len(w.byURI), len(vodSegs))
}
