package vod

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// slowFFmpeg returns an ffmpeg wrapper that reads its input in real time
// (-re), so a test can act while a transcode is still running.
func slowFFmpeg(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ffmpeg-realtime")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec ffmpeg -re \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) rows(t testing.TB, id, rendition string) []metastore.Segment {
	t.Helper()
	rows, err := e.meta.ListSegments(context.Background(), id, rendition, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// assertConsistent checks a finished title's invariants: every playlist
// entry is a stored object with a matching segment row (size and SHA-256),
// there are no other rows, and no object under the stream's prefix is
// anything but the source, a playlist, an init segment, a listed segment
// or the thumbnail.
func assertConsistent(t *testing.T, e *env, id string, renditions []string) {
	t.Helper()
	allowed := map[string]bool{id + "/master.m3u8": true, id + "/thumb.jpg": true}
	for _, r := range renditions {
		for _, f := range []string{"index.m3u8", "iframes.m3u8", "init.mp4"} {
			allowed[id+"/"+r+"/"+f] = true
		}
		pl := decodeMediaPlaylist(t, e.object(t, id+"/"+r+"/index.m3u8"))
		rows := e.rows(t, id, r)
		if int(pl.Count()) != len(rows) || len(rows) == 0 {
			t.Fatalf("%s: %d playlist entries, %d rows", r, pl.Count(), len(rows))
		}
		for i, seg := range pl.Segments[:pl.Count()] {
			key := id + "/" + r + "/" + seg.URI
			allowed[key] = true
			data := e.object(t, key)
			sum := sha256.Sum256(data)
			if rows[i].Key != key || rows[i].ChunkIndex != int64(i) || rows[i].Size != int64(len(data)) || rows[i].SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: row %d %+v does not describe %s", r, i, rows[i], key)
			}
		}
	}
	objs, err := e.objects.List(context.Background(), id+"/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !allowed[o.Key] && !strings.HasPrefix(o.Key, id+"/source/") {
			t.Errorf("orphaned object %s", o.Key)
		}
	}
}

// assertNoOutput checks that a failed or cancelled title left nothing but
// its source behind.
func assertNoOutput(t *testing.T, e *env, id string) {
	t.Helper()
	objs, err := e.objects.List(context.Background(), id+"/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !strings.HasPrefix(o.Key, id+"/source/") {
			t.Errorf("left behind %s", o.Key)
		}
	}
	for _, r := range append(ladderNames(), "240p", "audio") {
		if rows := e.rows(t, id, r); len(rows) > 0 {
			t.Errorf("left %d segment rows for %s", len(rows), r)
		}
	}
}

func ladderNames() []string {
	var out []string
	for _, r := range DefaultLadder() {
		out = append(out, r.Name)
	}
	return out
}

func TestUnusableUploadsFailWithAClearError(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("Meeting notes\n- not a video\n"), 0o644)
	empty := filepath.Join(dir, "empty.mp4")
	os.WriteFile(empty, nil, 0o644)

	fast := makeClip(t, dir, "faststart.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-movflags", "+faststart")
	plain := makeClip(t, dir, "plain.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast")
	truncate := func(src, name string, frac float64) string {
		data, _ := os.ReadFile(src)
		out := filepath.Join(dir, name)
		os.WriteFile(out, data[:int(float64(len(data))*frac)], 0o644)
		return out
	}

	tests := []struct {
		name string
		file string
		want *regexp.Regexp
	}{
		{"text file", text, regexp.MustCompile(`^the file is not audio or video: no video or audio stream found$`)},
		{"empty file", empty, regexp.MustCompile(`^the file is empty`)},
		{"mp4 cut off at 41 percent", truncate(fast, "cut.mp4", 0.41), regexp.MustCompile(`^the file is truncated at (3[5-9]|4[0-5]) %: only \d+\.\d s of its declared 10\.0 s could be decoded$`)},
		{"mp4 cut off before its index", truncate(plain, "noindex.mp4", 0.6), regexp.MustCompile(`^the file is an incomplete MP4: its index \(the moov box\) is missing`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id, job := e.upload(t, tt.file)
			if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
				t.Fatalf("Handle: %v (a failed title is still a handled job)", err)
			}
			st := e.stream(t, id)
			if st.Status != metastore.StatusFailed || !tt.want.MatchString(st.Error) {
				t.Fatalf("status %s error %q, want failed matching %s", st.Status, st.Error, tt.want)
			}
			if st.StageTimes[metastore.StatusFailed].IsZero() {
				t.Error("no failed stage time")
			}
			assertNoOutput(t, e, id)
		})
	}
}

