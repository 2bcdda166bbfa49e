package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/media/fmp4"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/objstore"
)

// Low-Latency HLS (RFC 8216bis) packaging. A stream whose details say
// "ll_hls": true runs through
//
//	ingest ─► LiveLLPackager ─► stored ─► LivePlaylistWriter
//
// LiveLLPackager demuxes the access units, cuts fMP4 parts of at most the
// part target ({prefix}/part_{k}.m4s, k counted across the stream) and
// segments of whole parts that start on a key frame at the segment target
// ({prefix}/seg_{n}.m4s, its parts concatenated), each session's
// initialization segment at the segment that starts it
// ({prefix}/init_{n}.mp4). The playlist writer lists the parts of the last
// few segments and of the segment in progress with a preload hint for the
// next part (see llPlaylist).

// DefaultPartTarget is the default low-latency part target; MinPartTarget
// the shortest accepted (a part per frame or two is all overhead).
const (
	DefaultPartTarget = 333 * time.Millisecond
	MinPartTarget     = 50 * time.Millisecond
)

// llPartSegments is how many complete segments keep their parts listed.
const llPartSegments = 3

// maxSpanSlack is how far the estimated end of the next frame may pass
// maxSpan before the segment is cut before it. The estimate is the last
// frame step, and RTMP's millisecond timestamps make 30 fps steps 33 or
// 34 ms: without slack a key frame due exactly at maxSpan (segment target
// = longest segment, key frame every target) was preceded by a cut on the
// frame before it, and every later segment began mid-GOP with no part
// INDEPENDENT. EXTINF stays within EXT-X-TARGETDURATION, which is maxSpan
// rounded up to whole seconds.
const maxSpanSlack = 5 * time.Millisecond

// llPart is a part written to the object store.
type llPart struct {
	index       int64 // k in part_{k}.m4s
	segment     int64 // the segment it belongs to
	duration    time.Duration
	independent bool
	init        int64 // the segment whose init segment it uses
	// closedAt is when the ingest received the frame that closed it.
	closedAt time.Time
}

func partURI(k int64) string                { return fmt.Sprintf("part_%d.m4s", k) }
func initURI(n int64) string                { return fmt.Sprintf("init_%d.mp4", n) }
func llSegmentURI(n int64) string           { return fmt.Sprintf("seg_%d.m4s", n) }
func llKey(prefix, uri string) string       { return prefix + "/" + uri }
func partKey(prefix string, k int64) string { return llKey(prefix, partURI(k)) }

func init() {
	graph.Register(graph.Spec{
		Name: "LiveLLPackager",
		Doc: "LiveLLPackager reads the MPEG-TS of a low-latency live stream, reassembles H.264 and AAC access " +
			"units and writes fMP4: parts of at most the part target ({id}/part_{k}.m4s), segments of whole " +
			"parts starting on a key frame ({id}/seg_{n}.m4s) and an init segment per session ({id}/init_{n}.mp4).",
		New: func() graph.Calculator { return &llCalculator{} },
		Contract: graph.Contract{
			Inputs:           []graph.PortSpec{{Tag: "INGEST", Type: reflect.TypeFor[*ingestEvent](), Doc: "stream topic events"}},
			Outputs:          []graph.PortSpec{{Tag: "STORED", Type: reflect.TypeFor[*storedBatch](), Doc: "parts and verified segments"}},
			InputSidePackets: []graph.PortSpec{{Tag: "ENV", Type: envType, Doc: "the stream being packaged"}},
		},
	})
}

// newLLStreamGraph builds the graph of a low-latency stream.
func newLLStreamGraph(env *streamEnv) (*graph.Graph, error) {
	b := graph.NewBuilder().InputStream("ingest").InputSidePacket("env").NumThreads(1)
	b.Node("LiveLLPackager", "ll").In("INGEST", "ingest").Out("STORED", "stored").SideIn("ENV", "env")
	b.Node("LivePlaylistWriter", "playlist").In("STORED", "stored").SideIn("ENV", "env")
	cfg, err := b.Config()
	if err != nil {
		return nil, err
	}
	return graph.New(cfg, graph.WithName("live-ll-"+env.prefix), graph.WithLogger(env.log), graph.WithSpin(0))
}

