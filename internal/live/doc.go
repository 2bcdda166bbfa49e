// Package live turns live streams into HLS with a DVR window that becomes
// VOD when the stream ends.
//
// Two roles a weir process may run, and the sources one of them drives:
//
//   - Packager reads each live stream's topic (MPEG-TS on the bus, as the
//     push package's servers and this package's pullers write it) in the
//     packagers' consumer group and runs it through a calculator graph:
//     LiveTSDemux classifies transport packets and finds key frames (with
//     internal/media/mpegts, weir's one MPEG-TS reader),
//     LiveSegmenter cuts segments on them, LiveSegmentWriter stores and
//     verifies each segment, LivePlaylistWriter lists it in the rolling live
//     playlist, records it in the metadata store and, at the end, writes the
//     VOD playlist.
//   - Controller carries out the REST API's control messages on
//     ControlTopic: it pulls streams started with a source URL and turns end
//     requests into an end marker on the stream's topic.
//   - The pullers (inside the Controller) read HTTP MPEG-TS feeds and
//     Icecast-style AAC or MP3 stations into the stream topic as MPEG-TS
//     (the stations through mpegts.AudioRemuxer).
//
// Everything between them goes through the bus and the stores, so they can
// run in one process or many. docs/live.md describes the pipeline for
// users: publishing, segments, the window, ending, metrics.
package live
