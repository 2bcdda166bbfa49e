package live

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/media/mpegts"
)

// segmentStream runs MPEG-TS through a demuxer and a segmenter, feeding
// 1316-byte pieces, starting a new session before each of sessions.
func segmentStream(target time.Duration, sessions ...[]byte) []*cutSegment {
	s := newSegmenter(target, 10*time.Second)
	var segs []*cutSegment
	at := time.Now()
	for _, ts := range sessions {
		segs = s.newSession(at, segs)
		d := mpegts.NewDemuxer()
		for len(ts) > 0 {
			n := min(1316, len(ts))
			segs = s.add(d.Feed(ts[:n], at, nil), d.Tables(), segs)
			ts = ts[n:]
		}
		segs = s.add(d.Flush(nil), d.Tables(), segs)
	}
	return s.flush(at, segs)
}

func durations(segs []*cutSegment) []time.Duration {
	out := make([]time.Duration, len(segs))
	for i, s := range segs {
		out[i] = s.Duration
	}
	return out
}

func TestSegmenterCutsOnKeyFramesAtTheTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		gop    int
		target time.Duration
		want   string
	}{
		{"gop equals target", 25, time.Second, "[1s 1s 1s 1s]"},
		{"two gops per segment", 25, 2 * time.Second, "[2s 2s]"},
		{"gop does not divide the target", 12, time.Second, "[960ms 960ms 960ms 960ms 160ms]"},
		{"gop longer than the target", 50, time.Second, "[2s 2s]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			segs := segmentStream(tc.target, makeTS(t, 4, tc.gop, "libx264", 0))
			if got := fmt.Sprint(durations(segs)); got != tc.want {
				t.Errorf("durations %s, want %s", got, tc.want)
			}
			for i, seg := range segs {
				info, err := hls.InspectTS(seg.Data)
				if err != nil || !info.StartsWithKeyFrame {
					t.Errorf("segment %d: starts with key frame %v, err %v", i, info.StartsWithKeyFrame, err)
				}
				if seg.Discontinuity {
					t.Errorf("segment %d of one session is marked discontinuous", i)
				}
			}
		})
	}
}

func TestSegmenterCutsAudioOnlyOnTime(t *testing.T) {
	t.Parallel()
	ts := makeMedia(t, "mpegts", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=5",
		"-c:a", "aac", "-b:a", "32k")
	segs := segmentStream(time.Second, ts)
	if len(segs) < 5 || len(segs) > 10 {
		t.Fatalf("%d segments from 5 s of audio: %v", len(segs), durations(segs))
	}
	// ffmpeg packs several AAC frames into each PES packet, so segments
	// can only end every few hundred milliseconds: segments stay at or
	// under the target, as close to it as a PES boundary allows.
	for i, seg := range segs[:len(segs)-1] {
		if seg.Duration < 500*time.Millisecond || seg.Duration > time.Second {
			t.Errorf("audio segment %d lasts %v, want 0.5–1 s", i, seg.Duration)
		}
		info, err := hls.InspectTS(seg.Data)
		if err != nil || info.HasVideo || len(info.Codecs) != 1 {
			t.Errorf("audio segment %d: video %v codecs %v err %v", i, info.HasVideo, info.Codecs, err)
		}
	}
}

