// Package live turns live streams into HLS with a DVR window that becomes
// VOD when the stream ends.
//
// Packager reads each live stream's topic (MPEG-TS on the bus, as every
// live source in internal/ingest writes it: the RTMP and SRT publish
// sessions and the pulls) in the packagers' consumer group and runs it
// through a calculator graph: LiveTSDemux classifies transport packets and
// finds key frames (with internal/media/mpegts, weir's one MPEG-TS reader),
// LiveSegmenter cuts segments on them, LiveSegmentWriter stores and verifies
// each segment, LivePlaylistWriter lists it in the rolling live playlist,
// records it in the metadata store and, at the end, writes the VOD playlist.
// A stream ends when its topic carries the end marker (a heartbeat with
// protocol.HeaderLiveEnd, written by internal/ingest/control on an end
// request), when its status turns terminal elsewhere, or when its publisher
// has been gone for the publisher timeout.
//
// The package knows no source: everything between the sources and the
// packager goes through the bus and the stores, so they can run in one
// process or many. docs/live.md describes the pipeline for users:
// publishing, segments, the window, ending, metrics.
package live
