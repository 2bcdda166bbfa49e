// Package jobs is weir's job service: a job runs engines over the chunks
// of one source (a VOD's uploaded original, a live stream, any stream
// topic, or an http(s) URL) and records what they find.
//
// This package holds the job's front half, what the REST API (POST /jobs
// and friends) and the CLI use:
//
//   - Request, the body of POST /jobs, read by ParseRequest: one JSON
//     object of at most MaxRequestBytes, unknown members refused by name,
//     every number bounded, defaults filled in, and every problem reported
//     together as a *RequestError naming the member at fault
//     ("engines[1].options.threshold"). Request.ResolveEngines checks each
//     engine against the registry and parses its options with the engine's
//     spec.
//   - Service, which stores a job (metastore.Job, status pending, the
//     normalized request as its Spec) with one metastore.Task per engine
//     (id "<jobID>-<engine>", the engine's options as its Payload), and
//     announces it with a protocol.JobRun on protocol.TopicJobs; it also
//     reads, lists and cancels jobs and pages their results.
//   - View, a job with each engine's progress: chunks by state
//     (metastore.CountJobChunks) and the heartbeat and instances the
//     runner keeps in the task's Output as a TaskOutput.
//
// The job runner, which takes the JobRun, cuts the source into chunks and
// dispatches them to the engines, reads the stored request back with
// DecodeSpec.
package jobs