// A worker killed mid-transcode leaves a half-written title behind; the
// redelivered job, on a fresh worker, must start over and end with a
// consistent title: no duplicate rows, no orphaned segments.
func TestRedeliveredJobRestartsCleanlyAfterACrash(t *testing.T) {
	t.Parallel() // mostly waits on real-time pacing
	e := newEnv(t)
	src := smallClip(t, "6")
	id, job := e.upload(t, src)

	slow := e.config(t)
	slow.FFmpeg = slowFFmpeg(t)
	ctx, kill := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.worker(t, slow).Handle(ctx, job) }()
	waitFor(t, "the first segments", func() bool { return len(e.rows(t, id, "240p")) >= 2 })
	kill()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Handle returned %v, want context.Canceled so the job is redelivered", err)
	}
	st := e.stream(t, id)
	if st.Status != metastore.StatusTranscoding {
		t.Fatalf("after the crash the stream is %s, want transcoding", st.Status)
	}
	partial := len(e.rows(t, id, "240p"))

	// The redelivery lands on a new worker (a new process) over the same stores.
	if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	st = e.stream(t, id)
	if st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s), want ready", st.Status, st.Error)
	}
	if got := detailInt(st.Details, "attempts"); got != 2 {
		t.Errorf("attempts %d, want 2", got)
	}
	rows := e.rows(t, id, "240p")
	if len(rows) != 6 {
		t.Errorf("%d rows after the restart (the crashed attempt had %d), want 6", len(rows), partial)
	}
	assertConsistent(t, e, id, []string{"240p"})

	// A third delivery of the same job changes nothing.
	before := e.stream(t, id)
	if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if after := e.stream(t, id); after.Version != before.Version {
		t.Errorf("duplicate delivery of a ready title rewrote it (version %d → %d)", before.Version, after.Version)
	}
}

func TestCancelStopsTheTranscodeAndDeletesItsOutput(t *testing.T) {
	t.Parallel() // mostly waits on real-time pacing
	for _, remote := range []bool{false, true} {
		name := "in this worker"
		if remote {
			name = "from another process"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			id, job := e.upload(t, smallClip(t, "20"))
			cfg := e.config(t)
			cfg.FFmpeg = slowFFmpeg(t)
			w := e.worker(t, cfg)
			errc := make(chan error, 1)
			go func() { errc <- w.Handle(context.Background(), job) }()
			waitFor(t, "the first segment", func() bool { return len(e.rows(t, id, "240p")) >= 1 })

			canceller := w
			if remote {
				canceller = e.worker(t, e.config(t)) // knows nothing of the running job
			}
			if err := canceller.Cancel(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("cancelled Handle returned %v, want nil (the job is finished)", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the transcode did not stop")
			}
			st := e.stream(t, id)
			if st.Status != metastore.StatusFailed || st.Error != "cancelled" {
				t.Fatalf("status %s error %q, want failed/cancelled", st.Status, st.Error)
			}
			assertNoOutput(t, e, id)

			// Redelivery of a cancelled job does nothing; cancelling again is refused.
			if err := w.Handle(context.Background(), job); err != nil || e.stream(t, id).Status != metastore.StatusFailed {
				t.Errorf("redelivered cancelled job: %v, status %s", err, e.stream(t, id).Status)
			}
			if err := w.Cancel(context.Background(), id); !errors.Is(err, metastore.ErrConflict) {
				t.Errorf("second cancel: %v, want ErrConflict", err)
			}
		})
	}
}

