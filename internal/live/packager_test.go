package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// checkSegments checks a finished stream's rows against its objects: a
// contiguous sequence from first, each object intact and starting with a
// key frame. It returns the rows.
func (e *liveEnv) checkSegments(id string, first int64) []metastore.Segment {
	e.t.Helper()
	rows, err := e.meta.ListSegments(context.Background(), id, "", first, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, r := range rows {
		if r.Sequence != first+int64(i) || r.ChunkIndex != r.Sequence {
			e.t.Fatalf("row %d has sequence %d, want %d", i, r.Sequence, first+int64(i))
		}
		data := e.getObject(r.Key)
		sum := sha256.Sum256([]byte(data))
		if hex.EncodeToString(sum[:]) != r.SHA256 || int64(len(data)) != r.Size {
			e.t.Errorf("segment %s does not match its row (%d bytes)", r.Key, len(data))
		}
		if info, err := hls.InspectTS([]byte(data)); err != nil || !info.StartsWithKeyFrame {
			e.t.Errorf("segment %s: starts with a key frame %v, err %v", r.Key, info.StartsWithKeyFrame, err)
		}
	}
	return rows
}

func TestPackagerTakesOverAStreamMidWay(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 20, timeout: time.Minute})
	st := e.newStream("")
	ts := makeTS(t, 8, 25, "libx264", 0)
	half := len(ts) / 2 / mpegts.PacketSize * mpegts.PacketSize
	sess := e.openSession(st.ID)
	writeAll(t, sess, ts[:half])
	waitFor(t, 20*time.Second, "segments from the first packager", func() bool {
		rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
		return len(rows) >= 3
	})
	e.stopPackager()
	before, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)

	writeAll(t, sess, ts[half:])
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.startPackager()
	waitFor(t, 20*time.Second, "segments from the second packager", func() bool {
		rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
		return len(rows) >= len(before)+2
	})
	e.end(st.ID)
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	rows := e.checkSegments(st.ID, 0)
	var disc []int64
	for _, r := range rows {
		if r.Discontinuity {
			disc = append(disc, r.Sequence)
		}
	}
	if len(disc) != 1 || disc[0] != int64(len(before)) || vod.Gaps != 1 {
		t.Fatalf("discontinuities at %v (gaps %d), want one at %d where the second packager took over", disc, vod.Gaps, len(before))
	}
	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if len(vp.segments) != len(rows) || !vp.ended {
		t.Fatalf("vod playlist lists %d segments, %d rows", len(vp.segments), len(rows))
	}
}

func TestRetentionDeletesSegmentsThatLeftTheWindow(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, window: 2, retention: time.Nanosecond})
	st := e.newStream("")
	sess := e.openSession(st.ID)
	writeAll(t, sess, makeTS(t, 6, 25, "libx264", 0))
	if err := sess.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "five segments listed", func() bool {
		rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
		return len(rows) >= 5
	})
	e.end(st.ID)
	vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	var d Details
	if err := json.Unmarshal(vod.Details, &d); err != nil {
		t.Fatal(err)
	}
	all, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
	if d.FirstRetained < 3 || d.FirstRetained >= int64(len(all)) {
		t.Fatalf("first retained segment %d of %d", d.FirstRetained, len(all))
	}
	for _, r := range all {
		kept := e.getObject(r.Key) != ""
		if kept != (r.Sequence >= d.FirstRetained) {
			t.Errorf("segment %d: stored %v, first retained %d", r.Sequence, kept, d.FirstRetained)
		}
	}
	e.checkSegments(st.ID, d.FirstRetained)
	vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8"))
	if vp.mediaSequence != d.FirstRetained || int64(len(vp.segments)) != int64(len(all))-d.FirstRetained {
		t.Fatalf("vod playlist from %d with %d segments; want the %d retained from %d", vp.mediaSequence, len(vp.segments), int64(len(all))-d.FirstRetained, d.FirstRetained)
	}
}

// corruptingStore stores damaged bytes for the first bad Puts of keys with
// a given suffix, as a faulty disk or bucket would.
type corruptingStore struct {
	objstore.Store
	suffix string
	mu     sync.Mutex
	bad    int
}

func (s *corruptingStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) (objstore.Info, error) {
	s.mu.Lock()
	corrupt := strings.HasSuffix(key, s.suffix) && s.bad > 0
	if corrupt {
		s.bad--
	}
	s.mu.Unlock()
	if !corrupt {
		return s.Store.Put(ctx, key, r, size, ct)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return objstore.Info{}, err
	}
	b[len(b)/2] ^= 0xff
	return s.Store.Put(ctx, key, bytes.NewReader(b), size, ct)
}

func TestChecksumMismatchesAreRewrittenAndCounted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		bad      int
		failures int64
		gaps     int64
	}{
		{"one bad write is rewritten", 1, 1, 0},
		{"a segment that never reads back is given up", maxRewrites, maxRewrites, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLiveEnv(t, envOptions{segment: time.Second, window: 10, objects: func(s objstore.Store) objstore.Store {
				return &corruptingStore{Store: s, suffix: "/seg_2.ts", bad: tc.bad}
			}})
			st := e.newStream("")
			sess := e.openSession(st.ID)
			writeAll(t, sess, makeTS(t, 5, 25, "libx264", 0))
			if err := sess.Close(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "four segments", func() bool {
				rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
				return len(rows) >= 4
			})
			e.end(st.ID)
			vod := e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
			if vod.ChecksumFailures != tc.failures || vod.Gaps != tc.gaps {
				t.Fatalf("checksum failures %d gaps %d, want %d %d", vod.ChecksumFailures, vod.Gaps, tc.failures, tc.gaps)
			}
			if got := counterValue(t, e.reg, "weir_live_checksum_failures_total"); got != float64(tc.failures) {
				t.Errorf("weir_live_checksum_failures_total = %v, want %d", got, tc.failures)
			}
			rows := e.checkSegments(st.ID, 0)
			if want := 5 - tc.gaps; int64(len(rows)) != want {
				t.Errorf("%d segments recorded, want %d", len(rows), want)
			}
			if tc.gaps > 0 && !rows[2].Discontinuity {
				t.Error("the segment after the lost one is not marked as a discontinuity")
			}
		})
	}
}

func (e *liveEnv) tasks() int {
	e.packager.mu.Lock()
	defer e.packager.mu.Unlock()
	return len(e.packager.tasks)
}

func TestStreamEndedElsewhereStopsItsTask(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{})
	st := e.newStream("")
	waitFor(t, 10*time.Second, "a task for the new stream", func() bool { return e.tasks() == 1 })
	// Ended through the API before any media came, with no end marker.
	if _, err := e.meta.TransitionStatus(context.Background(), st.ID, metastore.StatusVOD, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the task to stop", func() bool { return e.tasks() == 0 })
	if p := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8")); !p.ended || len(p.segments) != 0 {
		t.Errorf("vod playlist of a stream without media: ended %v, %d segments", p.ended, len(p.segments))
	}
}
