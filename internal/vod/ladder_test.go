package vod

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/weir-media/weir/internal/metastore"
)

// The product's headline case: a 12-second 1080p30 clip with a tone becomes
// a four-rung title that parses strictly, plays in a real HLS client, and
// whose renditions ffprobe reads back at the right size and length, with
// every segment starting on an IDR frame at the same instant in every
// rendition.
func TestLadder1080pBecomesFourAlignedRenditions(t *testing.T) {
	t.Parallel() // its playback check waits on real time
	e := newEnv(t)
	src := makeClip(t, t.TempDir(), "source.mp4",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart")
	id, job := e.upload(t, src)
	cfg := e.config(t)
	cfg.SegmentDuration = 4 * time.Second
	w := e.worker(t, cfg)
	if err := w.Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}

	st := e.stream(t, id)
	if st.Status != metastore.StatusReady || st.Error != "" {
		t.Fatalf("status %s (%s), want ready", st.Status, st.Error)
	}
	want := []string{"1080p", "720p", "480p", "360p"}
	if strings.Join(st.VariantsGenerated, ",") != strings.Join(want, ",") {
		t.Errorf("variants_generated %v, want %v", st.VariantsGenerated, want)
	}
	if st.ManifestPath != id+"/master.m3u8" || st.Progress != 100 || st.ProcessingLatencyMS <= 0 {
		t.Errorf("manifest %q progress %v latency %d", st.ManifestPath, st.Progress, st.ProcessingLatencyMS)
	}
	for _, s := range []metastore.Status{metastore.StatusUploaded, metastore.StatusProcessing, metastore.StatusTranscoding, metastore.StatusReady} {
		if st.StageTimes[s].IsZero() {
			t.Errorf("no stage time for %s", s)
		}
	}
	if !st.StageTimes[metastore.StatusProcessing].Before(st.StageTimes[metastore.StatusReady]) {
		t.Errorf("stage times out of order: %v", st.StageTimes)
	}

	master := decodeMaster(t, e.object(t, id+"/master.m3u8"))
	type rung struct{ w, h int }
	rungs := map[string]rung{"1080p": {1920, 1080}, "720p": {1280, 720}, "480p": {854, 480}, "360p": {640, 360}}
	codecsOf := map[string]string{}
	var streamInf, iframeInf int
	for _, v := range master.Variants {
		if v.Iframe {
			iframeInf++
			continue
		}
		name := strings.TrimSuffix(v.URI, "/index.m3u8")
		r, ok := rungs[name]
		if !ok {
			t.Errorf("unexpected variant %s", v.URI)
			continue
		}
		streamInf++
		if v.Resolution != fmt.Sprintf("%dx%d", r.w, r.h) || v.FrameRate != 30 {
			t.Errorf("%s: resolution %s frame rate %v", name, v.Resolution, v.FrameRate)
		}
		codecsOf[name] = v.Codecs
		if v.AverageBandwidth == 0 || v.Bandwidth < v.AverageBandwidth {
			t.Errorf("%s: bandwidth %d average %d", name, v.Bandwidth, v.AverageBandwidth)
		}
	}
	if streamInf != 4 || iframeInf != 4 {
		t.Errorf("%d variants and %d i-frame variants, want 4 and 4", streamInf, iframeInf)
	}

	srv := e.serve(t)
	var boundaries, playlists []string
	for _, name := range want {
		r := rungs[name]
		// ffprobe reads the rendition as a player would, over HTTP.
		var probe struct {
			Streams []struct {
				CodecType string `json:"codec_type"`
				CodecName string `json:"codec_name"`
				Profile   string `json:"profile"`
				Level     int    `json:"level"`
				Width     int    `json:"width"`
				Height    int    `json:"height"`
			} `json:"streams"`
			Format struct {
				Duration string `json:"duration"`
			} `json:"format"`
		}
		ffprobeJSON(t, &probe, "-show_streams", "-show_format", srv.URL+"/"+id+"/"+name+"/index.m3u8")
		var dur float64
		fmt.Sscan(probe.Format.Duration, &dur)
		if math.Abs(dur-12) > 0.5 {
			t.Errorf("%s: ffprobe duration %.3f s, want 12 ± 0.5", name, dur)
		}
		var gotVideo bool
		for _, s := range probe.Streams {
			if s.CodecType == "video" {
				gotVideo = true
				if s.Width != r.w || s.Height != r.h {
					t.Errorf("%s: ffprobe reads %dx%d, want %dx%d", name, s.Width, s.Height, r.w, r.h)
				}
				// CODECS must name the profile and level ffprobe finds in
				// the stream (whatever the preset made of the request).
				want := fmt.Sprintf("avc1.%02x", profileIDC[s.Profile])
				wantLevel := fmt.Sprintf("%02x,mp4a.40.2", s.Level)
				if c := codecsOf[name]; !strings.HasPrefix(c, want) || !strings.HasSuffix(c, wantLevel) || len(c) != len("avc1.640028,mp4a.40.2") {
					t.Errorf("%s: CODECS %q, but ffprobe reads %s profile level %d", name, c, s.Profile, s.Level)
				}
			}
		}
		if !gotVideo {
			t.Errorf("%s: ffprobe found no video", name)
		}

		pl := decodeMediaPlaylist(t, e.object(t, id+"/"+name+"/index.m3u8"))
		if !pl.Closed || pl.TargetDuration != 4 || pl.Map == nil {
			t.Errorf("%s: ended %v target %d map %v", name, pl.Closed, pl.TargetDuration, pl.Map)
		}
		init := e.object(t, id+"/"+name+"/init.mp4")
		rows, err := e.meta.ListSegments(context.Background(), id, name, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != int(pl.Count()) || len(rows) != 3 {
			t.Fatalf("%s: %d rows, %d playlist entries, want 3", name, len(rows), pl.Count())
		}
		var durs []string
		for i, seg := range pl.Segments[:pl.Count()] {
			key := id + "/" + name + "/" + seg.URI
			data := e.object(t, key)
			sum := sha256.Sum256(data)
			row := rows[i]
			if row.Key != key || row.Size != int64(len(data)) || row.SHA256 != hex.EncodeToString(sum[:]) ||
				row.ChunkIndex != int64(i) || row.DurationUS != int64(seg.Duration*1e6) {
				t.Errorf("%s: row %d = %+v does not match object %s (%d bytes)", name, i, row, key, len(data))
			}
			if i > 0 && row.StartUS != rows[i-1].StartUS+rows[i-1].DurationUS {
				t.Errorf("%s: row %d starts at %d, previous ends at %d", name, i, row.StartUS, rows[i-1].StartUS+rows[i-1].DurationUS)
			}
			if !firstFrameIsIDR(t, append(append([]byte{}, init...), data...)) {
				t.Errorf("%s: segment %d does not start with an IDR frame", name, i)
			}
			durs = append(durs, fmt.Sprintf("%.3f", seg.Duration))
		}
		boundaries = append(boundaries, strings.Join(durs, " "))

		ipl := decodeMediaPlaylist(t, e.object(t, id+"/"+name+"/iframes.m3u8"))
		if !ipl.Iframe || ipl.Count() != pl.Count() {
			t.Errorf("%s: i-frame playlist has %d entries (i-frames-only %v), want %d", name, ipl.Count(), ipl.Iframe, pl.Count())
		}

		playlists = append(playlists, srv.URL+"/"+id+"/"+name+"/index.m3u8")
	}
	playAll(t, playlists, true, 12*time.Second)
	for i := 1; i < len(boundaries); i++ {
		if boundaries[i] != boundaries[0] {
			t.Errorf("segment durations differ between renditions: %s has %q, %s has %q", want[0], boundaries[0], want[i], boundaries[i])
		}
	}
	if !e.exists(id + "/thumb.jpg") {
		t.Error("no thumbnail")
	}
}

// profileIDC maps ffprobe's H.264 profile names to profile_idc.
var profileIDC = map[string]int{"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}

// firstFrameIsIDR decodes the first video frame of an init + segment
// concatenation with ffprobe and reports whether it is a key frame of
// picture type I.
func firstFrameIsIDR(t *testing.T, data []byte) bool {
	t.Helper()
	f := t.TempDir() + "/seg.mp4"
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Frames []struct {
			KeyFrame int    `json:"key_frame"`
			PictType string `json:"pict_type"`
		} `json:"frames"`
	}
	ffprobeJSON(t, &res, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames",
		"-show_entries", "frame=key_frame,pict_type", f)
	return len(res.Frames) >= 1 && res.Frames[0].KeyFrame == 1 && res.Frames[0].PictType == "I"
}

// playRendition plays a media playlist to its end with gohlslib's client
// and checks that the decoded media covers the expected duration. The
// client paces playback in real time, so callers play renditions in
// parallel.
func playRendition(url string, video bool, want time.Duration) error {
	var (
		mu           sync.Mutex
		first, last  int64 = -1, -1
		clockRate    int
		videoUnits   int
		audioPackets int
		decodeErr    error
	)
	c := &gohlslib.Client{URI: url}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch tr.Codec.(type) {
			case *codecs.H264:
				rate := tr.ClockRate
				c.OnDataH26x(tr, func(pts, _ int64, au [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					videoUnits++
					clockRate = rate
					if first < 0 || pts < first {
						first = pts
					}
					last = max(last, pts)
				})
			case *codecs.MPEG4Audio:
				rate := tr.ClockRate
				c.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					audioPackets += len(aus)
					if !video {
						clockRate = rate
						if first < 0 || pts < first {
							first = pts
						}
						last = max(last, pts)
					}
				})
			}
		}
		return nil
	}
	silent := func(string) {}
	c.OnDownloadPrimaryPlaylist, c.OnDownloadStreamPlaylist, c.OnDownloadSegment = silent, silent, silent
	c.OnDecodeError = func(err error) {
		mu.Lock()
		decodeErr = err
		mu.Unlock()
	}
	if err := c.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait2() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(want + 2*time.Minute):
		c.Close()
		return fmt.Errorf("%s: client did not reach the end of the playlist", url)
	}
	if !errors.Is(err, gohlslib.ErrClientEOS) {
		return fmt.Errorf("%s: client ended with %v, want end of stream", url, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if decodeErr != nil {
		return fmt.Errorf("%s: decode error: %w", url, decodeErr)
	}
	if video && videoUnits == 0 || audioPackets == 0 || clockRate == 0 {
		return fmt.Errorf("%s: played %d video access units and %d audio packets", url, videoUnits, audioPackets)
	}
	span := time.Duration(float64(last-first) / float64(clockRate) * float64(time.Second))
	if d := span - want; d < -600*time.Millisecond || d > 100*time.Millisecond {
		return fmt.Errorf("%s: played %v of media, want about %v", url, span, want)
	}
	return nil
}

// playAll plays every URL at once and reports each failure.
func playAll(t *testing.T, urls []string, video bool, want time.Duration) {
	t.Helper()
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = playRendition(u, video, want)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