func TestTitleIsPlayableWhileStillTranscoding(t *testing.T) {
	t.Parallel() // mostly waits on real-time pacing
	e := newEnv(t)
	id, job := e.upload(t, smallClip(t, "8"))
	cfg := e.config(t)
	cfg.FFmpeg = slowFFmpeg(t)
	w := e.worker(t, cfg)

	type snapshot struct {
		status   metastore.Status
		progress float64
		master   []byte
		media    []byte
	}
	var (
		mu    sync.Mutex
		snaps []snapshot
	)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
			}
			st, err := e.meta.GetStream(context.Background(), id)
			if err != nil || st.Status == metastore.StatusReady {
				continue
			}
			s := snapshot{status: st.Status, progress: st.Progress}
			if e.exists(id + "/master.m3u8") {
				s.master = e.object(t, id+"/master.m3u8")
				s.media = e.object(t, id+"/240p/index.m3u8")
				// Every listed segment must already be complete and recorded.
				pl := decodeMediaPlaylist(t, s.media)
				rows := e.rows(t, id, "240p")
				for i, seg := range pl.Segments[:pl.Count()] {
					data := e.object(t, id+"/240p/"+seg.URI)
					sum := sha256.Sum256(data)
					if i >= len(rows) || rows[i].SHA256 != hex.EncodeToString(sum[:]) {
						t.Errorf("EVENT playlist lists %s before it is complete and recorded", seg.URI)
					}
				}
			}
			mu.Lock()
			snaps = append(snaps, s)
			mu.Unlock()
		}
	}()
	if err := w.Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-watched

	// RFC 8216 section 6.2.1: an EVENT playlist may only be appended to,
	// so every version a player reloaded is a prefix of the next and of
	// the final one, which keeps PLAYLIST-TYPE:EVENT and gains ENDLIST.
	final := e.object(t, id+"/240p/index.m3u8")
	if !bytes.Contains(final, []byte("#EXT-X-PLAYLIST-TYPE:EVENT\n")) || !bytes.HasSuffix(final, []byte("#EXT-X-ENDLIST\n")) {
		t.Errorf("final playlist is not the EVENT playlist with ENDLIST:\n%s", final)
	}
	var sawEvent, sawProgress bool
	var prev []byte
	reloads := 0
	for _, s := range snaps {
		if s.progress > 0 && s.progress < 100 {
			sawProgress = true
		}
		if s.media == nil {
			continue
		}
		if s.status != metastore.StatusTranscoding {
			t.Errorf("playlists exist while the stream is %s", s.status)
		}
		decodeMaster(t, s.master)
		if !bytes.Contains(s.media, []byte("#EXT-X-PLAYLIST-TYPE:EVENT\n")) {
			t.Errorf("playlist during transcoding is not an EVENT playlist:\n%s", s.media)
		}
		open := !bytes.Contains(s.media, []byte("ENDLIST"))
		if !bytes.HasPrefix(s.media, prev) {
			t.Errorf("reload rewrote the EVENT playlist instead of appending:\nbefore:\n%s\nafter:\n%s", prev, s.media)
		}
		if !bytes.HasPrefix(final, s.media) {
			t.Errorf("the final playlist does not extend one loaded while transcoding:\nloaded:\n%s\nfinal:\n%s", s.media, final)
		}
		if !bytes.Equal(prev, s.media) {
			reloads++
		}
		prev = s.media
		sawEvent = sawEvent || open
	}
	if !sawEvent || !sawProgress || reloads < 2 {
		t.Fatalf("over %d snapshots: saw an open EVENT playlist %v, saw progress %v, %d distinct versions", len(snaps), sawEvent, sawProgress, reloads)
	}
	if ms := detailInt(e.stream(t, id).Details, "first_playable_ms"); ms <= 0 {
		t.Errorf("first_playable_ms %d", ms)
	}
}

func TestAudioOnlyUploadBecomesAnAudioTitle(t *testing.T) {
	t.Parallel() // mostly waits on real-time pacing
	e := newEnv(t)
	src := makeClip(t, t.TempDir(), "tone.m4a", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100", "-t", "5", "-c:a", "aac", "-b:a", "96k")
	id, job := e.upload(t, src)
	if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	st := e.stream(t, id)
	if st.Status != metastore.StatusReady || strings.Join(st.VariantsGenerated, ",") != "audio" {
		t.Fatalf("status %s (%s) variants %v", st.Status, st.Error, st.VariantsGenerated)
	}
	master := decodeMaster(t, e.object(t, id+"/master.m3u8"))
	if len(master.Variants) != 1 || master.Variants[0].Codecs != "mp4a.40.2" || master.Variants[0].Resolution != "" || master.Variants[0].URI != "audio/index.m3u8" {
		t.Fatalf("master variants %+v", master.Variants[0].VariantParams)
	}
	if e.exists(id+"/thumb.jpg") || e.exists(id+"/audio/iframes.m3u8") {
		t.Error("an audio title got a thumbnail or an i-frame playlist")
	}
	assertConsistent(t, e, id, []string{"audio"})
	srv := e.serve(t)
	playAll(t, []string{srv.URL + "/" + id + "/audio/index.m3u8"}, false, 5*time.Second)
}

func TestMPEGTSFormat(t *testing.T) {
	t.Parallel() // mostly waits on real-time pacing
	e := newEnv(t)
	id, job := e.upload(t, smallClip(t, "3"))
	cfg := e.config(t)
	cfg.Format = FormatTS
	if err := e.worker(t, cfg).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if st := e.stream(t, id); st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s)", st.Status, st.Error)
	}
	master := decodeMaster(t, e.object(t, id+"/master.m3u8"))
	if v := master.Variants[0]; !strings.HasPrefix(v.Codecs, "avc1.42") || !strings.HasSuffix(v.Codecs, ",mp4a.40.2") || v.Resolution != "320x240" {
		t.Errorf("variant %+v", v.VariantParams)
	}
	media := e.object(t, id+"/240p/index.m3u8")
	if bytes.Contains(media, []byte("EXT-X-MAP")) || !bytes.Contains(media, []byte("seg_00000.ts")) {
		t.Errorf("mpeg-ts playlist:\n%s", media)
	}
	ipl := decodeMediaPlaylist(t, e.object(t, id+"/240p/iframes.m3u8"))
	if ipl.Version() != 4 || !ipl.Iframe || ipl.Count() != 3 {
		t.Errorf("i-frame playlist version %d, %d entries", ipl.Version(), ipl.Count())
	}
	for i, seg := range ipl.Segments[:ipl.Count()] {
		data := e.object(t, id+"/240p/"+seg.URI)
		if seg.Offset != 0 || seg.Limit%188 != 0 || seg.Limit >= int64(len(data)) || !firstFrameIsIDR(t, data[:seg.Limit]) {
			t.Errorf("i-frame %d: range %d@%d of %d bytes does not hold the IDR frame", i, seg.Limit, seg.Offset, len(data))
		}
	}
	assertConsistent(t, e, id, []string{"240p"})
	srv := e.serve(t)
	playAll(t, []string{srv.URL + "/" + id + "/240p/index.m3u8"}, true, 3*time.Second)
}

