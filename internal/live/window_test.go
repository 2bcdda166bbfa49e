package live

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
)

func seg(i int64, d time.Duration, disc bool) metastore.Segment {
	return metastore.Segment{ChunkIndex: i, Sequence: i, DurationUS: d.Microseconds(), Discontinuity: disc,
		ProgramDateTime: time.Date(2026, 1, 1, 0, 0, int(i)*2, 0, time.UTC)}
}

func TestWindowSlides(t *testing.T) {
	const s2 = 2 * time.Second
	tests := []struct {
		name       string
		count      int
		dur        time.Duration
		segs       []metastore.Segment
		listed     int
		mediaSeq   int64
		discSeq    uint64
		target     int
		discListed int
		gone       int
	}{
		{"fills up", 3, 0, []metastore.Segment{seg(0, s2, false), seg(1, s2, false)}, 2, 0, 0, 2, 0, 0},
		{"slides by count", 3, 0, []metastore.Segment{seg(0, s2, false), seg(1, s2, false), seg(2, s2, false), seg(3, s2, false), seg(4, s2, false)}, 3, 2, 0, 2, 0, 2},
		{"discontinuity still listed", 3, 0, []metastore.Segment{seg(0, s2, false), seg(1, s2, true), seg(2, s2, false), seg(3, s2, false)}, 3, 1, 0, 2, 1, 1},
		{"discontinuity slid out", 3, 0, []metastore.Segment{seg(0, s2, false), seg(1, s2, true), seg(2, s2, false), seg(3, s2, false), seg(4, s2, true), seg(5, s2, false)}, 3, 3, 1, 2, 1, 3},
		{"slides by duration", 0, 5 * time.Second, []metastore.Segment{seg(0, s2, false), seg(1, s2, false), seg(2, s2, false), seg(3, s2, false)}, 2, 2, 0, 2, 0, 2},
		{"rounding to milliseconds first", 2, 0, []metastore.Segment{seg(0, 2000400*time.Microsecond, false)}, 1, 0, 0, 2, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(tc.count, tc.dur, 2)
			gone := 0
			for _, s := range tc.segs {
				gone += len(w.push(s))
			}
			p := w.playlist()
			disc := 0
			for _, s := range p.Segments {
				if s.Discontinuity {
					disc++
				}
			}
			if len(p.Segments) != tc.listed || int64(p.MediaSequence) != tc.mediaSeq || p.DiscontinuitySequence != tc.discSeq ||
				p.TargetDurationSeconds() != tc.target || disc != tc.discListed || gone != tc.gone {
				t.Errorf("listed %d seq %d disc seq %d target %d disc %d gone %d; want %d %d %d %d %d %d",
					len(p.Segments), p.MediaSequence, p.DiscontinuitySequence, p.TargetDurationSeconds(), disc, gone,
					tc.listed, tc.mediaSeq, tc.discSeq, tc.target, tc.discListed, tc.gone)
			}
			if w.first() != tc.mediaSeq || w.last() != tc.segs[len(tc.segs)-1].Sequence {
				t.Errorf("window %d..%d", w.first(), w.last())
			}
		})
	}
}

// The target duration is declared up front and stays what it was declared,
// however long or short the segments listed are.
func TestWindowTargetIsFixed(t *testing.T) {
	w := newWindow(3, 0, 4)
	for i, d := range []time.Duration{time.Second, 4 * time.Second, 3999 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second} {
		w.push(seg(int64(i), d, false))
		if got := w.playlist().TargetDurationSeconds(); got != 4 {
			t.Fatalf("after segment %d (%v): target %d, want the declared 4", i, d, got)
		}
	}
	if got := finalPlaylist(w.segs, hls.VOD, w.target).TargetDurationSeconds(); got != 4 {
		t.Fatalf("vod playlist target %d, want the live playlist's 4", got)
	}
}

func TestLivePlaylistText(t *testing.T) {
	w := newWindow(2, 0, 2)
	for _, s := range []metastore.Segment{seg(0, 2*time.Second, false), seg(1, 2*time.Second, true), seg(2, 1900*time.Millisecond, false)} {
		w.push(s)
	}
	b, err := w.playlist().Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02.000Z
#EXTINF:2.000,
seg_1.ts
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:04.000Z
#EXTINF:1.900,
seg_2.ts
`
	if string(b) != want {
		t.Errorf("live playlist:\n%s\nwant:\n%s", b, want)
	}
	final, err := finalPlaylist([]metastore.Segment{seg(0, 2*time.Second, true), seg(1, 2*time.Second, true)}, hls.VOD, 2).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(final), "#EXT-X-PLAYLIST-TYPE:VOD") || !strings.HasSuffix(string(final), "#EXT-X-ENDLIST\n") ||
		strings.Count(string(final), "#EXT-X-DISCONTINUITY\n") != 1 {
		t.Errorf("vod playlist: want type VOD, ENDLIST and only the inner discontinuity:\n%s", final)
	}
}