type llCalculator struct {
	env *streamEnv
	d   *mpegts.Demuxer
	pes []*mpegts.PES
	cut *llCutter

	nextSeg, nextPart int64
	holeBefore        bool
	out               *storedBatch
	ctx               context.Context
	recvAt            time.Time // of the record being processed
	warned            bool
	sessionWarned     bool // this session had nothing to package (logged)
	lastInit          []byte
}

func (c *llCalculator) Open(cc *graph.CalculatorContext) error {
	c.env = cc.InputSidePacket("ENV").(*streamEnv)
	if n := len(c.env.segments); n > 0 {
		c.nextSeg = c.env.segments[n-1].ChunkIndex + 1
	}
	c.nextPart = c.env.nextPart
	c.cut = newLLCutter(c.env.p.cfg.SegmentDuration, c.env.maxSpan, c.env.partTarget)
	c.cut.nextDisc = len(c.env.segments) > 0
	c.newDemuxer()
	return nil
}

func (c *llCalculator) newDemuxer() {
	c.d = mpegts.NewDemuxer(mpegts.OnPES(func(p *mpegts.PES) { c.pes = append(c.pes, p) }), mpegts.OnError(func(err error) {
		c.env.log.Debug("live packager: damaged MPEG-TS", "err", err)
	}))
}

func (c *llCalculator) Process(cc *graph.CalculatorContext) error {
	ev, ok := graph.As[*ingestEvent](cc.Input("INGEST"))
	if !ok {
		return nil
	}
	c.ctx, c.recvAt = cc.Context(), ev.recvAt
	c.out = &storedBatch{}
	c.pes = c.pes[:0]
	var err error
	switch ev.kind {
	case evInit:
		err = c.emit(c.cut.flush(ev.recvAt))
		c.sessionWarned = false
		c.newDemuxer()
		c.cut.newSession()
	case evData:
		c.d.Feed(ev.data, ev.recvAt, nil)
		err = c.feed(ev.recvAt)
	case evEOF, evEnd:
		c.d.Flush(nil)
		if err = c.feed(ev.recvAt); err == nil {
			err = c.emit(c.cut.flush(ev.recvAt))
		}
		c.out.end = ev.kind == evEnd
	}
	if err != nil {
		return err
	}
	if len(c.out.segs) == 0 && len(c.out.parts) == 0 && !c.out.end {
		return nil
	}
	return cc.Output("STORED").Add(c.out, cc.InputTimestamp())
}

func (c *llCalculator) Close(*graph.CalculatorContext) error { return nil }

// feed cuts the access units the last Feed completed.
func (c *llCalculator) feed(at time.Time) error {
	for _, p := range c.pes {
		if !p.HasPTS || p.Stream == nil {
			continue
		}
		switch p.Stream.Codec {
		case mpegts.CodecH264, mpegts.CodecAAC:
		default:
			if err := nothingToPackage(c.d.Program()); err != nil {
				if c.nextSeg == 0 {
					return err // nothing packaged yet, and nothing will be
				}
				// Earlier sessions made segments: keep them, and the
				// stream, and skip this session's media.
				if !c.sessionWarned {
					c.sessionWarned = true
					c.env.log.Warn("live stream: this publisher session has nothing low-latency HLS can package; its media is skipped", "err", err)
				}
				continue
			}
			if !c.warned && (p.Stream.Kind == mpegts.KindVideo || p.Stream.Kind == mpegts.KindAudio) {
				c.warned = true
				c.env.log.Warn("live stream: low-latency HLS packages H.264 and AAC only; this stream's other codec is dropped", "codec", p.Stream.Codec.String())
			}
			continue
		}
		if err := c.emit(c.cut.add(p, c.d.Program(), at)); err != nil {
			return err
		}
	}
	return nil
}