func TestURLImport(t *testing.T) {
	clip := smallClip(t, "2")
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/episode.mp4" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, clip)
	}))
	defer src.Close()
	tests := []struct {
		path   string
		status metastore.Status
		err    string
	}{
		{"/episode.mp4", metastore.StatusReady, ""},
		{"/missing.mp4", metastore.StatusFailed, "could not fetch the source URL: the server answered 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			e := newEnv(t)
			id := "vod-url" + strings.ReplaceAll(tt.path, "/", "-")
			id = strings.TrimSuffix(id, ".mp4")
			if _, err := e.meta.CreateStream(context.Background(), metastore.Stream{ID: id, Kind: metastore.KindVOD, Status: metastore.StatusUploaded, SourceURL: src.URL + tt.path}); err != nil {
				t.Fatal(err)
			}
			job, _ := json.Marshal(protocol.VODJob{StreamID: id, SourceURL: src.URL + tt.path})
			if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			st := e.stream(t, id)
			if st.Status != tt.status || st.Error != tt.err {
				t.Errorf("status %s error %q, want %s %q", st.Status, st.Error, tt.status, tt.err)
			}
		})
	}
}

func TestJobsThatNeedNoWork(t *testing.T) {
	e := newEnv(t)
	w := e.worker(t, e.config(t))
	for name, job := range map[string]string{
		"not json":       "ceci n'est pas un job",
		"no stream id":   `{"source_key":"x/source/a.mp4"}`,
		"unknown stream": `{"stream_id":"vod-nope","source_key":"vod-nope/source/a.mp4"}`,
	} {
		if err := w.Handle(context.Background(), []byte(job)); err != nil {
			t.Errorf("%s: %v, want nil (dropped, not retried forever)", name, err)
		}
	}

	// A job that already killed its worker MaxAttempts times is failed
	// instead of being tried again.
	id, job := e.upload(t, smallClip(t, "1"))
	if _, err := e.meta.TransitionStatus(context.Background(), id, metastore.StatusTranscoding, func(s *metastore.Stream) {
		s.Details = metastore.MergeDetails(s.Details, map[string]any{"attempts": 3})
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if st := e.stream(t, id); st.Status != metastore.StatusFailed || !strings.HasPrefix(st.Error, "gave up after 3 attempts") {
		t.Errorf("status %s error %q", st.Status, st.Error)
	}
}

// A portrait phone video is sized by its width: 360x640 gets the 360p rung
// at 360x640, not a squashed 640x360.
func TestPortraitSourceKeepsItsOrientation(t *testing.T) {
	e := newEnv(t)
	src := makeClip(t, t.TempDir(), "portrait.mp4", "-f", "lavfi", "-i", "testsrc2=size=360x640:rate=25",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
	id, job := e.upload(t, src)
	if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	st := e.stream(t, id)
	if st.Status != metastore.StatusReady || strings.Join(st.VariantsGenerated, ",") != "360p" {
		t.Fatalf("status %s (%s) variants %v", st.Status, st.Error, st.VariantsGenerated)
	}
	master := decodeMaster(t, e.object(t, id+"/master.m3u8"))
	if v := master.Variants[0]; v.Resolution != "360x640" || strings.Contains(v.Codecs, "mp4a") {
		t.Errorf("variant %s codecs %s, want 360x640 video only", v.Resolution, v.Codecs)
	}
	var probe struct {
		Streams []struct {
			Width  int `json:"width"`
			Height int `json:"height"`
		} `json:"streams"`
	}
	f := filepath.Join(t.TempDir(), "thumb.jpg")
	os.WriteFile(f, e.object(t, id+"/thumb.jpg"), 0o644)
	ffprobeJSON(t, &probe, "-show_streams", f)
	if len(probe.Streams) != 1 || probe.Streams[0].Width != 360 || probe.Streams[0].Height != 640 {
		t.Errorf("thumbnail %+v, want 360x640", probe.Streams)
	}
}
