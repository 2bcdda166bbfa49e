// Package hls writes HTTP Live Streaming playlists (RFC 8216) and inspects
// the segments they list. It serves both of weir's packagers: the VOD
// transcoder (EVENT playlists while a title is transcoding, VOD playlists
// with ENDLIST once it is done) and the live packager (playlists without a
// type, a sliding window with MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE,
// PROGRAM-DATE-TIME on every segment).
//
// The package never copies a playlist written by another tool: callers
// describe segments (URI, duration, byte range, discontinuity, wall-clock
// time) and the encoders here derive everything else — TARGETDURATION, the
// minimal EXT-X-VERSION, BANDWIDTH and AVERAGE-BANDWIDTH from measured
// segment sizes (PeakBitrate, AverageBitrate), and CODECS from the
// encoded bitstream (ParseSPS, MP4ACodec, ParseInit, InspectTS).
//
// Encoding is deterministic: the same input always gives the same bytes,
// durations are written with three decimals, and a value that cannot be
// written legally (a URI with a line break, a negative duration) is an error
// rather than a malformed playlist.
package hls
