// Package engine is weir's engine SDK: how to write an engine, describe it
// and register it, so that weir can run it in jobs and list it in
// `weir engines list`, GET /engines and docs/engines.md.
//
// An engine finds things in media (loudness, silence, text, speech, faces)
// and reports them as vtn-standard documents ([protocol.Document]): time
// slices ([protocol.Series]) carrying tags, words or objects. It takes its
// input in one of three modes, Veritone's engineMode values:
//
//   - chunk ([ChunkEngine]): one media_chunk at a time, a frame or a few
//     seconds of media as a local file; one document back per chunk, or
//     [ErrIgnored] to mark the chunk IGNORED.
//   - stream ([StreamEngine]): a whole stream as it arrives, its
//     stream_init and an io.Reader of its raw bytes; output goes to an
//     [Emitter] as it is found.
//   - batch ([BatchEngine]): the whole input at once, as a file; output
//     goes to an Emitter.
//
// # Time
//
// Engines give every time in milliseconds from the start of their own
// input (the chunk, the stream, the file), never on the recording's
// timeline: the host running the engine adds where the input starts (the
// chunk's startOffsetMs, the stream's relativeStartOffsetMS). The Emitter
// enforces the timing rules once for all stream and batch engines: pieces
// in time order, series within their piece, a timestamp bound that only
// moves forward. See [Emitter].
//
// # Spec and registry
//
// Every engine is described by a [Spec]: a name, a mode, the MIME types it
// reads, the output types it writes, its [Option]s with types, defaults,
// bounds and docs, worked examples and the programs it [Requirement]s.
// [Spec.Validate] checks a spec; [Spec.ParseOptions] checks a task's option
// values against it and returns typed [Options]. Built-in engines add
// themselves to the [Default] registry with [Register] from an init
// function:
//
//	func init() {
//		engine.Register(engine.Spec{Name: "loudness", Mode: engine.ModeChunk, ...},
//			engine.ChunkFactory(func() (engine.ChunkEngine, error) { return &loudness{}, nil }))
//	}
//
// An engine whose required program is missing reports itself unavailable
// ([Spec.Available]) with the command that installs it, instead of failing
// jobs.
//
// Engines written in other languages register with a [Manifest]: the same
// spec as JSON or YAML plus how to reach the engine, over Kafka (it
// consumes its work topic in its own consumer group) or HTTP (Veritone
// engine toolkit's /ready and /process webhooks).
//
// docs/engines.md describes engines for users, with the table of built-in
// engines made from the Default registry.
package engine
