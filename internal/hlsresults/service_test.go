package hlsresults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
)

// piece is a cue placed back on the job's timeline, in ms.
type piece struct {
	start, end int64
	text       string
}

// TestTitleSubtitles runs the subtitles of a VOD title through a job's
// life, for both segment formats: nothing before the job, an EVENT
// playlist growing with the transcript while it runs, the whole playlist
// with ENDLIST once it is complete; every segment's X-TIMESTAMP-MAP is
// the first video timestamp ffprobe reads from the media segment, and the
// cues, placed back through it, are the transcript's exactly.
func TestTitleSubtitles(t *testing.T) {
	for _, format := range []string{"mpegts", "fmp4"} {
		t.Run(format, func(t *testing.T) {
			f := newFixture(t)
			m := encode(t, format, 9, 2, 0)
			const id = "vod-captions"
			f.addTitle(id, m)

			if res, err := f.svc.Serve(f.ctx, id, "master.m3u8"); err != nil || res != nil {
				t.Fatalf("master of a title without jobs: %v, %v; want it left to the object store", res, err)
			}
			if res, err := f.svc.Serve(f.ctx, id, "subs/360p/index.m3u8"); err != nil || res != nil {
				t.Fatalf("subtitles without an stt job: %v, %v; want them left to the object store", res, err)
			}

			f.addJob("job-cap", id, metastore.JobRunning, "stt")
			f.utter("job-cap", 500, 1500, "one")
			f.utter("job-cap", 1800, 2600, "two & <three>")
			f.advance(0) // past the cache of the answers above

			master := f.get(id, "master.m3u8")
			checkMaster(t, master.Body, "subs/360p/index.m3u8")

			pl := decodePlaylist(t, f.get(id, "subs/360p/index.m3u8").Body)
			if pl.Closed || pl.MediaType != m3u8.EVENT || pl.SeqNo != 0 || pl.Count() != 1 {
				t.Fatalf("while the job runs with results to 2.6 s: closed %v type %v seq %d, %d segments; want an open EVENT playlist with the first segment only",
					pl.Closed, pl.MediaType, pl.SeqNo, pl.Count())
			}

			f.utter("job-cap", 5000, 5000, "four")
			f.finishJob("job-cap")
			f.advance(0)
			res := f.get(id, "subs/360p/index.m3u8")
			if res.CacheControl != cacheSettled {
				t.Errorf("finished playlist cached as %q", res.CacheControl)
			}
			pl = decodePlaylist(t, res.Body)
			if !pl.Closed || int(pl.Count()) != len(m.segs) {
				t.Fatalf("after the job: closed %v, %d segments; want ENDLIST and %d", pl.Closed, pl.Count(), len(m.segs))
			}
			checkTargetDuration(t, pl)

			var got []piece
			for i := range m.segs {
				if want := fmt.Sprintf("%d.vtt", i); pl.Segments[i].URI != want || !sameDuration(pl.Segments[i].Duration, m.durs[i]) {
					t.Errorf("segment %d: %s %.3f, want %s %v", i, pl.Segments[i].URI, pl.Segments[i].Duration, want, m.durs[i])
				}
				seg := f.get(id, "subs/360p/"+pl.Segments[i].URI)
				if seg.ContentType != TypeWebVTT {
					t.Errorf("segment %d content type %q", i, seg.ContentType)
				}
				mpegts, cues := parseVTT(t, seg.Body)
				if want := (m.video[i].Microseconds()*9 + 50) / 100; absInt(mpegts-want) > 1 {
					t.Errorf("segment %d: MPEGTS %d, but its first video frame is at %v (%d)", i, mpegts, m.video[i], want)
				}
				for _, c := range cues {
					if c.end > m.durs[i] {
						t.Errorf("segment %d: cue %q ends at %v, after the segment's %v", i, c.text, c.end, m.durs[i])
					}
					base := time.Duration(mpegts)*time.Second/90000 - m.video[0]
					got = append(got, piece{(base + c.start).Round(time.Millisecond).Milliseconds(), (base + c.end).Round(time.Millisecond).Milliseconds(), c.text})
				}
			}
			want := []piece{{500, 1500, "one"}, {1800, 2600, "two &amp; &lt;three&gt;"}, {5000, 5500, "four"}}
			if merged := merge(got); !sameCues(merged, want) {
				t.Fatalf("cues placed back on the transcript's timeline:\n%v\nwant\n%v\n(pieces %v)", merged, want, got)
			}
			checkFFmpegReads(t, f.get(id, "subs/360p/1.vtt").Body, "two & <three>")
		})
	}
}

