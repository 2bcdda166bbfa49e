// Package ingest turns media sources into protocol streams on the bus.
//
// Every adapter, pull or push, ends the same way: bytes from somewhere become
// a stream topic holding a stream_init, raw_stream records of at most
// chunkSize bytes, and a stream_eof that carries the stream's length and MD5,
// with engine_heartbeat records along the way. A [StreamWriter] does that
// part for any byte source: give it a [bus.Bus] (a *bus.Client, or a
// bustest.Bus in tests), a topic and [StreamOptions], call Init, Write the
// bytes as they arrive, and end with Close (the stream is complete, or was
// stopped on purpose) or Abort (the source broke).
//
// A [Session] is the live form every live source writes through: MPEG-TS
// bytes queued as they arrive and sent at once, each raw_stream record
// stamped with its receive time, and, under a metadata-store lease, every
// record stamped with the lease's fencing token and nothing written once
// the lease is lost.
//
// [Pull] is the pull adapter of Veritone's real-time pipeline built on it: it
// reads a local file, downloads an HTTP(S) URL progressively, or records a
// live HTTP stream (an Icecast station, an MPEG-TS feed) for a set duration,
// probes the format with ffprobe before anything is published, and reports
// what it wrote in a [Result]. `weir ingest` is a thin command over Pull;
// docs/ingest.md describes it for users. [PullLive] reads one response of
// a live HTTP feed into a live stream's topic as MPEG-TS through a Session;
// the live controller (package control) calls it again while the stream
// lasts. Both open HTTP sources the same way, and their failures are typed
// ([HTTPStatusError], [ErrStalled], [ErrPrivateAddress],
// [ErrUnsupportedScheme], media.ErrNoMedia) so [IsPermanent] can tell the
// ones no retry mends.
//
// The sub-packages are the other sources: push (the RTMP and SRT publish
// servers) and control (the live control handler, which runs pulls).
package ingest