func TestSegmenterMarksDiscontinuities(t *testing.T) {
	t.Parallel()
	first := makeTS(t, 2, 25, "libx264", 0)
	later := makeTS(t, 2, 25, "libx264", 1000) // 1000 s ahead
	earlier := makeTS(t, 2, 25, "libx264", 0)
	tests := []struct {
		name string
		// joined feeds the parts as one session; otherwise each part is
		// a session.
		joined bool
		parts  [][]byte
		want   []bool // discontinuity per segment
		jumps  int
	}{
		{"one session", false, [][]byte{first}, []bool{false, false}, 0},
		{"publisher reconnects", false, [][]byte{first, earlier}, []bool{false, false, true, false}, 0},
		{"timestamps jump forward", true, [][]byte{first, later}, []bool{false, false, true, false}, 1},
		{"timestamps jump back", true, [][]byte{later, first}, []bool{false, false, true, false}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var segs []*cutSegment
			s := newSegmenter(time.Second, 10*time.Second)
			if tc.joined {
				var all []byte
				for _, p := range tc.parts {
					all = append(all, p...)
				}
				segs = segmentStreamWith(s, all)
			} else {
				segs = segmentStream(time.Second, tc.parts...)
			}
			var got []bool
			for _, seg := range segs {
				got = append(got, seg.Discontinuity)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("discontinuities %v, want %v (durations %v)", got, tc.want, durations(segs))
			}
			if s.jumps != tc.jumps {
				t.Errorf("%d jumps counted, want %d", s.jumps, tc.jumps)
			}
			for i, seg := range segs {
				if seg.Duration <= 0 || seg.Duration > 1100*time.Millisecond {
					t.Errorf("segment %d lasts %v", i, seg.Duration)
				}
			}
		})
	}
}

// segmentStreamWith runs one session of ts through s.
func segmentStreamWith(s *segmenter, ts []byte) []*cutSegment {
	d := mpegts.NewDemuxer()
	at := time.Now()
	var segs []*cutSegment
	for len(ts) > 0 {
		n := min(1316, len(ts))
		segs = s.add(d.Feed(ts[:n], at, nil), d.Tables(), segs)
		ts = ts[n:]
	}
	segs = s.add(d.Flush(nil), d.Tables(), segs)
	return s.flush(at, segs)
}

func TestSegmenterDropsWhatPrecedesTheFirstKeyFrame(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 3, 25, "libx264", 0)
	pieces, d := demuxAll(ts, len(ts))
	// Start the stream just after its first key frame, as when a
	// packager takes over mid-stream.
	start := 0
	for i, p := range pieces {
		if p.Key {
			start = i + 1
			break
		}
	}
	s := newSegmenter(time.Second, 10*time.Second)
	s.markDiscontinuity()
	segs := s.flush(time.Now(), s.add(pieces[start:], d.Tables(), nil))
	if len(segs) != 2 || !segs[0].Discontinuity || segs[1].Discontinuity {
		t.Fatalf("segments %v, first discontinuous %v: want 2, the first marked", durations(segs), len(segs) > 0 && segs[0].Discontinuity)
	}
	if s.droppedBytes == 0 {
		t.Error("no bytes dropped before the second key frame")
	}
}

func TestProgramDateTimeFollowsMediaTime(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 3, 25, "libx264", 0)
	chunks := (len(ts) + 1315) / 1316
	d := mpegts.NewDemuxer()
	s := newSegmenter(time.Second, 10*time.Second)
	base := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	var segs []*cutSegment
	for i := 0; len(ts) > 0; i++ {
		n := min(1316, len(ts))
		// The receive clock runs unevenly and behind the media (three
		// times slower, with late bursts); the program date time must
		// still follow the media clock from the first key frame.
		at := base.Add(time.Duration(i) * 9 * time.Second / time.Duration(chunks))
		if i > 0 {
			at = at.Add(time.Duration(i%7) * 40 * time.Millisecond)
		}
		segs = s.add(d.Feed(ts[:n], at, nil), d.Tables(), segs)
		ts = ts[n:]
	}
	segs = s.flush(time.Now(), segs)
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	for i, seg := range segs {
		want := base.Add(time.Duration(i) * time.Second)
		if !seg.ProgramDateTime.Equal(want) {
			t.Errorf("segment %d: program date time %v, want %v", i, seg.ProgramDateTime, want)
		}
	}
	if s.aheadOfClock != 0 {
		t.Errorf("%d segments counted ahead of the clock", s.aheadOfClock)
	}
}

