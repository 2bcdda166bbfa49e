package live

import (
	"errors"
	"log/slog"
	"reflect"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/media/mpegts"
)

// The live packager's calculators. Each stream runs its own graph:
//
//	ingest ─► LiveTSDemux ─► ts ─► LiveSegmenter ─► segments ─► LiveSegmentWriter ─► stored ─► LivePlaylistWriter
//
// Timestamps are the offsets of the stream topic's records: they increase
// with the stream, which is all the runtime needs, while media time (which
// jumps back at every publisher reconnect) travels inside the packets.
// A calculator that has nothing to emit for a record lets the runtime
// advance its output bound.

// pieceBatch is what LiveTSDemux emits for one record.
type pieceBatch struct {
	pieces []mpegts.Packet
	// tables are the PAT and PMT packets a segment starts with (nil
	// until the program is known).
	tables []byte
	// newSession: a publisher (re)connected before these pieces.
	newSession bool
	// flush: the publisher left; close the open segment.
	flush bool
	// end: the stream is over.
	end bool
	at  time.Time
}

// segmentBatch is what LiveSegmenter emits: the segments a record closed.
type segmentBatch struct {
	segs []*cutSegment
	end  bool
}

// storedSegment is a segment written to the object store and verified.
type storedSegment struct {
	*cutSegment
	index            int64
	key              string
	size             int64
	sha256           string
	checksumFailures int
}

// storedBatch is what LiveSegmentWriter emits.
type storedBatch struct {
	segs []*storedSegment
	// parts are low-latency parts written since the last batch (see ll.go).
	parts []llPart
	end   bool
}

var envType = reflect.TypeFor[*streamEnv]()

func init() {
	graph.Register(graph.Spec{
		Name: "LiveTSDemux",
		Doc: "LiveTSDemux reads the MPEG-TS bytes of a live stream topic (stream_init, raw_stream, stream_eof " +
			"events) with internal/media/mpegts and classifies every transport packet: its elementary stream, " +
			"PES starts with their timestamps, and whether a video PES starts with an IDR (H.264) or IRAP " +
			"(HEVC) picture. What the demuxer reports (lost sync, continuity errors, unsupported streams) is logged.",
		New: func() graph.Calculator { return &demuxCalculator{} },
		Contract: graph.Contract{
			Inputs:           []graph.PortSpec{{Tag: "INGEST", Type: reflect.TypeFor[*ingestEvent](), Doc: "stream topic events"}},
			Outputs:          []graph.PortSpec{{Tag: "TS", Type: reflect.TypeFor[*pieceBatch](), Doc: "classified transport packets"}},
			InputSidePackets: []graph.PortSpec{{Tag: "ENV", Type: envType, Doc: "the stream being packaged"}},
		},
	})
	graph.Register(graph.Spec{
		Name: "LiveSegmenter",
		Doc: "LiveSegmenter cuts classified MPEG-TS packets into segments that start with the PAT, the PMT " +
			"and a key frame and last the target duration or longer (audio-only streams are cut on audio " +
			"frames), marking discontinuities at publisher reconnects and timestamp jumps.",
		New: func() graph.Calculator { return &segmenterCalculator{} },
		Contract: graph.Contract{
			Inputs:           []graph.PortSpec{{Tag: "TS", Type: reflect.TypeFor[*pieceBatch]()}},
			Outputs:          []graph.PortSpec{{Tag: "SEGMENTS", Type: reflect.TypeFor[*segmentBatch](), Doc: "closed segments"}},
			InputSidePackets: []graph.PortSpec{{Tag: "ENV", Type: envType, Doc: "the stream being packaged"}},
		},
	})
	graph.Register(graph.Spec{
		Name: "LiveSegmentWriter",
		Doc: "LiveSegmentWriter numbers segments, writes each to the object store as {id}/seg_{n}.ts, reads it " +
			"back and compares its SHA-256, rewriting it on a mismatch (counted as a checksum failure).",
		New: func() graph.Calculator { return &writerCalculator{} },
		Contract: graph.Contract{
			Inputs:           []graph.PortSpec{{Tag: "SEGMENTS", Type: reflect.TypeFor[*segmentBatch]()}},
			Outputs:          []graph.PortSpec{{Tag: "STORED", Type: reflect.TypeFor[*storedBatch](), Doc: "verified segments"}},
			InputSidePackets: []graph.PortSpec{{Tag: "ENV", Type: envType}},
		},
	})
	graph.Register(graph.Spec{
		Name: "LivePlaylistWriter",
		Doc: "LivePlaylistWriter lists verified segments in the rolling live playlist ({id}/live.m3u8), " +
			"records them in the metadata store, keeps the stream row current and, when the stream ends, " +
			"writes {id}/vod.m3u8 and the final live playlist with EXT-X-ENDLIST.",
		New: func() graph.Calculator { return &playlistCalculator{} },
		Contract: graph.Contract{
			Inputs:           []graph.PortSpec{{Tag: "STORED", Type: reflect.TypeFor[*storedBatch]()}},
			InputSidePackets: []graph.PortSpec{{Tag: "ENV", Type: envType}},
		},
	})
}