// nothingToPackage is the error of a program with neither H.264 video nor
// AAC audio (MP3 audio only, H.265 without AAC). It fails a low-latency
// stream that has no segment yet: nothing of it could ever be packaged,
// and saying so beats a stream that stays live without a segment. A later
// session like it is skipped, and the stream keeps what it has.
func nothingToPackage(prog *mpegts.Program) error {
	if prog == nil {
		return nil
	}
	var codecs []string
	for _, s := range prog.Streams {
		switch {
		case s.Codec == mpegts.CodecH264 || s.Codec == mpegts.CodecAAC:
			return nil
		case s.Kind == mpegts.KindVideo || s.Kind == mpegts.KindAudio:
			codecs = append(codecs, s.Codec.String())
		}
	}
	if len(codecs) == 0 {
		return nil
	}
	return fmt.Errorf("low-latency HLS packages H.264 video and AAC audio, and this stream has only %s: publish H.264 or AAC, or start the stream without ll_hls", strings.Join(codecs, " and "))
}

// emit stores what the cutter produced, in order.
func (c *llCalculator) emit(events []llEvent, err error) error {
	if err != nil {
		c.env.log.Warn("live stream: low-latency packaging skipped media it cannot write", "err", err)
	}
	objects := c.env.p.cfg.Objects
	for _, ev := range events {
		switch {
		case ev.init != nil:
			c.cut.initSeg, c.lastInit = c.nextSeg, ev.init
			if err := putObject(c.ctx, objects, c.env.log, llKey(c.env.prefix, initURI(c.nextSeg)), ev.init); err != nil {
				return err
			}
		case ev.part != nil:
			k := c.nextPart
			c.nextPart++
			if err := putObject(c.ctx, objects, c.env.log, partKey(c.env.prefix, k), ev.part.data); err != nil {
				return err
			}
			c.out.parts = append(c.out.parts, llPart{index: k, segment: c.nextSeg, duration: ev.part.duration, independent: ev.part.independent, init: c.cut.initSeg, closedAt: c.recvAt})
		case ev.seg != nil:
			if err := c.storeSegment(ev.seg); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *llCalculator) storeSegment(seg *cutSegment) error {
	key := llKey(c.env.prefix, llSegmentURI(c.nextSeg))
	sum, mismatches, err := writeVerified(c.ctx, c.env.p.cfg.Objects, c.env.log, key, seg.Data, func() {
		c.env.p.metrics.checksumFailures.Inc()
	})
	if errors.Is(err, errChecksum) {
		c.env.log.Error("live stream: giving up a segment that never read back intact", "key", key, "err", err)
		c.holeBefore = true
		c.out.segs = append(c.out.segs, &storedSegment{index: -1, checksumFailures: mismatches})
		c.nextSeg++
		return nil
	}
	if err != nil {
		return fmt.Errorf("segment %d of stream %s: %w", c.nextSeg, c.env.prefix, err)
	}
	if c.holeBefore {
		// The segment after a lost one starts a timeline, and every
		// discontinuity has its own init segment.
		seg.Discontinuity, c.holeBefore = true, false
		if err := putObject(c.ctx, c.env.p.cfg.Objects, c.env.log, llKey(c.env.prefix, initURI(c.nextSeg)), c.lastInit); err != nil {
			return err
		}
		c.cut.initSeg = c.nextSeg
	}
	c.out.segs = append(c.out.segs, &storedSegment{
		cutSegment: seg, index: c.nextSeg, key: key, size: int64(len(seg.Data)),
		sha256: sum, checksumFailures: mismatches,
	})
	c.nextSeg++
	return nil
}

// contentTypeMP4 is the content type of fMP4 parts, segments and init
// segments.
const contentTypeMP4 = "video/mp4"

// segmentContentType is the content type of a segment object by its name.
func segmentContentType(key string) string {
	if strings.HasSuffix(key, ".m4s") || strings.HasSuffix(key, ".mp4") {
		return contentTypeMP4
	}
	return contentTypeTS
}

// putObject writes a part or an init segment (no read-back: a part is
// listed at once, and its segment, which holds the same bytes, is
// verified).
func putObject(ctx context.Context, objects objstore.Store, log *slog.Logger, key string, data []byte) error {
	return retry(ctx, log, "writing "+key, func() error {
		_, err := objects.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentTypeMP4)
		return err
	})
}

// llEvent is one thing the cutter made: an init segment (written before
// the segment it starts), a part, or a complete segment.
type llEvent struct {
	init []byte
	part *cutPart
	seg  *cutSegment
}

type cutPart struct {
	data        []byte
	duration    time.Duration
	independent bool
}

// llCutter turns access units into fMP4 parts and segments. Parts last at
// most partTarget (the frame that would take a part past it starts the
// next one); segments are whole parts and start on a key frame once the
// segment has lasted about the segment target, or after maxSpan without
// one. Durations come from decode timestamps.
type llCutter struct {
	target, maxSpan, partTarget time.Duration

	w        *fmp4.Writer
	vcfg     *fmp4.H264Config
	acfg     *fmp4.AACConfig
	initSeg  int64 // the segment whose init the current one uses
	needInit bool

	open                bool
	segStart, partStart time.Duration // decode times (the primary track)
	segPTS              time.Duration
	segData             []byte
	segIndependent      bool
	segDisc             bool
	segPDT              time.Time
	partIndependent     bool
	video, audio        []fmp4.Sample
	held                []fmp4.Sample // video waiting for the audio configuration
	lastDTS             time.Duration
	haveLast            bool
	frameDelta          time.Duration
	// steps are the last decode time steps: the frame being placed is
	// assumed to last the longest of them, so that a part whose frames
	// alternate 33 and 34 ms (RTMP's millisecond clock) stays within the
	// part target.
	steps    [4]time.Duration
	stepAt   int
	nextDisc bool
	emitted  bool

	// anchor ties media time to wall-clock time for PROGRAM-DATE-TIME.
	anchorWall time.Time
	anchorPTS  time.Duration
	anchored   bool
	lastPDT    time.Time
}

func newLLCutter(target, maxSpan, partTarget time.Duration) *llCutter {
	return &llCutter{target: min(target, maxSpan), maxSpan: maxSpan, partTarget: partTarget, frameDelta: defaultFrameDuration, needInit: true}
}

// newSession: a publisher (re)connected; the next segment waits for a key
// frame, carries a discontinuity and a new init segment.
func (c *llCutter) newSession() {
	c.vcfg, c.acfg, c.w, c.held = nil, nil, nil, nil
	c.needInit, c.haveLast, c.anchored = true, false, false
	c.nextDisc = c.nextDisc || c.emitted
	c.video, c.audio = c.video[:0], c.audio[:0]
}

// add takes one access unit (a PES of the program prog).
func (c *llCutter) add(p *mpegts.PES, prog *mpegts.Program, at time.Time) ([]llEvent, error) {
	hasVideo := prog != nil && prog.HasVideo() && prog.Primary.Codec == mpegts.CodecH264
	hasAudio := false
	if prog != nil {
		for _, s := range prog.Streams {
			if s.Codec == mpegts.CodecAAC {
				hasAudio = true
			}
		}
	}
	switch p.Stream.Codec {
	case mpegts.CodecAAC:
		frames, cfg, err := fmp4.ADTSFrames(p.Data)
		if err != nil {
			return nil, err
		}
		var out []llEvent
		if c.acfg == nil {
			c.acfg = &cfg
			// Replay the video held for it.
			held := c.held
			c.held, c.haveLast = nil, false
			for _, h := range held {
				ev, err := c.frame(h, true, nil, hasAudio, at)
				out = append(out, ev...)
				if err != nil {
					return out, err
				}
			}
		}
		step := fmp4.AudioFrameSamples * time.Second / time.Duration(c.acfg.SampleRate)
		for i, f := range frames {
			dts := p.PTS + time.Duration(i)*step
			s := fmp4.Sample{DTS: dts, PTS: dts, Key: true, Data: bytes.Clone(f)}
			if !hasVideo {
				// Audio only: audio frames are the primary track.
				ev, err := c.frame(s, false, nil, true, at)
				out = append(out, ev...)
				if err != nil {
					return out, err
				}
				continue
			}
			c.audio = append(c.audio, s)
			if !c.open && len(c.audio) > 0 && c.audio[0].DTS < dts-2*time.Second {
				c.audio = c.audio[1:] // not waited for by any segment
			}
		}
		return out, nil
	case mpegts.CodecH264:
		if !hasVideo {
			return nil, nil
		}
		avcc, sps, pps, idr := fmp4.AnnexBToAVCC(p.Data)
		if len(avcc) == 0 {
			return nil, nil
		}
		var cfg *fmp4.H264Config
		if idr && sps != nil && pps != nil {
			cfg = &fmp4.H264Config{SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}
		}
		return c.frame(fmp4.Sample{DTS: p.DTS, PTS: p.PTS, Key: idr, Data: avcc}, true, cfg, hasAudio, at)
	}
	return nil, nil
}

// frame places one sample of the primary track: video, or audio for a
// stream without video. vcfg is the parameter sets a key frame carries.
func (c *llCutter) frame(s fmp4.Sample, isVideo bool, vcfg *fmp4.H264Config, hasAudio bool, at time.Time) ([]llEvent, error) {
	var out []llEvent
	var err error
	if c.haveLast {
		step := s.DTS - c.lastDTS
		if step < -jumpBack || step > min(jumpForward, c.maxSpan) {
			// The timeline jumped: end the segment where it ends.
			out, err = c.closeSegment(at, true, out)
			c.anchored = false
			c.nextDisc = c.nextDisc || c.emitted
		} else if step > 0 {
			c.frameDelta = step
			c.steps[c.stepAt%len(c.steps)], c.stepAt = step, c.stepAt+1
		}
	}
	c.lastDTS, c.haveLast = s.DTS, true
	if err != nil {
		return out, err
	}
	if vcfg != nil && (c.vcfg == nil || !bytes.Equal(vcfg.SPS, c.vcfg.SPS) || !bytes.Equal(vcfg.PPS, c.vcfg.PPS)) {
		if c.vcfg != nil {
			// New parameter sets: a new init segment and a discontinuity.
			if out, err = c.closeSegment(at, false, out); err != nil {
				return out, err
			}
			c.nextDisc, c.needInit = c.nextDisc || c.emitted, true
		}
		c.vcfg = vcfg
	}
	continued := false
	if c.open {
		elapsed := s.DTS - c.segStart
		switch {
		case s.Key && (elapsed >= c.target-cutTolerance || elapsed+c.frameDelta > c.target):
			if out, err = c.closeSegment(at, false, out); err != nil {
				return out, err
			}
		case elapsed+c.frameDelta > c.maxSpan+maxSpanSlack:
			// Key frames further apart than the longest segment: cut
			// here and carry the group of pictures on.
			if out, err = c.closeSegment(at, false, out); err != nil {
				return out, err
			}
			continued = true
		case (s.DTS + c.longStep() - c.partStart).Round(time.Millisecond) > c.partTarget.Round(time.Millisecond):
			if out, err = c.closePart(s.DTS, out); err != nil {
				return out, err
			}
			c.partStart, c.partIndependent = s.DTS, s.Key
		}
	}
	if !c.open {
		switch {
		case isVideo && hasAudio && c.acfg == nil && c.vcfg != nil:
			// The init segment lists both tracks: hold the group of
			// pictures until the audio configuration comes.
			if s.Key {
				c.held = append(c.held[:0], s)
			} else if len(c.held) > 0 && len(c.held) < 600 {
				c.held = append(c.held, s)
			}
			return out, nil
		case !s.Key && !continued:
			return out, nil // wait for a key frame
		case isVideo && c.vcfg == nil:
			return out, nil // no parameter sets yet
		}
		if c.nextDisc {
			c.needInit = true // every discontinuity has its own init segment
		}
		if c.needInit {
			var v *fmp4.H264Config
			if isVideo {
				v = c.vcfg
			}
			var a *fmp4.AACConfig
			if hasAudio {
				a = c.acfg
			}
			w, err := fmp4.NewWriter(v, a)
			if err != nil {
				return out, err
			}
			init, err := w.Init()
			if err != nil {
				return out, err
			}
			c.w, c.needInit = w, false
			out = append(out, llEvent{init: init})
		}
		c.openSegment(s, at)
	}
	if isVideo {
		c.video = append(c.video, s)
	} else {
		c.audio = append(c.audio, s)
	}
	return out, nil
}

func (c *llCutter) openSegment(s fmp4.Sample, at time.Time) {
	if at.IsZero() {
		at = time.Now()
	}
	if !c.anchored {
		c.anchorWall, c.anchorPTS, c.anchored = at, s.PTS, true
	}
	pdt := c.anchorWall.Add(s.PTS - c.anchorPTS)
	if pdt.After(at) {
		c.anchorWall, c.anchorPTS, pdt = at, s.PTS, at
	}
	if !c.lastPDT.IsZero() && pdt.Sub(c.lastPDT) < time.Millisecond {
		pdt = c.lastPDT.Add(time.Millisecond)
	}
	c.lastPDT = pdt
	c.open = true
	c.segStart, c.partStart, c.segPTS = s.DTS, s.DTS, s.PTS
	c.segIndependent, c.partIndependent = s.Key, s.Key
	c.segDisc, c.nextDisc = c.nextDisc, false
	c.segPDT = pdt.UTC()
	c.segData = nil
	// Audio queued before the key frame belongs to nothing.
	kept := c.audio[:0]
	for _, a := range c.audio {
		if a.DTS >= s.DTS-c.frameDelta {
			kept = append(kept, a)
		}
	}
	c.audio = kept
}

// closePart writes the samples before end as a part.
func (c *llCutter) closePart(end time.Duration, out []llEvent) ([]llEvent, error) {
	var video, audio []fmp4.Sample
	video = c.video
	n := 0
	for n < len(c.audio) && (c.audio[n].DTS < end || len(video) == 0) {
		n++
	}
	audio = c.audio[:n]
	if len(video) == 0 && len(audio) == 0 {
		return out, nil
	}
	aEnd := end
	if n < len(c.audio) {
		aEnd = c.audio[n].DTS
	} else if n > 0 && c.acfg != nil {
		aEnd = max(aEnd, audio[n-1].DTS+fmp4.AudioFrameSamples*time.Second/time.Duration(c.acfg.SampleRate))
	}
	if len(video) == 0 {
		aEnd = max(aEnd, end)
	}
	data, err := c.w.Fragment(video, end, audio, aEnd)
	c.video = c.video[:0:0]
	c.audio = append(c.audio[:0:0], c.audio[n:]...)
	if err != nil {
		return out, err
	}
	c.segData = append(c.segData, data...)
	out = append(out, llEvent{part: &cutPart{data: data, duration: end - c.partStart, independent: c.partIndependent}})
	return out, nil
}

// closeSegment closes the open part and segment at the last frame's end
// (final, or a jump) or at the current frame (the sample about to be
// placed starts the next).
func (c *llCutter) closeSegment(at time.Time, final bool, out []llEvent) ([]llEvent, error) {
	if !c.open {
		return out, nil
	}
	end := c.lastDTS
	if final {
		end = c.lastDTS + c.frameDelta
		if len(c.video) > 0 {
			end = c.video[len(c.video)-1].DTS + c.frameDelta
		}
	}
	if end <= c.partStart && (len(c.video) > 0 || len(c.audio) > 0) {
		end = c.partStart + c.frameDelta
	}
	out, err := c.closePart(end, out)
	if err != nil {
		return out, err
	}
	c.open = false
	if len(c.segData) == 0 {
		return out, nil
	}
	if at.IsZero() {
		at = time.Now()
	}
	c.emitted = true
	out = append(out, llEvent{seg: &cutSegment{
		Data:            c.segData,
		Start:           c.segPTS,
		Duration:        end - c.segStart,
		Discontinuity:   c.segDisc,
		ProgramDateTime: c.segPDT,
		ClosedAt:        at,
		Final:           final,
		Continued:       !c.segIndependent,
	}})
	c.segData = nil
	return out, nil
}

// longStep is the longest recent frame step (frameDelta before any).
func (c *llCutter) longStep() time.Duration {
	d := c.frameDelta
	for _, st := range c.steps {
		d = max(d, st)
	}
	return d
}

// flush closes what is open at the end of a session.
func (c *llCutter) flush(at time.Time) ([]llEvent, error) {
	return c.closeSegment(at, true, nil)
}