// TestProgramDateTimeFollowsArrivalWhenFasterThanRealTime feeds 3 s of
// media within about a tenth of a second of receive time: each segment is dated by the arrival
// of its first key frame, never by the media clock running ahead, and the
// dates still increase.
func TestProgramDateTimeFollowsArrivalWhenFasterThanRealTime(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 3, 25, "libx264", 0)
	d := mpegts.NewDemuxer()
	s := newSegmenter(time.Second, 10*time.Second)
	base := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	var segs []*cutSegment
	var last time.Time
	for i := 0; len(ts) > 0; i++ {
		n := min(1316, len(ts))
		last = base.Add(time.Duration(i) * time.Millisecond)
		segs = s.add(d.Feed(ts[:n], last, nil), d.Tables(), segs)
		ts = ts[n:]
	}
	segs = s.flush(time.Now(), segs)
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	var prev time.Time
	for i, seg := range segs {
		pdt := seg.ProgramDateTime
		if pdt.After(last) || pdt.Before(base) {
			t.Errorf("segment %d: program date time %v outside the arrival times %v to %v", i, pdt, base, last)
		}
		if i > 0 && pdt.Sub(prev) < time.Millisecond {
			t.Errorf("segment %d: program date time %v not a millisecond after %v", i, pdt, prev)
		}
		prev = pdt
	}
	if s.aheadOfClock != 2 {
		t.Errorf("%d segments counted ahead of the clock, want 2", s.aheadOfClock)
	}
}

// demuxAll feeds data to a demuxer in pieces of size n and returns every
// packet, flushed.
func demuxAll(data []byte, n int) ([]mpegts.Packet, *mpegts.Demuxer) {
	d := mpegts.NewDemuxer()
	var out []mpegts.Packet
	at := time.Now()
	for len(data) > 0 {
		k := min(n, len(data))
		out = d.Feed(data[:k], at, out)
		data = data[k:]
	}
	return d.Flush(out), d
}

func TestSegmentsStartWithTablesAndKeyFrame(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 4, 25, "libx264", 0)
	pieces, d := demuxAll(ts, 1316)
	s := newSegmenter(time.Second, 10*time.Second)
	segs := s.flush(time.Now(), s.add(pieces, d.Tables(), nil))
	if len(segs) != 4 {
		t.Fatalf("%d segments from 4 s, want 4", len(segs))
	}
	for i, seg := range segs {
		info, err := hls.InspectTS(seg.Data)
		if err != nil || !info.StartsWithKeyFrame || info.Width != 160 {
			t.Errorf("segment %d: key frame %v, %dx%d, err %v", i, info.StartsWithKeyFrame, info.Width, info.Height, err)
		}
		if !bytes.Equal(seg.Data[:2*mpegts.PacketSize], d.Tables()) {
			t.Errorf("segment %d does not start with the PAT and PMT", i)
		}
	}
}

// A publisher that changes its picture size mid-session (an encoder
// reconfigured on the fly) gets a segment boundary with a discontinuity at
// the first key frame of the new size, for H.264 and H.265.
func TestSegmenterMarksAPictureSizeChange(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"libx264", "libx265"} {
		t.Run(codec, func(t *testing.T) {
			small := makeTSSized(t, "160x120", 3, 25, codec, 0)
			large := makeTSSized(t, "320x240", 3, 25, codec, 3)
			segs, s := segmentWith(10*time.Second, append(append([]byte{}, small...), large...))
			if s.formatChanges != 1 || s.jumps != 0 {
				t.Fatalf("format changes %d, timestamp jumps %d; want one change and no jump", s.formatChanges, s.jumps)
			}
			var disc []int
			for i, seg := range segs {
				if seg.Discontinuity {
					disc = append(disc, i)
				}
			}
			if len(disc) != 1 || (segs[disc[0]].Start-segs[0].Start-3*time.Second).Abs() > 100*time.Millisecond {
				t.Fatalf("discontinuities at segments %v (durations %v), want one where the 320x240 part starts", disc, durations(segs))
			}
		})
	}
}

