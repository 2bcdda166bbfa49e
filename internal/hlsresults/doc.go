// Package hlsresults puts engine results into the HLS presentation a
// viewer plays: a WebVTT subtitles rendition made from a stream's stt
// transcript, and a JSON timed-metadata playlist for every engine's
// results, both segmented exactly like the video.
//
// Nothing is written to the object store. Service answers the requests
// under /hls/{stream}/ that it owns, building each answer from the
// metadata store (the stream's jobs, their results, the segment rows) and
// the stored playlists:
//
//   - master.m3u8 of a title with jobs: the stored master with an
//     EXT-X-MEDIA TYPE=SUBTITLES rendition (when a job ran stt), SUBTITLES
//     on every variant, and an EXT-X-SESSION-DATA pointing at the metadata
//     index. A live stream's master (one variant, live.m3u8 or vod.m3u8)
//     is generated.
//   - subs/{playlist}: the subtitles playlist mirroring the media playlist
//     {playlist} (same MEDIA-SEQUENCE, durations, discontinuities); its
//     segments subs/[{rendition}/]{sequence}.vtt carry an X-TIMESTAMP-MAP
//     tying their cues to the first presentation timestamp of the media
//     segment with that sequence number.
//   - meta/index.json, meta/{playlist} and meta/[{rendition}/]{sequence}.json:
//     the same mirroring, with a JSON document of the results overlapping
//     each segment.
//
// Results are milliseconds on the job's source timeline; segments carry
// their packager's timestamps. The Timeline of a stream ties the two (see
// timeline.go); a segment is listed in a subtitles or metadata playlist
// only once the job's results for it are in (or the job is over, or, for a
// live stream, the segment has waited LiveDelay), because players fetch a
// segment once and never look at it again. docs/results.md ("Captions
// and timed metadata") describes the whole for operators and players.
package hlsresults
