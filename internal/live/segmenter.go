package live

import (
	"time"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// Timing rules of the segmenter.
const (
	// cutTolerance lets a segment close slightly before the target
	// duration, so segments cut on audio frames (23 ms at 44.1 kHz) stay
	// at or under the target instead of running one frame over and
	// raising EXT-X-TARGETDURATION (see segmenter.due).
	cutTolerance = 50 * time.Millisecond
	// jumpBack and jumpForward bound how far the decode time of the
	// primary stream may move between two of its PES packets before the
	// segmenter declares a timestamp discontinuity.
	jumpBack    = time.Second
	jumpForward = 10 * time.Second
	// maxSegmentBytes closes a segment that has grown this large without
	// a key frame (a publisher that never sends one, at a huge bit rate):
	// its last frame continues in the next segment, or, when that one
	// frame is this large, the next segment waits for a key frame.
	maxSegmentBytes = 64 << 20
	// defaultFrameDuration is the duration of the last frame of a segment
	// closed without a following key frame, until frame spacing is known.
	defaultFrameDuration = 40 * time.Millisecond
	// aheadTolerance is how far media time may run ahead of arrival before
	// the source counts as sent faster than real time (the date is
	// clamped to arrival either way).
	aheadTolerance = 250 * time.Millisecond
)

// cutSegment is a segment the segmenter has closed: a run of transport
// packets that starts with the PAT, the PMT and a key frame, or, when the
// publisher's key frames are further apart than the longest segment
// allowed, with the PAT, the PMT and the frame that continues the group of
// pictures of the segment before (Continued).
type cutSegment struct {
	Data []byte
	// Start is the presentation time of the first key frame; Duration
	// runs to the key frame that starts the next segment (or, for the
	// last segment of a session, to the end of its last frame).
	Start, Duration time.Duration
	// Discontinuity is set on the first segment after a publisher
	// reconnected, a timestamp jump, or a gap in the segments (the
	// packager resumed after a failure).
	Discontinuity bool
	// ProgramDateTime is the wall-clock time of the first frame: the
	// receive time of the session's first key frame plus the media time
	// since, but never later than the frame's own receive time (a source
	// sent faster than real time runs ahead of the clock) and always after
	// the previous segment's.
	ProgramDateTime time.Time
	// ClosedAt is when the ingest received the key frame that closed the
	// segment; for a segment closed by the end of a session, when the
	// end was seen. The publish latency is measured from it.
	ClosedAt time.Time
	// Final is set on the segment flushed by the end of a session.
	Final bool
	// Continued is set on a segment that does not start with a key frame:
	// it carries on the group of pictures the segment before it was cut
	// in, at the longest segment duration allowed. It decodes only after
	// the segment before it (or from its first key frame on).
	Continued bool
}

// segmenter cuts the packets of one live stream into segments that start on
// a key frame of the primary stream and last at least the target duration
// (minus cutTolerance), except the last one of a publisher session, and
// never longer than maxSpan: a group of pictures that runs past maxSpan is
// cut at the last frame that keeps the segment within it, and the next
// segment carries on from that frame (Continued) up to the next key frame.
// Nothing is dropped, and every segment fits the playlist's fixed
// EXT-X-TARGETDURATION.
//
// A session is one publisher connection (one stream_init). Between
// sessions, and after a timestamp jump, the next segment waits for a key
// frame and carries a discontinuity. Packets before the first key frame of
// a session cannot be decoded on their own and are dropped.
type segmenter struct {
	target time.Duration

	cur        []byte
	lastSize   int
	open       bool
	curStart   time.Duration // PTS of the key frame that opened cur
	curDTS     time.Duration // its DTS
	curDisc    bool
	curPDT     time.Time
	lastDTS    time.Duration // of the last primary PES start
	haveLast   bool
	frameDelta time.Duration // last positive DTS step of the primary stream

	// anchor ties media time to wall-clock time for PROGRAM-DATE-TIME.
	anchorWall time.Time
	anchorPTS  time.Duration
	anchored   bool
	// lastPDT is the PROGRAM-DATE-TIME of the last segment opened.
	lastPDT time.Time

	// nextDisc marks the next segment as following a discontinuity;
	// emitted says a segment was cut (so a new timeline is a change).
	nextDisc bool
	emitted  bool

	// maxSpan bounds a segment's media time: a segment whose next frame
	// would take it past maxSpan is closed before that frame, which opens
	// the next segment (continuing the group of pictures), so a segment
	// never outlasts the playlist's target duration and a publisher that
	// sends key frames rarely or never cannot make the packager hold
	// minutes of media. A step between two frames longer than maxSpan is
	// a timestamp jump.
	maxSpan time.Duration
	// tables are the PAT and PMT segments start with (the latest given).
	tables []byte
	// curCont says the open segment continues the one before it (it did
	// not start on a key frame); it closes at the next key frame.
	curCont bool
	// frameAt is where the last primary frame of the open segment starts
	// in cur, and frameDTS, framePTS and frameRecv are its times: where
	// the segment is split when the next frame would take it past
	// maxSpan.
	frameAt            int
	frameDTS, framePTS time.Duration
	frameRecv          time.Time
	// width and height are the picture size of the current format, from
	// the sequence parameter set of the last key frame that had one.
	width, height int

	// droppedBytes counts packets dropped while waiting for a key frame;
	// jumps counts timestamp discontinuities found; formatChanges counts
	// picture size changes mid-session; longCuts counts segments cut
	// before a key frame to stay within maxSpan (or maxSegmentBytes);
	// aheadOfClock counts segments whose media time ran ahead of their
	// receive time (a source faster than real time).
	droppedBytes  int64
	jumps         int
	formatChanges int
	longCuts      int
	aheadOfClock  int
}

// newSegmenter makes a segmenter cutting segments of about target, none
// longer than maxSpan (target is lowered to maxSpan if above it).
func newSegmenter(target, maxSpan time.Duration) *segmenter {
	return &segmenter{target: min(target, maxSpan), maxSpan: maxSpan, frameDelta: defaultFrameDuration}
}

// markDiscontinuity makes the next segment carry a discontinuity.
func (s *segmenter) markDiscontinuity() { s.nextDisc = true }

// newSession ends the current session: the open segment is flushed (and
// returned, if any) and the next one starts a new timeline.
func (s *segmenter) newSession(at time.Time, out []*cutSegment) []*cutSegment {
	out = s.flush(at, out)
	s.haveLast = false
	s.anchored = false
	s.nextDisc = s.nextDisc || s.emitted
	return out
}

// add takes classified packets (in stream order) with the tables to start a
// segment with, and appends the segments they close to out.
func (s *segmenter) add(pieces []mpegts.Packet, tables []byte, out []*cutSegment) []*cutSegment {
	if tables != nil {
		s.tables = tables
	}
	for i := range pieces {
		p := &pieces[i]
		frame := p.Primary && p.Start && p.HasPTS
		if frame {
			out = s.frameStarts(p, out)
		}
		if p.Key && p.HasPTS {
			changed := s.formatChanged(p)
			if s.open && (changed || s.curCont && p.DTS > s.curDTS || s.due(p.DTS-s.curDTS)) {
				out = s.close(p.DTS-s.curDTS, p.ReceivedAt, false, out)
			}
			if changed {
				// A new picture size: players must reset their decoder.
				s.formatChanges++
				s.nextDisc = s.nextDisc || s.emitted
			}
			if !s.open && tables != nil {
				s.start(p, tables)
			}
		}
		if !s.open {
			s.droppedBytes += int64(len(p.Data))
			continue
		}
		if frame {
			s.frameAt, s.frameDTS, s.framePTS, s.frameRecv = len(s.cur), p.DTS, p.PTS, p.ReceivedAt
		}
		s.cur = append(s.cur, p.Data...)
		if len(s.cur) >= maxSegmentBytes {
			if s.splittable() {
				out = s.continueAt(p.ReceivedAt, out)
			} else {
				out = s.flush(p.ReceivedAt, out)
				s.nextDisc = true
			}
		}
	}
	return out
}

// frameStarts handles the start of a frame of the primary stream, before
// its first packet is placed: a timestamp jump ends the segment (and the
// timeline), and a frame that would take the open segment past maxSpan
// moves, with what follows, to a continuing segment.
func (s *segmenter) frameStarts(p *mpegts.Packet, out []*cutSegment) []*cutSegment {
	if s.haveLast {
		step := p.DTS - s.lastDTS
		if step < -jumpBack || step > min(jumpForward, s.maxSpan) {
			// The timeline jumped: end the segment where the old
			// timeline ends and start a new one.
			s.jumps++
			out = s.flush(p.ReceivedAt, out)
			s.anchored = false
			s.nextDisc = s.nextDisc || s.emitted
		} else if step > 0 {
			s.frameDelta = step
		}
	}
	s.lastDTS, s.haveLast = p.DTS, true
	if s.open && p.DTS-s.curDTS > s.maxSpan && s.splittable() {
		out = s.continueAt(p.ReceivedAt, out)
	}
	return out
}

// splittable reports whether the open segment holds more than one frame,
// so that it can be cut where its last frame starts.
func (s *segmenter) splittable() bool {
	return s.open && s.frameAt > len(s.tables) && s.frameDTS > s.curDTS
}

// continueAt closes the open segment where its last frame starts, with
// closedAt as its closing time, and opens the next segment with that
// frame and everything after it: the group of pictures carries on there
// (Continued), without a discontinuity and without losing a byte.
func (s *segmenter) continueAt(closedAt time.Time, out []*cutSegment) []*cutSegment {
	tail := append(append(make([]byte, 0, len(s.tables)+len(s.cur)-s.frameAt+16<<10), s.tables...), s.cur[s.frameAt:]...)
	s.cur = s.cur[:s.frameAt]
	s.longCuts++
	out = s.close(s.frameDTS-s.curDTS, closedAt, false, out)
	s.open, s.cur, s.curCont = true, tail, true
	s.curStart, s.curDTS = s.framePTS, s.frameDTS
	s.curDisc = false
	wall := s.frameRecv
	if wall.IsZero() {
		wall = closedAt
	}
	s.curPDT = s.programDateTime(s.framePTS, wall)
	s.frameAt = len(s.tables)
	return out
}

// formatChanged notes the picture size a key frame declares and reports
// whether it differs from the one before.
func (s *segmenter) formatChanged(p *mpegts.Packet) bool {
	if p.Width == 0 || p.Height == 0 {
		return false
	}
	changed := s.width != 0 && (p.Width != s.width || p.Height != s.height)
	s.width, s.height = p.Width, p.Height
	return changed
}

// due reports whether a segment that has lasted elapsed should close at
// the key frame that just came: once it is within cutTolerance of the
// target, or when waiting for the next key frame (one PES step away, as
// far as the segmenter can tell) would take it past the target. The second
// rule keeps audio-only segments at or under the target when an encoder
// packs several audio frames into each PES packet.
func (s *segmenter) due(elapsed time.Duration) bool {
	return elapsed >= s.target-cutTolerance || elapsed+s.frameDelta > s.target
}

// start opens a segment on key frame p.
func (s *segmenter) start(p *mpegts.Packet, tables []byte) {
	wall := p.ReceivedAt
	if wall.IsZero() {
		wall = time.Now()
	}
	if !s.anchored {
		s.anchorWall, s.anchorPTS, s.anchored = wall, p.PTS, true
	}
	s.open, s.curCont = true, false
	// Size the buffer like the last segment, so it rarely grows.
	s.cur = append(make([]byte, 0, max(16<<10, s.lastSize+s.lastSize/4)), tables...)
	s.curStart, s.curDTS = p.PTS, p.DTS
	s.curDisc, s.nextDisc = s.nextDisc, false
	s.curPDT = s.programDateTime(p.PTS, wall)
}

// programDateTime is the PROGRAM-DATE-TIME of a segment whose first frame
// has presentation time pts and was received at wall: the anchor's wall
// time plus the media time since. When that is later than wall, the
// source is sending faster than real time and the date would lie in the
// future (RFC 8216 section 4.3.2.6 maps it to when the media was made), so
// the segment gets wall instead and becomes the new anchor. Dates are kept
// increasing by at least the millisecond a playlist shows.
func (s *segmenter) programDateTime(pts time.Duration, wall time.Time) time.Time {
	pdt := s.anchorWall.Add(pts - s.anchorPTS)
	if pdt.After(wall) {
		if pdt.Sub(wall) > aheadTolerance {
			s.aheadOfClock++ // more than arrival jitter
		}
		s.anchorWall, s.anchorPTS = wall, pts
		pdt = wall
	}
	if !s.lastPDT.IsZero() && pdt.Sub(s.lastPDT) < time.Millisecond {
		pdt = s.lastPDT.Add(time.Millisecond)
	}
	s.lastPDT = pdt
	return pdt.UTC()
}

// flush closes the open segment, if any, at the end of its last frame;
// when that end is past maxSpan, the last frame gets a segment of its own.
func (s *segmenter) flush(at time.Time, out []*cutSegment) []*cutSegment {
	if !s.open {
		return out
	}
	if at.IsZero() {
		at = time.Now()
	}
	if s.haveLast && s.lastDTS+s.frameDelta-s.curDTS > s.maxSpan && s.splittable() {
		out = s.continueAt(at, out)
	}
	d := s.frameDelta
	if s.haveLast {
		d += s.lastDTS - s.curDTS
	}
	return s.close(max(d, 0), at, true, out)
}

func (s *segmenter) close(d time.Duration, closedAt time.Time, final bool, out []*cutSegment) []*cutSegment {
	seg := &cutSegment{
		Data:            s.cur,
		Start:           s.curStart,
		Duration:        d,
		Discontinuity:   s.curDisc,
		ProgramDateTime: s.curPDT,
		ClosedAt:        closedAt,
		Final:           final,
		Continued:       s.curCont,
	}
	s.lastSize = len(s.cur)
	s.cur, s.open, s.emitted, s.curCont = nil, false, true, false
	return append(out, seg)
}
