// Package mpegts is weir's one MPEG-TS reader and writer. Every live source
// becomes MPEG-TS on a stream topic (RTMP is remuxed into it, SRT and pulled
// MPEG-TS pass through, Icecast audio is wrapped into it), and everything
// that reads a stream topic or a TS segment reads it with this package: the
// live packager, HLS segment inspection (internal/hls) and the chunker.
//
// # Demuxer
//
// A Demuxer takes the bytes of one stream in pieces of any size — Kafka
// records split MPEG-TS anywhere, even mid-packet — and hands back every
// transport packet, classified and in stream order (Feed, Flush):
//
//   - PSI: the PAT and the PMT of the first program it lists, sections
//     spanning several packets included, CRC-checked. Program reports the
//     elementary streams with their codec (H.264, H.265, AAC in ADTS, MPEG
//     audio/MP3); streams of other types are listed with CodecUnknown,
//     reported once per PMT (ErrUnsupportedStream), and their packets pass
//     through. Tables returns the PAT and PMT packets to start a segment
//     or chunk with.
//   - PES: payload unit starts with their PTS and DTS, unwrapped onto one
//     timeline for the whole program so the 33-bit wrap (every 26.5 hours)
//     keeps time increasing. With OnPES, each PES packet is reassembled and
//     handed over whole.
//   - Key frames: the start of a PES of the primary stream (the first H.264
//     or H.265 stream, else the first audio stream) is marked Key when its
//     first picture NAL unit is an IDR (H.264) or IRAP (H.265) picture, or
//     always for audio. To know that, the start packet is held, with the
//     packets after it, until that NAL unit arrives; packets are never
//     reordered.
//   - Damage: bytes off a packet boundary are skipped until two sync bytes a
//     packet apart are found (ErrSync); packets with the transport error
//     indicator are dropped (ErrTransport); a continuity counter that skips
//     drops the PES or section being gathered on that PID (ErrContinuity),
//     and a repeated packet is passed through but read once. OnError hears
//     about each; Stats counts them. Nothing in the input makes the demuxer
//     fail or panic.
//
// The demuxer is weir's own rather than mediacommon's mpegts.Reader (which,
// through go-astits, is built for a blocking io.Reader) because its users
// need what that reader does not give: a push API that a graph calculator
// can call with each record, without a goroutine and a pipe per stream; the
// publisher's own transport packets with their byte offsets, since the live
// packager cuts segments out of them untouched and HLS inspection needs the
// byte range of the first key frame; key-frame flags per packet; streams of
// unknown types listed and passed through, where Reader only decodes the
// codecs it knows; and continuity errors reported, where go-astits drops
// the damaged PES silently. It does use mediacommon for the codec details
// (NAL unit types) and its TimeDecoder for the timestamp wrap.
//
// # Muxer
//
// A Muxer writes access units into MPEG-TS: H.264 or H.265 video and AAC
// or MPEG audio, as gortmplib delivers them from an RTMP publisher
// (WriteVideo, WriteAAC, WriteMPEGAudio). It keeps the parameter sets RTMP
// sends out of band and puts them in front of every key frame, so a
// segment cut there decodes on its own, with the PAT and PMT. Every
// timestamp is moved by TimestampOffset, so the clock reference never goes
// negative. The transport packets are weir's own (tswriter.go), written
// into one reused buffer: mediacommon's Writer, used before, built them bit
// by bit and, when a publisher's first frame was audio, repeated the PAT
// and PMT before every audio frame, which made it most of the RTMP remux's
// CPU.
//
// An AudioRemuxer wraps a bare ADTS or MPEG audio byte stream (an Icecast
// station) into MPEG-TS through a Muxer, timing frames by their sample
// count.
package mpegts

// How a stream announces MPEG-TS in its stream_init (mimeType and
// ffmpegFormat), as weir's live ingest writes it.
const (
	MimeType     = "video/mp2t"
	FFmpegFormat = "mpegts"
)
