// Package push holds the RTMP, SRT and HTTP/WebSocket servers publishers
// push live streams to. Each publisher writes through an ingest.Session, as
// every live source does.
//
// A publisher is authorised by the publish key of a live stream in the
// metadata store, when it asks to publish: RTMP as
// rtmp://HOST:1935/live/{publishKey}, SRT with stream id
// "publish:{publishKey}", HTTP (PUT or POST) and WebSocket at
// /publish/{publishKey} on the HTTP listener (HTTPServer, mounted there).
// Whatever it sends becomes a protocol stream of MPEG-TS on
// protocol.StreamTopic(streamID) — stream_init, raw_stream records stamped
// with their receive time (protocol.HeaderReceivedAt), stream_eof, and
// heartbeats — the one format the live packager and the engines read. RTMP's
// H.264/H.265 and AAC/MP3 are remuxed into MPEG-TS with internal/media/mpegts;
// SRT already carries MPEG-TS and is passed through, as is MPEG-TS over
// HTTP or a WebSocket; WebM/Matroska over either is remuxed by an ffmpeg
// process.
//
// A stream has one publisher across every process sharing the metadata
// store: a session holds the stream's publish lease
// (metastore.PublishLeaseName) for its whole life, a second publisher is
// refused while it is held, and every record the session writes carries
// the lease's fencing token (protocol.HeaderPublishToken). A session whose
// lease is lost stops writing and drops its publisher.
//
// The servers hold no stream state beyond their connections: keys, status
// and leases come from the metadata store, media goes to the bus. docs/live.md
// describes publishing for users.
package push