// TestLiveSubtitlesFollowTheWindow mirrors a live window as it slides:
// the subtitles playlist keeps the video's MEDIA-SEQUENCE (never going
// back), lists a segment once its results are in or it has waited
// LiveDelay, places cues by the segments' own timestamps whatever the
// publisher's clock, stops mapping at a timeline break, and ends with
// the stream and the job.
func TestLiveSubtitlesFollowTheWindow(t *testing.T) {
	f := newFixture(t)
	const id = "live-captions"
	m := encode(t, "mpegts", 16, 2, 100*time.Second)
	if _, err := f.meta.CreateStream(f.ctx, metastore.Stream{ID: id, Kind: metastore.KindLive, Status: metastore.StatusLive}); err != nil {
		t.Fatal(err)
	}
	first, err := hls.TSStarts(m.segs[0])
	if err != nil {
		t.Fatal(err)
	}
	origin := first.Earliest() // where the job's timeline starts
	t0 := f.clock()
	var rows []metastore.Segment
	addRow := func(i int, start time.Duration, disc bool, data []byte) {
		key := fmt.Sprintf("%s/seg_%d.ts", id, i)
		f.put(key, data)
		r := metastore.Segment{StreamID: id, ChunkIndex: int64(i), Sequence: int64(i), Key: key, StartUS: start.Microseconds(),
			DurationUS: m.durs[min(i, len(m.durs)-1)].Microseconds(), Size: int64(len(data)), Discontinuity: disc,
			ProgramDateTime: t0.Add(time.Duration(i) * 2 * time.Second), CreatedAt: t0.Add(time.Duration(i) * 2 * time.Second)}
		if err := f.meta.UpsertSegment(f.ctx, r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	window := func(from, to int, ended bool) {
		pl := hls.MediaPlaylist{TargetDuration: 3, MediaSequence: uint64(from), IndependentSegments: true, Ended: ended}
		for i := from; i <= to; i++ {
			pl.Segments = append(pl.Segments, hls.Segment{URI: fmt.Sprintf("seg_%d.ts", i), Duration: time.Duration(rows[i].DurationUS) * time.Microsecond,
				Discontinuity: rows[i].Discontinuity, ProgramDateTime: rows[i].ProgramDateTime})
		}
		f.putPlaylist(id+"/live.m3u8", &pl)
	}
	for i := 0; i < 3; i++ {
		s, err := hls.TSStarts(m.segs[i])
		if err != nil {
			t.Fatal(err)
		}
		addRow(i, s.Video, false, m.segs[i])
	}
	window(0, 2, false)
	f.addJob("job-live", id, metastore.JobRunning, "stt")
	f.utter("job-live", 2500, 3500, "hello live")

	master := string(f.get(id, "master.m3u8").Body)
	checkMaster(t, []byte(master), "subs/live.m3u8")
	if !strings.Contains(master, "\nlive.m3u8\n") || !strings.Contains(master, `CODECS="avc1.`) {
		t.Fatalf("live master does not play live.m3u8 with its codecs:\n%s", master)
	}

	lastSeq, frontier := uint64(0), int64(3500)
	reload := func(now time.Time, windowFrom, windowTo int) *m3u8.MediaPlaylist {
		t.Helper()
		f.mu.Lock()
		f.now = now
		f.mu.Unlock()
		pl := decodePlaylist(t, f.get(id, "subs/live.m3u8").Body)
		if pl.SeqNo < lastSeq || pl.SeqNo != uint64(windowFrom) {
			t.Fatalf("MEDIA-SEQUENCE %d after %d; the window starts at %d", pl.SeqNo, lastSeq, windowFrom)
		}
		lastSeq = pl.SeqNo
		checkTargetDuration(t, pl)
		want := 0
		for i := windowFrom; i <= windowTo; i++ {
			endMs := (time.Duration(rows[i].StartUS+rows[i].DurationUS)*time.Microsecond - origin).Round(time.Millisecond).Milliseconds()
			if endMs > frontier && now.Sub(rows[i].CreatedAt) < f.svc.LiveDelay {
				break
			}
			want++
		}
		if int(pl.Count()) != want {
			t.Fatalf("at %v: %d segments listed of the window %d-%d, want %d", now.Sub(t0), pl.Count(), windowFrom, windowTo, want)
		}
		for i := range int(pl.Count()) {
			if uri := fmt.Sprintf("%d.vtt", windowFrom+i); pl.Segments[i].URI != uri {
				t.Fatalf("segment %d is %s, want %s", i, pl.Segments[i].URI, uri)
			}
		}
		return pl
	}
	reload(t0.Add(4*time.Second), 0, 2)
	for i := 3; i < len(m.segs); i++ {
		s, err := hls.TSStarts(m.segs[i])
		if err != nil {
			t.Fatal(err)
		}
		addRow(i, s.Video, false, m.segs[i])
		window(max(i-3, 0), i, false)
		reload(t0.Add(time.Duration(i)*2*time.Second+time.Second), max(i-3, 0), i)
	}

	// The utterance is where its job time says, by the segment's PTS.
	var found bool
	for i := range m.segs {
		mpegts, cues := parseVTT(t, f.get(id, fmt.Sprintf("subs/%d.vtt", i)).Body)
		for _, c := range cues {
			at := time.Duration(mpegts)*time.Second/90000 + c.start - origin
			if c.text == "hello live" && (at-2500*time.Millisecond).Abs() > 2*time.Millisecond && c.start > 0 {
				t.Errorf("segment %d: cue starts at %v on the job's timeline, want 2.5 s", i, at)
			}
			found = found || c.text == "hello live"
		}
	}
	if !found {
		t.Fatal("no segment carries the utterance")
	}

	// The publisher reconnects with its clock restarted: from there on
	// nothing maps, even where a result covers all time.
	brk := len(m.segs)
	addRow(brk, 1400*time.Millisecond, true, m.segs[0])
	window(brk-3, brk, false)
	f.utter("job-live", 0, 100_000, "everywhere")
	f.advance(0)
	if _, cues := parseVTT(t, f.get(id, fmt.Sprintf("subs/%d.vtt", brk)).Body); len(cues) != 0 {
		t.Errorf("segment after the break has cues %v", cues)
	}
	if _, cues := parseVTT(t, f.get(id, fmt.Sprintf("subs/%d.vtt", brk-1)).Body); len(cues) == 0 {
		t.Error("segment before the break has no cues")
	}
	var meta MetadataSegment
	if err := json.Unmarshal(f.get(id, fmt.Sprintf("meta/%d.json", brk)).Body, &meta); err != nil || meta.Mapped || len(meta.Results) != 0 {
		t.Errorf("metadata after the break: %+v (%v), want unmapped and empty", meta, err)
	}

	// The stream ends: the window ends, the job completes; the
	// subtitles playlist ends too, at the same sequence.
	window(brk-3, brk, true)
	f.finishJob("job-live")
	frontier = 1 << 62
	pl := reload(f.clock().Add(3*time.Second), brk-3, brk)
	if !pl.Closed {
		t.Fatal("subtitles of an ended stream after the job completed have no ENDLIST")
	}
	if _, err := f.meta.TransitionStatus(f.ctx, id, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	vod := hls.MediaPlaylist{Type: hls.VOD, TargetDuration: 3, Ended: true}
	for _, r := range rows {
		vod.Segments = append(vod.Segments, hls.Segment{URI: fmt.Sprintf("seg_%d.ts", r.ChunkIndex), Duration: time.Duration(r.DurationUS) * time.Microsecond, Discontinuity: r.Discontinuity})
	}
	vod.Segments[0].Discontinuity = false
	f.putPlaylist(id+"/vod.m3u8", &vod)
	f.advance(0)
	if got := string(f.get(id, "master.m3u8").Body); !strings.Contains(got, "\nvod.m3u8\n") || !strings.Contains(got, `URI="subs/vod.m3u8"`) {
		t.Fatalf("master of the stream that became VOD:\n%s", got)
	}
	vp := decodePlaylist(t, f.get(id, "subs/vod.m3u8").Body)
	if !vp.Closed || vp.SeqNo != 0 || int(vp.Count()) != len(rows) || vp.MediaType != m3u8.VOD {
		t.Fatalf("subs/vod.m3u8: closed %v seq %d %d segments type %v", vp.Closed, vp.SeqNo, vp.Count(), vp.MediaType)
	}
}

// TestMetadataSegments checks the JSON sidecar: the index the master
// points at, the playlist mirroring the video, and each segment's
// results placed relative to the segment.
func TestMetadataSegments(t *testing.T) {
	f := newFixture(t)
	m := encode(t, "mpegts", 7, 2, 0)
	const id = "vod-meta"
	f.addTitle(id, m)
	f.addJob("job-meta", id, metastore.JobRunning, "scenes", "loudness")
	scene := map[string]any{"series": []any{map[string]any{"startTimeMs": 2400, "stopTimeMs": 2400,
		"tags": []any{map[string]any{"key": "scene", "value": "1", "score": 0.7}}}}}
	f.result("job-meta", "scenes", 2400, 2400, scene)
	for s := int64(0); s < 3000; s += 1000 {
		f.result("job-meta", "loudness", s, s+1000, map[string]any{"series": []any{map[string]any{"startTimeMs": s, "stopTimeMs": s + 1000,
			"tags": []any{map[string]any{"key": "momentary_lufs", "value": "-23.0"}}}}})
	}

	if master := string(f.get(id, "master.m3u8").Body); !strings.Contains(master, `#EXT-X-SESSION-DATA:DATA-ID="io.weir.metadata",URI="meta/index.json"`) || strings.Contains(master, "SUBTITLES") {
		t.Fatalf("master of a title with a job without stt:\n%s", master)
	}
	var idx MetadataIndex
	if err := json.Unmarshal(f.get(id, "meta/index.json").Body, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Playlist != "360p/index.m3u8" || !slices.Equal(idx.Engines, []string{"loudness", "scenes"}) || len(idx.Jobs) != 1 || idx.Jobs[0].Engines["scenes"] != "running" {
		t.Fatalf("index %+v", idx)
	}
	// Scenes reached 2.4 s, loudness 3 s: the slower engine decides.
	pl := decodePlaylist(t, f.get(id, "meta/360p/index.m3u8").Body)
	if pl.Count() != 1 || pl.Closed {
		t.Fatalf("metadata playlist while the job runs: %d segments, closed %v; want 1, open", pl.Count(), pl.Closed)
	}
	f.result("job-meta", "loudness", 6000, 6000, map[string]any{"tags": []any{map[string]any{"key": "integrated_lufs", "value": "-23.4"}}})
	f.finishJob("job-meta")
	f.advance(0)
	pl = decodePlaylist(t, f.get(id, "meta/360p/index.m3u8").Body)
	if int(pl.Count()) != len(m.segs) || !pl.Closed || pl.Segments[1].URI != "1.json" {
		t.Fatalf("metadata playlist of the finished job: %d segments, closed %v", pl.Count(), pl.Closed)
	}
	var seg MetadataSegment
	res := f.get(id, "meta/360p/1.json")
	if err := json.Unmarshal(res.Body, &seg); err != nil {
		t.Fatal(err)
	}
	if seg.Sequence != 1 || seg.StartMs != 2000 || !seg.Mapped || res.ContentType != TypeJSON {
		t.Fatalf("segment 1: %+v", seg)
	}
	var kinds []string
	for _, e := range seg.Results {
		kinds = append(kinds, fmt.Sprintf("%s@%.1f-%.1f", e.Engine, e.Start, e.End))
	}
	if want := []string{"loudness@0.0-1.0", "scenes@0.4-0.4"}; !slices.Equal(kinds, want) {
		t.Fatalf("segment 1 results %v, want %v\n%s", kinds, want, res.Body)
	}
	if !bytes.Contains(seg.Results[1].Series, []byte(`"score":0.7`)) {
		t.Errorf("scene series not passed on as written: %s", seg.Results[1].Series)
	}
	var last MetadataSegment
	if err := json.Unmarshal(f.get(id, fmt.Sprintf("meta/360p/%d.json", len(m.segs)-1)).Body, &last); err != nil {
		t.Fatal(err)
	}
	if len(last.Results) != 1 || !bytes.Contains(last.Results[0].Tags, []byte("integrated_lufs")) {
		t.Errorf("last segment lacks the loudness summary: %+v", last.Results)
	}
}

// TestHostilePaths asks for what the renditions never name: every answer
// is a not-found error, never a panic or another stream's data.
func TestHostilePaths(t *testing.T) {
	f := newFixture(t)
	const id = "vod-hostile"
	f.addTitle(id, encode(t, "mpegts", 3, 2, 0))
	f.addJob("job-h", id, metastore.JobComplete, "stt")
	for _, p := range []string{
		"subs/360p/-1.vtt", "subs/360p/01.vtt", "subs/360p/99.vtt", "subs/0.vtt", "subs/360p/0.json", "subs/360p/x.vtt",
		"subs/../360p/index.m3u8", "subs/live.m3u8", "subs/360p/iframes.m3u8", "subs/a/b/index.m3u8", "subs/360p/9223372036854775808.vtt",
		"meta/360p/0.vtt", "meta/nope/index.m3u8", "subs/" + strings.Repeat("a", 40) + "/index.m3u8",
	} {
		err := f.serveErr(id, p)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", p, err)
		}
	}
	if res, err := f.svc.Serve(f.ctx, "vod-unknown", "subs/360p/index.m3u8"); res != nil || err != nil {
		t.Errorf("unknown stream: %v %v, want it left to the object store", res, err)
	}
	if res, err := f.svc.Serve(f.ctx, id, "360p/seg_00000.ts"); res != nil || err != nil {
		t.Errorf("a media segment was not left to the object store: %v %v", res, err)
	}
}

func checkMaster(t *testing.T, body []byte, subsURI string) {
	t.Helper()
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(body), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("master does not decode strictly (%v):\n%s", err, body)
	}
	want := `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English (weir stt)",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,URI="` + subsURI + `"`
	if !strings.Contains(string(body), want+"\n") {
		t.Fatalf("master lacks %s:\n%s", want, body)
	}
	for _, v := range pl.(*m3u8.MasterPlaylist).Variants {
		if !v.Iframe && v.Subtitles != "subs" {
			t.Fatalf("variant %s has SUBTITLES %q:\n%s", v.URI, v.Subtitles, body)
		}
	}
}

func decodePlaylist(t *testing.T, body []byte) *m3u8.MediaPlaylist {
	t.Helper()
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(body), true)
	if err != nil || typ != m3u8.MEDIA {
		t.Fatalf("playlist does not decode strictly as a media playlist (%v):\n%s", err, body)
	}
	return pl.(*m3u8.MediaPlaylist)
}

// checkTargetDuration: RFC 8216 4.3.3.1, every EXTINF rounded to an
// integer is at most the target duration.
func checkTargetDuration(t *testing.T, pl *m3u8.MediaPlaylist) {
	t.Helper()
	for i := range int(pl.Count()) {
		if d := pl.Segments[i].Duration; int(d+0.5) > int(pl.TargetDuration) {
			t.Fatalf("segment %d lasts %.3f s, over TARGETDURATION %d", i, d, int(pl.TargetDuration))
		}
	}
}

func sameDuration(sec float64, d time.Duration) bool {
	return (time.Duration(sec*float64(time.Second)) - d).Abs() < time.Millisecond
}

// merge joins pieces of one cue that abut at a segment boundary.
func merge(ps []piece) []piece {
	var out []piece
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].text == p.text && absInt(out[n-1].end-p.start) <= 1 {
			out[n-1].end = p.end
			continue
		}
		out = append(out, p)
	}
	return out
}

func sameCues(got, want []piece) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].text != want[i].text || absInt(got[i].start-want[i].start) > 2 || absInt(got[i].end-want[i].end) > 2 {
			return false
		}
	}
	return true
}

func absInt(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// checkFFmpegReads has ffmpeg convert a subtitles segment to SRT: a
// reader nobody here wrote must find the cue text.
func checkFFmpegReads(t *testing.T, vtt []byte, text string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "seg.vtt")
	if err := os.WriteFile(p, vtt, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", p, "-f", "srt", "-").CombinedOutput()
	if err != nil || !strings.Contains(string(out), text) {
		t.Fatalf("ffmpeg reading the segment: %v\n%s\nsegment:\n%s", err, out, vtt)
	}
}