// A publisher whose key frames are further apart than the longest segment
// allowed has each long group of pictures cut at the last frame within the
// bound; the next segment carries on from that frame, without a
// discontinuity, up to the next key frame. No segment outlasts the bound
// and nothing is lost: the segments put back together decode to every
// frame.
func TestSegmenterContinuesLongGOPsWithinTheBound(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 8, 100, "libx264", 0) // key frames every 4 s
	segs, s := segmentWith(3*time.Second, ts)
	if got, want := fmt.Sprint(durations(segs)), "[3s 1s 3s 1s]"; got != want {
		t.Fatalf("durations %s, want %s", got, want)
	}
	if s.longCuts != 2 || s.jumps != 0 {
		t.Fatalf("long cuts %d, jumps %d; want 2 and 0", s.longCuts, s.jumps)
	}
	var all []byte
	for i, seg := range segs {
		// A continuing segment's first access unit has no parameter
		// sets, which InspectTS reports as an error.
		info, err := hls.InspectTS(seg.Data)
		key := err == nil && info.StartsWithKeyFrame
		if key == seg.Continued || seg.Continued != (i%2 == 1) {
			t.Errorf("segment %d: continued %v, starts with a key frame %v (%v)", i, seg.Continued, key, err)
		}
		if !bytes.Equal(seg.Data[:2*mpegts.PacketSize], all0Tables(t, ts)) {
			t.Errorf("segment %d does not start with the PAT and PMT", i)
		}
		if seg.Discontinuity {
			t.Errorf("segment %d carries a discontinuity", i)
		}
		if i > 0 && seg.ProgramDateTime.Before(segs[i-1].ProgramDateTime) {
			t.Errorf("segment %d dated before the one before it", i)
		}
		all = append(all, seg.Data...)
	}
	// Only the PAT and PMT ahead of the first key frame are dropped.
	if s.droppedBytes > 2*mpegts.PacketSize {
		t.Errorf("%d bytes dropped", s.droppedBytes)
	}
	frames := countFrames(t, all)
	if frames != 200 {
		t.Errorf("the segments decode to %d video frames, want all 200", frames)
	}
}

// The bound holds at the end of a session too: a last segment that would
// run past it leaves its last frame to a segment of its own.
func TestSegmenterFlushStaysWithinTheBound(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 3, 100, "libx264", 0) // one 3 s group of pictures
	const bound = 2960 * time.Millisecond // its last frame starts there
	segs, _ := segmentWith(bound, ts)
	if got, want := fmt.Sprint(durations(segs)), "[2.96s 40ms]"; got != want || !segs[1].Continued || !segs[1].Final {
		t.Fatalf("segments %s (last continued %v), want %s, the last frame continued in a final segment", got, segs[len(segs)-1].Continued, want)
	}
}

// all0Tables returns the PAT and PMT a demuxer finds in ts.
func all0Tables(t *testing.T, ts []byte) []byte {
	t.Helper()
	d := mpegts.NewDemuxer()
	d.Feed(ts, time.Now(), nil)
	return d.Tables()
}

// countFrames counts the video frames ffprobe decodes from MPEG-TS.
func countFrames(t *testing.T, ts []byte) int {
	t.Helper()
	f := filepath.Join(t.TempDir(), "all.ts")
	if err := os.WriteFile(f, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	// MPEG-TS streams are listed under their program too: take the first.
	out := strings.Fields(probe(t, "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", f))
	if len(out) == 0 {
		t.Fatal("ffprobe counted no frames")
	}
	n, err := strconv.Atoi(strings.TrimSuffix(out[0], ","))
	if err != nil {
		t.Fatalf("ffprobe frame count %q: %v", out, err)
	}
	return n
}

// segmentWith runs one session through a 1 s segmenter bounded at maxSpan.
func segmentWith(maxSpan time.Duration, ts []byte) ([]*cutSegment, *segmenter) {
	s := newSegmenter(time.Second, maxSpan)
	d := mpegts.NewDemuxer()
	at := time.Now()
	segs := s.newSession(at, nil)
	segs = s.add(d.Feed(ts, at, nil), d.Tables(), segs)
	segs = s.add(d.Flush(nil), d.Tables(), segs)
	return s.flush(at, segs), s
}
