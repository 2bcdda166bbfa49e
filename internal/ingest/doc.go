// Package ingest turns media sources into protocol streams on the bus.
//
// Every adapter, pull or push, ends the same way: bytes from somewhere become
// a stream topic holding a stream_init, raw_stream records of at most
// chunkSize bytes, and a stream_eof that carries the stream's length and MD5,
// with engine_heartbeat records along the way. A [StreamWriter] does that
// part for any byte source: give it a [bus.Bus] (a *bus.Client, or a
// bustest.Bus in tests), a topic and [StreamOptions], call Init, Write the
// bytes as they arrive, and end with Close (the stream is complete, or was
// stopped on purpose) or Abort (the source broke). RTMP, SRT and HTTP push
// sources reuse it as is.
//
// [Pull] is the pull adapter of Veritone's real-time pipeline built on it: it
// reads a local file, downloads an HTTP(S) URL progressively, or records a
// live HTTP stream (an Icecast station, an MPEG-TS feed) for a set duration,
// probes the format with ffprobe before anything is published, and reports
// what it wrote in a [Result]. `weir ingest` is a thin command over Pull;
// docs/ingest.md describes it for users.
package ingest
