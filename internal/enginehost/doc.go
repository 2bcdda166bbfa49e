// Package enginehost runs chunk engines for jobs: built-in engines
// in-process, on weir's graph runtime, and external engines over HTTP
// (Veritone's engine toolkit contract). Both are Processors behind one
// Host, so they follow the same message rules and give the same results;
// external Kafka engines follow the same rules themselves.
//
// # The host
//
// A Host consumes the engine's chunk topic (protocol.ChunkTopic of its
// name, unless configured) in the engine's consumer group
// (protocol.EngineGroup), so every instance of the engine shares the work.
// The consumer never waits on an engine: each record is deferred
// (bus.Record.Defer) and handed to one of Concurrency workers, and its
// offset is committed once the chunk is answered. At most two chunks per
// worker are in hand; beyond that the consumer stops fetching.
//
// For each media_chunk, the host writes to protocol.ResultsTopic(jobId),
// with protocol.Encode's keys (taskId):
//
//  1. a chunk whose mimeType the engine does not read (engine.Spec.Accepts):
//     chunk_processed_status IGNORED, infoMsg saying what it reads;
//  2. options: the taskPayload parsed against the engine's spec; a payload
//     the spec refuses is ERROR "options: ...";
//  3. the chunk's bytes, fetched from cacheURI (Config.Fetch, capped at
//     MaxChunkBytes) or decoded from inline content (MediaChunk.Data), go
//     to a temporary file, removed afterwards; a failed fetch is ERROR;
//  4. the Processor runs with the chunk's timeout (ChunkTimeout, fetch
//     included). Its answer is timed from the chunk's start; the host
//     checks it (an invalid document is ERROR "malformed output: ...") and
//     shifts it onto the TDO timeline (engine.Shift by startOffsetMs)
//     into an engine_output: the chunk's ids, offsets and chunkUUID,
//     outputType the spec's first output, mimeType application/json,
//     rev 0. A nil answer (nothing found) writes no engine_output;
//  5. then chunk_processed_status: SUCCESS; IGNORED with the error's text
//     for an error wrapping engine.ErrIgnored; ERROR with the error's text
//     otherwise, "engine timed out after ..." when the time ran out and
//     "engine panicked: ..." for a recovered panic. An engine that ignores
//     its context past the timeout is abandoned, and the worker moves on.
//
// While it has chunks of a job in hand the host sends the job an
// engine_heartbeat (key its InstanceID, the job's jobId, taskId and tdoId,
// status RUNNING, cumulative counts of the instance) when it takes the
// job's first chunk and every HeartbeatInterval (protocol.HeartbeatInterval
// by default) after.
//
// The host sends no timestamp bound for a chunk task: it sees chunks of
// many jobs, in any order, and not which ones flow control dropped. The
// job runner, which cut the chunks and settles each of them, sends the
// task's timestamp_bound (protocol.TimestampBound) instead, for every
// chunk engine alike: in-process, HTTP or Kafka.
//
// A record that is not a valid media_chunk is dead-lettered
// (bus.Permanent: it goes to the topic's dlq_ topic with the reason); if
// it still names a jobId and chunkUUID, it is answered ERROR
// "malformed media_chunk: ..." first, so its job does not wait for it.
// Nothing a chunk does stops the host: Run returns only when its context
// ends or the bus fails it. Chunks in hand when the host stops are not
// answered or committed; the group delivers them again.
//
// # In-process engines on the graph runtime
//
// InProcess runs a registered chunk engine (engine.ChunkFactory) as a
// calculator, ChunkEngine, in a graph of one node:
//
//	input_side_packets: [engine, options]
//	input_streams: [chunks]
//	nodes:
//	  - calculator: ChunkEngine
//	    input_side_packets: ["ENGINE:engine", "OPTIONS:options"]
//	    input_streams: ["CHUNK:chunks"]
//	    output_streams: ["RESULT:results"]
//
// Each chunk is one run of that graph: the chunk is a packet at its start
// on the TDO timeline in microseconds (startOffsetMs × 1000), the engine
// instance and the task's options are side packets, and the result (the
// document or the engine's error) is a packet at the same timestamp
// (the node declares a timestamp offset of 0, so the runtime settles the
// output's bounds). A run per chunk, rather than one long run per host,
// is what the runtime's timing contract asks for: chunks of different
// jobs, and chunks sent again after a failure, do not come in increasing
// time, and a stream's timestamps must. Engine instances come from the
// factory when no idle one is left and are reused, one chunk at a time
// each, as the SDK promises; an instance abandoned after a timeout is
// never reused. Engine errors and panics are results, not failures of the
// run, so the host reports them as the chunk's status.
//
// # External engines over HTTP
//
// HTTPProcessor (NewHTTP) posts each chunk to the engine's /process as
// multipart/form-data and reads its answer; see its documentation for the
// fields, statuses and retries. Ready asks its /ready.
package enginehost
