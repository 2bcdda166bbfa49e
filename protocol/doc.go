// Package protocol is weir's implementation of the Veritone aiWARE real-time
// message protocol: the Kafka messages that adapters, chunkers, engines and
// aggregators exchange.
//
// Two families of topic carry these messages.
//
// A stream topic carries one media stream as a sequence of records: a
// [StreamInit] first, then [RawStream] records holding the stream's bytes
// (at most [StreamInit.ChunkSize] each, [DefaultChunkSize] by default), then
// a [StreamEOF]. The record key tells them apart: it is the message type,
// optionally prefixed ("raw_stream" or "cam1_raw_stream"). A raw_stream
// record's value is the bytes themselves, never JSON; every other value is a
// JSON object. [EngineHeartbeat] records may be interleaved anywhere; they
// are keyed by engineInstanceId.
//
// A chunk topic carries [MediaChunk], [EngineOutput] and
// [ChunkProcessedStatus] records, keyed by taskId, plus heartbeats.
//
// [Decode] turns a record's key and value into a [Message] and checks it: the
// type must agree with the key, required fields must be present, values must
// be sane. Errors name the message type and the field, as in
//
//	stream_init: field "chunkSize": must be positive, got -5
//
// and a problem with one record never poisons the next: Decode keeps no
// state. [StreamReader] adds the ordering rules of a stream topic on top
// (stream_init first, nothing but a new stream_init after stream_eof) and
// verifies stream_eof's contentLength and md5Checksum against the bytes that
// actually arrived. [Encode] is the inverse of Decode: it validates, fills in
// the type and timestampUTC when they are zero, and returns the key and value
// to produce.
//
// JSON field names are exactly Veritone's, so engines written in any language
// against Veritone's documentation interoperate. Every JSON message and every
// vtn-standard object keeps the members it does not know in an Extra map and
// writes them back on encode, so weir can relay another engine's messages
// without losing fields. weir adds a field of its own,
// [EngineHeartbeat.TimestampBoundMs], and two messages for aggregation:
// [TimestampBound], a task's promise on the results topic that nothing
// earlier will come, and [ResultWindow], the aggregator's merged results
// for one window of time on a job's windows topic ([WindowsTopic]).
//
// [TaskPayload] is the JSON document a task starts from (the adapter's
// url, whether it is live, how long to record, how long chunks are).
//
// The package is also the home of the rest of weir's bus contract, so that
// engines written in Go use the same names weir does: topic names
// ([TopicName], [StreamTopic], [ControlTopic]...) and consumer group names
// ([RoleGroup], [EngineGroup]), weir's record headers ([HeaderReceivedAt],
// [HeaderLiveEnd], [HeaderPublishToken]) and weir's own control messages ([VODJob],
// [LiveControl], written by [EncodeControl]).
//
// docs/protocol.md describes the protocol for engine authors; docs/bus.md
// lists every topic, key, header and message with who writes and who reads
// it.
package protocol