// newStreamGraph builds the graph of one stream. One worker runs its four
// calculators: they form a chain, so a second worker only handed packets
// between goroutines (and woke them) without doing more at once that
// matters; a segment write holding up the demuxing of the records after
// it changes nothing, since those records wait on the bus or in the
// graph's input queue either way. Its worker sleeps as soon as it runs out
// of calls (graph.WithSpin(0)): records come tens of milliseconds apart,
// so spinning for the next one only burns CPU.
func newStreamGraph(env *streamEnv) (*graph.Graph, error) {
	if env.ll {
		return newLLStreamGraph(env)
	}
	b := graph.NewBuilder().InputStream("ingest").InputSidePacket("env").NumThreads(1)
	b.Node("LiveTSDemux", "demux").In("INGEST", "ingest").Out("TS", "ts").SideIn("ENV", "env")
	b.Node("LiveSegmenter", "segmenter").In("TS", "ts").Out("SEGMENTS", "segments").SideIn("ENV", "env")
	b.Node("LiveSegmentWriter", "writer").In("SEGMENTS", "segments").Out("STORED", "stored").SideIn("ENV", "env")
	b.Node("LivePlaylistWriter", "playlist").In("STORED", "stored").SideIn("ENV", "env")
	cfg, err := b.Config()
	if err != nil {
		return nil, err
	}
	return graph.New(cfg, graph.WithName("live-"+env.prefix), graph.WithLogger(env.log), graph.WithSpin(0))
}

type demuxCalculator struct {
	log *slog.Logger
	d   *mpegts.Demuxer
}

func (c *demuxCalculator) Open(cc *graph.CalculatorContext) error {
	c.log = cc.InputSidePacket("ENV").(*streamEnv).log
	c.d = c.newDemuxer()
	return nil
}

// newDemuxer returns a demuxer for one publisher session. An unsupported
// stream is worth telling the operator (it cannot start segments); damage
// is routine on lossy links and logged at debug level.
func (c *demuxCalculator) newDemuxer() *mpegts.Demuxer {
	return mpegts.NewDemuxer(mpegts.OnError(func(err error) {
		if errors.Is(err, mpegts.ErrUnsupportedStream) {
			c.log.Info("live packager: the stream carries a stream type it passes through but does not read", "err", err)
			return
		}
		c.log.Debug("live packager: damaged MPEG-TS", "err", err)
	}))
}

func (c *demuxCalculator) Process(cc *graph.CalculatorContext) error {
	ev, ok := graph.As[*ingestEvent](cc.Input("INGEST"))
	if !ok {
		return nil
	}
	var b *pieceBatch
	switch ev.kind {
	case evInit:
		c.d = c.newDemuxer()
		b = &pieceBatch{newSession: true}
	case evData:
		// Sized for the record's packets (plus one completed from the
		// previous record's remainder), so appending never reallocates.
		pieces := c.d.Feed(ev.data, ev.recvAt, make([]mpegts.Packet, 0, len(ev.data)/mpegts.PacketSize+1))
		if len(pieces) == 0 {
			return nil
		}
		b = &pieceBatch{pieces: pieces, tables: c.d.Tables()}
	case evEOF:
		b = &pieceBatch{pieces: c.d.Flush(nil), tables: c.d.Tables(), flush: true}
	case evEnd:
		b = &pieceBatch{pieces: c.d.Flush(nil), tables: c.d.Tables(), end: true}
	}
	b.at = ev.recvAt
	return cc.Output("TS").Add(b, cc.InputTimestamp())
}

func (c *demuxCalculator) Close(*graph.CalculatorContext) error { return nil }

type segmenterCalculator struct {
	env *streamEnv
	s   *segmenter
}

func (c *segmenterCalculator) Open(cc *graph.CalculatorContext) error {
	c.env = cc.InputSidePacket("ENV").(*streamEnv)
	c.s = newSegmenter(c.env.p.cfg.SegmentDuration, c.env.maxSpan)
	if len(c.env.segments) > 0 {
		// Taking over a stream: whatever was being cut is lost.
		c.s.markDiscontinuity()
	}
	return nil
}

func (c *segmenterCalculator) Process(cc *graph.CalculatorContext) error {
	b, ok := graph.As[*pieceBatch](cc.Input("TS"))
	if !ok {
		return nil
	}
	dropped, changes, cuts, ahead := c.s.droppedBytes, c.s.formatChanges, c.s.longCuts, c.s.aheadOfClock
	var segs []*cutSegment
	if b.newSession {
		segs = c.s.newSession(b.at, segs)
	}
	segs = c.s.add(b.pieces, b.tables, segs)
	if b.flush || b.end {
		segs = c.s.flush(b.at, segs)
	}
	if d := c.s.droppedBytes - dropped; d > 0 {
		c.env.p.metrics.dropped.Add(float64(d))
	}
	if n := c.s.formatChanges - changes; n > 0 {
		c.env.p.metrics.formatChanges.Add(float64(n))
		c.env.log.Info("live stream: the picture size changed; the next segment carries a discontinuity", "width", c.s.width, "height", c.s.height)
	}
	if n := c.s.longCuts - cuts; n > 0 {
		c.env.p.metrics.longCuts.Add(float64(n))
		if cuts == 0 {
			c.env.log.Info("live stream: the publisher's key frames are further apart than the longest segment; "+
				"long groups of pictures are cut there and continue in the next segment (logged once per stream)",
				"max_segment_duration", c.env.maxSpan, "target_duration_seconds", c.env.target)
		}
	}
	if c.s.aheadOfClock > ahead && ahead == 0 {
		c.env.log.Info("live stream: the source is sent faster than real time; PROGRAM-DATE-TIME follows arrival so it never lies in the future")
	}
	if len(segs) == 0 && !b.end {
		return nil
	}
	return cc.Output("SEGMENTS").Add(&segmentBatch{segs: segs, end: b.end}, cc.InputTimestamp())
}

func (c *segmenterCalculator) Close(*graph.CalculatorContext) error { return nil }
